package ingest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"evalstore/sketch"
)

func predLine(id string, ts time.Time, country string, score float64) string {
	return fmt.Sprintf(`{"model":"churn","version":"v1","id":%q,"timestamp":%q,"features":{"country":%q,"tenure":10},"score":%v}`, id, ts.Format(time.RFC3339Nano), country, score)
}

func fbLine(id string, label int) string {
	return fmt.Sprintf(`{"model":"churn","id":%q,"label":%d}`, id, label)
}

func must(t testing.TB) func(Result, error) Result {
	return func(res Result, err error) Result {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
}

func confusionAt(e *env, slice string, bucket int64) *sketch.Confusion {
	c, _ := e.st.bucketSketch(labels.FromStrings(metricName, FamilyConfusion, "model", "churn", "version", "v1", "slice", slice, "source", "online"), bucket).(*sketch.Confusion)
	if c == nil {
		c = sketch.NewConfusion()
	}
	return c
}

func TestJoinOrders(t *testing.T) {
	ctx := context.Background()
	b0 := t0.UnixMilli()
	// Predicted class: score ≥ 0.5 → 1. Cell(actual, predicted).
	t.Run("label first", func(t *testing.T) {
		e := newEnv(t, nil)
		r := must(t)(e.in.Feedback(ctx, ndjson(fbLine("a", 1))))
		if r.Held != 1 || e.in.Stats().HeldNow != 1 {
			t.Fatalf("%+v", r)
		}
		e.reopen() // held feedback is durable
		r = must(t)(e.in.Predictions(ctx, ndjson(predLine("a", t0, "de", 0.8))))
		if r.Labels != 1 || e.in.Stats().HeldNow != 0 {
			t.Fatalf("%+v", r)
		}
		for _, s := range []string{"all", "eu"} {
			if c := confusionAt(e, s, b0); c.Count() != 1 || c.Cell(1, 1) != 1 {
				t.Fatalf("%s: %v", s, c.Count())
			}
		}
	})
	t.Run("prediction first, duplicate, corrected", func(t *testing.T) {
		e := newEnv(t, nil)
		must(t)(e.in.Predictions(ctx, ndjson(predLine("a", t0, "de", 0.8))))
		e.clk.Add(2 * time.Hour) // label arrives 2h later: still the 12:00 bucket
		r := must(t)(e.in.Feedback(ctx, ndjson(fbLine("a", 1))))
		if r.Labels != 1 {
			t.Fatalf("%+v", r)
		}
		d, _ := e.st.merged(t, FamilyLabelDelay, ls("slice", "all")).(*sketch.LogHistogram)
		if d.Count() != 1 || d.Sum() != 7200 {
			t.Fatalf("delay %v %v", d.Count(), d.Sum())
		}
		r = must(t)(e.in.Feedback(ctx, ndjson(fbLine("a", 1))))
		if r.DuplicateFeedback != 1 {
			t.Fatalf("%+v", r)
		}
		e.reopen()
		r = must(t)(e.in.Feedback(ctx, ndjson(fbLine("a", 0))))
		if r.Corrected != 1 {
			t.Fatalf("%+v", r)
		}
		for _, s := range []string{"all", "eu"} {
			c := confusionAt(e, s, b0)
			if c.Count() != 1 || c.Cell(0, 1) != 1 || c.Cell(1, 1) != 0 {
				t.Fatalf("%s: count %d cells %d %d", s, c.Count(), c.Cell(0, 1), c.Cell(1, 1))
			}
		}
		h, _ := e.st.merged(t, FamilyScoreHist, ls("slice", "all")).(*sketch.ScoreHistogram)
		if h.Positives() != 0 || h.Negatives() != 1 {
			t.Fatalf("score hist %d %d", h.Positives(), h.Negatives())
		}
		d, _ = e.st.merged(t, FamilyLabelDelay, ls("slice", "all")).(*sketch.LogHistogram)
		if d.Count() != 1 {
			t.Fatalf("corrections observe no new delay: %v", d.Count())
		}
		// The same prediction posted again (a retried batch) is not counted again.
		r = must(t)(e.in.Predictions(ctx, ndjson(predLine("a", t0, "de", 0.8))))
		if r.DuplicatePredictions != 1 || r.Predictions != 0 {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("expired and unknown", func(t *testing.T) {
		e := newEnv(t, nil)
		must(t)(e.in.Predictions(ctx, ndjson(predLine("a", t0, "de", 0.8))))
		must(t)(e.in.Feedback(ctx, ndjson(fbLine("never", 1))))
		e.clk.Add(DefaultJoinWindow + time.Hour)
		r := must(t)(e.in.Feedback(ctx, ndjson(fbLine("a", 1))))
		if r.Expired != 1 || r.Labels != 0 {
			t.Fatalf("%+v", r)
		}
		st := e.in.Stats()
		if st.UnknownFeedback != 1 || st.Pending != 0 || st.HeldNow != 0 || st.Expired != 1 {
			t.Fatalf("%+v", st)
		}
		if c := confusionAt(e, "all", b0); c.Count() != 0 {
			t.Fatal("expired label was applied")
		}
	})
	t.Run("feedback measures once", func(t *testing.T) {
		e := newEnv(t, nil)
		must(t)(e.in.Feedback(ctx, ndjson(`{"model":"churn","id":"a","measures":{"revenue":5}}`)))
		must(t)(e.in.Predictions(ctx, ndjson(predLine("a", t0, "us", 0.1))))
		r := must(t)(e.in.Feedback(ctx, ndjson(`{"model":"churn","id":"a","measures":{"revenue":7,"clicks":1}}`)))
		if r.MeasuresIgnored != 1 {
			t.Fatalf("%+v", r)
		}
		m, _ := e.st.merged(t, FamilyMeasureMoments, ls("measure", "revenue", "slice", "all")).(*sketch.Moments)
		if m.Count() != 1 || m.Sum() != 5 {
			t.Fatalf("revenue %v %v", m.Count(), m.Sum())
		}
	})
	t.Run("regression correction", func(t *testing.T) {
		e := newEnv(t, nil)
		must(t)(e.in.Predictions(ctx, ndjson(`{"model":"eta","version":"r","id":"x","timestamp":1772366400,"prediction":30}`, `{"model":"eta","version":"r","id":"y","timestamp":1772366400,"prediction":10}`)))
		must(t)(e.in.Feedback(ctx, ndjson(`{"model":"eta","id":"x","label":20}`, `{"model":"eta","id":"y","label":10}`)))
		must(t)(e.in.Feedback(ctx, ndjson(`{"model":"eta","id":"x","label":28}`)))
		r, _ := e.st.merged(t, FamilyRegression, ls("model", "eta")).(*sketch.Regression)
		rr, _ := e.st.merged(t, FamilyRegressionRetracted, ls("model", "eta")).(*sketch.Regression)
		if err := r.Subtract(rr); err != nil {
			t.Fatal(err)
		}
		want := sketch.NewRegression()
		want.Add(28, 30)
		want.Add(10, 10)
		if r.Count() != 2 || r.MAE() != want.MAE() || r.MSE() != want.MSE() {
			t.Fatalf("regression after correction: n %v mae %v want %v", r.Count(), r.MAE(), want.MAE())
		}
	})
}

// oracle of the binary join: final label per prediction id.
type joinOracle struct {
	preds  map[string]oraclePred
	labels map[string]int
}

type oraclePred struct {
	t       time.Time
	country string
	score   float64
}

func (o *joinOracle) confusion(bucketMS int64, eu bool) *sketch.Confusion {
	c := sketch.NewConfusion()
	for id, p := range o.preds {
		l, ok := o.labels[id]
		if !ok || p.t.UnixMilli()-p.t.UnixMilli()%60000 != bucketMS {
			continue
		}
		if eu && p.country != "de" && p.country != "fr" {
			continue
		}
		pred := 0
		if p.score >= 0.5 {
			pred = 1
		}
		c.Add(l, pred)
	}
	return c
}

// TestJoinRandomOrders interleaves predictions and feedback (labels before
// and after their predictions, duplicates, corrections) in random batches,
// with restarts, and compares every bucket and slice with the oracle.
func TestJoinRandomOrders(t *testing.T) {
	ctx := context.Background()
	for seed := uint64(1); seed <= 5; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			e := newEnv(t, nil)
			o := &joinOracle{preds: map[string]oraclePred{}, labels: map[string]int{}}
			type ev struct {
				pred bool
				id   string
				lbl  int
			}
			var evs []ev
			countries := []string{"de", "fr", "us"}
			for i := 0; i < 300; i++ {
				id := fmt.Sprint("p", i)
				evs = append(evs, ev{pred: true, id: id})
				for k := rng.IntN(4); k > 0; k-- {
					evs = append(evs, ev{id: id, lbl: rng.IntN(2)})
				}
			}
			rng.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
			for len(evs) > 0 {
				n := min(len(evs), 1+rng.IntN(40))
				batch := evs[:n]
				evs = evs[n:]
				var preds, fbs []string
				for _, x := range batch {
					if x.pred {
						p := oraclePred{t: t0.Add(-time.Duration(rng.IntN(5*60)) * time.Second), country: countries[rng.IntN(3)], score: float64(rng.IntN(100)) / 100}
						o.preds[x.id] = p
						preds = append(preds, predLine(x.id, p.t, p.country, p.score))
					} else {
						o.labels[x.id] = x.lbl
						fbs = append(fbs, fbLine(x.id, x.lbl))
					}
				}
				// Within one request order is kept; across the split, send
				// feedback first or predictions first at random — but a
				// label must follow the labels before it, so keep request
				// order equal to event order by sending each kind only
				// when the batch is of one kind.
				if len(preds) > 0 && len(fbs) > 0 {
					// Send in event order, one request per run of one kind.
					var run []string
					kind := batch[0].pred
					flush := func() {
						if len(run) == 0 {
							return
						}
						if kind {
							must(t)(e.in.Predictions(ctx, ndjson(run...)))
						} else {
							must(t)(e.in.Feedback(ctx, ndjson(run...)))
						}
						run = nil
					}
					pi, fi := 0, 0
					for _, x := range batch {
						if x.pred != kind {
							flush()
							kind = x.pred
						}
						if x.pred {
							run = append(run, preds[pi])
							pi++
						} else {
							run = append(run, fbs[fi])
							fi++
						}
					}
					flush()
				} else if len(preds) > 0 {
					must(t)(e.in.Predictions(ctx, ndjson(preds...)))
				} else {
					must(t)(e.in.Feedback(ctx, ndjson(fbs...)))
				}
				if rng.IntN(10) == 0 {
					e.reopen()
				}
			}
			for m := int64(-5); m <= 0; m++ {
				b := t0.UnixMilli() + m*60000
				for _, s := range []string{"all", "eu"} {
					got, want := confusionAt(e, s, b), o.confusion(b, s == "eu")
					for a := 0; a < 2; a++ {
						for p := 0; p < 2; p++ {
							if got.Cell(a, p) != want.Cell(a, p) {
								t.Fatalf("bucket %d slice %s cell (%d,%d): got %d want %d", m, s, a, p, got.Cell(a, p), want.Cell(a, p))
							}
						}
					}
				}
			}
			st := e.in.Stats()
			if st.HeldNow != 0 || st.Pending != 300 {
				t.Fatalf("stats %+v", st)
			}
			_ = strings.TrimSpace
		})
	}
}
