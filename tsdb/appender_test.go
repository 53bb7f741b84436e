package tsdb

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"

	"evalstore/sketch"
	"evalstore/tsdb/index"
)

// The float series cache must give one series one entry whatever form its
// labels come in, so order checks inside a batch see every pending sample.
func TestFloatCacheLabelForms(t *testing.T) {
	db := openTestDB(t, t.TempDir(), testOptions(newClock()))
	defer db.Close()
	now := testStart.UnixMilli()
	sorted := labels.FromStrings("__name__", "up", "job", "x")
	var sb labels.ScratchBuilder
	sb.Add("job", "x")
	sb.Add("__name__", "up")
	unsorted := sb.Labels() // not sorted: never a cache hit by itself
	sb.Reset()
	sb.Add("__name__", "up")
	sb.Add("empty", "")
	sb.Add("job", "x")
	withEmpty := sb.Labels()

	a := db.Appender()
	for i, l := range []labels.Labels{sorted, unsorted, withEmpty} {
		if err := a.AddFloat(l, now-10000+int64(i)*1000, float64(i)); err != nil {
			t.Fatalf("form %d: %v", i, err)
		}
	}
	for i, l := range []labels.Labels{sorted, unsorted, withEmpty} {
		if err := a.AddFloat(l, now-9000, 5); !errors.Is(err, ErrOutOfOrderSample) {
			t.Fatalf("form %d, older: %v", i, err)
		}
		if err := a.AddFloat(l, now-8000, 5); !errors.Is(err, ErrDuplicateSampleForTimestamp) {
			t.Fatalf("form %d, other value: %v", i, err)
		}
		if err := a.AddFloat(l, now-8000, 2); err != nil {
			t.Fatalf("form %d, same value: %v", i, err)
		}
	}
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
	// Again with a warm cache, in the next batch (order against committed
	// data).
	for i, l := range []labels.Labels{withEmpty, unsorted, sorted} {
		if err := a.AddFloat(l, now-8500, 1); !errors.Is(err, ErrOutOfOrderSample) {
			t.Fatalf("form %d, next batch: %v", i, err)
		}
	}
	if err := a.AddFloat(unsorted, now-7000, 7); err != nil {
		t.Fatal(err)
	}
	if err := a.AddFloat(sorted, now-7000, 8); !errors.Is(err, ErrDuplicateSampleForTimestamp) {
		t.Fatalf("pending sample via another form: %v", err)
	}
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
	want := []floatPt{{now - 10000, math.Float64bits(0)}, {now - 9000, math.Float64bits(1)},
		{now - 8000, math.Float64bits(2)}, {now - 7000, math.Float64bits(7)}}
	got := readFloats(t, db, 0, math.MaxInt64)
	if len(got) != 1 || fmt.Sprint(got[sorted.String()]) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// A cached series is still checked against what other appenders commit.
func TestFloatCacheSeesOtherWriters(t *testing.T) {
	db := openTestDB(t, t.TempDir(), testOptions(newClock()))
	defer db.Close()
	now := testStart.UnixMilli()
	l := labels.FromStrings("__name__", "up")
	a, b := db.Appender(), db.Appender()
	for _, step := range []struct {
		app  *Appender
		t    int64
		v    float64
		want error
	}{
		{a, now - 5000, 1, nil}, {b, now - 4000, 1, nil}, {a, now - 4500, 1, ErrOutOfOrderSample},
		{a, now - 4000, 2, ErrDuplicateSampleForTimestamp}, {a, now - 3000, 1, nil}, {b, now - 3500, 1, ErrOutOfOrderSample},
	} {
		err := step.app.AddFloat(l, step.t, step.v)
		if !errors.Is(err, step.want) {
			t.Fatalf("t=%d: got %v, want %v", step.t, err, step.want)
		}
		if err == nil {
			if err := step.app.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A sample that loses the race between Add and Commit is dropped at
	// apply and counted, as before the cache.
	if err := a.AddFloat(l, now-2000, 1); err != nil {
		t.Fatal(err)
	}
	if err := b.AddFloat(l, now-1000, 1); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := len(readFloats(t, db, 0, math.MaxInt64)[l.String()]); got != 4 {
		t.Fatalf("%d samples, want 4", got)
	}
	if d := db.stats.floatsDropped.Load(); d != 1 {
		t.Fatalf("dropped %d, want 1", d)
	}
}

func TestFloatCacheKindMismatch(t *testing.T) {
	db := openTestDB(t, t.TempDir(), testOptions(newClock()))
	defer db.Close()
	now := testStart.UnixMilli()
	fl := labels.FromStrings("__name__", "f")
	sk := labels.FromStrings("__name__", "s")
	c := sketch.NewConfusion()
	c.Add(1, 1)
	a := db.Appender()
	if err := a.AddFloat(fl, now, 1); err != nil {
		t.Fatal(err)
	}
	if err := a.AddSketch(sk, now, c.AppendBinary(nil)); err != nil {
		t.Fatal(err)
	}
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := a.AddSketch(fl, now, c.AppendBinary(nil)); !errors.Is(err, ErrFormatMismatch) {
			t.Fatalf("sketch into float series: %v", err)
		}
		if err := a.AddFloat(sk, now+1, 1); !errors.Is(err, ErrFormatMismatch) {
			t.Fatalf("float into sketch series: %v", err)
		}
		if err := a.AddFloat(fl, now+1, 2); err != nil {
			t.Fatal(err)
		}
		a.Rollback()
	}
}

// Batches with more series than maxCachedSeries drop the cache at their
// end; the next batches refill it.
func TestFloatCacheBound(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	db := openTestDB(t, t.TempDir(), testOptions(newClock()))
	defer db.Close()
	now := testStart.UnixMilli()
	n := maxCachedSeries + 10
	lsets := make([]labels.Labels, n)
	for i := range lsets {
		lsets[i] = labels.FromStrings("__name__", "m", "i", fmt.Sprint(i))
	}
	a := db.Appender()
	for round := range 3 {
		for i, l := range lsets {
			if err := a.AddFloat(l, now-int64(10-round)*1000, float64(i)); err != nil {
				t.Fatal(err)
			}
		}
		st := a.appendState
		if err := a.Commit(); err != nil {
			t.Fatal(err)
		}
		if len(st.cached) != 0 {
			t.Fatalf("round %d: %d cached series after the batch", round, len(st.cached))
		}
	}
	if got := db.Stats().HeadSamples; got != int64(3*n) {
		t.Fatalf("%d head samples, want %d", got, 3*n)
	}
}

// The clock is read once per batch; a refusal as too new re-reads it.
func TestBoundsPerBatch(t *testing.T) {
	clock := newClock()
	opts := testOptions(clock)
	opts.MaxFuture = 10 * time.Minute
	db := openTestDB(t, t.TempDir(), opts)
	defer db.Close()
	l := labels.FromStrings("__name__", "up")
	now := testStart.UnixMilli()
	a := db.Appender()
	if err := a.AddFloat(l, now, 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(20 * time.Minute)
	if err := a.AddFloat(l, now+25*60_000, 1); err != nil {
		t.Fatalf("within the re-read bound: %v", err)
	}
	if err := a.AddFloat(l, now+31*60_000, 1); !errors.Is(err, ErrOutOfBounds) {
		t.Fatalf("beyond the re-read bound: %v", err)
	}
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
	// A new batch reads the clock again: the retention limit moved.
	clock.Advance(401 * 24 * time.Hour)
	if err := a.AddFloat(l, now+26*60_000, 1); !errors.Is(err, ErrOutOfBounds) {
		t.Fatalf("next batch, old sample: %v", err)
	}
}

// Float runs: every timestamp and value pattern survives the WAL exactly.
func TestFloatRunReplay(t *testing.T) {
	clock := newClock()
	dir := t.TempDir()
	db := openTestDB(t, dir, testOptions(clock))
	now := testStart.UnixMilli()
	vals := []float64{0, -1.5, math.Inf(1), math.Float64frombits(value.StaleNaN), math.MaxFloat64, 1e-300}
	lsets := make([]labels.Labels, 300)
	for i := range lsets {
		lsets[i] = labels.FromStrings("__name__", "m", "i", fmt.Sprint(i))
	}
	want := map[string][]floatPt{}
	a := db.Appender()
	for b := range 5 {
		// Series in changing orders (ref deltas of both signs), times
		// spread around the run's first (time deltas of both signs).
		for k := range lsets {
			i := (k*7 + b*31) % len(lsets)
			ts := now - int64(100000-b*10000) + int64((i*37)%1000) - 500
			v := vals[(i+b)%len(vals)]
			if err := a.AddFloat(lsets[i], ts, v); err != nil {
				t.Fatal(err)
			}
			key := lsets[i].String()
			want[key] = append(want[key], floatPt{ts, math.Float64bits(v)})
		}
		if err := a.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string) {
		got := readFloats(t, db, 0, math.MaxInt64)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: samples differ", what)
		}
	}
	check("head")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTestDB(t, dir, testOptions(clock))
	defer db.Close()
	check("after replay")
}

func TestFloatRunRecord(t *testing.T) {
	ms := func(ref uint64) *memSeries { return &memSeries{ref: index.SeriesRef(ref)} }
	fs := []floatSample{{ms(5), 1000, 1}, {ms(3), 990, math.Float64bits(-2)}, {ms(1 << 40), -7, value.StaleNaN}, {ms(4), math.MaxInt64, 0}}
	rec := appendFloatRun([]byte{recordVersion}, fs)
	var d recordDecoder
	es, err := d.decode(rec)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != len(fs) {
		t.Fatalf("%d entries", len(es))
	}
	for i, e := range es {
		if e.typ != entryFloat || e.ref != uint64(fs[i].ms.ref) || e.t != fs[i].t || e.v != fs[i].v {
			t.Errorf("entry %d: %+v, want %+v", i, e, fs[i])
		}
	}
	// Truncations and a zero or oversized count are corrupt.
	for n := 1; n < len(rec); n++ {
		if _, err := d.decode(rec[:n]); n > 1 && !errors.Is(err, ErrCorruptRecord) {
			t.Errorf("truncated to %d: %v", n, err)
		}
	}
	for _, b := range [][]byte{
		{recordVersion, entryFloats, 0, 0},
		{recordVersion, entryFloats, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0},
		{recordVersion, entryFloats, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0},
	} {
		if _, err := d.decode(b); !errors.Is(err, ErrCorruptRecord) {
			t.Errorf("%x: %v", b, err)
		}
	}
}

// The head's series table under concurrent creators and readers (run with
// -race), across several growths.
func TestHeadSeriesTable(t *testing.T) {
	h := newHead()
	const n, writers = 5000, 4
	series := make([]*memSeries, n)
	for i := range series {
		series[i] = &memSeries{ref: index.SeriesRef(i*3 + 1)}
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := w; i < 3*n; i += writers {
				ms := series[(i*7)%n]
				if hs := h.getOrCreate(ms); hs.ms != ms {
					t.Errorf("ref %d: got series %d", ms.ref, hs.ms.ref)
					return
				}
				if hs := h.get(ms.ref); hs == nil || hs.ms != ms {
					t.Errorf("ref %d: get after create", ms.ref)
					return
				}
				_ = h.get(index.SeriesRef(i*3 + 2)) // never present
			}
		})
	}
	wg.Wait()
	if got := h.numSeries.Load(); got != n {
		t.Fatalf("%d series, want %d", got, n)
	}
	if got := len(h.allSeries()); got != n {
		t.Fatalf("allSeries: %d", got)
	}
	for _, ms := range series {
		if hs := h.get(ms.ref); hs == nil || hs.ms != ms {
			t.Fatalf("ref %d missing", ms.ref)
		}
		if h.get(ms.ref+1) != nil {
			t.Fatalf("ref %d present", ms.ref+1)
		}
	}
}
