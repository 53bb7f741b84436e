package query

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"evalstore/definitions"
	"evalstore/sketch"
)

// This file turns raw prediction records into the series of the ingest
// contract (docs: the series schema), the way the ingest layer does, so
// that engine tests can load raw rows and compute expected values from the
// same rows with an independent oracle.

const bucketMs = 60_000

// rawRec is one prediction with its (optional) label, as a model server or
// an offline evaluation run would post it.
type rawRec struct {
	t              int64 // ms
	model, version string
	slices         []string // slices besides "all"
	source         string   // "online" (default) or "offline"
	dataset, run   string
	// classification
	pred, label string
	score       float64 // P(positive), binary; NaN = none
	labelled    bool
	delay       float64 // label delay (s), online labelled
	// regression
	yhat, y    float64
	regression bool      // a regression row of an undeclared model
	oldY       []float64 // corrected labels (retracted), before y
	numeric    map[string]float64
	category   map[string]string
	measures   map[string]float64
}

func (r *rawRec) src() string {
	if r.source == "" {
		return "online"
	}
	return r.source
}

func (r *rawRec) inSlice(s string) bool { return s == "all" || slices.Contains(r.slices, s) }

// ingestSim accumulates bucket states per series.
type ingestSim struct {
	defs    *definitions.Definitions
	states  map[string]map[int64]sketch.Sketch
	lsets   map[string]labels.Labels
	formats map[string]sketch.Format
	classes map[string]map[string]int
	order   map[string][]string
}

func newIngestSim(defs *definitions.Definitions) *ingestSim {
	return &ingestSim{defs: defs, states: map[string]map[int64]sketch.Sketch{}, lsets: map[string]labels.Labels{},
		formats: map[string]sketch.Format{}, classes: map[string]map[string]int{}, order: map[string][]string{}}
}

func (s *ingestSim) classIndex(model, class string) int {
	m, ok := s.classes[model]
	if !ok {
		m = map[string]int{}
		s.classes[model] = m
		if md, ok := s.defs.Model(model); ok {
			for _, c := range md.Classes {
				m[c] = len(m)
				s.order[model] = append(s.order[model], c)
			}
		}
	}
	i, ok := m[class]
	if !ok {
		i = len(m)
		m[class] = i
		s.order[model] = append(s.order[model], class)
	}
	return i
}

func (s *ingestSim) state(t testing.TB, l labels.Labels, f sketch.Format, ts int64) sketch.Sketch {
	k := l.String()
	if _, ok := s.states[k]; !ok {
		s.states[k] = map[int64]sketch.Sketch{}
		s.lsets[k] = l
		s.formats[k] = f
	}
	b := ts - ts%bucketMs
	st, ok := s.states[k][b]
	if !ok {
		var err error
		if f == sketch.FormatCategorical {
			st = sketch.NewCategorical(sketch.DefaultCategoricalCapacity)
		} else if st, err = sketch.New(f); err != nil {
			t.Fatal(err)
		}
		s.states[k][b] = st
	}
	return st
}

func (s *ingestSim) add(t testing.TB, recs ...rawRec) {
	for _, r := range recs {
		md := s.defs.ModelOrDefault(r.model)
		sl := append([]string{"all"}, r.slices...)
		for _, slice := range sl {
			base := []string{"model", r.model, "version", r.version, "slice", slice, "source", r.src()}
			if r.src() == "offline" {
				base = append(base, "dataset", r.dataset, "run", r.run)
			}
			ls := func(fam string, extra ...string) labels.Labels {
				return labels.FromStrings(append(append([]string{metricName, fam}, base...), extra...)...)
			}
			must := func(err error) {
				if err != nil {
					t.Fatal(err)
				}
			}
			must(s.state(t, ls(FamilyPredictions), sketch.FormatMoments, r.t).(*sketch.Moments).Add(1))
			if md.Task == definitions.TaskRegression || r.regression {
				if r.labelled {
					reg := s.state(t, ls(FamilyRegression), sketch.FormatRegression, r.t).(*sketch.Regression)
					for _, o := range r.oldY {
						must(reg.Add(o, r.yhat))
						must(s.state(t, ls(FamilyRegressionRetracted), sketch.FormatRegression, r.t).(*sketch.Regression).Add(o, r.yhat))
					}
					must(reg.Add(r.y, r.yhat))
				}
			} else {
				ip := s.classIndex(r.model, r.pred)
				if r.labelled {
					il := s.classIndex(r.model, r.label)
					s.state(t, ls(FamilyConfusion), sketch.FormatConfusion, r.t).(*sketch.Confusion).Add(il, ip)
					if !math.IsNaN(r.score) {
						must(s.state(t, ls(FamilyScoreHist), sketch.FormatScoreHistogram, r.t).(*sketch.ScoreHistogram).Add(r.score, md.IsPositive(r.label)))
					}
				}
				if !math.IsNaN(r.score) {
					must(s.state(t, ls(FamilyScore), sketch.FormatLogHistogram, r.t).(*sketch.LogHistogram).Add(r.score))
				}
			}
			if r.labelled && r.src() == "online" {
				must(s.state(t, ls(FamilyLabelDelay), sketch.FormatLogHistogram, r.t).(*sketch.LogHistogram).Add(r.delay))
			}
			for f, v := range r.numeric {
				must(s.state(t, ls(FamilyFeature, "feature", f), sketch.FormatLogHistogram, r.t).(*sketch.LogHistogram).Add(v))
			}
			for f, v := range r.category {
				s.state(t, ls(FamilyFeature, "feature", f), sketch.FormatCategorical, r.t).(*sketch.Categorical).Add(v)
			}
			for m, v := range r.measures {
				must(s.state(t, ls(FamilyMeasure, "measure", m), sketch.FormatLogHistogram, r.t).(*sketch.LogHistogram).Add(v))
				must(s.state(t, ls(FamilyMeasureMoments, "measure", m), sketch.FormatMoments, r.t).(*sketch.Moments).Add(v))
			}
		}
	}
}

// store writes every series into a MemStorage, buckets in time order, and
// the class indices as evalstore_class_index float series. width > 0
// re-buckets into coarser buckets (a downsampled level).
func (s *ingestSim) store(t testing.TB, width int64) *MemStorage {
	st := NewMemStorage()
	keys := make([]string, 0, len(s.states))
	for k := range s.states {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		byT := s.states[k]
		if width > bucketMs {
			coarse := map[int64]sketch.Sketch{}
			for bt, state := range byT {
				c := bt - bt%width
				if cur, ok := coarse[c]; ok {
					if err := mergeState(cur, state); err != nil {
						t.Fatal(err)
					}
				} else {
					cp, _ := sketch.New(state.Format())
					if state.Format() == sketch.FormatCategorical {
						cp = sketch.NewCategorical(sketch.DefaultCategoricalCapacity)
					}
					if err := mergeState(cp, state); err != nil {
						t.Fatal(err)
					}
					coarse[c] = cp
				}
			}
			byT = coarse
		}
		ts := make([]int64, 0, len(byT))
		for bt := range byT {
			ts = append(ts, bt)
		}
		slices.Sort(ts)
		w := int64(bucketMs)
		if width > bucketMs {
			w = width
		}
		bs := make([]MemBucket, 0, len(ts))
		for _, bt := range ts {
			bs = append(bs, MemBucket{T: bt, Width: w, State: byT[bt].AppendBinary(nil)})
		}
		st.AddBuckets(s.lsets[k], s.formats[k], bs...)
	}
	for model, order := range s.order {
		for i, c := range order {
			if err := st.AddFloat(labels.FromStrings(metricName, FamilyClassIndex, "model", model, "class", c), FPoint{T: 0, F: float64(i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return st
}

// ---- oracles over raw rows ----

// inWindow is the bucket rule: a record counts at time ts for window w
// when its bucket [B, B+1m) ends in (ts-w, ts].
func inWindow(r rawRec, ts, w int64) bool {
	end := r.t - r.t%bucketMs + bucketMs
	return end > ts-w && end <= ts
}

type recFilter func(r rawRec) bool

func filterRecs(recs []rawRec, f recFilter) []rawRec {
	var out []rawRec
	for _, r := range recs {
		if f(r) {
			out = append(out, r)
		}
	}
	return out
}

// oracleAccuracy is (label == prediction) / labelled.
func oracleAccuracy(recs []rawRec) float64 {
	var right, n float64
	for _, r := range recs {
		if !r.labelled {
			continue
		}
		n++
		if r.label == r.pred {
			right++
		}
	}
	return right / n
}

// oraclePRF returns precision, recall and F1 of class c.
func oraclePRF(recs []rawRec, c string) (p, rc, f1 float64) {
	var tp, fp, fn float64
	for _, r := range recs {
		if !r.labelled {
			continue
		}
		switch {
		case r.pred == c && r.label == c:
			tp++
		case r.pred == c:
			fp++
		case r.label == c:
			fn++
		}
	}
	return tp / (tp + fp), tp / (tp + fn), 2 * tp / (2*tp + fp + fn)
}

func rawMeanVar(xs []float64) (mean, variance float64) {
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	for _, x := range xs {
		variance += (x - mean) * (x - mean)
	}
	return mean, variance / float64(len(xs)-1)
}

// exactKS is sup |F_a - F_b| of two raw samples.
func exactKS(a, b []float64) float64 {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	var i, j int
	var d float64
	for i < len(a) && j < len(b) {
		x := math.Min(a[i], b[j])
		for i < len(a) && a[i] <= x {
			i++
		}
		for j < len(b) && b[j] <= x {
			j++
		}
		d = math.Max(d, math.Abs(float64(i)/float64(len(a))-float64(j)/float64(len(b))))
	}
	return d
}

// exactW1 is the Wasserstein-1 distance ∫|F_a − F_b| of two raw samples.
func exactW1(a, b []float64) float64 {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	xs := slices.Concat(a, b)
	slices.Sort(xs)
	var w float64
	for k := 1; k < len(xs); k++ {
		x := xs[k-1]
		fa, _ := slices.BinarySearch(a, math.Nextafter(x, math.Inf(1)))
		fb, _ := slices.BinarySearch(b, math.Nextafter(x, math.Inf(1)))
		w += math.Abs(float64(fa)/float64(len(a))-float64(fb)/float64(len(b))) * (xs[k] - x)
	}
	return w
}

// exactPSI is the PSI of raw sample cur against raw sample ref over the
// ten equal-frequency bins of ref (empirical quantiles), proportions
// floored at 1e-4 as in sketch.NumericDistance.
func exactPSI(cur, ref []float64) float64 {
	ref = slices.Clone(ref)
	slices.Sort(ref)
	edges := []float64{}
	for i := 1; i < 10; i++ {
		e := ref[int(float64(i)/10*float64(len(ref)-1))]
		if len(edges) == 0 || e > edges[len(edges)-1] {
			edges = append(edges, e)
		}
	}
	frac := func(xs []float64) []float64 {
		out := make([]float64, len(edges)+1)
		for _, x := range xs {
			k, _ := slices.BinarySearch(edges, x)
			out[k]++
		}
		for i := range out {
			out[i] /= float64(len(xs))
		}
		return out
	}
	p, q := frac(cur), frac(ref)
	var s float64
	for i := range p {
		a, b := math.Max(p[i], 1e-4), math.Max(q[i], 1e-4)
		s += (a - b) * math.Log(a/b)
	}
	return s
}

// exactCatPSI is the PSI of two categorical samples.
func exactCatPSI(cur, ref []string) float64 {
	count := func(xs []string) map[string]float64 {
		m := map[string]float64{}
		for _, x := range xs {
			m[x] += 1 / float64(len(xs))
		}
		return m
	}
	p, q := count(cur), count(ref)
	keys := map[string]bool{}
	for k := range p {
		keys[k] = true
	}
	for k := range q {
		keys[k] = true
	}
	var s float64
	for k := range keys {
		a, b := math.Max(p[k], 1e-4), math.Max(q[k], 1e-4)
		s += (a - b) * math.Log(a/b)
	}
	return s
}

func approxEqual(a, b, abs float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) <= abs
}

func mustDefs(t testing.TB, yaml string) *definitions.Definitions {
	t.Helper()
	d, err := definitions.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func sampleMap(v Vector) map[string]float64 {
	out := map[string]float64{}
	for _, s := range v {
		out[s.Metric.String()] = s.F
	}
	return out
}

func fmtVec(v Vector) string {
	var s string
	for _, x := range v {
		s += fmt.Sprintf("\n  %s %v", x.Metric, x.F)
	}
	return s
}
