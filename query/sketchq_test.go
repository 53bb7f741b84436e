package query

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"evalstore/definitions"
	"evalstore/sketch"
)

const (
	minuteMs = int64(60_000)
	hourMs   = 60 * minuteMs
	dayMs    = 24 * hourMs
)

// evalT is the evaluation time of the instant tests: day 10.
var evalT = 10 * dayMs

const testDefs = `
schema: 1
models:
  a:
    task: binary
    classes: [0, 1]
    positive_class: 1
    features:
      x: {type: numeric, importance: 3}
      z: {type: numeric, importance: 2}
      country: {type: categorical, importance: 1}
    reference: {dataset: train}
  b:
    task: binary
    classes: [0, 1]
    positive_class: 1
    features:
      x: {type: numeric, importance: 3}
      z: {type: numeric, importance: 2}
      country: {type: categorical, importance: 1}
    reference: {dataset: train}
  intent:
    task: multiclass
    classes: [browse, buy, support]
  eta:
    task: regression
`

// fixture is one generated data set: raw rows and the store built from
// them.
type fixture struct {
	defs *definitions.Definitions
	recs []rawRec
	st   *MemStorage
	eng  *Engine
}

var (
	fixOnce sync.Once
	fix     *fixture
)

// genRec draws one binary record. shift moves the features (drift), skill
// is the probability that the prediction is right.
func genRec(r *rand.Rand, t int64, model, version string, shift, skill, revenue float64) rawRec {
	countries := []string{"de", "fr", "us", "br"}
	c := countries[r.IntN(4)]
	if r.Float64() < shift/2 {
		c = "br" // drift in the categorical feature too
	}
	var sl []string
	switch c {
	case "de", "fr":
		sl = []string{"eu"}
	case "us":
		sl = []string{"us"}
	}
	label := "0"
	if r.Float64() < 0.4 {
		label = "1"
	}
	pred := label
	if r.Float64() > skill {
		pred = map[string]string{"0": "1", "1": "0"}[label]
	}
	var score float64
	if pred == "1" {
		score = 0.5 + 0.49*r.Float64()
	} else {
		score = 0.49 * r.Float64()
	}
	return rawRec{t: t, model: model, version: version, slices: sl, pred: pred, label: label, score: score,
		labelled: r.Float64() < 0.8, delay: r.ExpFloat64() * 600,
		numeric:  map[string]float64{"x": 5 + r.NormFloat64() + shift, "z": 1 + r.ExpFloat64()*(1+shift)},
		category: map[string]string{"country": c},
		measures: map[string]float64{"revenue": revenue + 3*r.NormFloat64(), "latency": 0.05 + r.ExpFloat64()*0.1},
	}
}

func getFixture(t testing.TB) *fixture {
	fixOnce.Do(func() {
		defs := mustDefs(t, testDefs)
		r := rand.New(rand.NewPCG(42, 1))
		var recs []rawRec
		// Online: a record every 2 minutes per model over 10 days; b
		// switches from v1 to v2 on day 5; features drift on the last day.
		for ts := int64(0); ts < evalT; ts += 2 * minuteMs {
			shift := 0.0
			if ts > 9*dayMs {
				shift = 0.8
			}
			recs = append(recs, genRec(r, ts+r.Int64N(minuteMs), "a", "v1", shift, 0.80, 10))
			vb := "v1"
			if ts >= 5*dayMs {
				vb = "v2"
			}
			recs = append(recs, genRec(r, ts+r.Int64N(minuteMs), "b", vb, shift, 0.70+0.1*float64(ts%3), 11))
		}
		// Offline runs: (model, version, dataset, run, time, skill).
		runs := []struct {
			model, version, dataset, run string
			at                           int64
			skill                        float64
			n                            int
		}{
			{"b", "v1", "train", "r1", 1 * dayMs, 0.95, 400},
			{"b", "v1", "train", "r2", 3 * dayMs, 0.85, 400},
			{"b", "v1", "holdout", "h1", 2 * dayMs, 0.75, 300},
			{"b", "v2", "train", "r3", 6 * dayMs, 0.90, 400},
			{"a", "v1", "train", "ra1", 1 * dayMs, 0.92, 400},
			{"a", "v1", "main", "ma", 4 * dayMs, 0.81, 500},
			{"b", "v2", "main", "mb", 7 * dayMs, 0.77, 500},
		}
		for _, run := range runs {
			for range run.n {
				rec := genRec(r, run.at, run.model, run.version, 0, run.skill, 10)
				rec.source, rec.dataset, rec.run, rec.labelled = "offline", run.dataset, run.run, true
				recs = append(recs, rec)
			}
		}
		// Multiclass and regression models, online, last 2 days.
		classes := []string{"browse", "buy", "support"}
		for ts := 8 * dayMs; ts < evalT; ts += 5 * minuteMs {
			l := classes[r.IntN(3)]
			p := l
			if r.Float64() < 0.3 {
				p = classes[r.IntN(3)]
			}
			recs = append(recs, rawRec{t: ts, model: "intent", version: "v1", pred: p, label: l, labelled: true, score: math.NaN()})
			y := 10 + 5*r.Float64()
			rec := rawRec{t: ts, model: "eta", version: "v1", yhat: y + r.NormFloat64(), y: y, labelled: true, score: math.NaN()}
			if r.Float64() < 0.1 {
				rec.oldY = []float64{y + 7} // a wrong first label, corrected
			}
			recs = append(recs, rec)
		}
		sim := newIngestSim(defs)
		sim.add(t, recs...)
		st := sim.store(t, 0)
		fix = &fixture{defs: defs, recs: recs, st: st,
			eng: New(Options{Definitions: func() *definitions.Definitions { return defs }})}
	})
	if fix == nil {
		t.Fatal("fixture failed")
	}
	return fix
}

func (f *fixture) instant(t *testing.T, q string, at int64) Vector {
	t.Helper()
	res, err := f.eng.Instant(context.Background(), f.st, q, time.UnixMilli(at))
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return res.Value.(Vector)
}

func online(model string, extra func(r rawRec) bool) recFilter {
	return func(r rawRec) bool { return r.src() == "online" && r.model == model && (extra == nil || extra(r)) }
}

// latestRun returns the rows of the latest offline run of (model, version,
// dataset) at ts, by the newest bucket end at or before ts.
func latestRun(recs []rawRec, model, version, dataset string, ts int64) []rawRec {
	best, bestEnd := "", int64(-1)
	for _, r := range recs {
		if r.src() != "offline" || r.model != model || r.version != version || r.dataset != dataset {
			continue
		}
		end := r.t - r.t%bucketMs + bucketMs
		if end <= ts && (end > bestEnd || (end == bestEnd && r.run > best)) {
			best, bestEnd = r.run, end
		}
	}
	return filterRecs(recs, func(r rawRec) bool {
		return r.src() == "offline" && r.model == model && r.version == version && r.dataset == dataset && r.run == best
	})
}

func checkVec(t *testing.T, q string, got Vector, want map[string]float64, tol float64) {
	t.Helper()
	g := sampleMap(got)
	if len(g) != len(want) {
		t.Errorf("%s: got %d samples, want %d:%s\nwant %v", q, len(g), len(want), fmtVec(got), want)
		return
	}
	for k, w := range want {
		v, ok := g[k]
		if !ok {
			t.Errorf("%s: missing %s; got%s", q, k, fmtVec(got))
			continue
		}
		if !approxEqual(v, w, tol) {
			t.Errorf("%s: %s = %v, oracle %v", q, k, v, w)
		}
	}
}

// The brief's example, verbatim: online accuracy over 7 days minus the
// accuracy of the latest offline run on the model's reference dataset
// (train), one result per (model, slice, version).
func TestBriefExample(t *testing.T) {
	f := getFixture(t)
	q := `accuracy<model="b",slice="eu">[7d] - offline(accuracy<model="b">)`
	got := f.instant(t, q, evalT)
	want := map[string]float64{}
	for _, v := range []string{"v1", "v2"} {
		on := filterRecs(f.recs, online("b", func(r rawRec) bool {
			return r.version == v && r.inSlice("eu") && inWindow(r, evalT, 7*dayMs)
		}))
		off := filterRecs(latestRun(f.recs, "b", v, "train", evalT), func(r rawRec) bool { return r.inSlice("eu") })
		want[`{model="b", slice="eu", version="`+v+`"}`] = oracleAccuracy(on) - oracleAccuracy(off)
	}
	checkVec(t, q, got, want, 1e-12)
}

// Pooling merges states before finishing: pooled accuracy is the accuracy
// of the union of the raw rows, not the mean of the accuracies.
func TestPooling(t *testing.T) {
	f := getFixture(t)
	win := func(r rawRec) bool { return inWindow(r, evalT, 7*dayMs) }
	q := `sum by (model) (accuracy{model="b",slice=~"eu|us"}[7d])`
	union := filterRecs(f.recs, online("b", func(r rawRec) bool { return win(r) && (r.inSlice("eu") || r.inSlice("us")) }))
	want := oracleAccuracy(union)
	checkVec(t, q, f.instant(t, q, evalT), map[string]float64{`{model="b"}`: want}, 1e-12)

	// The mean of the four (version, slice) accuracies differs.
	q2 := `avg by (model) (accuracy{model="b",slice=~"eu|us"}[7d])`
	avg := f.instant(t, q2, evalT)
	if len(avg) != 1 || approxEqual(avg[0].F, want, 1e-9) {
		t.Errorf("%s = %v should differ from the pooled %v", q2, avg, want)
	}

	// sum without (version): one result per slice, both versions pooled.
	q3 := `sum without (version) (accuracy{model="b"}[7d])`
	want3 := map[string]float64{}
	for _, s := range []string{"all", "eu", "us"} {
		want3[`{model="b", slice="`+s+`"}`] = oracleAccuracy(filterRecs(f.recs, online("b", func(r rawRec) bool { return win(r) && r.inSlice(s) })))
	}
	checkVec(t, q3, f.instant(t, q3, evalT), want3, 1e-12)

	// Pooling the offline latest runs of both models.
	q4 := `sum by (slice) (offline(accuracy{slice="all",version="v1"}))`
	both := append(latestRun(f.recs, "a", "v1", "train", evalT), latestRun(f.recs, "b", "v1", "train", evalT)...)
	checkVec(t, q4, f.instant(t, q4, evalT), map[string]float64{`{slice="all"}`: oracleAccuracy(both)}, 1e-12)
}

// offline() picks the latest run per (model, version, dataset, slice) as
// of each step; a dataset may be named, or matched (and then kept).
func TestOfflineLatestRun(t *testing.T) {
	f := getFixture(t)
	q := `offline(accuracy{model="b",version="v1",slice="all"})`
	start, end, step := 1*dayMs, 4*dayMs, 12*hourMs
	res, err := f.eng.Range(context.Background(), f.st, q, time.UnixMilli(start), time.UnixMilli(end), time.Duration(step)*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	m := res.Value.(Matrix)
	if len(m) != 1 {
		t.Fatalf("%s: %d series", q, len(m))
	}
	got := map[int64]float64{}
	for _, p := range m[0].Floats {
		got[p.T] = p.F
	}
	for ts := start; ts <= end; ts += step {
		rows := latestRun(f.recs, "b", "v1", "train", ts)
		w, ok := got[ts]
		if len(rows) == 0 {
			if ok {
				t.Errorf("%s at %d: %v, want no point", q, ts, w)
			}
			continue
		}
		if !ok || !approxEqual(w, oracleAccuracy(rows), 1e-12) {
			t.Errorf("%s at %d: %v (present %v), oracle %v (run %s)", q, ts, w, ok, oracleAccuracy(rows), rows[0].run)
		}
	}
	// r1 before day 3, r2 after: the value changes.
	if got[2*dayMs] == got[3*dayMs+12*hourMs] {
		t.Error("the latest run did not change from r1 to r2")
	}

	q2 := `offline(accuracy{model="b",slice="all"}, "holdout")`
	checkVec(t, q2, f.instant(t, q2, evalT), map[string]float64{
		`{model="b", slice="all", version="v1"}`: oracleAccuracy(latestRun(f.recs, "b", "v1", "holdout", evalT)),
	}, 1e-12)

	q3 := `offline(accuracy{model="b",slice="all",dataset=~".+"})`
	want3 := map[string]float64{}
	for _, c := range [][2]string{{"v1", "train"}, {"v1", "holdout"}, {"v2", "train"}, {"v2", "main"}} {
		want3[`{dataset="`+c[1]+`", model="b", slice="all", version="`+c[0]+`"}`] = oracleAccuracy(latestRun(f.recs, "b", c[0], c[1], evalT))
	}
	checkVec(t, q3, f.instant(t, q3, evalT), want3, 1e-12)
}

// Class-parametrised metrics: the positive class by default for binary
// models, a class matcher otherwise; multiclass models expand per class.
func TestClassMetrics(t *testing.T) {
	f := getFixture(t)
	win := online("b", func(r rawRec) bool { return r.version == "v2" && inWindow(r, evalT, 7*dayMs) })
	rows := filterRecs(f.recs, win)
	p1, r1, f1 := oraclePRF(rows, "1")
	_, r0, _ := oraclePRF(rows, "0")
	l := `{model="b", slice="all", version="v2"}`
	for q, want := range map[string]map[string]float64{
		`precision{model="b",slice="all",version="v2"}[7d]`:          {l: p1},
		`f1{model="b",slice="all",version="v2"}[7d]`:                 {l: f1},
		`recall{model="b",slice="all",version="v2",class="0"}[7d]`:   {`{class="0", model="b", slice="all", version="v2"}`: r0},
		`recall{model="b",slice="all",version="v2",class=~".*"}[7d]`: {`{class="0", model="b", slice="all", version="v2"}`: r0, `{class="1", model="b", slice="all", version="v2"}`: r1},
	} {
		checkVec(t, q, f.instant(t, q, evalT), want, 1e-12)
	}
	irows := filterRecs(f.recs, online("intent", func(r rawRec) bool { return inWindow(r, evalT, 7*dayMs) }))
	want := map[string]float64{}
	var macro float64
	for _, c := range []string{"browse", "buy", "support"} {
		_, _, fc := oraclePRF(irows, c)
		want[`{class="`+c+`", model="intent", slice="all", version="v1"}`] = fc
		macro += fc / 3
	}
	checkVec(t, `f1{model="intent"}[7d]`, f.instant(t, `f1{model="intent"}[7d]`, evalT), want, 1e-12)
	checkVec(t, `f1_macro{model="intent"}[7d]`, f.instant(t, `f1_macro{model="intent"}[7d]`, evalT),
		map[string]float64{`{model="intent", slice="all", version="v1"}`: macro}, 1e-12)
}

// Regression metrics subtract the retracted (corrected) labels; count and
// label coverage.
func TestRegressionCountCoverage(t *testing.T) {
	f := getFixture(t)
	rows := filterRecs(f.recs, online("eta", func(r rawRec) bool { return inWindow(r, evalT, 1*dayMs) }))
	var mae, mse float64
	for _, r := range rows {
		mae += math.Abs(r.yhat - r.y)
		mse += (r.yhat - r.y) * (r.yhat - r.y)
	}
	n := float64(len(rows))
	l := `{model="eta", slice="all", version="v1"}`
	checkVec(t, "mae", f.instant(t, `mae{model="eta"}[1d]`, evalT), map[string]float64{l: mae / n}, 1e-9)
	checkVec(t, "rmse", f.instant(t, `rmse{model="eta"}[1d]`, evalT), map[string]float64{l: math.Sqrt(mse / n)}, 1e-9)

	arows := filterRecs(f.recs, online("a", func(r rawRec) bool { return r.inSlice("eu") && inWindow(r, evalT, 1*dayMs) }))
	var labelled float64
	for _, r := range arows {
		if r.labelled {
			labelled++
		}
	}
	la := `{model="a", slice="eu", version="v1"}`
	checkVec(t, "count", f.instant(t, `count{model="a",slice="eu"}[1d]`, evalT), map[string]float64{la: float64(len(arows))}, 0)
	checkVec(t, "label_coverage", f.instant(t, `label_coverage{model="a",slice="eu"}[1d]`, evalT), map[string]float64{la: labelled / float64(len(arows))}, 1e-12)
	// Offline, labels are inline: coverage 1.
	checkVec(t, "offline label_coverage", f.instant(t, `offline(label_coverage{model="a",slice="all"})`, evalT), map[string]float64{`{model="a", slice="all", version="v1"}`: 1}, 0)
}

// Without a range a sketch selector merges one step in range queries.
func TestDefaultWindowIsStep(t *testing.T) {
	f := getFixture(t)
	q := `count{model="a",slice="all"}`
	start, end := evalT-3*hourMs, evalT
	res, err := f.eng.Range(context.Background(), f.st, q, time.UnixMilli(start), time.UnixMilli(end), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	m := res.Value.(Matrix)
	if len(m) != 1 || len(m[0].Floats) != 4 {
		t.Fatalf("got %v", m)
	}
	for _, p := range m[0].Floats {
		want := float64(len(filterRecs(f.recs, online("a", func(r rawRec) bool { return inWindow(r, p.T, hourMs) }))))
		if p.F != want {
			t.Errorf("count at %d = %v, oracle %v", p.T, p.F, want)
		}
	}
	// Instant: the lookback (5m).
	want := float64(len(filterRecs(f.recs, online("a", func(r rawRec) bool { return inWindow(r, evalT, 5*minuteMs) }))))
	checkVec(t, q, f.instant(t, q, evalT), map[string]float64{`{model="a", slice="all", version="v1"}`: want}, 0)
}

// Question 1: importance-weighted average drift across all features of the
// production model over the last 60 minutes, against the model's reference
// (the latest train run of the same version).
func TestQuestion1WeightedDrift(t *testing.T) {
	f := getFixture(t)
	q := `importance_weighted(psi(evalstore_feature{model="b",version="v2",slice="all"}[1h]))`
	cur := filterRecs(f.recs, online("b", func(r rawRec) bool { return r.version == "v2" && inWindow(r, evalT, hourMs) }))
	ref := latestRun(f.recs, "b", "v2", "train", evalT)
	// Oracle: each feature's sketch built directly from the raw rows of
	// each side (no buckets, no merging), then the weighted mean.
	dist := func(feature string) float64 {
		var c, r sketch.Sketch
		if feature == "country" {
			cc, rc := sketch.NewCategorical(sketch.DefaultCategoricalCapacity), sketch.NewCategorical(sketch.DefaultCategoricalCapacity)
			for _, x := range cur {
				cc.Add(x.category[feature])
			}
			for _, x := range ref {
				rc.Add(x.category[feature])
			}
			c, r = cc, rc
		} else {
			ch, rh := sketch.NewDefaultLogHistogram(), sketch.NewDefaultLogHistogram()
			for _, x := range cur {
				_ = ch.Add(x.numeric[feature])
			}
			for _, x := range ref {
				_ = rh.Add(x.numeric[feature])
			}
			c, r = ch, rh
		}
		v, ok := distance(sketch.PSI, c, r)
		if !ok {
			t.Fatalf("oracle distance of %s", feature)
		}
		return v
	}
	want := (3*dist("x") + 2*dist("z") + 1*dist("country")) / 6
	checkVec(t, q, f.instant(t, q, evalT), map[string]float64{`{model="b", slice="all", version="v2"}`: want}, 1e-9)

	// The sketches' distances against distances of the raw samples.
	raw := func(rows []rawRec, feature string) []float64 {
		var out []float64
		for _, r := range rows {
			out = append(out, r.numeric[feature])
		}
		return out
	}
	// Over the last day (720 rows, all drifted) so that the raw samples'
	// empirical quantiles are close to the sketches' estimates.
	day := filterRecs(f.recs, online("b", func(r rawRec) bool { return r.version == "v2" && inWindow(r, evalT, dayMs) }))
	for _, feat := range []string{"x", "z"} {
		cur := day
		sel := `evalstore_feature{model="b",version="v2",slice="all",feature="` + feat + `"}[1d]`
		ks := f.instant(t, `ks(`+sel+`)`, evalT)
		if len(ks) != 1 || !approxEqual(ks[0].F, exactKS(raw(cur, feat), raw(ref, feat)), 0.03) {
			t.Errorf("ks(%s) = %v, raw-sample KS %v", feat, ks, exactKS(raw(cur, feat), raw(ref, feat)))
		}
		w1 := f.instant(t, `wasserstein(`+sel+`)`, evalT)
		if want := exactW1(raw(cur, feat), raw(ref, feat)); len(w1) != 1 || !approxEqual(w1[0].F, want, 0.03*want+0.01) {
			t.Errorf("wasserstein(%s) = %v, raw-sample W1 %v", feat, w1, want)
		}
		psi := f.instant(t, `psi(`+sel+`)`, evalT)
		if len(psi) != 1 || !approxEqual(psi[0].F, exactPSI(raw(cur, feat), raw(ref, feat)), 0.1*exactPSI(raw(cur, feat), raw(ref, feat))+0.05) {
			t.Errorf("psi(%s) = %v, raw-sample PSI %v", feat, psi, exactPSI(raw(cur, feat), raw(ref, feat)))
		}
	}
	var cc, rc []string
	for _, r := range cur {
		cc = append(cc, r.category["country"])
	}
	for _, r := range ref {
		rc = append(rc, r.category["country"])
	}
	q2 := `psi(evalstore_feature{model="b",version="v2",slice="all",feature="country"}[1h])`
	checkVec(t, q2, f.instant(t, q2, evalT), map[string]float64{`{feature="country", model="b", slice="all", version="v2"}`: exactCatPSI(cc, rc)}, 1e-9)

	// Against another window: the same hour a day earlier (no drift then).
	q3 := `ks(evalstore_feature{model="b",slice="all",feature="x"}[1h], evalstore_feature{model="b",slice="all",feature="x"}[1h] offset 1d)`
	prev := filterRecs(f.recs, online("b", func(r rawRec) bool { return inWindow(r, evalT-dayMs, hourMs) }))
	checkVec(t, q3, f.instant(t, q3, evalT), map[string]float64{`{feature="x", model="b", slice="all", version="v2"}`: exactKS(raw(cur, "x"), raw(prev, "x"))}, 0.03)
}

// Question 3: every metric of model A against model B on every slice of
// the main evaluation set (latest run of each).
func TestQuestion3AllMetrics(t *testing.T) {
	f := getFixture(t)
	q := `offline(all_metrics{model="a"}, "main") - on (metric, slice) offline(all_metrics{model="b"}, "main")`
	got := sampleMap(f.instant(t, q, evalT))
	ra, rb := latestRun(f.recs, "a", "v1", "main", evalT), latestRun(f.recs, "b", "v2", "main", evalT)
	metrics := 0
	for _, s := range []string{"all", "eu", "us"} {
		in := func(r rawRec) bool { return r.inSlice(s) }
		a, b := filterRecs(ra, in), filterRecs(rb, in)
		pa, rca, fa := oraclePRF(a, "1")
		pb, rcb, fb := oraclePRF(b, "1")
		for m, want := range map[string]float64{
			"accuracy": oracleAccuracy(a) - oracleAccuracy(b), "precision": pa - pb, "recall": rca - rcb, "f1": fa - fb,
			"count": float64(len(a) - len(b)), "label_coverage": 0,
		} {
			k := `{metric="` + m + `", slice="` + s + `"}`
			if v, ok := got[k]; !ok || !approxEqual(v, want, 1e-12) {
				t.Errorf("%s: %s = %v (present %v), oracle %v", q, k, v, ok, want)
			}
		}
		for _, m := range []string{"auc", "pr_auc", "log_loss", "brier", "calibration_error", "positive_rate", "f1_macro"} {
			if _, ok := got[`{metric="`+m+`", slice="`+s+`"}`]; !ok {
				t.Errorf("%s: no %s for slice %s", q, m, s)
			}
		}
		metrics++
	}
	// Score metrics against a score histogram built from the raw rows.
	sh := func(rows []rawRec) *sketch.ScoreHistogram {
		h := sketch.NewDefaultScoreHistogram()
		for _, r := range rows {
			_ = h.Add(r.score, r.label == "1")
		}
		return h
	}
	if v, want := got[`{metric="auc", slice="all"}`], sh(ra).ROCAUC()-sh(rb).ROCAUC(); !approxEqual(v, want, 1e-9) {
		t.Errorf("auc difference %v, oracle %v", v, want)
	}
	if len(got) != 16*3 {
		t.Errorf("%d results, want 16 metrics × 3 slices: %v", len(got), got)
	}
}

// Question 4: business metrics (measures) of model A against model B over
// the last 60 minutes, with Welch's t-test, effect and confidence interval.
func TestQuestion4TTest(t *testing.T) {
	f := getFixture(t)
	q := `ttest(sum by (measure) (evalstore_measure_moments{model="a",slice="all"}[1h]), sum by (measure) (evalstore_measure_moments{model="b",slice="all"}[1h]))`
	got := sampleMap(f.instant(t, q, evalT))
	for _, m := range []string{"revenue", "latency"} {
		xs := func(model string) []float64 {
			var out []float64
			for _, r := range filterRecs(f.recs, online(model, func(r rawRec) bool { return inWindow(r, evalT, hourMs) })) {
				out = append(out, r.measures[m])
			}
			return out
		}
		a, b := xs("a"), xs("b")
		ma, va := rawMeanVar(a)
		mb, vb := rawMeanVar(b)
		res, err := sketch.WelchTTest(ma, va, float64(len(a)), mb, vb, float64(len(b)), 0.95)
		if err != nil {
			t.Fatal(err)
		}
		for stat, want := range map[string]float64{"p_value": res.PValue, "effect": ma - mb, "relative_effect": (ma - mb) / mb,
			"ci_low": res.Lower, "ci_high": res.Upper, "statistic": res.Statistic, "df": res.DF} {
			k := `{measure="` + m + `", stat="` + stat + `"}`
			if v, ok := got[k]; !ok || !approxEqual(v, want, 1e-9*math.Max(1, math.Abs(want))) {
				t.Errorf("%s: %s = %v, oracle %v", q, k, v, want)
			}
		}
	}
	if len(got) != 14 {
		t.Errorf("got %d samples, want 7 stats × 2 measures", len(got))
	}
	// A companion: the p-value alone, usable in an alert.
	p := f.instant(t, `ttest_pvalue(sum by (measure) (evalstore_measure{model="a",slice="all",measure="revenue"}[1h]), sum by (measure) (evalstore_measure{model="b",slice="all",measure="revenue"}[1h])) < 0.05`, evalT)
	if len(p) > 1 {
		t.Errorf("companion: %v", p)
	}

	// ztest on a proportion metric, pooled per side.
	zq := `ztest(sum(accuracy{model="a",slice="all"}[1d]), sum(accuracy{model="b",slice="all"}[1d]))`
	zg := sampleMap(f.instant(t, zq, evalT))
	counts := func(model string) (x, n float64) {
		for _, r := range filterRecs(f.recs, online(model, func(r rawRec) bool { return r.labelled && inWindow(r, evalT, dayMs) })) {
			n++
			if r.label == r.pred {
				x++
			}
		}
		return
	}
	xa, na := counts("a")
	xb, nb := counts("b")
	zr, err := sketch.TwoProportionZTest(xa, na, xb, nb, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	for stat, want := range map[string]float64{"p_value": zr.PValue, "effect": xa/na - xb/nb, "ci_low": zr.Lower, "ci_high": zr.Upper} {
		if v := zg[`{stat="`+stat+`"}`]; !approxEqual(v, want, 1e-12) {
			t.Errorf("%s: %s = %v, oracle %v", zq, stat, v, want)
		}
	}
}

// Quantiles, means and standard deviations of measures.
func TestMeasureFunctions(t *testing.T) {
	f := getFixture(t)
	rows := filterRecs(f.recs, online("a", func(r rawRec) bool { return inWindow(r, evalT, 6*hourMs) }))
	var lat []float64
	for _, r := range rows {
		lat = append(lat, r.measures["latency"])
	}
	mean, variance := rawMeanVar(lat)
	l := `{measure="latency", model="a", slice="all", version="v1"}`
	sel := `evalstore_measure{model="a",slice="all",measure="latency"}[6h]`
	checkVec(t, "mean_sketch", f.instant(t, `mean_sketch(`+sel+`)`, evalT), map[string]float64{l: mean}, 1e-9)
	checkVec(t, "stddev_sketch", f.instant(t, `stddev_sketch(`+sel+`)`, evalT), map[string]float64{l: math.Sqrt(variance)}, 1e-9)
	checkVec(t, "count_sketch", f.instant(t, `count_sketch(`+sel+`)`, evalT), map[string]float64{l: float64(len(lat))}, 0)
	sorted := append([]float64(nil), lat...)
	sortFloats(sorted)
	p90 := sorted[int(0.9*float64(len(sorted)-1))]
	got := f.instant(t, `quantile_sketch(0.9, `+sel+`)`, evalT)
	// The log histogram's relative error (schema 5: < 2.2%) plus the rank
	// granularity of a few hundred samples.
	if len(got) != 1 || math.Abs(got[0].F-p90)/p90 > 0.05 {
		t.Errorf("quantile_sketch(0.9) = %v, raw p90 %v", got, p90)
	}
}

func sortFloats(xs []float64) {
	for i := 1; i < len(xs); i++ {
		for j := i; j > 0 && xs[j] < xs[j-1]; j-- {
			xs[j], xs[j-1] = xs[j-1], xs[j]
		}
	}
}

// Limits: buckets against MaxBuckets, pooled and offline series against
// MaxSeries; wrong arguments are refused with clear errors.
func TestSketchLimitsAndErrors(t *testing.T) {
	f := getFixture(t)
	ctx := context.Background()
	for _, c := range []struct {
		opts  Options
		q     string
		limit string
	}{
		{Options{MaxBuckets: 1000}, `accuracy{model="a"}[30d]`, "max buckets"},
		{Options{MaxSeries: 3}, `sum(accuracy{model=~"a|b"}[1d])`, "max series"},
		{Options{MaxSeries: 3}, `offline(accuracy{model=~"a|b"})`, "max series"},
		{Options{MaxBuckets: 10}, `offline(accuracy{model=~"a|b"})`, "max buckets"},
	} {
		c.opts.Definitions = func() *definitions.Definitions { return f.defs }
		_, err := New(c.opts).Instant(ctx, f.st, c.q, time.UnixMilli(evalT))
		if l, ok := IsLimit(err); !ok || l != c.limit {
			t.Errorf("%s: %v, want %s limit", c.q, err, c.limit)
		}
	}
	for q, msg := range map[string]string{
		`quantile_sketch(0.5, accuracy{model="a"}[1h])`: "not the metric accuracy",
		`psi(rate(x[5m]))`: "expected sketch states",
		`ztest(accuracy{model="a"}[1h], auc{model="b"}[1h])`:     "one proportion metric",
		`quantile_sketch(0.5, evalstore_predictions{model="a"})`: "needs a distribution",
		`offline(accuracy{model="a"}, 1)`:                        "expected type string",
	} {
		_, err := f.eng.Instant(ctx, f.st, q, time.UnixMilli(evalT))
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: %v, want an error containing %q", q, err, msg)
		}
	}
}

// The brief's example as a range query (a Grafana panel): at every step
// the 7-day window ending there and the latest offline run as of then.
func TestBriefExampleRange(t *testing.T) {
	f := getFixture(t)
	q := `accuracy<model="b",slice="eu">[7d] - offline(accuracy<model="b">)`
	start, end, step := 4*dayMs, evalT, 18*hourMs
	res, err := f.eng.Range(context.Background(), f.st, q, time.UnixMilli(start), time.UnixMilli(end), time.Duration(step)*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]map[int64]float64{}
	for _, s := range res.Value.(Matrix) {
		got[s.Metric.String()] = map[int64]float64{}
		for _, p := range s.Floats {
			got[s.Metric.String()][p.T] = p.F
		}
	}
	points := 0
	for ts := start; ts <= end; ts += step {
		for _, v := range []string{"v1", "v2"} {
			on := filterRecs(f.recs, online("b", func(r rawRec) bool {
				return r.version == v && r.inSlice("eu") && inWindow(r, ts, 7*dayMs)
			}))
			off := filterRecs(latestRun(f.recs, "b", v, "train", ts), func(r rawRec) bool { return r.inSlice("eu") })
			g, ok := got[`{model="b", slice="eu", version="`+v+`"}`][ts]
			if len(on) == 0 || len(off) == 0 {
				if ok {
					t.Errorf("%s at %d: %v, want no point", v, ts, g)
				}
				continue
			}
			points++
			if want := oracleAccuracy(on) - oracleAccuracy(off); !ok || !approxEqual(g, want, 1e-12) {
				t.Errorf("%s at %d: %v (present %v), oracle %v", v, ts, g, ok, want)
			}
		}
	}
	if points < 10 {
		t.Errorf("only %d points checked", points)
	}
}

// A sketch metric inside a subquery merges one subquery step per point.
func TestSketchMetricInSubquery(t *testing.T) {
	f := getFixture(t)
	q := `max_over_time(count{model="a",slice="all"}[3h:1h])`
	var want float64
	for ts := evalT - 2*hourMs; ts <= evalT; ts += hourMs {
		want = math.Max(want, float64(len(filterRecs(f.recs, online("a", func(r rawRec) bool { return inWindow(r, ts, hourMs) })))))
	}
	checkVec(t, q, f.instant(t, q, evalT), map[string]float64{`{model="a", slice="all", version="v1"}`: want}, 0)
}
