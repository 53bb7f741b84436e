package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
	"gonum.org/v1/gonum/stat/distuv"

	"evalstore/definitions"
	"evalstore/sketch"
)

// TestDemoDefinitions: the demo's definitions file is valid and its slices
// are the ones demoSlicesOf computes.
func TestDemoDefinitions(t *testing.T) {
	d, err := definitions.Parse("demo.yaml", []byte(demoDefinitions))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ country, device string }{{"de", "ios"}, {"us", "web"}, {"gb", "android"}, {"br", "web"}, {"nl", "web"}} {
		for _, m := range []string{"a", "b"} {
			rec := definitions.MapRecord{Model: m, Version: "v1", Features: map[string]definitions.Value{
				"country": definitions.StringValue(c.country), "device": definitions.StringValue(c.device),
				"tenure_days": definitions.NumberValue(10), "monthly_spend": definitions.NumberValue(20)}}
			got := d.SlicesFor(m, &rec, nil)
			want := demoSlicesOf(c.country, c.device)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("%v: definitions give slices %v, demoSlicesOf %v", c, got, want)
			}
		}
		mod, _ := d.Model("b")
		for f, w := range demoImportance {
			if got := mod.Importance(f); got != w {
				t.Errorf("importance of %s = %v, want %v", f, got, w)
			}
		}
	}
}

func TestDemoFlags(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "d.yaml")
	var out, errb bytes.Buffer
	if code := run([]string{"demo", "-write-definitions", path}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != demoDefinitions {
		t.Fatalf("written definitions: %v", err)
	}
	if code := run([]string{"demo", "-url", "http://127.0.0.1:1"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "cannot reach the server") {
		t.Fatalf("unreachable server: exit %d, %s", code, errb.String())
	}
	if code := run([]string{"demo", "extra"}, &out, &errb); code != 2 {
		t.Fatalf("stray argument: exit %d", code)
	}
}

// TestDemoWithoutDefinitions: against a server without the demo
// definitions the demo still sends everything (slice all only), writes the
// definitions file and says how to use it.
func TestDemoWithoutDefinitions(t *testing.T) {
	dir := t.TempDir()
	s := start(t, filepath.Join(dir, "data"))
	file := filepath.Join(dir, "evalstore-demo.yaml")
	var progress bytes.Buffer
	d, err := runDemo(t.Context(), demoConfig{URL: s.url, Seed: 7, PerModel: 200, Stderr: &progress, DefinitionsFile: file})
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, progress.String())
	}
	if d.Declared || !strings.Contains(progress.String(), "-definitions "+file) {
		t.Fatalf("no hint about the definitions: %s", progress.String())
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != demoDefinitions {
		t.Fatalf("definitions file not written: %v", err)
	}
	api := client(t, s.url, "")
	got := vec(t, api, `count{model=~"a|b"}[1h]`, d.End, "model", "slice")
	if len(got) != 2 || got["a,all"] != 200 || got["b,all"] != 200 {
		t.Fatalf("counts without definitions = %v, want 200 per model in slice all only", got)
	}
	var summary bytes.Buffer
	printDemoSummary(&summary, d)
	if !strings.Contains(summary.String(), `only "all"`) {
		t.Errorf("summary does not say slices are missing:\n%s", summary.String())
	}
}

// vec runs an instant query and returns its samples keyed by the given
// labels' values joined with ",".
func vec(t *testing.T, api v1.API, q string, at time.Time, keys ...string) map[string]float64 {
	t.Helper()
	v, warnings, _, err := api.Query(t.Context(), q, at)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if len(warnings) > 0 {
		t.Logf("%s: warnings %v", q, warnings)
	}
	out := map[string]float64{}
	for _, s := range v.(model.Vector) {
		var parts []string
		for _, k := range keys {
			parts = append(parts, string(s.Metric[model.LabelName(k)]))
		}
		k := strings.Join(parts, ",")
		if _, dup := out[k]; dup {
			t.Fatalf("%s: two samples for %s: %v", q, k, v)
		}
		out[k] = float64(s.Value)
	}
	return out
}

func near(got, want, rel float64) bool {
	if math.IsNaN(got) || math.IsNaN(want) {
		return false
	}
	return math.Abs(got-want) <= rel*math.Max(math.Abs(want), 1e-300)
}

func check(t *testing.T, what string, got map[string]float64, key string, want, rel float64) {
	t.Helper()
	g, ok := got[key]
	if !ok {
		t.Errorf("%s: no sample for %q (got %v)", what, key, got)
		return
	}
	if !near(g, want, rel) && math.Abs(g-want) > 1e-12 {
		t.Errorf("%s[%s] = %v, oracle %v", what, key, g, want)
	}
}

// demoOracle answers from the records the demo sent.
type demoOracle struct{ d *demoData }

func (o demoOracle) online(model, slice string) []demoRecord {
	var out []demoRecord
	for _, r := range o.d.Records {
		if r.Model == model && slices.Contains(r.Slices, slice) {
			out = append(out, r)
		}
	}
	return out
}

func (o demoOracle) run(model, dataset, slice string) []demoEvalRecord {
	var out []demoEvalRecord
	for _, r := range o.d.Runs {
		if r.Model == model && r.Dataset == dataset {
			for _, x := range r.Records {
				if slices.Contains(x.Slices, slice) {
					out = append(out, x)
				}
			}
		}
	}
	return out
}

// confusion counts: tp, fp, tn, fn with "1" positive.
func confusionOf(pred, label []string) (tp, fp, tn, fn float64) {
	for i := range pred {
		switch {
		case pred[i] == "1" && label[i] == "1":
			tp++
		case pred[i] == "1":
			fp++
		case label[i] == "1":
			fn++
		default:
			tn++
		}
	}
	return
}

func welch(a, b []float64) sketch.TestResult {
	mv := func(xs []float64) (m, v float64) {
		for _, x := range xs {
			m += x
		}
		m /= float64(len(xs))
		for _, x := range xs {
			v += (x - m) * (x - m)
		}
		return m, v / float64(len(xs)-1)
	}
	ma, va := mv(a)
	mb, vb := mv(b)
	sa, sb := va/float64(len(a)), vb/float64(len(b))
	r := sketch.TestResult{Effect: ma - mb, StdErr: math.Sqrt(sa + sb)}
	r.DF = (sa + sb) * (sa + sb) / (sa*sa/float64(len(a)-1) + sb*sb/float64(len(b)-1))
	r.Statistic = r.Effect / r.StdErr
	st := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: r.DF}
	r.PValue = 2 * st.Survival(math.Abs(r.Statistic))
	q := st.Quantile(0.975)
	r.Lower, r.Upper = r.Effect-q*r.StdErr, r.Effect+q*r.StdErr
	return r
}

// TestDemoEndToEnd starts the binary with the demo definitions, runs the
// demo workload against it, asks the brief's four questions (and the
// dashboard's queries) over HTTP and checks the answers against oracles
// computed from the records the demo generated.
func TestDemoEndToEnd(t *testing.T) {
	dir := t.TempDir()
	defs := filepath.Join(dir, "demo.yaml")
	if err := os.WriteFile(defs, []byte(demoDefinitions), 0o644); err != nil {
		t.Fatal(err)
	}
	s := start(t, filepath.Join(dir, "data"), "-definitions", defs)
	var progress bytes.Buffer
	d, err := runDemo(t.Context(), demoConfig{URL: s.url, Seed: 42, PerModel: 2000, Stderr: &progress})
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, progress.String())
	}
	if !d.Declared {
		t.Fatalf("the demo did not see its definitions on the server:\n%s", progress.String())
	}
	if !strings.Contains(progress.String(), "demo: done") {
		t.Errorf("no progress on stderr: %q", progress.String())
	}
	var summary bytes.Buffer
	printDemoSummary(&summary, d)
	for _, q := range demoQuestions {
		if !strings.Contains(summary.String(), q.Query) {
			t.Errorf("summary lacks %s", q.Query)
		}
	}
	api := client(t, s.url, "")
	at := d.End // every online bucket ends at or before it
	o := demoOracle{d}

	// The demo is what it says: labels arrive late, some never; the eu slice
	// drifts halfway.
	labelled, late := 0, 0
	for _, r := range d.Records {
		if r.Labelled {
			labelled++
			if r.LabelAt.Sub(r.Time) > 10*time.Minute {
				late++
			}
		}
	}
	if f := float64(labelled) / float64(len(d.Records)); f < 0.8 || f > 0.9 || late == 0 {
		t.Errorf("labels: %d of %d, %d later than 10 minutes", labelled, len(d.Records), late)
	}

	t.Run("Q1 importance-weighted drift", func(t *testing.T) {
		q := demoQuestions[0].Query
		got := vec(t, api, q, at, "model", "slice", "version")
		cur, ref := o.online("b", "eu"), o.run("b", "train", "eu")
		// Oracle: per feature, the sketches built directly from the raw
		// values of each side (no buckets, no merges, no storage), their
		// PSI, and the importance-weighted mean.
		var sum, wsum float64
		for f, w := range demoImportance {
			var dist float64
			if f == "country" || f == "device" {
				c, r := sketch.NewCategorical(sketch.DefaultCategoricalCapacity), sketch.NewCategorical(sketch.DefaultCategoricalCapacity)
				val := func(country, device string) string {
					if f == "country" {
						return country
					}
					return device
				}
				for _, x := range cur {
					c.Add(val(x.Country, x.Device))
				}
				for _, x := range ref {
					r.Add(val(x.Country, x.Device))
				}
				dist, err = sketch.CategoricalDistance(sketch.PSI, c, r, sketch.DistanceOptions{})
			} else {
				c, r := sketch.NewDefaultLogHistogram(), sketch.NewDefaultLogHistogram()
				val := func(tenure, spend float64) float64 {
					if f == "tenure_days" {
						return tenure
					}
					return spend
				}
				for _, x := range cur {
					_ = c.Add(val(x.Tenure, x.Spend))
				}
				for _, x := range ref {
					_ = r.Add(val(x.Tenure, x.Spend))
				}
				dist, err = sketch.NumericDistance(sketch.PSI, c, r, sketch.DistanceOptions{})
			}
			if err != nil {
				t.Fatal(err)
			}
			sum += w * dist
			wsum += w
			t.Logf("oracle psi %s = %v; server %v", f, dist, vec(t, api, `psi(evalstore_feature{model="b",slice="eu",feature="`+f+`"}[1h])`, at, "feature"))
		}
		check(t, q, got, "b,eu,v1", sum/wsum, 1e-9)

		// The drifted feature against the PSI of the raw samples (ten
		// equal-frequency bins of the raw reference), within the sketch's
		// resolution.
		var cs, rs []float64
		for _, x := range cur {
			cs = append(cs, x.Spend)
		}
		for _, x := range ref {
			rs = append(rs, x.Spend)
		}
		raw := rawPSI(cs, rs)
		one := vec(t, api, `psi(evalstore_feature{model="b",slice="eu",feature="monthly_spend"}[1h])`, at, "feature")
		if g := one["monthly_spend"]; math.Abs(g-raw) > 0.1*raw+0.05 {
			t.Errorf("psi(monthly_spend) = %v, raw-sample PSI %v", g, raw)
		}
		// The incident: the second half hour drifts, the first does not,
		// and other slices do not.
		w := `psi(evalstore_feature{model="b",slice="eu",feature="monthly_spend"}[30m])`
		before, after := vec(t, api, w, d.DriftAt, "feature")["monthly_spend"], vec(t, api, w, at, "feature")["monthly_spend"]
		us := vec(t, api, `psi(evalstore_feature{model="b",slice="us",feature="monthly_spend"}[30m])`, at, "feature")["monthly_spend"]
		if !(before < 0.2 && after > 0.5 && us < 0.2) {
			t.Errorf("monthly_spend PSI in eu before the drift %v, after %v; in us after %v", before, after, us)
		}
	})

	t.Run("Q2 online minus offline accuracy", func(t *testing.T) {
		q := demoQuestions[1].Query
		if q != `accuracy<model="b",slice="eu">[7d] - offline(accuracy<model="b">)` {
			t.Fatalf("the brief's text changed: %s", q)
		}
		got := vec(t, api, q, at, "model", "slice", "version")
		var correct, n float64
		for _, r := range o.online("b", "eu") {
			if r.Labelled {
				n++
				if r.Predicted == r.Label {
					correct++
				}
			}
		}
		var offCorrect, offN float64
		for _, r := range o.run("b", "train", "eu") {
			offN++
			if r.Predicted == r.Label {
				offCorrect++
			}
		}
		want := correct/n - offCorrect/offN
		check(t, q, got, "b,eu,v1", want, 1e-12)
		if len(got) != 1 || want >= 0 {
			t.Errorf("want one sample, worse online (drift): got %v, oracle %v", got, want)
		}
	})

	t.Run("Q3 all metrics A vs B on main", func(t *testing.T) {
		q := demoQuestions[2].Query
		got := vec(t, api, q, at, "metric", "slice")
		metrics := func(recs []demoEvalRecord) map[string]float64 {
			var pred, label []string
			for _, r := range recs {
				pred, label = append(pred, r.Predicted), append(label, r.Label)
			}
			tp, fp, tn, fn := confusionOf(pred, label)
			n := tp + fp + tn + fn
			p, r := tp/(tp+fp), tp/(tp+fn)
			return map[string]float64{"accuracy": (tp + tn) / n, "precision": p, "recall": r, "f1": 2 * p * r / (p + r),
				"positive_rate": (tp + fp) / n, "count": n, "label_coverage": 1}
		}
		for _, sl := range append([]string{"all"}, demoSlices...) {
			a, b := metrics(o.run("a", "main", sl)), metrics(o.run("b", "main", sl))
			for m := range a {
				check(t, q, got, m+","+sl, a[m]-b[m], 1e-9)
			}
			for _, m := range []string{"auc", "log_loss", "brier", "f1_macro"} {
				if _, ok := got[m+","+sl]; !ok {
					t.Errorf("%s: no %s for slice %s", q, m, sl)
				}
			}
		}
	})

	t.Run("Q4 business metrics t-test", func(t *testing.T) {
		q := demoQuestions[3].Query
		got := vec(t, api, q, at, "measure", "stat")
		values := func(model, measure string) []float64 {
			var xs []float64
			for _, r := range o.online(model, "all") {
				switch {
				case measure == "latency_ms":
					xs = append(xs, r.latencyMs())
				case r.Labelled && r.Revenue > 0:
					xs = append(xs, r.Revenue)
				}
			}
			return xs
		}
		for _, m := range []string{"latency_ms", "revenue"} {
			w := welch(values("a", m), values("b", m))
			for stat, want := range map[string]float64{"p_value": w.PValue, "effect": w.Effect, "ci_low": w.Lower,
				"ci_high": w.Upper, "statistic": w.Statistic, "df": w.DF} {
				check(t, q, got, m+","+stat, want, 1e-6)
			}
			if w.PValue > 0.05 {
				t.Errorf("%s: the demo's A/B difference is not significant (p = %v)", m, w.PValue)
			}
		}
	})

	t.Run("label coverage and counts", func(t *testing.T) {
		for _, m := range []string{"a", "b"} {
			recs := o.online(m, "all")
			n, l := float64(len(recs)), 0.0
			for _, r := range recs {
				if r.Labelled {
					l++
				}
			}
			check(t, "count", vec(t, api, `count{model="`+m+`",slice="all"}[1h]`, at, "model"), m, n, 0)
			check(t, "label_coverage", vec(t, api, `label_coverage{model="`+m+`",slice="all"}[1h]`, at, "model"), m, l/n, 1e-12)
		}
	})

	t.Run("remote-written metrics", func(t *testing.T) {
		got := vec(t, api, `sum by (model) (demo_requests_total)`, at, "model")
		last := d.End.Add(-15 * time.Second)
		for _, m := range []string{"a", "b"} {
			var n float64
			for _, r := range d.Records {
				if r.Model == m && !r.Time.After(last) {
					n++
				}
			}
			check(t, "demo_requests_total", got, m, n, 0)
		}
	})

	t.Run("Grafana dashboard", func(t *testing.T) {
		testDashboard(t, api, d)
	})
}

// rawPSI is the PSI of raw sample cur against raw sample ref over ten
// equal-frequency bins of ref, proportions floored at 1e-4.
func rawPSI(cur, ref []float64) float64 {
	ref = slices.Clone(ref)
	slices.Sort(ref)
	var edges []float64
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
			out[k] += 1 / float64(len(xs))
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

// dashboardExprs returns every "expr" string of a Grafana dashboard,
// with the panel title it belongs to.
func dashboardExprs(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	out := map[string]string{}
	var walk func(v any, title string)
	walk = func(v any, title string) {
		switch x := v.(type) {
		case map[string]any:
			if s, ok := x["title"].(string); ok {
				title = s
			}
			for k, c := range x {
				if s, ok := c.(string); ok && k == "expr" {
					out[s] = title
					continue
				}
				walk(c, title)
			}
		case []any:
			for _, c := range x {
				walk(c, title)
			}
		}
	}
	walk(doc, "")
	return out
}

// testDashboard runs every query of the dashboard as Grafana would (a
// range query over the demo's hour) and requires data from each.
func testDashboard(t *testing.T, api v1.API, d *demoData) {
	exprs := dashboardExprs(t, filepath.Join("..", "..", "docs", "grafana", "evalstore-overview.json"))
	if len(exprs) < 8 {
		t.Fatalf("only %d queries in the dashboard", len(exprs))
	}
	for expr, title := range exprs {
		if strings.Contains(expr, "$") {
			t.Errorf("panel %q: %s uses a variable; the test cannot check it", title, expr)
			continue
		}
		v, _, _, err := api.QueryRange(t.Context(), expr, v1.Range{Start: d.Start, End: d.End, Step: time.Minute})
		if err != nil {
			t.Errorf("panel %q: %s: %v", title, expr, err)
			continue
		}
		m, ok := v.(model.Matrix)
		if !ok || len(m) == 0 {
			t.Errorf("panel %q: %s: no data", title, expr)
			continue
		}
		points := 0
		for _, s := range m {
			points += len(s.Values)
		}
		t.Logf("panel %q: %d series, %d points", title, len(m), points)
	}
}

// TestGrafanaProvisioning: the datasource file is Grafana provisioning
// YAML for the built-in Prometheus datasource, with the uid the dashboard
// uses.
func TestGrafanaProvisioning(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "grafana", "datasource.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name, Type, URL, UID, Access string
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.APIVersion != 1 || len(doc.Datasources) == 0 || doc.Datasources[0].Type != "prometheus" ||
		!strings.HasSuffix(doc.Datasources[0].URL, ":9470") {
		t.Fatalf("datasource.yaml: %+v", doc)
	}
	dash, err := os.ReadFile(filepath.Join("..", "..", "docs", "grafana", "evalstore-overview.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(dash, []byte(`"uid": "`+doc.Datasources[0].UID+`"`)) {
		t.Errorf("the dashboard does not use the datasource uid %q", doc.Datasources[0].UID)
	}
}
