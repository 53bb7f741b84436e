package tsdb

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"

	"evalstore/sketch"
)

func seriesLabels(i int) labels.Labels {
	return labels.FromStrings("__name__", "eval_confusion", "model", fmt.Sprintf("m%d", i%5), "slice", fmt.Sprintf("s%d", i))
}

// workload is a list of sketch writes built from raw observations, with
// the exact per-(series, bucket) oracle.
type write struct {
	series int
	t      int64
	delta  []byte
}

type workload struct {
	writes []write
	oracle map[bucketKey]*sketch.Confusion
}

// newWorkload spreads n deltas over nSeries series and nBuckets one-minute
// buckets ending at testStart, in random order. Each delta holds 1–8 raw
// (actual, predicted) observations; the oracle adds the same observations
// one by one.
func newWorkload(seed uint64, nSeries, nBuckets, n int) *workload {
	r := rand.New(rand.NewPCG(seed, 7))
	w := &workload{oracle: map[bucketKey]*sketch.Confusion{}}
	end := testStart.UnixMilli()
	for range n {
		s := r.IntN(nSeries)
		b := r.IntN(nBuckets)
		t := end - int64(b)*minute - r.Int64N(minute) // anywhere in the bucket
		d := sketch.NewConfusion()
		k := bucketKey{seriesLabels(s).String(), bucketStart(t, minute)}
		o := w.oracle[k]
		if o == nil {
			o = sketch.NewConfusion()
			w.oracle[k] = o
		}
		for range 1 + r.IntN(8) {
			a, p := r.IntN(3), r.IntN(3)
			d.Add(a, p)
			o.Add(a, p)
		}
		w.writes = append(w.writes, write{series: s, t: t, delta: d.AppendBinary(nil)})
	}
	return w
}

func (w *workload) expect() map[bucketKey]string {
	m := make(map[bucketKey]string, len(w.oracle))
	for k, c := range w.oracle {
		m[k] = encConfusion(c)
	}
	return m
}

func commitWrites(t testing.TB, db *DB, ws []write, batch int) {
	t.Helper()
	app := db.Appender()
	for i, w := range ws {
		if err := app.AddSketch(seriesLabels(w.series), w.t, w.delta); err != nil {
			t.Fatalf("AddSketch: %v", err)
		}
		if (i+1)%batch == 0 || i == len(ws)-1 {
			if err := app.Commit(); err != nil {
				t.Fatalf("Commit: %v", err)
			}
		}
	}
}

func checkEqual(t testing.TB, what string, got, want map[bucketKey]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d buckets, want %d", what, len(got), len(want))
	}
	bad := 0
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			bad++
			if bad <= 3 {
				t.Errorf("%s: bucket %v: present=%v, state differs from the oracle", what, k, ok)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%s: %d of %d buckets differ", what, bad, len(want))
	}
}

func TestOpenLocksDir(t *testing.T) {
	dir := t.TempDir()
	clock := newClock()
	db := openTestDB(t, dir, testOptions(clock))
	if _, err := Open(dir, testOptions(clock)); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	db = openTestDB(t, dir, testOptions(clock))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestWritesAreMerges(t *testing.T) {
	const nSeries, nBuckets, n = 20, 90, 3000
	cases := []struct {
		name string
		run  func(t *testing.T, dir string, opts Options, w *workload) *DB
	}{
		{"head", func(t *testing.T, dir string, opts Options, w *workload) *DB {
			db := openTestDB(t, dir, opts)
			commitWrites(t, db, w.writes, 100)
			return db
		}},
		{"flush", func(t *testing.T, dir string, opts Options, w *workload) *DB {
			db := openTestDB(t, dir, opts)
			commitWrites(t, db, w.writes[:n/2], 100)
			if err := db.Flush(); err != nil {
				t.Fatal(err)
			}
			commitWrites(t, db, w.writes[n/2:], 100)
			return db
		}},
		{"restart", func(t *testing.T, dir string, opts Options, w *workload) *DB {
			db := openTestDB(t, dir, opts)
			commitWrites(t, db, w.writes, 100)
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			return openTestDB(t, dir, opts)
		}},
		{"mixed", func(t *testing.T, dir string, opts Options, w *workload) *DB {
			db := openTestDB(t, dir, opts)
			third := n / 3
			commitWrites(t, db, w.writes[:third], 50)
			if err := db.Flush(); err != nil {
				t.Fatal(err)
			}
			commitWrites(t, db, w.writes[third:2*third], 1)
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db = openTestDB(t, dir, opts)
			commitWrites(t, db, w.writes[2*third:], 300)
			if err := db.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := db.Flush(); err != nil { // empty head: no-op
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			return openTestDB(t, dir, opts)
		}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorkload(uint64(i+1), nSeries, nBuckets, n)
			clock := newClock()
			db := tc.run(t, t.TempDir(), testOptions(clock), w)
			defer db.Close()
			got := readSketches(t, db, testStart.UnixMilli()-int64(nBuckets+1)*minute, testStart.UnixMilli())
			checkEqual(t, tc.name, got, w.expect())
			st := db.Stats()
			if st.Series != nSeries {
				t.Errorf("Stats.Series = %d, want %d", st.Series, nSeries)
			}
		})
	}
}

func TestLateWrites30Days(t *testing.T) {
	const days = 30
	nBuckets := days * 24 * 60
	w := newWorkload(42, 3, nBuckets, 6000)
	clock := newClock()
	dir := t.TempDir()
	db := openTestDB(t, dir, testOptions(clock))
	for i := 0; i < len(w.writes); i += 1000 {
		commitWrites(t, db, w.writes[i:i+1000], 250)
		if i%2000 == 0 {
			if err := db.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer db.Close()
	// Query windows: whole range and a few day-aligned windows; each must
	// equal the oracle restricted to the window, counts exact.
	end := testStart.UnixMilli()
	windows := [][2]int64{{end - int64(nBuckets)*minute, end}}
	for d := range 4 {
		lo := end - int64(d*7+3)*24*60*minute
		windows = append(windows, [2]int64{lo, lo + 24*60*minute - 1})
	}
	all := w.expect()
	for _, win := range windows {
		want := map[bucketKey]string{}
		var wantCount int64
		for k, s := range all {
			if k.t >= win[0] && k.t <= win[1] {
				want[k] = s
				wantCount += w.oracle[k].Count()
			}
		}
		got := readSketches(t, db, win[0], win[1])
		checkEqual(t, fmt.Sprintf("window %v", win), got, want)
		// Window merge, as the query engine does it: one state per series.
		var gotCount int64
		for _, s := range got {
			c := sketch.NewConfusion()
			if err := c.UnmarshalBinary([]byte(s)); err != nil {
				t.Fatal(err)
			}
			gotCount += c.Count()
		}
		if gotCount != wantCount {
			t.Fatalf("window %v: count %d, want %d", win, gotCount, wantCount)
		}
	}
}

func TestAppenderValidation(t *testing.T) {
	conf := sketch.NewConfusion()
	conf.Add(1, 1)
	good := conf.AppendBinary(nil)
	mom := sketch.NewMoments()
	_ = mom.Add(1.5)
	moments := mom.AppendBinary(nil)
	now := testStart.UnixMilli()
	sk := labels.FromStrings("__name__", "sk")
	fl := labels.FromStrings("__name__", "fl")

	cases := []struct {
		name    string
		do      func(a *Appender) error
		want    error
		mention string
	}{
		{"too old", func(a *Appender) error {
			return a.AddSketch(sk, now-401*24*3600*1000, good)
		}, ErrOutOfBounds, "retention"},
		{"too new", func(a *Appender) error { return a.AddSketch(sk, now+11*60*1000, good) }, ErrOutOfBounds, "future"},
		{"float too old", func(a *Appender) error { return a.AddFloat(fl, now-401*24*3600*1000, 1) }, ErrOutOfBounds, "timestamp"},
		{"empty delta", func(a *Appender) error { return a.AddSketch(sk, now, nil) }, sketch.ErrCorrupt, "delta"},
		{"unknown format", func(a *Appender) error { return a.AddSketch(sk, now, []byte{0xEE, 1}) }, sketch.ErrFormat, "delta"},
		{"truncated delta", func(a *Appender) error { return a.AddSketch(sk, now, good[:len(good)-1]) }, sketch.ErrCorrupt, "delta"},
		{"no metric name", func(a *Appender) error {
			return a.AddSketch(labels.FromStrings("model", "m"), now, good)
		}, ErrInvalidLabels, "metric name"},
		{"sketch format mismatch", func(a *Appender) error { return a.AddSketch(sk, now, moments) }, ErrFormatMismatch, "format"},
		{"float into sketch series", func(a *Appender) error { return a.AddFloat(sk, now, 1) }, ErrFormatMismatch, "sketch"},
		{"sketch into float series", func(a *Appender) error { return a.AddSketch(fl, now, good) }, ErrFormatMismatch, "float"},
		{"float out of order", func(a *Appender) error { return a.AddFloat(fl, now-1, 1) }, ErrOutOfOrderSample, "timestamp"},
		{"float duplicate", func(a *Appender) error { return a.AddFloat(fl, now, 2) }, ErrDuplicateSampleForTimestamp, "timestamp"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := newClock()
			db := openTestDB(t, t.TempDir(), testOptions(clock))
			defer db.Close()
			a := db.Appender()
			if err := a.AddSketch(sk, now, good); err != nil {
				t.Fatal(err)
			}
			if err := a.AddFloat(fl, now, 1); err != nil {
				t.Fatal(err)
			}
			if err := a.Commit(); err != nil {
				t.Fatal(err)
			}
			before := db.Stats()
			beforeData := readSketches(t, db, 0, math.MaxInt64)
			err := tc.do(a)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %q", err, tc.mention)
			}
			if err := a.Commit(); err != nil {
				t.Fatal(err)
			}
			after := db.Stats()
			if after.Series != before.Series || after.HeadBuckets != before.HeadBuckets ||
				after.HeadSamples != before.HeadSamples || after.WAL.Records != before.WAL.Records {
				t.Errorf("failed Add changed the DB: before %+v after %+v", before, after)
			}
			checkEqual(t, "after failed add", readSketches(t, db, 0, math.MaxInt64), beforeData)
		})
	}
}

func TestFloatSemantics(t *testing.T) {
	now := testStart.UnixMilli()
	l := labels.FromStrings("__name__", "up", "job", "x")
	stale := math.Float64frombits(value.StaleNaN)
	steps := []struct {
		t    int64
		v    float64
		want error
	}{
		{now - 5000, 1, nil},
		{now - 4000, 2, nil},
		{now - 4000, 2, nil}, // same value: no-op
		{now - 4000, 3, ErrDuplicateSampleForTimestamp},
		{now - 4500, 3, ErrOutOfOrderSample},
		{now - 3000, stale, nil}, // staleness marker kept bit for bit
		{now - 3000, stale, nil},
		{now - 3000, math.NaN(), ErrDuplicateSampleForTimestamp}, // other NaN bits
		{now - 2000, 4, nil},
	}
	want := []floatPt{{now - 5000, math.Float64bits(1)}, {now - 4000, math.Float64bits(2)},
		{now - 3000, value.StaleNaN}, {now - 2000, math.Float64bits(4)}}
	for _, batch := range []int{1, len(steps)} {
		t.Run(fmt.Sprintf("batch=%d", batch), func(t *testing.T) {
			clock := newClock()
			dir := t.TempDir()
			db := openTestDB(t, dir, testOptions(clock))
			a := db.Appender()
			for i, s := range steps {
				if err := a.AddFloat(l, s.t, s.v); !errors.Is(err, s.want) {
					t.Fatalf("step %d: got %v, want %v", i, err, s.want)
				}
				if (i+1)%batch == 0 {
					if err := a.Commit(); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := a.Commit(); err != nil {
				t.Fatal(err)
			}
			check := func(what string) {
				got := readFloats(t, db, 0, math.MaxInt64)[l.String()]
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("%s: got %v, want %v", what, got, want)
				}
			}
			check("head")
			if err := db.Flush(); err != nil {
				t.Fatal(err)
			}
			check("after flush")
			// Order survives the flush and a restart (checkpoint carries
			// the newest sample).
			if err := a.AddFloat(l, now-2500, 9); !errors.Is(err, ErrOutOfOrderSample) {
				t.Fatalf("after flush: %v", err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db = openTestDB(t, dir, testOptions(clock))
			defer db.Close()
			check("after restart")
			a = db.Appender()
			if err := a.AddFloat(l, now-2000, 5); !errors.Is(err, ErrDuplicateSampleForTimestamp) {
				t.Fatalf("after restart: %v", err)
			}
			if err := a.AddFloat(l, now-1000, 5); err != nil {
				t.Fatal(err)
			}
			if err := a.Commit(); err != nil {
				t.Fatal(err)
			}
			want := append(want[:len(want):len(want)], floatPt{now - 1000, math.Float64bits(5)})
			got := readFloats(t, db, 0, math.MaxInt64)[l.String()]
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("final: got %v, want %v", got, want)
			}
		})
	}
}

// TestFlushCrashPoints stops a flush after each of its steps, as a crash
// there would, then reopens: every committed write is counted exactly once.
// It also retries the flush in-process after the failure.
func TestFlushCrashPoints(t *testing.T) {
	steps := []string{"swapped", "block-written", "checkpointed", "manifest-applied", "published"}
	for _, step := range steps {
		for _, retry := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/retry=%v", step, retry), func(t *testing.T) {
				w := newWorkload(9, 10, 60, 1500)
				clock := newClock()
				dir := t.TempDir()
				opts := testOptions(clock)
				failAt := ""
				opts.flushHook = func(s string) error {
					if s == failAt {
						return fmt.Errorf("injected crash after %s", s)
					}
					return nil
				}
				db := openTestDB(t, dir, opts)
				fl := labels.FromStrings("__name__", "f")
				addFloat := func(db *DB, ts int64) {
					a := db.Appender()
					if err := a.AddFloat(fl, testStart.UnixMilli()-10000+ts, float64(ts)); err != nil {
						t.Fatal(err)
					}
					if err := a.Commit(); err != nil {
						t.Fatal(err)
					}
				}
				commitWrites(t, db, w.writes[:500], 100)
				addFloat(db, 1000)
				if err := db.Flush(); err != nil {
					t.Fatal(err)
				}
				commitWrites(t, db, w.writes[500:1000], 100)
				addFloat(db, 2000)
				failAt = step
				if err := db.Flush(); err == nil {
					t.Fatal("flush did not fail")
				}
				failAt = ""
				end := testStart.UnixMilli()
				// During and after the failed flush, readers see it all once.
				checkEqual(t, "after failed flush", readSketches(t, db, 0, end), oracleOf(w.writes[:1000]))
				if retry {
					if err := db.Flush(); err != nil {
						t.Fatal(err)
					}
					checkEqual(t, "after retried flush", readSketches(t, db, 0, end), oracleOf(w.writes[:1000]))
				}
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
				db = openTestDB(t, dir, opts)
				checkEqual(t, "after reopen", readSketches(t, db, 0, end), oracleOf(w.writes[:1000]))
				commitWrites(t, db, w.writes[1000:], 100)
				addFloat(db, 3000)
				if err := db.Flush(); err != nil {
					t.Fatal(err)
				}
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
				db = openTestDB(t, dir, opts)
				defer db.Close()
				checkEqual(t, "final", readSketches(t, db, 0, end), w.expect())
				got := readFloats(t, db, 0, end)[fl.String()]
				base := testStart.UnixMilli() - 10000
				if len(got) != 3 || got[0].T != base+1000 || got[1].T != base+2000 || got[2].T != base+3000 {
					t.Fatalf("floats: %v", got)
				}
			})
		}
	}
}

// oracleOf rebuilds the oracle of a prefix of writes by merging their
// deltas' raw cells (deltas are confusions of raw observations).
func oracleOf(ws []write) map[bucketKey]string {
	m := map[bucketKey]*sketch.Confusion{}
	for _, w := range ws {
		k := bucketKey{seriesLabels(w.series).String(), bucketStart(w.t, minute)}
		d := sketch.NewConfusion()
		if err := d.UnmarshalBinary(w.delta); err != nil {
			panic(err)
		}
		if m[k] == nil {
			m[k] = sketch.NewConfusion()
		}
		for _, c := range d.AppendCells(nil) {
			m[k].AddN(c.Actual, c.Predicted, c.Count)
		}
	}
	out := map[bucketKey]string{}
	for k, c := range m {
		out[k] = encConfusion(c)
	}
	return out
}
