package ingest

import (
	"cmp"
	"runtime"
	"sort"
	"sync"

	"evalstore/definitions"
	"github.com/prometheus/prometheus/model/labels"

	"evalstore/sketch"
)

// groupKey identifies the series of one (model, version, slice, source,
// dataset, run) in one bucket. A batch's deltas are aggregated per group
// before they are appended: one AddSketch per series and bucket per batch.
type groupKey struct {
	model, version, slice string
	source, dataset, run  string
	bucket                int64
}

// group holds a batch's deltas for one groupKey.
type group struct {
	predictions    *sketch.Moments
	predictedClass *sketch.Categorical
	score          *sketch.LogHistogram
	scoreHist      *sketch.ScoreHistogram
	confusion      *sketch.Confusion
	prediction     *sketch.LogHistogram
	regression     *sketch.Regression
	// regressionRetracted holds the pairs a label correction took back.
	regressionRetracted *sketch.Regression
	labelDelay          *sketch.LogHistogram
	// feats and meas are indexed by the model's columns (deltas.cols).
	feats          []featSlot
	meas           []measSlot
	classScore     map[string]*sketch.LogHistogram
	classScoreHist map[string]*sketch.ScoreHistogram
	// load and worker split a batch's groups between goroutines while it
	// is pre-routed (planApplier).
	load   int
	worker uint8
}

type featSlot struct {
	num *sketch.LogHistogram
	cat *sketch.Categorical
	// catN counts a categorical feature's values by their id in the
	// batch's column (featInfo.vals): one increment per record and slice
	// instead of a Categorical map update; flushed into cat (AddN) before
	// emission. While a column has at most DefaultCategoricalCapacity
	// distinct values in a batch, no Categorical of it can exceed its
	// capacity, so the counts give exactly the state of one Add per
	// record (the encoding sorts keys). Beyond that, the slot flushes and
	// turns direct: every later value is added to cat in record order.
	catN   []uint64
	direct bool
}

// catAggMax is the most distinct values of a categorical column per batch
// counted by id (featSlot.catN).
const catAggMax = sketch.DefaultCategoricalCapacity

// flushCat adds the counted values of slot into its Categorical.
func (fs *featSlot) flushCat(fi *featInfo) {
	for id, n := range fs.catN {
		if n > 0 {
			if fs.cat == nil {
				fs.cat = newCategorical()
			}
			fs.cat.AddN(fi.names[id], n)
		}
	}
	fs.catN = nil
}

// addCat counts categorical value id (of fi, -1: past catAggMax, s) in
// column col.
func (g *group) addCat(col int, fi *featInfo, id int32, s string) {
	for col >= len(g.feats) {
		g.feats = append(g.feats, featSlot{})
	}
	fs := &g.feats[col]
	if id >= 0 && !fs.direct {
		if fs.cat == nil {
			fs.cat = newCategorical() // the series exists even if empty
		}
		if int(id) >= len(fs.catN) {
			fs.catN = append(fs.catN, make([]uint64, int(id)+1-len(fs.catN))...)
		}
		fs.catN[id]++
		return
	}
	if !fs.direct {
		fs.flushCat(fi)
		fs.direct = true
	}
	if fs.cat == nil {
		fs.cat = newCategorical()
	}
	fs.cat.Add(s)
}

// valID returns the id of categorical value s in the column (-1 once the
// column has catAggMax values and s is not one of them).
func (fi *featInfo) valID(s string) int32 {
	if id, ok := fi.vals[s]; ok {
		return id
	}
	if len(fi.names) >= catAggMax {
		return -1
	}
	if fi.vals == nil {
		fi.vals = make(map[string]int32)
	}
	id := int32(len(fi.names))
	fi.vals[s] = id
	fi.names = append(fi.names, s)
	return id
}

// flushCats moves every counted categorical value into its Categorical.
func (d *deltas) flushCats() {
	for k, g := range d.groups {
		cols := d.cols[k.model]
		for col := range g.feats {
			if fs := &g.feats[col]; fs.catN != nil {
				fs.flushCat(cols.feat[cols.featNames[col]])
			}
		}
	}
}

type measSlot struct {
	hist    *sketch.LogHistogram
	moments *sketch.Moments
}

// columns numbers the features and measures of one model in a batch, so
// that a record looks each name up once, not once per slice.
type columns struct {
	feat      map[string]*featInfo
	featNames []string
	// last record's feature names and infos, by position
	lastNames []string
	lastInfo  []*featInfo
	meas      map[string]int
	measNames []string
}

// featInfo is what routing needs of one feature of one model in a batch.
type featInfo struct {
	col int
	typ definitions.FeatureType
	// categorical values seen in the batch, by id (featSlot.catN)
	vals  map[string]int32
	names []string
}

// info returns the info of the feature at position pos of a record,
// calling resolve for a name not seen in the batch.
func (c *columns) info(pos int, name string, resolve func() definitions.FeatureType) *featInfo {
	if pos < len(c.lastNames) && c.lastNames[pos] == name {
		return c.lastInfo[pos]
	}
	fi := c.feat[name]
	if fi == nil {
		fi = &featInfo{col: len(c.featNames), typ: resolve()}
		c.feat[name] = fi
		c.featNames = append(c.featNames, name)
	}
	if pos < len(c.lastNames) {
		c.lastNames[pos], c.lastInfo[pos] = name, fi
	} else if pos == len(c.lastNames) {
		c.lastNames, c.lastInfo = append(c.lastNames, name), append(c.lastInfo, fi)
	}
	return fi
}

func (c *columns) measCol(name string) int {
	i, ok := c.meas[name]
	if !ok {
		i = len(c.measNames)
		c.meas[name] = i
		c.measNames = append(c.measNames, name)
	}
	return i
}

func (d *deltas) columns(model string) *columns {
	if d.lastCols != nil && d.lastColsModel == model {
		return d.lastCols
	}
	c := d.cols[model]
	if c == nil {
		c = &columns{feat: make(map[string]*featInfo), meas: make(map[string]int)}
		d.cols[model] = c
	}
	d.lastColsModel, d.lastCols = model, c
	return c
}

type floatSample struct {
	lset labels.Labels
	t    int64
	v    float64
}

// deltas is the aggregated output of one batch.
type deltas struct {
	groups        map[groupKey]*group
	cols          map[string]*columns
	floats        []floatSample
	lastColsModel string
	lastCols      *columns
	// last group looked up: records of a batch mostly share one.
	lastKey groupKey
	last    *group
}

func newDeltas() *deltas {
	return &deltas{groups: make(map[groupKey]*group), cols: make(map[string]*columns)}
}

func (d *deltas) group(k groupKey) *group {
	if d.last != nil && d.lastKey == k {
		return d.last
	}
	g := d.groups[k]
	if g == nil {
		g = &group{}
		d.groups[k] = g
	}
	d.lastKey, d.last = k, g
	return g
}

// Per-batch sketches are pooled: a batch allocates dozens of histograms
// whose bucket arrays are the bulk of ingest's garbage. They go back to the
// pools (Reset, memory kept) once their encodings were handed to the
// Appender.
var (
	logHistPool   = sync.Pool{New: func() any { return sketch.NewDefaultLogHistogram() }}
	categPool     = sync.Pool{New: func() any { return sketch.NewCategorical(sketch.DefaultCategoricalCapacity) }}
	scoreHistPool = sync.Pool{New: func() any { return sketch.NewDefaultScoreHistogram() }}
)

// lhTemplate is an empty default LogHistogram, only read: it places values
// in the default schema's buckets (Observation) for every ingest histogram.
var lhTemplate = sketch.NewDefaultLogHistogram()

func newLogHist() *sketch.LogHistogram { return logHistPool.Get().(*sketch.LogHistogram) }

func newCategorical() *sketch.Categorical { return categPool.Get().(*sketch.Categorical) }

func newScoreHist() *sketch.ScoreHistogram { return scoreHistPool.Get().(*sketch.ScoreHistogram) }

func putLogHist(h *sketch.LogHistogram) {
	if h != nil {
		h.Reset()
		logHistPool.Put(h)
	}
}

func putCategorical(c *sketch.Categorical) {
	if c != nil {
		c.Reset()
		categPool.Put(c)
	}
}

func putScoreHist(h *sketch.ScoreHistogram) {
	if h != nil {
		h.Reset()
		scoreHistPool.Put(h)
	}
}

// release returns the batch's pooled sketches; d must not be used after.
func (d *deltas) release() {
	for _, g := range d.groups {
		putCategorical(g.predictedClass)
		putLogHist(g.score)
		putScoreHist(g.scoreHist)
		putLogHist(g.prediction)
		putLogHist(g.labelDelay)
		for _, f := range g.feats {
			putLogHist(f.num)
			putCategorical(f.cat)
		}
		for _, m := range g.meas {
			putLogHist(m.hist)
		}
		for _, h := range g.classScore {
			putLogHist(h)
		}
		for _, h := range g.classScoreHist {
			putScoreHist(h)
		}
	}
	d.groups, d.last = nil, nil
}

func (g *group) numFeat(col int) *sketch.LogHistogram {
	for col >= len(g.feats) {
		g.feats = append(g.feats, featSlot{})
	}
	h := g.feats[col].num
	if h == nil {
		h = newLogHist()
		g.feats[col].num = h
	}
	return h
}

func (g *group) observeMeasure(col int, v float64) {
	for col >= len(g.meas) {
		g.meas = append(g.meas, measSlot{})
	}
	m := &g.meas[col]
	if m.hist == nil {
		m.hist = newLogHist()
		m.moments = sketch.NewMoments()
	}
	_ = m.hist.Add(v)
	_ = m.moments.Add(v)
}

// observeMeasureObs is observeMeasure with v placed in the histogram's
// buckets (o).
func (g *group) observeMeasureObs(col int, v float64, o sketch.LogObservation) {
	for col >= len(g.meas) {
		g.meas = append(g.meas, measSlot{})
	}
	m := &g.meas[col]
	if m.hist == nil {
		m.hist = newLogHist()
		m.moments = sketch.NewMoments()
	}
	m.hist.AddObservation(o)
	_ = m.moments.Add(v)
}

func (g *group) clsScore(class string) *sketch.LogHistogram {
	if g.classScore == nil {
		g.classScore = make(map[string]*sketch.LogHistogram)
	}
	h := g.classScore[class]
	if h == nil {
		h = newLogHist()
		g.classScore[class] = h
	}
	return h
}

func (g *group) clsScoreHist(class string) *sketch.ScoreHistogram {
	if g.classScoreHist == nil {
		g.classScoreHist = make(map[string]*sketch.ScoreHistogram)
	}
	h := g.classScoreHist[class]
	if h == nil {
		h = newScoreHist()
		g.classScoreHist[class] = h
	}
	return h
}

// appendTo appends every delta to app. Series are appended in a
// deterministic order (sorted groups and names) so that a batch always
// produces the same appends.
func (d *deltas) appendTo(app Appender) error {
	keys := d.sortedKeys()
	if err := d.appendGroups(app, keys); err != nil {
		return err
	}
	return d.appendFloats(app)
}

// parallelRecordGroups is the least groups recorded by two goroutines.
const parallelRecordGroups = 2

// record appends every delta to rec exactly as appendTo does (same calls,
// same order); with two or more cores the second half of the groups is
// encoded by another goroutine into its own recorder, appended after.
func (d *deltas) record(rec *recorder) error {
	keys := d.sortedKeys()
	if len(keys) < parallelRecordGroups || runtime.GOMAXPROCS(0) < 2 {
		if err := d.appendGroups(rec, keys); err != nil {
			return err
		}
		return d.appendFloats(rec)
	}
	h := len(keys) / 2
	var rec2 recorder
	var err2 error
	done := make(chan struct{})
	go func() {
		defer close(done)
		err2 = d.appendGroups(&rec2, keys[h:])
	}()
	err := d.appendGroups(rec, keys[:h])
	<-done
	if err = cmp.Or(err, err2); err != nil {
		return err
	}
	rec.calls = append(rec.calls, rec2.calls...)
	return d.appendFloats(rec)
}

// sortedKeys flushes the categorical counts and returns the groups' keys in
// emission order.
func (d *deltas) sortedKeys() []groupKey {
	d.flushCats()
	keys := make([]groupKey, 0, len(d.groups))
	for k := range d.groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return lessKey(&keys[i], &keys[j]) })
	return keys
}

func (d *deltas) appendFloats(app Appender) error {
	for _, f := range d.floats {
		if err := app.AddFloat(f.lset, f.t, f.v); err != nil {
			return err
		}
	}
	return nil
}

// appendGroups appends the sketches of the groups of keys, in order. It
// only reads d, and each group's sketches: concurrent calls on disjoint
// keys are safe.
func (d *deltas) appendGroups(app Appender, keys []groupKey) error {
	var buf []byte
	var b labels.ScratchBuilder
	base := func(k *groupKey, family string) {
		b.Reset()
		b.Add(metricName, family)
		b.Add(LabelModel, k.model)
		b.Add(LabelVersion, k.version)
		b.Add(LabelSlice, k.slice)
		b.Add(LabelSource, k.source)
		if k.source == SourceOffline {
			b.Add(LabelDataset, k.dataset)
			b.Add(LabelRun, k.run)
		}
	}
	add := func(k *groupKey, family string, s sketch.Sketch, extraName, extra string) error {
		base(k, family)
		if extraName != "" {
			b.Add(extraName, extra)
		}
		b.Sort()
		// Encodings go to one growing buffer and are never overwritten
		// within the batch: an Appender may keep the slice until Commit.
		start := len(buf)
		buf = s.AppendBinary(buf)
		return app.AddSketch(b.Labels(), k.bucket, buf[start:len(buf):len(buf)])
	}
	var names []string
	for i := range keys {
		k := &keys[i]
		g := d.groups[*k]
		fixed := []struct {
			family string
			s      sketch.Sketch
			ok     bool
		}{
			{FamilyPredictions, g.predictions, g.predictions != nil},
			{FamilyPredictedClass, g.predictedClass, g.predictedClass != nil},
			{FamilyScore, g.score, g.score != nil},
			{FamilyScoreHist, g.scoreHist, g.scoreHist != nil},
			{FamilyConfusion, g.confusion, g.confusion != nil},
			{FamilyPrediction, g.prediction, g.prediction != nil},
			{FamilyRegression, g.regression, g.regression != nil},
			{FamilyRegressionRetracted, g.regressionRetracted, g.regressionRetracted != nil},
			{FamilyLabelDelay, g.labelDelay, g.labelDelay != nil},
		}
		for _, f := range fixed {
			if f.ok {
				if err := add(k, f.family, f.s, "", ""); err != nil {
					return err
				}
			}
		}
		cols := d.cols[k.model]
		for ci, fs := range g.feats {
			name := cols.featNames[ci]
			if fs.num != nil {
				if err := add(k, FamilyFeature, fs.num, LabelFeature, name); err != nil {
					return err
				}
			}
			if fs.cat != nil {
				if err := add(k, FamilyFeature, fs.cat, LabelFeature, name); err != nil {
					return err
				}
			}
		}
		for ci, ms := range g.meas {
			if ms.hist == nil {
				continue
			}
			name := cols.measNames[ci]
			if err := add(k, FamilyMeasure, ms.hist, LabelMeasure, name); err != nil {
				return err
			}
			if err := add(k, FamilyMeasureMoments, ms.moments, LabelMeasure, name); err != nil {
				return err
			}
		}
		for _, e := range []struct {
			family, label string
			m             map[string]sketch.Sketch
		}{
			{FamilyScore, LabelClass, asSketches(g.classScore)},
			{FamilyScoreHist, LabelClass, asSketches(g.classScoreHist)},
		} {
			names = names[:0]
			for n := range e.m {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				if err := add(k, e.family, e.m[n], e.label, n); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func asSketches[S sketch.Sketch](m map[string]S) map[string]sketch.Sketch {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]sketch.Sketch, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func lessKey(a, b *groupKey) bool {
	switch {
	case a.bucket != b.bucket:
		return a.bucket < b.bucket
	case a.model != b.model:
		return a.model < b.model
	case a.version != b.version:
		return a.version < b.version
	case a.source != b.source:
		return a.source < b.source
	case a.dataset != b.dataset:
		return a.dataset < b.dataset
	case a.run != b.run:
		return a.run < b.run
	}
	return a.slice < b.slice
}
