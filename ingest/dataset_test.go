package ingest

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"evalstore/sketch"
)

// datasetRecord is one generated example of a logistic churn model.
type datasetRecord struct {
	id      string
	t       time.Time
	country string
	device  string
	tenure  float64
	spend   float64
	score   float64
	label   int
}

func genDataset(rng *rand.Rand, n int, prefix string, start time.Time, span time.Duration) []datasetRecord {
	countries := []string{"de", "fr", "us", "br"}
	devices := []string{"ios", "android"}
	out := make([]datasetRecord, n)
	for i := range out {
		r := &out[i]
		r.id = fmt.Sprint(prefix, i)
		r.t = start.Add(time.Duration(rng.Int64N(int64(span))))
		r.country = countries[rng.IntN(len(countries))]
		r.device = devices[rng.IntN(2)]
		r.tenure = math.Floor(rng.Float64() * 400)
		r.spend = math.Round(rng.ExpFloat64()*3000) / 100
		z := -1 + 0.8*b2f(r.tenure < 60) + 0.05*r.spend - 0.003*r.tenure
		if r.country == "br" {
			z += 0.7
		}
		r.score = math.Round(1e4/(1+math.Exp(-z))) / 1e4
		// The truth is noisier than the model.
		p := 1 / (1 + math.Exp(-(z + rng.NormFloat64()*0.8)))
		if rng.Float64() < p {
			r.label = 1
		}
	}
	return out
}

func (r *datasetRecord) json(withLabel, offline bool) string {
	var b strings.Builder
	b.WriteString("{")
	if !offline {
		fmt.Fprintf(&b, `"model":"churn","version":"v1","id":%q,"timestamp":%v,`, r.id, float64(r.t.UnixMilli())/1000)
	}
	fmt.Fprintf(&b, `"features":{"country":%q,"tenure":%v,"spend":%v},"attributes":{"device":%q},"score":%v`, r.country, r.tenure, r.spend, r.device, r.score)
	if withLabel {
		fmt.Fprintf(&b, `,"label":%d`, r.label)
	}
	b.WriteString("}")
	return b.String()
}

func (r *datasetRecord) in(slice string) bool {
	switch slice {
	case "eu":
		return r.country == "de" || r.country == "fr"
	case "mobile":
		return r.device == "ios"
	case "long":
		return r.tenure >= 100
	}
	return true
}

type binaryOracle struct {
	tp, fp, tn, fn float64
	auc, aucBound  float64
}

func oracleOf(recs []datasetRecord, slice string) binaryOracle {
	var o binaryOracle
	var pos, neg []float64
	bins := map[int][2]float64{}
	for i := range recs {
		r := &recs[i]
		if !r.in(slice) {
			continue
		}
		pred := r.score >= 0.5
		switch {
		case pred && r.label == 1:
			o.tp++
		case pred:
			o.fp++
		case r.label == 1:
			o.fn++
		default:
			o.tn++
		}
		bi := min(int(r.score*sketch.DefaultScoreBins), sketch.DefaultScoreBins-1)
		c := bins[bi]
		if r.label == 1 {
			pos = append(pos, r.score)
			c[0]++
		} else {
			neg = append(neg, r.score)
			c[1]++
		}
		bins[bi] = c
	}
	// Exact Mann–Whitney AUC, ties ½.
	sort.Float64s(neg)
	var sum float64
	for _, p := range pos {
		lo := sort.SearchFloat64s(neg, p)
		hi := sort.Search(len(neg), func(i int) bool { return neg[i] > p })
		sum += float64(lo) + 0.5*float64(hi-lo)
	}
	P, Q := float64(len(pos)), float64(len(neg))
	o.auc = sum / (P * Q)
	// docs/sketches.md: |ΔAUC| ≤ Σ_j pos_j·neg_j / (2·P·Q).
	for _, c := range bins {
		o.aucBound += c[0] * c[1]
	}
	o.aucBound /= 2 * P * Q
	return o
}

func checkSlice(t *testing.T, e *env, sel map[string]string, o binaryOracle) {
	t.Helper()
	c, _ := e.st.merged(t, FamilyConfusion, sel).(*sketch.Confusion)
	h, _ := e.st.merged(t, FamilyScoreHist, sel).(*sketch.ScoreHistogram)
	if c == nil || h == nil {
		t.Fatalf("%v: missing series", sel)
	}
	// Class indices: "0" → 0, "1" → 1 (declared order).
	n := o.tp + o.fp + o.tn + o.fn
	for _, m := range []struct {
		name      string
		got, want float64
	}{
		{"count", float64(c.Count()), n},
		{"accuracy", c.Accuracy(), (o.tp + o.tn) / n},
		{"precision", c.Precision(1), o.tp / (o.tp + o.fp)},
		{"recall", c.Recall(1), o.tp / (o.tp + o.fn)},
	} {
		if math.Abs(m.got-m.want) > 1e-12 {
			t.Errorf("%v %s: got %v want %v", sel, m.name, m.got, m.want)
		}
	}
	if d := math.Abs(h.ROCAUC() - o.auc); d > o.aucBound+1e-12 {
		t.Errorf("%v auc: got %v want %v (|Δ| %g > bound %g)", sel, h.ROCAUC(), o.auc, d, o.aucBound)
	}
}

// TestDataset posts a generated dataset online with labels arriving late in
// shuffled batches (some first wrong, then corrected), plus an offline run,
// and checks accuracy, precision, recall and AUC per slice, online and
// offline, against an exact oracle of the same records.
func TestDataset(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	e := newEnv(t, nil)
	start := t0.Add(-2 * time.Hour)
	online := genDataset(rng, 6000, "o", start, 90*time.Minute)
	for i := 0; i < len(online); i += 1000 {
		var lines []string
		for j := i; j < i+1000; j++ {
			lines = append(lines, online[j].json(false, false))
		}
		must(t)(e.in.Predictions(ctx, ndjson(lines...)))
	}
	// Labels: shuffled, in 7 batches, a day apart; 5% first sent wrong.
	order := rng.Perm(len(online))
	var fb []string
	for _, i := range order {
		r := &online[i]
		if rng.IntN(20) == 0 {
			fb = append(fb, fbLine(r.id, 1-r.label))
		}
		fb = append(fb, fbLine(r.id, r.label))
	}
	for i := 0; i < len(fb); i += 1000 {
		e.clk.Add(24 * time.Hour)
		must(t)(e.in.Feedback(ctx, ndjson(fb[i:min(i+1000, len(fb))]...)))
	}
	offline := genDataset(rng, 4000, "f", t0, time.Minute)
	var recs []string
	for i := range offline {
		recs = append(recs, offline[i].json(true, true))
	}
	res := must(t)(e.in.Evaluation(ctx, jsonBody(`{"model":"churn","version":"v1","dataset":"main","run":"2026-03-08","timestamp":"2026-03-07T00:00:00Z","records":[`+strings.Join(recs, ",")+`]}`)))
	if res.Predictions != 4000 || res.Labels != 4000 {
		t.Fatalf("%+v", res)
	}
	for _, slice := range []string{"all", "eu", "mobile", "long"} {
		checkSlice(t, e, ls("source", "online", "slice", slice), oracleOf(online, slice))
		checkSlice(t, e, ls("source", "offline", "dataset", "main", "slice", slice), oracleOf(offline, slice))
	}
	// Label coverage = labelled / predictions, from two series.
	d, _ := e.st.merged(t, FamilyLabelDelay, ls("source", "online", "slice", "all")).(*sketch.LogHistogram)
	p, _ := e.st.merged(t, FamilyPredictions, ls("source", "online", "slice", "all")).(*sketch.Moments)
	if d.Count()/p.Count() != 1 {
		t.Errorf("coverage %v/%v", d.Count(), p.Count())
	}
	st := e.in.Stats()
	if st.Labels != uint64(len(online)+len(offline)) || st.Corrections == 0 {
		t.Errorf("stats %+v", st)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
