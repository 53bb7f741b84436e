package ingest

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"evalstore/sketch"
)

func ls(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// series returns "family{sorted labels}" of every sketch series, without
// the common labels, for compact expectations.
func seriesOf(st *memStorage) []string {
	return st.seriesNames()
}

func TestRoutingBinary(t *testing.T) {
	e := newEnv(t, nil)
	// t0 is 12:00:00; 12:00:30 is bucket 12:00, 12:01:10 bucket 12:01.
	res, err := e.in.Predictions(context.Background(), ndjson(
		`{"model":"churn","version":"v1","id":"a","timestamp":"2026-03-01T12:00:30Z","features":{"country":"de","tenure":150},"score":0.9,"label":1,"attributes":{"device":"ios"},"measures":{"latency_ms":12}}`,
		`{"model":"churn","version":"v1","id":"b","timestamp":1772366470,"features":{"country":"us","tenure":3},"score":0.2,"prediction":0}`,
	))
	if err != nil {
		t.Fatal(err)
	}
	if res.Predictions != 2 || res.Labels != 1 {
		t.Fatalf("result %+v", res)
	}
	b0 := t0.UnixMilli()
	b1 := b0 + 60_000
	base := func(fam, slice string, extra ...string) labels.Labels {
		kv := append([]string{metricName, fam, "model", "churn", "version", "v1", "slice", slice, "source", "online"}, extra...)
		return labels.FromStrings(kv...)
	}
	// Record a: slices all, eu, mobile, long; record b: all only.
	for _, slice := range []string{"all", "eu", "long", "mobile"} {
		c, _ := e.st.bucketSketch(base(FamilyConfusion, slice), b0).(*sketch.Confusion)
		if c == nil || c.Count() != 1 || c.Cell(1, 1) != 1 {
			t.Errorf("slice %s: confusion %v", slice, c)
		}
		m, _ := e.st.bucketSketch(base(FamilyPredictions, slice), b0).(*sketch.Moments)
		if m == nil || m.Count() != 1 {
			t.Errorf("slice %s: predictions %v", slice, m)
		}
		h, _ := e.st.bucketSketch(base(FamilyScoreHist, slice), b0).(*sketch.ScoreHistogram)
		if h == nil || h.Positives() != 1 || h.Negatives() != 0 {
			t.Errorf("slice %s: score hist %v", slice, h)
		}
		fc, _ := e.st.bucketSketch(base(FamilyFeature, slice, "feature", "country"), b0).(*sketch.Categorical)
		if fc == nil || fc.Count("de") != 1 {
			t.Errorf("slice %s: country %v", slice, fc)
		}
		fn, _ := e.st.bucketSketch(base(FamilyFeature, slice, "feature", "tenure"), b0).(*sketch.LogHistogram)
		if fn == nil || fn.Count() != 1 || fn.Sum() != 150 {
			t.Errorf("slice %s: tenure %v", slice, fn)
		}
		mm, _ := e.st.bucketSketch(base(FamilyMeasureMoments, slice, "measure", "latency_ms"), b0).(*sketch.Moments)
		if mm == nil || mm.Mean() != 12 {
			t.Errorf("slice %s: latency %v", slice, mm)
		}
		d, _ := e.st.bucketSketch(base(FamilyLabelDelay, slice), b0).(*sketch.LogHistogram)
		if d == nil || d.Count() != 1 || d.Sum() != 0 {
			t.Errorf("slice %s: delay %v", slice, d)
		}
	}
	// Record b: bucket 12:01, all only, predicted class 0 (index 0), no label.
	if s := e.st.bucketSketch(base(FamilyPredictions, "eu"), b1); s != nil {
		t.Errorf("record b routed to eu")
	}
	pc, _ := e.st.bucketSketch(base(FamilyPredictedClass, "all"), b1).(*sketch.Categorical)
	if pc == nil || pc.Count("0") != 1 {
		t.Errorf("predicted class %v", pc)
	}
	if s := e.st.bucketSketch(base(FamilyConfusion, "all"), b1); s != nil {
		t.Errorf("unlabelled record has a confusion")
	}
	// Class indices: declared order.
	if v, ok, _ := e.st.LastFloat(labels.FromStrings(metricName, FamilyClassIndex, "model", "churn", "class", "1")); !ok || v != 1 {
		t.Errorf("class index of 1: %v %v", v, ok)
	}
	if v, ok, _ := e.st.LastFloat(CommitMarker()); !ok || v != 1 {
		t.Errorf("commit marker %v %v", v, ok)
	}
}

func TestRoutingMulticlassAndRegression(t *testing.T) {
	e := newEnv(t, nil)
	_, err := e.in.Predictions(context.Background(), ndjson(
		`{"model":"intent","version":"v2","id":"1","timestamp":"2026-03-01T12:00:00Z","scores":{"browse":0.2,"buy":0.7,"support":0.1},"label":"buy"}`,
		`{"model":"intent","version":"v2","id":"2","timestamp":"2026-03-01T12:00:00Z","scores":{"browse":0.5,"buy":0.4,"support":0.1},"label":"support"}`,
		`{"model":"eta","version":"r1","id":"1","timestamp":"2026-03-01T12:00:00Z","prediction":30,"label":25}`,
		// undeclared model: regression inferred, features typed per value
		`{"model":"newm","version":"x","id":"1","timestamp":"2026-03-01T12:00:00Z","prediction":2.5,"features":{"f":1,"g":"a"}}`,
	))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := e.st.merged(t, FamilyConfusion, ls("model", "intent", "slice", "all")).(*sketch.Confusion)
	// classes browse=0 buy=1 support=2; predicted argmax: buy, browse.
	if c.Count() != 2 || c.Cell(1, 1) != 1 || c.Cell(2, 0) != 1 || c.Accuracy() != 0.5 {
		t.Errorf("intent confusion: count %d acc %v", c.Count(), c.Accuracy())
	}
	h, _ := e.st.merged(t, FamilyScoreHist, ls("model", "intent", "class", "buy")).(*sketch.ScoreHistogram)
	if h == nil || h.Positives() != 1 || h.Negatives() != 1 || h.ROCAUC() != 1 {
		t.Errorf("one-vs-rest buy: %v", h)
	}
	sc, _ := e.st.merged(t, FamilyScore, ls("model", "intent", "class", "support")).(*sketch.LogHistogram)
	if sc == nil || sc.Count() != 2 {
		t.Errorf("per-class score: %v", sc)
	}
	r, _ := e.st.merged(t, FamilyRegression, ls("model", "eta")).(*sketch.Regression)
	if r == nil || r.Count() != 1 || r.MAE() != 5 || r.Bias() != 5 {
		t.Errorf("eta regression %v", r)
	}
	p, _ := e.st.merged(t, FamilyPrediction, ls("model", "newm")).(*sketch.LogHistogram)
	if p == nil || p.Count() != 1 {
		t.Errorf("newm prediction %v", p)
	}
	if _, ok := e.st.merged(t, FamilyFeature, ls("model", "newm", "feature", "g")).(*sketch.Categorical); !ok {
		t.Errorf("newm feature g not categorical")
	}
	// Feature f is now numeric for newm: a string later is a conflict.
	res, err := e.in.Predictions(context.Background(), ndjson(
		`{"model":"newm","version":"x","id":"2","timestamp":"2026-03-01T12:00:00Z","prediction":2.5,"features":{"f":"oops","g":7}}`))
	if err != nil || res.FeatureTypeConflicts != 1 {
		t.Fatalf("conflict: %v %+v", err, res)
	}
	g, _ := e.st.merged(t, FamilyFeature, ls("model", "newm", "feature", "g")).(*sketch.Categorical)
	if g.Count("7") != 1 {
		t.Errorf("number for a categorical feature kept as text: %v", g.Count("7"))
	}
}

func TestOfflineEvaluation(t *testing.T) {
	e := newEnv(t, nil)
	res, err := e.in.Evaluation(context.Background(), jsonBody(`{"model":"churn","version":"v1","dataset":"main","run":"r1","timestamp":"2026-03-01T11:00:00Z",
		"records":[{"features":{"country":"fr"},"score":0.8,"label":1},{"features":{"country":"us"},"score":0.6,"label":0},{"score":0.1,"label":0}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if res.Predictions != 3 || res.Labels != 3 {
		t.Fatalf("%+v", res)
	}
	c, _ := e.st.merged(t, FamilyConfusion, ls("source", "offline", "dataset", "main", "run", "r1", "slice", "all")).(*sketch.Confusion)
	if c == nil || c.Count() != 3 || math.Abs(c.Accuracy()-2.0/3) > 1e-12 {
		t.Fatalf("offline confusion %v", c)
	}
	eu, _ := e.st.merged(t, FamilyConfusion, ls("source", "offline", "slice", "eu")).(*sketch.Confusion)
	if eu == nil || eu.Count() != 1 {
		t.Fatalf("offline eu %v", eu)
	}
	if s := e.st.merged(t, FamilyLabelDelay, ls("source", "offline")); s != nil {
		t.Errorf("offline records observe no label delay")
	}
	for _, k := range seriesOf(e.st) {
		if strings.Contains(k, `source="offline"`) && (!strings.Contains(k, `dataset="main"`) || !strings.Contains(k, `run="r1"`)) {
			t.Errorf("offline series without dataset/run: %s", k)
		}
	}
	if e.in.Stats().Pending != 0 {
		t.Errorf("offline records are not kept for joins")
	}
}

func TestCommitFailurePoisons(t *testing.T) {
	e := newEnv(t, nil)
	e.st.failCommit = errors.New("disk full")
	_, err := e.in.Predictions(context.Background(), ndjson(`{"model":"churn","version":"v1","id":"a","timestamp":"2026-03-01T12:00:30Z","score":0.9}`))
	if err == nil {
		t.Fatal("want error")
	}
	if _, err := e.in.Predictions(context.Background(), ndjson(`{"model":"churn","version":"v1","id":"b","timestamp":"2026-03-01T12:00:30Z","score":0.9}`)); err == nil {
		t.Fatal("ingester must stay stopped after a failed commit")
	}
	// Restart: the batch that did not commit is rolled back; a retry counts it once.
	e.in.Close()
	e.open()
	if e.in.Stats().Pending != 0 {
		t.Fatalf("rolled-back prediction still pending")
	}
	if _, err := e.in.Predictions(context.Background(), ndjson(`{"model":"churn","version":"v1","id":"a","timestamp":"2026-03-01T12:00:30Z","score":0.9}`)); err != nil {
		t.Fatal(err)
	}
	m, _ := e.st.merged(t, FamilyPredictions, ls("slice", "all")).(*sketch.Moments)
	if m.Count() != 1 {
		t.Fatalf("predictions %v", m.Count())
	}
}
