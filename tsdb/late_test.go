package tsdb

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"evalstore/sketch"
	"evalstore/tsdb/plan"
	"evalstore/tsdb/series"
)

// lateObs is one raw observation of the late-write test: a confusion cell
// or a log-histogram value, at time t, arriving (written) at arrive.
type lateObs struct {
	series    int // < lateConf: confusion series; else log-histogram
	t, arrive int64
	a, p      int
	v         float64
}

const (
	lateConf = 4 // confusion series 0..3, log-histogram series 4..5
	lateAll  = 6
)

func lateLabels(s int) labels.Labels {
	if s < lateConf {
		return seriesLabels(s)
	}
	return labels.FromStrings("__name__", "eval_latency", "model", fmt.Sprintf("m%d", s))
}

// TestLateWritesCompaction is the acceptance test of issue 3: writes over
// 30 days of buckets arrive in random order (a quarter of them up to 30
// days late) while the clock advances 9 days, past the 7-day downsampling
// age; flushes, compactions, downsamplings and a restart are interleaved.
// Throughout and at the end, random windows are queried through the DB
// Querier at resolution 0, 1h and 1d: confusion states and log-histogram
// counts equal the oracle exactly, and log-histogram quantiles are within
// the histogram's relative error of the exact order statistic of the raw
// values. Windows are aligned at each edge to the resolution that owns
// that time (plan.Owner), where stored buckets are whole; there every
// layout (head, flush blocks, raw bases with rollups, 1h bases) must
// count each observation exactly once. TSDB_LATE_SOAK=n multiplies the
// number of observations and windows by n.
func TestLateWritesCompaction(t *testing.T) {
	t.Parallel()
	scale := 1
	if s := os.Getenv("TSDB_LATE_SOAK"); s != "" {
		fmt.Sscan(s, &scale)
	}
	nObs, nWindows := 6000*scale, 60*scale
	r := rand.New(rand.NewPCG(2026, 3))
	clock := newClock()
	t0 := testStart.UnixMilli()
	end := t0 + 9*dayMs
	obs := make([]lateObs, nObs)
	for i := range obs {
		o := lateObs{series: r.IntN(lateAll), t: t0 - 30*dayMs + r.Int64N(39*dayMs)}
		late := r.Int64N(10 * minute)
		if r.IntN(4) == 0 {
			late = r.Int64N(30 * dayMs)
		}
		o.arrive = min(max(o.t+late, t0), end)
		o.a, o.p = r.IntN(3), r.IntN(3)
		o.v = 100 * math.Exp(r.NormFloat64())
		obs[i] = o
	}
	slices.SortStableFunc(obs, func(a, b lateObs) int { return int(a.arrive - b.arrive) })

	dir := t.TempDir()
	opts := testOptions(clock)
	db := openTestDB(t, dir, opts)
	defer func() { db.Close() }()
	popts := db.popts
	written := 0
	var before Stats // counters of the DB life before the restart
	const steps = 12
	stepLen := (end - t0) / steps
	for step := 1; step <= steps; step++ {
		clock.Advance(time.Duration(stepLen) * time.Millisecond)
		now := clock.Now().UnixMilli()
		n := written
		for n < len(obs) && obs[n].arrive <= now {
			n++
		}
		batch := slices.Clone(obs[written:n])
		r.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
		a := db.Appender()
		for i, o := range batch {
			if err := a.AddSketch(lateLabels(o.series), o.t, lateDelta(o)); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			if (i+1)%200 == 0 {
				if err := a.Commit(); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := a.Commit(); err != nil {
			t.Fatal(err)
		}
		written = n
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
		if step%3 == 0 {
			if err := db.Compact(); err != nil {
				t.Fatal(err)
			}
		}
		if step == 7 {
			before = db.Stats()
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db = openTestDB(t, dir, opts)
		}
		if step%3 == 0 || step == steps {
			checkLateWindows(t, db, obs[:written], popts, now, r, nWindows/4, fmt.Sprintf("step %d", step))
		}
	}
	clock.Advance(4 * time.Hour)
	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
	st := db.Stats()
	st.Flushes += before.Flushes
	st.Compactions += before.Compactions
	st.Downsamples += before.Downsamples
	if st.Downsamples == 0 || st.Compactions == 0 {
		t.Fatalf("test did not downsample or compact: %+v", st)
	}
	checkLateWindows(t, db, obs, popts, clock.Now().UnixMilli(), r, nWindows, "final")
	t.Logf("%d observations; %d flushes, %d merges, %d downsamples; %d live blocks, %d bytes",
		len(obs), st.Flushes, st.Compactions, st.Downsamples, st.Blocks, st.BlockBytes)
}

func lateDelta(o lateObs) []byte {
	if o.series < lateConf {
		c := sketch.NewConfusion()
		c.Add(o.a, o.p)
		return c.AppendBinary(nil)
	}
	h := sketch.NewDefaultLogHistogram()
	if err := h.Add(o.v); err != nil {
		panic(err)
	}
	return h.AppendBinary(nil)
}

// checkLateWindows queries n random windows, aligned to the owning
// resolution at each edge, at resolutions 0, 1h and 1d.
func checkLateWindows(t *testing.T, db *DB, obs []lateObs, popts plan.Options, now int64, r *rand.Rand, n int, what string) {
	t.Helper()
	t0 := testStart.UnixMilli()
	lo0, hi0 := t0-31*dayMs, t0+9*dayMs
	for w := 0; w < n; w++ {
		lo := lo0 + r.Int64N(hi0-lo0)
		length := int64(math.Exp(r.Float64() * math.Log(float64(31*dayMs))))
		hi := lo + max(length, minute)
		res := int64(0)
		for _, x := range []int64{lo, hi} {
			p, err := plan.Owner(x, now, popts)
			if err != nil {
				t.Fatal(err)
			}
			res = max(res, p.Resolution)
		}
		lo = bucketStart(lo, res)
		hi = bucketStart(hi, res) + res - 1
		if w == 0 {
			lo, hi = lo0, hi0-1 // the whole range once
		}
		conf := map[int]*sketch.Confusion{}
		vals := map[int][]float64{}
		for _, o := range obs {
			if o.t < lo || o.t > hi {
				continue
			}
			if o.series < lateConf {
				if conf[o.series] == nil {
					conf[o.series] = sketch.NewConfusion()
				}
				conf[o.series].Add(o.a, o.p)
			} else {
				vals[o.series] = append(vals[o.series], o.v)
			}
		}
		for _, q := range []int64{0, hourMs, dayMs} {
			got := windowMerge(t, db, lo, hi, q, func(bt int64) int64 {
				p, _ := plan.Owner(bt, now, popts)
				return p.Resolution
			})
			label := fmt.Sprintf("%s: window [%d, %d] (%v) res %d", what, lo-t0, hi-t0, time.Duration(hi-lo+1)*time.Millisecond, q)
			for s := 0; s < lateAll; s++ {
				st := got[lateLabels(s).String()]
				if s < lateConf {
					want := conf[s]
					if want == nil {
						if st != nil {
							t.Fatalf("%s: series %d: data where the oracle has none", label, s)
						}
						continue
					}
					if st == nil {
						t.Fatalf("%s: series %d: no data, oracle has %d", label, s, want.Count())
					}
					c := st.(*sketch.Confusion)
					if string(c.AppendBinary(nil)) != string(want.AppendBinary(nil)) {
						t.Fatalf("%s: series %d: confusion count %d, oracle %d (or cells differ)", label, s, c.Count(), want.Count())
					}
					continue
				}
				vs := vals[s]
				if len(vs) == 0 {
					if st != nil && st.(*sketch.LogHistogram).Count() != 0 {
						t.Fatalf("%s: series %d: data where the oracle has none", label, s)
					}
					continue
				}
				if st == nil {
					t.Fatalf("%s: series %d: no data, oracle has %d", label, s, len(vs))
				}
				h := st.(*sketch.LogHistogram)
				if h.Count() != float64(len(vs)) {
					t.Fatalf("%s: series %d: histogram count %v, oracle %d", label, s, h.Count(), len(vs))
				}
				slices.Sort(vs)
				for _, qq := range []float64{0, 0.1, 0.5, 0.9, 0.99, 1} {
					exact := vs[int(math.Floor(qq*float64(len(vs)-1)))]
					est := h.Quantile(qq)
					if math.Abs(est-exact) > h.RelativeError()*exact*(1+1e-9) {
						t.Fatalf("%s: series %d: q%.2f = %v, exact %v, beyond relative error %v", label, s, qq, est, exact, h.RelativeError())
					}
				}
			}
		}
	}
}

// windowMerge merges every bucket of each series in [lo, hi], read with
// hints resolution res, into one state, as the query engine does.
// At resolution 0 no bucket may be coarser than ownerRes(its start): the
// finest stored version is read.
func windowMerge(t *testing.T, db *DB, lo, hi, res int64, ownerRes func(int64) int64) map[string]sketch.Sketch {
	t.Helper()
	q, err := db.Querier(lo, hi)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	out := map[string]sketch.Sketch{}
	set := q.Select(context.Background(), series.Hints{Mint: lo, Maxt: hi, Resolution: res},
		labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	var it series.BucketIterator
	for set.Next() {
		s := set.At()
		var st sketch.Sketch
		it = s.Buckets(it)
		for it.Next() {
			bt, width, b := it.At()
			if bt < lo || bt > hi || (res > 0 && width > res && bt+width-1 > hi) {
				t.Fatalf("bucket [%d, +%d) outside window [%d, %d] or coarser than %d", bt, width, lo, hi, res)
			}
			if res == 0 && width > ownerRes(bt) {
				t.Fatalf("resolution 0 read a %d ms bucket at %d, owner resolution %d", width, bt, ownerRes(bt))
			}
			if st == nil {
				if st, err = sketch.New(s.Meta().Format); err != nil {
					t.Fatal(err)
				}
			}
			if err := st.DecodeAndMerge(b); err != nil {
				t.Fatal(err)
			}
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		if st != nil {
			out[s.Meta().Labels.String()] = st
		}
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
