package query

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"evalstore/definitions"
	"evalstore/query/parser"
	"evalstore/sketch"
	"evalstore/tsdb/series"
)

// This file wires sketch metrics into the language: a selector whose name
// is a sketch metric (accuracy{model="b"}[7d]) selects the series families
// behind the metric, merges every bucket of the window per series, merges
// the series that share their labels once the family name (and the default
// source) is dropped, and finishes the merged states into an instant
// vector. sum by (...) over such a selector pools states before finishing;
// offline(expr) switches selectors to the latest offline run.
// docs/query-language.md ("Sketch metrics") is the user-facing description.

// The series families the ingest layer writes (docs: the series contract).
const (
	FamilyConfusion           = "evalstore_confusion"
	FamilyScoreHist           = "evalstore_score_hist"
	FamilyRegression          = "evalstore_regression"
	FamilyRegressionRetracted = "evalstore_regression_retracted"
	FamilyPredictions         = "evalstore_predictions"
	FamilyLabelDelay          = "evalstore_label_delay_seconds"
	FamilyMeasure             = "evalstore_measure"
	FamilyMeasureMoments      = "evalstore_measure_moments"
	FamilyFeature             = "evalstore_feature"
	FamilyScore               = "evalstore_score"
	FamilyClassIndex          = "evalstore_class_index"
)

// Reserved labels the engine interprets.
const (
	labelModel   = "model"
	labelVersion = "version"
	labelSlice   = "slice"
	labelSource  = "source"
	labelDataset = "dataset"
	labelRun     = "run"
	labelClass   = "class"
	labelFeature = "feature"
	labelMetric  = "metric"
	labelStat    = "stat"
)

// allMetricsName is the pseudo-metric that evaluates every class-free
// sketch metric with data, labelling each result with metric="<name>".
const allMetricsName = "all_metrics"

// allMetricsList is what all_metrics evaluates, in order.
var allMetricsList = []string{
	"accuracy", "precision", "recall", "f1", "positive_rate",
	"precision_macro", "recall_macro", "f1_macro", "f1_weighted",
	"auc", "pr_auc", "log_loss", "brier", "calibration_error",
	"mae", "mse", "rmse", "r2", "bias", "count", "label_coverage",
}

// minTime is the start of "all time" for reads that ignore the query
// window (offline runs, class indices); far from MinInt64 so that window
// arithmetic cannot overflow.
const minTime = math.MinInt64 / 4

// ---- registry ----

// SketchMetric is a metric finished from merged sketch states, such as
// accuracy from a confusion matrix.
type SketchMetric struct {
	// Name is the metric's name in queries: accuracy{model="b"}[7d].
	Name string
	// Families are the series families read (online); their states are
	// joined on the series labels with the family name dropped.
	Families []string
	// OfflineFamilies, when set, replace Families inside offline().
	OfflineFamilies []string
	// PerClass marks a metric of one class of a confusion matrix: a class
	// matcher in the selector names the class instead of a series label,
	// and the positive class is the default for binary models.
	PerClass bool
	// Finish turns the merged states (states[i] of Families[i], nil when
	// that family had no bucket in the window) into a value; cls is the
	// class index for PerClass metrics, -1 otherwise. ok false: no point.
	// It must not mutate the states.
	Finish func(states []sketch.Sketch, cls int) (v float64, ok bool)
}

var (
	sketchMetricsMu sync.RWMutex
	sketchMetrics   = map[string]SketchMetric{}
)

// ErrDuplicate reports a second registration of one name.
var ErrDuplicate = errors.New("already registered")

// RegisterSketchMetric adds a sketch metric. Names may not shadow PromQL or
// sketch functions.
func RegisterSketchMetric(m SketchMetric) error {
	if m.Name == "" || m.Finish == nil || len(m.Families) == 0 {
		return errors.New("sketch metric needs a name, a family and a finisher")
	}
	if lookupFunc(m.Name) != nil || m.Name == allMetricsName {
		return fmt.Errorf("sketch metric %q: a function has that name: %w", m.Name, ErrDuplicate)
	}
	sketchMetricsMu.Lock()
	defer sketchMetricsMu.Unlock()
	if _, ok := sketchMetrics[m.Name]; ok {
		return fmt.Errorf("sketch metric %q: %w", m.Name, ErrDuplicate)
	}
	sketchMetrics[m.Name] = m
	return nil
}

// LookupSketchMetric returns the registered sketch metric name.
func LookupSketchMetric(name string) (SketchMetric, bool) {
	sketchMetricsMu.RLock()
	defer sketchMetricsMu.RUnlock()
	m, ok := sketchMetrics[name]
	return m, ok
}

// SketchMetricNames returns the registered names, sorted.
func SketchMetricNames() []string {
	sketchMetricsMu.RLock()
	defer sketchMetricsMu.RUnlock()
	out := make([]string, 0, len(sketchMetrics))
	for n := range sketchMetrics {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func init() {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	conf := func(name string, perClass bool, f func(c *sketch.Confusion, cls int) float64) {
		must(RegisterSketchMetric(SketchMetric{Name: name, Families: []string{FamilyConfusion}, PerClass: perClass,
			Finish: func(s []sketch.Sketch, cls int) (float64, bool) {
				c, ok := s[0].(*sketch.Confusion)
				if !ok {
					return 0, false
				}
				return f(c, cls), true
			}}))
	}
	conf("accuracy", false, func(c *sketch.Confusion, _ int) float64 { return c.Accuracy() })
	conf("precision", true, func(c *sketch.Confusion, cls int) float64 { return c.Precision(cls) })
	conf("recall", true, func(c *sketch.Confusion, cls int) float64 { return c.Recall(cls) })
	conf("f1", true, func(c *sketch.Confusion, cls int) float64 { return c.F1(cls) })
	conf("positive_rate", true, func(c *sketch.Confusion, cls int) float64 { return c.PositiveRate(cls) })
	conf("precision_macro", false, func(c *sketch.Confusion, _ int) float64 { return c.MacroPrecision() })
	conf("recall_macro", false, func(c *sketch.Confusion, _ int) float64 { return c.MacroRecall() })
	conf("f1_macro", false, func(c *sketch.Confusion, _ int) float64 { return c.MacroF1() })
	conf("precision_micro", false, func(c *sketch.Confusion, _ int) float64 { return c.MicroPrecision() })
	conf("recall_micro", false, func(c *sketch.Confusion, _ int) float64 { return c.MicroRecall() })
	conf("f1_micro", false, func(c *sketch.Confusion, _ int) float64 { return c.MicroF1() })
	conf("precision_weighted", false, func(c *sketch.Confusion, _ int) float64 { return c.WeightedPrecision() })
	conf("recall_weighted", false, func(c *sketch.Confusion, _ int) float64 { return c.WeightedRecall() })
	conf("f1_weighted", false, func(c *sketch.Confusion, _ int) float64 { return c.WeightedF1() })

	score := func(name string, f func(h *sketch.ScoreHistogram) float64) {
		must(RegisterSketchMetric(SketchMetric{Name: name, Families: []string{FamilyScoreHist},
			Finish: func(s []sketch.Sketch, _ int) (float64, bool) {
				h, ok := s[0].(*sketch.ScoreHistogram)
				if !ok {
					return 0, false
				}
				return f(h), true
			}}))
	}
	score("auc", (*sketch.ScoreHistogram).ROCAUC)
	score("pr_auc", (*sketch.ScoreHistogram).PRAUC)
	score("log_loss", (*sketch.ScoreHistogram).LogLoss)
	score("brier", (*sketch.ScoreHistogram).Brier)
	score("calibration_error", func(h *sketch.ScoreHistogram) float64 { return h.ECE(calibrationBins) })

	reg := func(name string, f func(r *sketch.Regression) float64) {
		must(RegisterSketchMetric(SketchMetric{Name: name, Families: []string{FamilyRegression, FamilyRegressionRetracted},
			Finish: func(s []sketch.Sketch, _ int) (float64, bool) {
				r, ok := s[0].(*sketch.Regression)
				if !ok {
					return 0, false
				}
				// Corrected labels are kept in their own family and
				// taken back here; a copy keeps the merged state intact.
				net := *r
				if x, ok := s[1].(*sketch.Regression); ok {
					if err := net.Subtract(x); err != nil {
						return math.NaN(), true
					}
				}
				return f(&net), true
			}}))
	}
	reg("mae", (*sketch.Regression).MAE)
	reg("mse", (*sketch.Regression).MSE)
	reg("rmse", (*sketch.Regression).RMSE)
	reg("r2", (*sketch.Regression).R2)
	reg("bias", (*sketch.Regression).Bias)

	must(RegisterSketchMetric(SketchMetric{Name: "count", Families: []string{FamilyPredictions},
		Finish: func(s []sketch.Sketch, _ int) (float64, bool) {
			n, ok := stateCount(s[0])
			return n, ok
		}}))
	must(RegisterSketchMetric(SketchMetric{Name: "label_coverage",
		Families:        []string{FamilyPredictions, FamilyLabelDelay},
		OfflineFamilies: []string{FamilyPredictions, FamilyConfusion, FamilyRegression},
		Finish: func(s []sketch.Sketch, _ int) (float64, bool) {
			den, ok := stateCount(s[0])
			if !ok {
				return 0, false
			}
			var num float64
			for _, x := range s[1:] {
				if n, ok := stateCount(x); ok {
					num += n
				}
			}
			if den == 0 {
				return math.NaN(), true
			}
			return num / den, true
		}}))
}

// calibrationBins is the number of equal-width bins of calibration_error.
const calibrationBins = 10

// stateCount is the number of observations of any state.
func stateCount(s sketch.Sketch) (float64, bool) {
	switch x := s.(type) {
	case *sketch.Moments:
		return x.Count(), true
	case *sketch.LogHistogram:
		return x.Count(), true
	case *sketch.TDigest:
		return x.Count(), true
	case *sketch.Confusion:
		return float64(x.Count()), true
	case *sketch.ScoreHistogram:
		return float64(x.Count()), true
	case *sketch.Regression:
		return x.Count(), true
	case *sketch.Categorical:
		return float64(x.Total()), true
	}
	return 0, false
}

// mergeState merges src into dst (same format).
func mergeState(dst, src sketch.Sketch) error {
	if dst.Format() != src.Format() {
		return fmt.Errorf("%w: cannot merge %v into %v", sketch.ErrIncompatible, src.Format(), dst.Format())
	}
	switch d := dst.(type) {
	case *sketch.Confusion:
		d.Merge(src.(*sketch.Confusion))
	case *sketch.ScoreHistogram:
		return d.Merge(src.(*sketch.ScoreHistogram))
	case *sketch.Moments:
		d.Merge(src.(*sketch.Moments))
	case *sketch.Regression:
		d.Merge(src.(*sketch.Regression))
	case *sketch.LogHistogram:
		d.Merge(src.(*sketch.LogHistogram))
	case *sketch.TDigest:
		d.Merge(src.(*sketch.TDigest))
	case *sketch.Categorical:
		d.Merge(src.(*sketch.Categorical))
	default:
		return fmt.Errorf("%w: cannot merge %v", sketch.ErrIncompatible, dst.Format())
	}
	return nil
}

// ---- names ----

// selectorName returns the metric name of a selector: the written name or
// its __name__="..." matcher.
func selectorName(vs *parser.VectorSelector) string {
	if vs.Name != "" {
		return vs.Name
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == metricName && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return ""
}

// isSketchMetricName reports whether name is a sketch metric.
func isSketchMetricName(name string) bool {
	if name == allMetricsName {
		return true
	}
	_, ok := LookupSketchMetric(name)
	return ok
}

// sketchMetricSelector returns the selector and range of e when e is a
// selector of a sketch metric.
func sketchMetricSelector(e parser.Expr) (*parser.VectorSelector, int64, bool) {
	switch n := unwrapParens(e).(type) {
	case *parser.VectorSelector:
		return n, 0, isSketchMetricName(selectorName(n))
	case *parser.MatrixSelector:
		return n.VectorSelector, n.Range.Milliseconds(), isSketchMetricName(selectorName(n.VectorSelector))
	}
	return nil, 0, false
}

// isSketchable reports whether e evaluates to sketch states: a selector
// (of a sketch metric or of a raw family), offline(x[, "dataset"]) or
// sum(x) over one.
func isSketchable(e parser.Expr) bool {
	switch n := unwrapParens(e).(type) {
	case *parser.VectorSelector, *parser.MatrixSelector:
		return true
	case *parser.Call:
		return n.Func == "offline" && len(n.Args) >= 1 && isSketchable(n.Args[0])
	case *parser.AggregateExpr:
		return n.Op == "sum" && isSketchable(n.Expr)
	}
	return false
}

// isSketchMetricExpr reports whether e is sketchable and ends in a sketch
// metric selector (so pooling it with sum merges states).
func isSketchMetricExpr(e parser.Expr) bool {
	switch n := unwrapParens(e).(type) {
	case *parser.VectorSelector, *parser.MatrixSelector:
		_, _, ok := sketchMetricSelector(n)
		return ok
	case *parser.Call:
		return n.Func == "offline" && len(n.Args) >= 1 && isSketchMetricExpr(n.Args[0])
	case *parser.AggregateExpr:
		return n.Op == "sum" && isSketchMetricExpr(n.Expr)
	}
	return false
}

// usesSketches reports whether the AST reads sketch data (so the querier
// must cover all time for offline runs and class indices).
func usesSketches(n parser.Node) bool {
	found := false
	var walk func(n parser.Node)
	walk = func(n parser.Node) {
		if found {
			return
		}
		switch x := n.(type) {
		case *parser.VectorSelector:
			if isSketchMetricName(selectorName(x)) {
				found = true
			}
		case *parser.Call:
			if f := lookupFunc(x.Func); f != nil && (f.sketch != nil || x.Func == "offline") {
				found = true
			}
		}
		for _, c := range parser.Children(n) {
			walk(c)
		}
	}
	walk(n)
	return found
}

// ---- frames: states of one or more families per key and step ----

// sframe holds merged states per key (a label set) and step, for each of
// nfam families.
type sframe struct {
	metric  *SketchMetric // nil for raw family states
	nfam    int
	keys    []labels.Labels
	models  []string // the model of the first series merged into each key
	idx     map[uint64]int
	states  [][][]sketch.Sketch // [key][step][family]
	classMs []*labels.Matcher   // class matchers of a PerClass metric
	points  int                 // states added, bounded by MaxResultPoints
}

func (ev *evaluator) newFrame(nfam int) *sframe {
	return &sframe{nfam: nfam, idx: map[uint64]int{}}
}

func (ev *evaluator) stepIndex(t int64) int { return int((t - ev.start) / ev.interval) }

// keyIndex returns the index of key, adding it.
func (f *sframe) keyIndex(ev *evaluator, key labels.Labels, model string) int {
	h := key.Hash()
	if k, ok := f.idx[h]; ok {
		return k
	}
	k := len(f.keys)
	f.idx[h] = k
	f.keys = append(f.keys, key)
	f.models = append(f.models, model)
	f.states = append(f.states, make([][]sketch.Sketch, ev.numSteps()))
	return k
}

// put merges state s into key k, step i, family fam; the frame owns s.
func (f *sframe) put(ev *evaluator, k, i, fam int, s sketch.Sketch, pool *sketchScratch) {
	row := f.states[k]
	if row[i] == nil {
		row[i] = make([]sketch.Sketch, f.nfam)
	}
	if cur := row[i][fam]; cur != nil {
		if err := mergeState(cur, s); err != nil {
			ev.abort(&Error{Type: ErrExecution, Err: fmt.Errorf("merging %s: %w", f.keys[k], err)})
		}
		pool.put(s)
		return
	}
	row[i][fam] = s
}

// addMatrix merges a matrix of sketch points (labels already keyed) into
// family fam.
func (f *sframe) addMatrix(ev *evaluator, m Matrix, fam int, pool *sketchScratch) {
	for _, s := range m {
		k := f.keyIndex(ev, s.Metric, s.Metric.Get(labelModel))
		for _, p := range s.Sketches {
			f.put(ev, k, ev.stepIndex(p.T), fam, p.S.State, pool)
		}
	}
	if len(f.keys) > ev.opts.MaxSeries {
		ev.abort(limitError("max series", ev.opts.MaxSeries))
	}
	f.points += m.totalPoints()
	ev.checkPoints(f.points)
}

// release returns every state to the pool.
func (f *sframe) release(pool *sketchScratch) {
	for _, row := range f.states {
		for _, st := range row {
			for _, s := range st {
				if s != nil {
					pool.put(s)
				}
			}
		}
	}
	f.states = nil
}

// pooled merges the keys of f that share their grouping labels.
func (ev *evaluator) pooled(f *sframe, grouping []string, without bool, pool *sketchScratch) *sframe {
	out := ev.newFrame(f.nfam)
	out.metric, out.classMs = f.metric, f.classMs
	lb := labels.NewBuilder(labels.EmptyLabels())
	for k, key := range f.keys {
		g := out.keyIndex(ev, groupingLabels(lb, key, grouping, without), f.models[k])
		for i, st := range f.states[k] {
			for fam, s := range st {
				if s != nil {
					out.put(ev, g, i, fam, s, pool)
				}
			}
		}
	}
	f.states = nil
	return out
}

// ---- evaluation ----

// offlineMode is set while offline(...) evaluates its argument.
type offlineMode struct {
	// dataset is the dataset named by offline(expr, "dataset"); empty
	// means each model's reference dataset (definitions).
	dataset string
	// reference selects the model's drift reference (dataset, run and
	// version from the definitions) instead.
	reference bool
}

func (ev *evaluator) defs() *definitions.Definitions {
	if ev.opts.Definitions != nil {
		if d := ev.opts.Definitions(); d != nil {
			return d
		}
	}
	return definitions.Empty()
}

// defaultWindow is the window of a sketch selector written without a
// range: the step in range evaluation, the lookback in instant queries.
func (ev *evaluator) defaultWindow() int64 {
	if ev.rangeEval {
		return ev.interval
	}
	return ev.lookback
}

// evalSketch evaluates a sketchable expression to a frame.
func (ev *evaluator) evalSketch(e parser.Expr, pool *sketchScratch) *sframe {
	switch n := unwrapParens(e).(type) {
	case *parser.VectorSelector:
		return ev.selectorFrame(n, 0, pool)
	case *parser.MatrixSelector:
		return ev.selectorFrame(n.VectorSelector, n.Range.Milliseconds(), pool)
	case *parser.Call:
		if n.Func == "offline" {
			defer ev.setOffline(ev.offlineModeOf(n))()
			return ev.evalSketch(n.Args[0], pool)
		}
	case *parser.AggregateExpr:
		if n.Op == "sum" {
			return ev.pooled(ev.evalSketch(n.Expr, pool), n.Grouping, n.Without, pool)
		}
	}
	ev.errorf("expected sketch states (a selector such as evalstore_feature{...}[1h], offline(...) or sum(...) over one), got %s", e)
	return nil
}

func (ev *evaluator) offlineModeOf(n *parser.Call) *offlineMode {
	m := &offlineMode{}
	if len(n.Args) > 1 {
		m.dataset = stringArg(n.Args[1])
	}
	return m
}

// setOffline switches offline mode on and returns the function restoring
// the previous mode.
func (ev *evaluator) setOffline(m *offlineMode) func() {
	prev := ev.offline
	ev.offline = m
	return func() { ev.offline = prev }
}

// selectorFrame evaluates a selector (sketch metric or raw family) over
// windows of rng ms (0: the default window).
func (ev *evaluator) selectorFrame(vs *parser.VectorSelector, rng int64, pool *sketchScratch) *sframe {
	if rng == 0 {
		rng = ev.defaultWindow()
	}
	name := selectorName(vs)
	base := make([]*labels.Matcher, 0, len(vs.LabelMatchers))
	for _, m := range vs.LabelMatchers {
		if m.Name != metricName {
			base = append(base, m)
		}
	}
	at := ev.atTime(vs.Timestamp, vs.StartOrEnd)
	off := vs.Offset.Milliseconds()
	m, isMetric := LookupSketchMetric(name)
	if !isMetric {
		if name == "" {
			ev.errorf("a sketch selector needs a metric or family name, such as evalstore_feature{...}[1h]")
		}
		if a, ok := ev.familyAlias[name]; ok {
			name = a
		}
		f := ev.newFrame(1)
		f.addMatrix(ev, ev.familyStates(base, name, at, off, rng, pool), 0, pool)
		return f
	}
	var classMs []*labels.Matcher
	if m.PerClass {
		kept := base[:0:0]
		for _, x := range base {
			if x.Name == labelClass {
				classMs = append(classMs, x)
			} else {
				kept = append(kept, x)
			}
		}
		base = kept
	}
	fams := m.Families
	if ev.offline != nil && m.OfflineFamilies != nil {
		fams = m.OfflineFamilies
	}
	f := ev.newFrame(len(fams))
	f.metric, f.classMs = &m, classMs
	for i, fam := range fams {
		f.addMatrix(ev, ev.familyStates(base, fam, at, off, rng, pool), i, pool)
	}
	return f
}

func hasMatcher(ms []*labels.Matcher, name string) bool {
	return slices.ContainsFunc(ms, func(m *labels.Matcher) bool { return m.Name == name })
}

// familyStates returns the window states of every series of family that
// matches base, keyed by their labels without the family name (and without
// source when it was defaulted to online, or inside offline()).
func (ev *evaluator) familyStates(base []*labels.Matcher, family string, at *int64, off, w int64, pool *sketchScratch) Matrix {
	ms := append(slices.Clone(base), labels.MustNewMatcher(labels.MatchEqual, metricName, family))
	if ev.offline != nil {
		return ev.offlineStates(ms, at, off, pool)
	}
	drop := []string{metricName}
	if !hasMatcher(base, labelSource) {
		// Remote-written native histograms carry no source label: they
		// are online data.
		ms = append(ms, labels.MustNewMatcher(labels.MatchRegexp, labelSource, "online|"))
		drop = append(drop, labelSource)
	}
	m := ev.sketchSelect(ms, at, off, w, pool)
	for i := range m {
		m[i].Metric = dropLabels(m[i].Metric, drop...)
	}
	return m
}

// offlineRun is one run of one offline group.
type offlineRun struct {
	name    string
	buckets []windowBucket // t is the bucket's end
	format  sketch.Format
}

// offlineStates selects offline series (source="offline") and, at every
// step, merges for each (labels without run) group the buckets of its
// latest run as of the step: the run whose newest bucket ending at or
// before the step is the newest (ties: the greater run label). The whole
// run is read, whatever the outer window.
func (ev *evaluator) offlineStates(ms []*labels.Matcher, at *int64, off int64, pool *sketchScratch) Matrix {
	mode := ev.offline
	keepDataset := hasMatcher(ms, labelDataset)
	ms = slices.DeleteFunc(slices.Clone(ms), func(m *labels.Matcher) bool { return m.Name == labelSource })
	ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, labelSource, "offline"))
	if !keepDataset && mode.dataset != "" {
		ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, labelDataset, mode.dataset))
	}
	drop := []string{metricName, labelSource, labelRun}
	if !keepDataset {
		drop = append(drop, labelDataset)
	}
	hi := max(refTime(ev.start, at, off), refTime(ev.end, at, off))
	set := ev.querier.Select(ev.ctx, series.Hints{Mint: minTime, Maxt: hi}, ms...)
	defs := ev.defs()
	type group struct {
		key  labels.Labels
		runs map[string]*offlineRun
	}
	groups := map[uint64]*group{}
	var order []uint64
	var it series.BucketIterator
	for set.Next() {
		s := set.At()
		meta := s.Meta()
		ev.acct.series++
		if ev.acct.series > ev.opts.MaxSeries {
			ev.abort(limitError("max series", ev.opts.MaxSeries))
		}
		if meta.Kind != series.KindSketch {
			continue
		}
		l := meta.Labels
		dropHere := drop
		if !keepDataset && mode.dataset == "" {
			ref := defs.ModelOrDefault(l.Get(labelModel)).Reference
			if l.Get(labelDataset) != ref.Dataset {
				continue
			}
			if mode.reference {
				if ref.Run != "" && ref.Run != "latest" && l.Get(labelRun) != ref.Run {
					continue
				}
				if ref.Version != "" {
					if l.Get(labelVersion) != ref.Version {
						continue
					}
					dropHere = append(slices.Clone(drop), labelVersion)
				}
			}
		}
		key := dropLabels(l, dropHere...)
		h := key.Hash()
		g, ok := groups[h]
		if !ok {
			g = &group{key: key, runs: map[string]*offlineRun{}}
			groups[h] = g
			order = append(order, h)
		}
		runName := l.Get(labelRun)
		r, ok := g.runs[runName]
		if !ok {
			r = &offlineRun{name: runName, format: meta.Format}
			g.runs[runName] = r
		} else if r.format != meta.Format {
			ev.errorf("offline series %s holds %v, another series of its run holds %v", l, meta.Format, r.format)
		}
		it = s.Buckets(it)
		for it.Next() {
			t, w, state := it.At()
			if t+w > hi {
				break
			}
			ev.acct.buckets++
			if ev.acct.buckets > ev.opts.MaxBuckets {
				ev.abort(limitError("max buckets", ev.opts.MaxBuckets))
			}
			r.buckets = append(r.buckets, windowBucket{t: t + w, state: slices.Clone(state)})
		}
		if err := it.Err(); err != nil {
			ev.abort(&Error{Type: ErrExecution, Err: err})
		}
	}
	if err := set.Err(); err != nil {
		ev.checkCtx()
		ev.abort(&Error{Type: ErrExecution, Err: err})
	}
	var out Matrix
	for _, h := range order {
		g := groups[h]
		runs := make([]*offlineRun, 0, len(g.runs))
		for _, r := range g.runs {
			slices.SortFunc(r.buckets, func(a, b windowBucket) int { return cmpInt(a.t, b.t) })
			runs = append(runs, r)
		}
		slices.SortFunc(runs, func(a, b *offlineRun) int {
			if a.name < b.name {
				return -1
			}
			if a.name > b.name {
				return 1
			}
			return 0
		})
		var pts []SPoint
		for ts := ev.start; ts <= ev.end; ts += ev.interval {
			ref := refTime(ts, at, off)
			var best *offlineRun
			var bestEnd int64
			for _, r := range runs {
				end := int64(math.MinInt64)
				for _, b := range r.buckets {
					if b.t <= ref {
						end = b.t
					}
				}
				if end == math.MinInt64 {
					continue
				}
				if best == nil || end >= bestEnd {
					best, bestEnd = r, end
				}
			}
			if best == nil {
				continue
			}
			dst, err := pool.get(best.format)
			if err != nil {
				ev.abort(&Error{Type: ErrExecution, Err: err})
			}
			for _, b := range best.buckets {
				if b.t > ref {
					break
				}
				if err := dst.DecodeAndMerge(b.state); err != nil {
					ev.abort(&Error{Type: ErrExecution, Err: fmt.Errorf("offline run %q of %s: %w", best.name, g.key, err)})
				}
			}
			pts = append(pts, SPoint{T: ts, S: &SketchValue{Format: best.format, State: dst}})
		}
		if len(pts) > 0 {
			out = append(out, Series{Metric: g.key, Sketches: pts})
		}
	}
	return out
}

// evalMetric evaluates a sketch metric selector to an instant vector.
func (ev *evaluator) evalMetric(vs *parser.VectorSelector, rng int64) Matrix {
	pool := &sketchScratch{}
	if selectorName(vs) == allMetricsName {
		return ev.allMetrics(vs, rng, pool)
	}
	return ev.finishFrame(ev.selectorFrame(vs, rng, pool), pool)
}

// allMetrics evaluates every class-free metric of allMetricsList with the
// selector's matchers, labelling results with metric="<name>".
func (ev *evaluator) allMetrics(vs *parser.VectorSelector, rng int64, pool *sketchScratch) Matrix {
	var out Matrix
	for _, name := range allMetricsList {
		c := *vs
		c.Name = name
		c.LabelMatchers = nil
		for _, m := range vs.LabelMatchers {
			if m.Name != metricName {
				c.LabelMatchers = append(c.LabelMatchers, m)
			}
		}
		res := ev.finishFrame(ev.selectorFrame(&c, rng, pool), pool)
		for _, s := range res {
			if s.Metric.Get(labelClass) != "" {
				continue
			}
			s.Metric = labels.NewBuilder(s.Metric).Set(labelMetric, name).Labels()
			out = append(out, s)
		}
		ev.checkPoints(out.totalPoints())
	}
	return out
}

// finishFrame finishes a metric frame into floats and releases its states.
func (ev *evaluator) finishFrame(f *sframe, pool *sketchScratch) Matrix {
	defer f.release(pool)
	m := f.metric
	if m == nil {
		ev.errorf("sketch states must be finished by a sketch function such as quantile_sketch(0.9, ...)")
	}
	var out Matrix
	total := 0
	for k, key := range f.keys {
		classes := []classSel{{idx: -1}}
		if m.PerClass {
			classes = ev.classesFor(f.models[k], f.classMs)
		}
		for _, c := range classes {
			var pts []FPoint
			for i, st := range f.states[k] {
				if st == nil {
					continue
				}
				if v, ok := m.Finish(st, c.idx); ok {
					pts = append(pts, FPoint{T: ev.start + int64(i)*ev.interval, F: v})
				}
			}
			if len(pts) == 0 {
				continue
			}
			l := key
			if c.label != "" {
				l = labels.NewBuilder(key).Set(labelClass, c.label).Labels()
			}
			out = append(out, Series{Metric: l, Floats: pts})
			total += len(pts)
			ev.checkPoints(total)
		}
	}
	return ev.mergeSameLabelset(out)
}

// pooledMetric evaluates sum [by|without (...)] (metric selector): states
// are merged per group, then finished once.
func (ev *evaluator) pooledMetric(n *parser.AggregateExpr) Matrix {
	pool := &sketchScratch{}
	return ev.finishFrame(ev.evalSketch(n, pool), pool)
}

// evalOffline evaluates offline(expr[, "dataset"]).
func (ev *evaluator) evalOffline(n *parser.Call) Matrix {
	defer ev.setOffline(ev.offlineModeOf(n))()
	return ev.eval(n.Args[0]).(Matrix)
}

// ---- classes ----

// classSel is one class a PerClass metric is finished for: its confusion
// index and the class label to add ("" for the binary default).
type classSel struct {
	idx   int
	label string
}

// modelClasses is what the engine knows of a model's classes.
type modelClasses struct {
	names    []string // by confusion index; "" for unknown indices
	binary   bool
	positive string
}

// classesFor returns the classes a PerClass metric is finished for: those
// matching the class matchers, else the positive class of a binary model
// (no class label), else every class (with a class label).
func (ev *evaluator) classesFor(model string, classMs []*labels.Matcher) []classSel {
	mc := ev.classes(model)
	var out []classSel
	if len(classMs) == 0 && mc.binary {
		if i := slices.Index(mc.names, mc.positive); i >= 0 {
			return []classSel{{idx: i}}
		}
		return nil
	}
	for i, name := range mc.names {
		if name == "" {
			continue
		}
		ok := true
		for _, m := range classMs {
			ok = ok && m.Matches(name)
		}
		if ok {
			out = append(out, classSel{idx: i, label: name})
		}
	}
	return out
}

// classes maps a model's confusion indices to class names: the declared
// classes in order, then evalstore_class_index{model} (read over all time),
// cached per query.
func (ev *evaluator) classes(model string) *modelClasses {
	if mc, ok := ev.classCache[model]; ok {
		return mc
	}
	mc := &modelClasses{}
	defs := ev.defs()
	md, declared := defs.Model(model)
	if declared {
		mc.names = slices.Clone(md.Classes)
		if md.Task == definitions.TaskBinary {
			mc.binary, mc.positive = true, md.PositiveClass
		}
	}
	set := ev.querier.Select(ev.ctx, series.Hints{Mint: minTime, Maxt: math.MaxInt64 / 4},
		labels.MustNewMatcher(labels.MatchEqual, metricName, FamilyClassIndex),
		labels.MustNewMatcher(labels.MatchEqual, labelModel, model))
	var it chunkenc.Iterator
	for set.Next() {
		s := set.At()
		if s.Meta().Kind != series.KindFloat {
			continue
		}
		name := s.Meta().Labels.Get(labelClass)
		it = s.Samples(it)
		idx := -1.0
		for it.Next() == chunkenc.ValFloat {
			_, idx = it.At()
		}
		if idx < 0 || idx >= sketch.ConfusionMaxClasses || idx != math.Trunc(idx) {
			continue
		}
		i := int(idx)
		for len(mc.names) <= i {
			mc.names = append(mc.names, "")
		}
		if mc.names[i] == "" {
			mc.names[i] = name
		}
	}
	if !declared {
		var known []string
		for _, n := range mc.names {
			if n != "" {
				known = append(known, n)
			}
		}
		if len(known) == 2 {
			for _, n := range known {
				if isPositiveText(n) {
					mc.binary, mc.positive = true, n
				}
			}
		}
	}
	if ev.classCache == nil {
		ev.classCache = map[string]*modelClasses{}
	}
	ev.classCache[model] = mc
	return mc
}

// isPositiveText is the ingest rule for the positive label of an
// undeclared binary model.
func isPositiveText(s string) bool {
	for _, p := range []string{"1", "true", "yes", "positive"} {
		if strings.EqualFold(s, p) {
			return true
		}
	}
	return false
}

// dropLabels returns l without the labels names.
func dropLabels(l labels.Labels, names ...string) labels.Labels {
	return labels.NewBuilder(l).Del(names...).Labels()
}

// ---- named metrics of the definitions ----

// namedMetric returns the definitions' named metric a bare selector names
// (no matchers but the name, no offset or @), if any.
func namedMetric(defs *definitions.Definitions, vs *parser.VectorSelector) *definitions.Metric {
	if vs.Name == "" || len(vs.LabelMatchers) != 1 || vs.Offset != 0 || vs.Timestamp != nil || vs.StartOrEnd != parser.AtNone {
		return nil
	}
	m, ok := defs.Metric(vs.Name)
	if !ok {
		return nil
	}
	return m
}

// evalNamed evaluates a named metric's expression in place of the
// selector that names it.
func (ev *evaluator) evalNamed(m *definitions.Metric) Matrix {
	if slices.Contains(ev.named, m.Name) {
		ev.errorf("named metric %q refers to itself (through %v)", m.Name, ev.named)
	}
	ast, typ, err := Check(m.Expr)
	if err != nil {
		ev.errorf("named metric %q: %v", m.Name, err)
	}
	if typ != TypeVector && typ != TypeScalar {
		ev.errorf("named metric %q must be an instant vector or a scalar, got %s", m.Name, typ.documented())
	}
	ev.named = append(ev.named, m.Name)
	defer func() { ev.named = ev.named[:len(ev.named)-1] }()
	v := ev.eval(ast).(Matrix)
	if typ == TypeScalar {
		for i := range v {
			v[i].Metric = labels.EmptyLabels()
		}
	}
	return v
}
