package tsdb

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"

	"evalstore/tsdb/internal/histtest"
	"evalstore/tsdb/plan"
)

func testHist(count float64) *histogram.FloatHistogram {
	return &histogram.FloatHistogram{Schema: 1, ZeroThreshold: 0.001, ZeroCount: 1, Count: count, Sum: 10,
		PositiveSpans: []histogram.Span{{Offset: -2, Length: 2}, {Offset: 3, Length: 1}}, PositiveBuckets: []float64{1, 2, count - 4}}
}

// TestAddHistogramRules checks the appender's rules for histogram samples:
// order (within a batch, across commits, across a flush and a restart),
// retry-safe repeats, conflicting duplicates, kind mismatches, every
// Validate failure and the time bounds.
func TestAddHistogramRules(t *testing.T) {
	dir := t.TempDir()
	clock := newClock()
	db := openTestDB(t, dir, testOptions(clock))
	defer func() { _ = db.Close() }()
	now := testStart.UnixMilli()
	l := labels.FromStrings("__name__", "h")
	fl := labels.FromStrings("__name__", "f")
	same := testHist(10)
	// The same histogram with another span layout and hint: a repeat.
	respelled := testHist(10)
	respelled.PositiveSpans = []histogram.Span{{Offset: -2, Length: 0}, {Offset: 0, Length: 2}, {Offset: 3, Length: 1}}
	respelled.CounterResetHint = histogram.NotCounterReset
	other := testHist(11)
	invalid := func(f func(h *histogram.FloatHistogram)) *histogram.FloatHistogram {
		h := testHist(10)
		f(h)
		return h
	}
	nhcb := &histogram.FloatHistogram{Schema: histogram.CustomBucketsSchema, Count: 3, Sum: 1, CustomValues: []float64{1, 2},
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []float64{1, 2}}
	type step struct {
		name   string
		lset   labels.Labels
		t      int64
		h      *histogram.FloatHistogram
		want   error
		reason error // the histogram package's error, for invalid ones
	}
	order := func(when string, t0 int64) []step {
		return []step{
			{when + ": repeat", l, t0, same, nil, nil},
			{when + ": repeat with another layout and hint", l, t0, respelled, nil, nil},
			{when + ": conflicting duplicate", l, t0, other, ErrDuplicateSampleForTimestamp, nil},
			{when + ": older", l, t0 - 1, same, ErrOutOfOrderSample, nil},
		}
	}
	steps := []step{
		{"first", l, now - 10_000, same, nil, nil},
	}
	steps = append(steps, order("same batch", now-10_000)...)
	steps = append(steps,
		step{"float series", fl, now, nil, nil, nil}, // AddFloat below
		step{"histogram into float series", fl, now + 1, same, ErrFormatMismatch, nil},
		step{"float into histogram series", l, now, nil, ErrFormatMismatch, nil},
		step{"nil", l, now, nil, ErrInvalidHistogram, nil},
		step{"negative count", l, now, invalid(func(h *histogram.FloatHistogram) { h.Count = -1 }), ErrInvalidHistogram, histogram.ErrHistogramNegativeCount},
		step{"negative bucket", l, now, invalid(func(h *histogram.FloatHistogram) { h.PositiveBuckets[0] = -1 }), ErrInvalidHistogram, histogram.ErrHistogramNegativeBucketCount},
		step{"negative zero count", l, now, invalid(func(h *histogram.FloatHistogram) { h.ZeroCount = -1 }), ErrInvalidHistogram, histogram.ErrHistogramNegativeBucketCount},
		step{"spans and buckets disagree", l, now, invalid(func(h *histogram.FloatHistogram) { h.PositiveBuckets = h.PositiveBuckets[:2] }), ErrInvalidHistogram, histogram.ErrHistogramSpansBucketsMismatch},
		step{"negative span offset", l, now, invalid(func(h *histogram.FloatHistogram) { h.PositiveSpans[1].Offset = -1 }), ErrInvalidHistogram, histogram.ErrHistogramSpanNegativeOffset},
		step{"schema", l, now, invalid(func(h *histogram.FloatHistogram) { h.Schema = 9 }), ErrInvalidHistogram, histogram.ErrHistogramsInvalidSchema},
		step{"custom bounds on an exponential schema", l, now, invalid(func(h *histogram.FloatHistogram) { h.CustomValues = []float64{1} }), ErrInvalidHistogram, histogram.ErrHistogramExpSchemaCustomBounds},
		step{"custom bounds not increasing", l, now, invalid(func(h *histogram.FloatHistogram) {
			*h = *nhcb.Copy()
			h.CustomValues = []float64{2, 1}
		}), ErrInvalidHistogram, histogram.ErrHistogramCustomBucketsInvalid},
		step{"custom buckets with a zero count", l, now, invalid(func(h *histogram.FloatHistogram) {
			*h = *nhcb.Copy()
			h.ZeroCount = 1
		}), ErrInvalidHistogram, histogram.ErrHistogramCustomBucketsZeroCount},
		step{"too few custom bounds", l, now, invalid(func(h *histogram.FloatHistogram) {
			*h = *nhcb.Copy()
			h.CustomValues = nil
		}), ErrInvalidHistogram, histogram.ErrHistogramCustomBucketsMismatch},
		step{"too old", l, now - 400*dayMs - 1, same, ErrOutOfBounds, nil},
		step{"too new", l, now + 11*minute, same, ErrOutOfBounds, nil},
		step{"custom buckets", l, now - 9_000, nhcb, nil, nil},
	)
	a := db.Appender()
	run := func(steps []step) {
		t.Helper()
		for _, s := range steps {
			t.Run(s.name, func(t *testing.T) {
				var err error
				if s.name == "float series" || s.name == "float into histogram series" {
					err = a.AddFloat(s.lset, s.t, 1)
				} else {
					err = a.AddHistogram(s.lset, s.t, s.h)
				}
				if !errors.Is(err, s.want) || (s.want == nil) != (err == nil) {
					t.Fatalf("got %v, want %v", err, s.want)
				}
				if s.reason != nil && (!errors.Is(err, s.reason) || !strings.Contains(err.Error(), l.String())) {
					t.Fatalf("error %v does not name the reason %v and the series", err, s.reason)
				}
			})
		}
	}
	run(steps)
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
	run(order("next batch", now-10_000+0)[3:]) // older than the committed newest (nhcb at -9000)
	run([]step{
		{"committed: repeat", l, now - 9_000, nhcb, nil, nil},
		{"committed: conflict", l, now - 9_000, same, ErrDuplicateSampleForTimestamp, nil},
		{"committed: older", l, now - 9_500, same, ErrOutOfOrderSample, nil},
	})
	a.Rollback()
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	afterFlush := []step{
		{"flushed: repeat", l, now - 9_000, nhcb, nil, nil},
		{"flushed: conflict", l, now - 9_000, same, ErrDuplicateSampleForTimestamp, nil},
		{"flushed: older", l, now - 9_500, same, ErrOutOfOrderSample, nil},
	}
	run(afterFlush)
	a.Rollback()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTestDB(t, dir, testOptions(clock))
	a = db.Appender()
	for i := range afterFlush {
		afterFlush[i].name = strings.Replace(afterFlush[i].name, "flushed", "reopened", 1)
	}
	run(afterFlush)
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
	got := readHists(t, db, 0, math.MaxInt64)[l.String()]
	if d := histtest.Diff(got, []histtest.Sample{{T: now - 10_000, H: same}, {T: now - 9_000, H: nhcb}}); d != "" {
		t.Fatal(d)
	}
	if st := db.Stats(); st.Series != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// The appender copies the histogram: a caller reusing it after Add does
// not change what is stored.
func TestAddHistogramCopies(t *testing.T) {
	db := openTestDB(t, t.TempDir(), testOptions(newClock()))
	defer func() { _ = db.Close() }()
	l := labels.FromStrings("__name__", "h")
	now := testStart.UnixMilli()
	h := testHist(10)
	a := db.Appender()
	if err := a.AddHistogram(l, now, h); err != nil {
		t.Fatal(err)
	}
	h.PositiveBuckets[0], h.PositiveSpans[0].Offset, h.Sum, h.Count = 100, 7, -1, 200
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
	got := readHists(t, db, 0, math.MaxInt64)[l.String()]
	if d := histtest.Diff(got, []histtest.Sample{{T: now, H: testHist(10)}}); d != "" {
		t.Fatal(d)
	}
}

// histWorkload is a set of generated histogram series written in time
// order in phases, with the oracle of what was written.
type histWorkload struct {
	series  []labels.Labels
	samples [][]histtest.Sample
	hi      int64 // samples before hi are written
}

func newHistWorkload(r *rand.Rand, perKind, n int, start, step int64) *histWorkload {
	w := &histWorkload{}
	for k := range histtest.NumKinds {
		for i := range perKind {
			w.series = append(w.series, labels.FromStrings("__name__", fmt.Sprintf("hist_%d", k), "i", fmt.Sprint(i)))
			w.samples = append(w.samples, histtest.Series(r, k, n, start+int64(i)*997, step))
		}
	}
	return w
}

// write commits the samples with times in [lo, hi) in batches of random
// size that interleave the series in time order.
func (w *histWorkload) write(t testing.TB, db *DB, r *rand.Rand, lo, hi int64) {
	t.Helper()
	w.hi = hi
	a := db.Appender()
	next := make([]int, len(w.series))
	for i, ss := range w.samples {
		for next[i] < len(ss) && ss[next[i]].T < lo {
			next[i]++
		}
	}
	pending := 0
	for {
		best := -1
		for i, ss := range w.samples {
			if next[i] < len(ss) && ss[next[i]].T < hi && (best < 0 || ss[next[i]].T < w.samples[best][next[best]].T) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		s := w.samples[best][next[best]]
		next[best]++
		if err := a.AddHistogram(w.series[best], s.T, s.H); err != nil {
			t.Fatal(err)
		}
		if pending++; r.IntN(50) == 0 {
			if err := a.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
}

// check reads [mint, maxt] and compares with the oracle exactly, and checks
// the hints read never lie; explicitCR requires explicit counter resets
// written to read back as such (reads from one source per series).
func (w *histWorkload) check(t testing.TB, what string, db *DB, mint, maxt int64, explicitCR bool) {
	t.Helper()
	got := readHists(t, db, mint, maxt)
	n := 0
	for i, l := range w.series {
		var want []histtest.Sample
		written := map[int64]*histogram.FloatHistogram{}
		for _, s := range w.samples[i] {
			written[s.T] = s.H
			if s.T >= mint && s.T <= maxt && s.T < w.hi {
				want = append(want, s)
			}
		}
		g := got[l.String()]
		if d := histtest.Diff(g, want); d != "" {
			t.Fatalf("%s: %s: %s", what, l, d)
		}
		if d := histtest.HintsHonest(g, written); d != "" {
			t.Fatalf("%s: %s: %s", what, l, d)
		}
		for j, s := range g {
			if explicitCR && j > 0 && want[j].H.CounterResetHint == histogram.CounterReset && s.H.CounterResetHint != histogram.CounterReset {
				t.Fatalf("%s: %s: explicit counter reset at %d reads %v", what, l, s.T, s.H.CounterResetHint)
			}
		}
		n += len(g)
		if len(g) > 0 {
			delete(got, l.String())
		}
	}
	if len(got) != 0 || n == 0 {
		t.Fatalf("%s: %d samples, extra series %v", what, n, got)
	}
}

// TestHistogramRoundTrip writes generated histogram series (schema and
// layout changes, counter resets with and without hints, gauges, custom
// buckets, staleness markers, hundreds of samples per series) and reads
// them back exactly from the head, after WAL replay, after flushes, after
// compaction and downsampling (at the finest and a coarse resolution) and
// after retention.
func TestHistogramRoundTrip(t *testing.T) {
	dir := t.TempDir()
	clock := newClock()
	opts := testOptions(clock)
	opts.Levels = []plan.Level{{Resolution: hourMs, After: 7 * plan.Day, Partition: 7 * plan.Day, Rollup: true}}
	opts.FlushSettle = -1
	db := openTestDB(t, dir, opts)
	defer func() { _ = db.Close() }()
	r := rand.New(rand.NewPCG(7, 8))
	now := testStart.UnixMilli()
	start := now - 30*dayMs
	w := newHistWorkload(r, 2, 700, start, hourMs)
	end := start + 700*hourMs
	w.write(t, db, r, start, start+10*dayMs)
	w.check(t, "head", db, 0, math.MaxInt64, true)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTestDB(t, dir, opts)
	w.check(t, "replayed", db, 0, math.MaxInt64, true)
	if st := db.Stats(); st.HistogramSamples == 0 || st.HeadSamples == 0 {
		t.Fatalf("stats after replay %+v", st)
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	w.check(t, "flushed", db, 0, math.MaxInt64, true)
	w.check(t, "flushed, a range", db, start+2*dayMs+1, start+5*dayMs, false)
	w.write(t, db, r, start+10*dayMs, start+20*dayMs)
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	w.write(t, db, r, start+20*dayMs, end+1)
	w.check(t, "blocks and head", db, 0, math.MaxInt64, false)
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
	rollups := 0
	db.stateMu.RLock()
	for _, b := range db.blocks {
		if b.rollupOf != "" || b.m.resolution > minute {
			rollups++
		}
	}
	db.stateMu.RUnlock()
	if st := db.Stats(); st.Compactions == 0 || rollups == 0 {
		t.Fatalf("no compaction (%d) or downsampled block (%d)", st.Compactions, rollups)
	}
	w.check(t, "compacted", db, 0, math.MaxInt64, false)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTestDB(t, dir, opts)
	w.check(t, "compacted, reopened", db, 0, math.MaxInt64, false)
	// Rollups hold histogram samples as they are: a coarse read returns
	// every sample.
	got := readHistsRes(t, db, 0, math.MaxInt64, dayMs)
	for i, l := range w.series {
		if d := histtest.Diff(got[l.String()], w.samples[i]); d != "" {
			t.Fatalf("coarse read: %s: %s", l, d)
		}
	}
	// Retention: 20 days later only the last ~10 days are kept.
	opts.Retention = 20 * 24 * time.Hour
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTestDB(t, dir, opts)
	clock.Advance(10 * 24 * time.Hour)
	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
	if db.Stats().RetentionDeletes == 0 {
		t.Fatalf("no retention delete: %+v", db.Stats())
	}
	cut := bucketStart(clock.Now().Add(-opts.Retention).UnixMilli(), minute)
	w.check(t, "after retention", db, cut, math.MaxInt64, false)
	waitRemoved(t, db)
	liveOnDisk(t, dir)
}

// Stale markers are stored and read back as such, whatever else the
// marker histogram holds.
func TestHistogramStaleMarker(t *testing.T) {
	db := openTestDB(t, t.TempDir(), testOptions(newClock()))
	defer func() { _ = db.Close() }()
	l := labels.FromStrings("__name__", "h")
	now := testStart.UnixMilli()
	stale := testHist(10)
	stale.Sum = math.Float64frombits(value.StaleNaN)
	a := db.Appender()
	for i, h := range []*histogram.FloatHistogram{testHist(10), stale, testHist(12)} {
		if err := a.AddHistogram(l, now+int64(i), h); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, when := range []string{"head", "block"} {
		got := readHists(t, db, 0, math.MaxInt64)[l.String()]
		if len(got) != 3 || !value.IsStaleNaN(got[1].H.Sum) || value.IsStaleNaN(got[2].H.Sum) || !histtest.Same(got[2].H, testHist(12)) {
			t.Fatalf("%s: %v", when, got)
		}
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
}

// growHist is testHist(10) with i more buckets of one observation each:
// every sample opens a bucket, so the head recodes its chunk and earlier
// samples read back with empty buckets they were not written with.
func growHist(i int) *histogram.FloatHistogram {
	h := testHist(10)
	if i > 0 {
		h.PositiveSpans = append(h.PositiveSpans, histogram.Span{Offset: 1, Length: uint32(i)})
		for range i {
			h.PositiveBuckets = append(h.PositiveBuckets, 1)
		}
		h.Count += float64(i)
	}
	return h
}

// TestRetryOfOlderSamplesIsNoop: a retried remote-write request resends a
// series' samples older than its newest; identical ones still in the head
// are no-ops (for floats and histograms), a changed one is out of order,
// and once flushed to a block they are refused as out of order, never
// stored twice.
func TestRetryOfOlderSamplesIsNoop(t *testing.T) {
	clock := newClock()
	db := openTestDB(t, t.TempDir(), testOptions(clock))
	fl := labels.FromStrings("__name__", "f")
	hl := labels.FromStrings("__name__", "h")
	base := testStart.UnixMilli() - 10*minute
	write := func(f func(a *Appender) error) error {
		a := db.Appender()
		if err := f(a); err != nil {
			a.Rollback()
			return err
		}
		return a.Commit()
	}
	batch := func(a *Appender) error {
		for i := range int64(5) {
			if err := a.AddFloat(fl, base+i*15_000, float64(i)); err != nil {
				return err
			}
			if err := a.AddHistogram(hl, base+i*15_000, growHist(int(i))); err != nil {
				return err
			}
		}
		return nil
	}
	if err := write(batch); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		if got := readFloats(t, db, base-minute, base+minute)[fl.String()]; len(got) != 5 {
			t.Fatalf("%s: %d float samples, want 5", when, len(got))
		}
		hs := readHists(t, db, base-minute, base+minute)[hl.String()]
		if len(hs) != 5 {
			t.Fatalf("%s: %d histogram samples, want 5", when, len(hs))
		}
		for i, s := range hs {
			if want := growHist(i); !histtest.Same(s.H, want) {
				t.Fatalf("%s: histogram %d = %v, want %v", when, i, s.H, want)
			}
		}
	}
	if err := write(batch); err != nil {
		t.Fatalf("retry: %v", err)
	}
	check("after retry")
	for _, c := range []struct {
		name string
		add  func(a *Appender) error
	}{
		{"float changed", func(a *Appender) error { return a.AddFloat(fl, base+15_000, 7) }},
		{"float new older timestamp", func(a *Appender) error { return a.AddFloat(fl, base+1, 1) }},
		{"histogram changed", func(a *Appender) error { return a.AddHistogram(hl, base+15_000, growHist(2)) }},
	} {
		if err := write(c.add); !errors.Is(err, ErrOutOfOrderSample) {
			t.Errorf("%s: %v, want ErrOutOfOrderSample", c.name, err)
		}
	}
	check("after refused writes")
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := write(batch); !errors.Is(err, ErrOutOfOrderSample) {
		t.Errorf("retry after flush: %v, want ErrOutOfOrderSample", err)
	}
	check("after flush")
}
