package block

import (
	"fmt"
	"math"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"evalstore/sketch"
	"evalstore/tsdb/series"
)

// MergeSeriesSets merges series sets, each sorted by labels, into one
// sorted set. A series present in one input is passed through untouched
// (its buckets and samples are not copied). A series present in several is
// merged: buckets with the same start t are combined with the sketch's
// DecodeAndMerge and reported with the largest of their widths; float and
// histogram samples with the same timestamp are deduplicated, keeping the
// sample of the first input (in argument order) that has one, so callers
// list the most authoritative source first.
//
// A merged histogram sample that does not directly follow the previous
// merged sample in its own input (the first sample, the first after a
// Seek, or one after a sample of another input) and reads NotCounterReset
// there reads UnknownCounterReset instead: the input's hint was relative to
// a sample the merge may have put something else after, as Prometheus's
// chain sample iterator has it. Unlike Prometheus, a CounterReset hint is
// kept: tsdb writes a histogram series in strictly increasing time order,
// so its inputs never interleave (at most they repeat identical samples)
// and the sample before a reset is the same in every input; dropping the
// hint would lose a reset the caller declared but the counts do not show
// when compaction rewrites the series.
//
// All inputs must agree on a series' kind and sketch format; a
// disagreement stops the set with an error. The merged set's At value is
// valid until the next Next, like its inputs'.
func MergeSeriesSets(sets ...series.SeriesSet) series.SeriesSet {
	switch len(sets) {
	case 0:
		return emptySet{}
	case 1:
		return sets[0]
	}
	return &mergeSet{sets: sets, ok: make([]bool, len(sets)), group: make([]int, 0, len(sets))}
}

type emptySet struct{}

func (emptySet) Next() bool        { return false }
func (emptySet) At() series.Series { return nil }
func (emptySet) Err() error        { return nil }

type mergeSet struct {
	sets    []series.SeriesSet
	ok      []bool // sets[i] has a current series
	started bool
	group   []int // inputs holding the current series
	cur     series.Series
	merged  mergedSeries
	err     error
}

func (m *mergeSet) step(i int) bool {
	m.ok[i] = m.sets[i].Next()
	if !m.ok[i] {
		if err := m.sets[i].Err(); err != nil {
			m.err = err
			return false
		}
	}
	return true
}

func (m *mergeSet) Next() bool {
	if m.err != nil {
		return false
	}
	if !m.started {
		m.started = true
		for i := range m.sets {
			if !m.step(i) {
				return false
			}
		}
	} else {
		for _, i := range m.group {
			if !m.step(i) {
				return false
			}
		}
	}
	m.group = m.group[:0]
	var minLabels labels.Labels
	for i, ok := range m.ok {
		if !ok {
			continue
		}
		ls := m.sets[i].At().Meta().Labels
		if len(m.group) > 0 {
			c := labels.Compare(ls, minLabels)
			if c > 0 {
				continue
			}
			if c == 0 {
				m.group = append(m.group, i)
				continue
			}
		}
		m.group = append(m.group[:0], i)
		minLabels = ls
	}
	switch len(m.group) {
	case 0:
		return false
	case 1:
		m.cur = m.sets[m.group[0]].At()
		return true
	}
	m.merged.srcs = m.merged.srcs[:0]
	first := m.sets[m.group[0]].At()
	m.merged.meta = first.Meta()
	for _, i := range m.group {
		s := m.sets[i].At()
		if sm := s.Meta(); sm.Kind != m.merged.meta.Kind || sm.Format != m.merged.meta.Format {
			m.err = fmt.Errorf("merge: series %s is %v/%v in one input and %v/%v in another",
				sm.Labels, m.merged.meta.Kind, m.merged.meta.Format, sm.Kind, sm.Format)
			return false
		}
		m.merged.srcs = append(m.merged.srcs, s)
	}
	m.cur = &m.merged
	return true
}

func (m *mergeSet) At() series.Series { return m.cur }
func (m *mergeSet) Err() error        { return m.err }

// mergedSeries is one series found in several inputs.
type mergedSeries struct {
	meta series.Meta
	srcs []series.Series
}

func (s *mergedSeries) Meta() series.Meta { return s.meta }

func (s *mergedSeries) Buckets(reuse series.BucketIterator) series.BucketIterator {
	it, ok := reuse.(*mergeBucketIter)
	if !ok {
		it = &mergeBucketIter{}
	}
	it.reset(s)
	return it
}

func (s *mergedSeries) Samples(reuse chunkenc.Iterator) chunkenc.Iterator {
	if !s.meta.Kind.Points() {
		return chunkenc.NewNopIterator()
	}
	it, ok := reuse.(*mergeSampleIter)
	if !ok {
		it = &mergeSampleIter{}
		it.seekMethod.s = it
	}
	it.reset(s)
	return it
}

// mergeBucketIter merges the bucket iterators of a series' sources by
// bucket start.
type mergeBucketIter struct {
	its     []series.BucketIterator
	ok      []bool
	group   []int
	started bool
	format  sketch.Format
	sk      sketch.Sketch // scratch state, kept while the format repeats
	out     []byte
	t, w    int64
	state   []byte
	err     error
}

func (it *mergeBucketIter) reset(s *mergedSeries) {
	n := len(s.srcs)
	for len(it.its) < n {
		it.its = append(it.its, nil)
	}
	it.its = it.its[:n]
	for i, src := range s.srcs {
		it.its[i] = src.Buckets(it.its[i])
	}
	it.ok = append(it.ok[:0], make([]bool, n)...)
	it.group, it.started, it.err, it.state = it.group[:0], false, nil, nil
	if it.format != s.meta.Format {
		it.sk = nil
	}
	it.format = s.meta.Format
}

func (it *mergeBucketIter) step(i int) bool {
	it.ok[i] = it.its[i].Next()
	if !it.ok[i] {
		if err := it.its[i].Err(); err != nil {
			it.err = err
			return false
		}
	}
	return true
}

func (it *mergeBucketIter) Next() bool {
	if it.err != nil {
		return false
	}
	if !it.started {
		it.started = true
		for i := range it.its {
			if !it.step(i) {
				return false
			}
		}
	} else {
		for _, i := range it.group {
			if !it.step(i) {
				return false
			}
		}
	}
	it.group = it.group[:0]
	minT := int64(math.MaxInt64)
	for i, ok := range it.ok {
		if !ok {
			continue
		}
		t, _, _ := it.its[i].At()
		switch {
		case t < minT || len(it.group) == 0:
			minT = t
			it.group = append(it.group[:0], i)
		case t == minT:
			it.group = append(it.group, i)
		}
	}
	if len(it.group) == 0 {
		return false
	}
	t, w, st := it.its[it.group[0]].At()
	if len(it.group) == 1 {
		it.t, it.w, it.state = t, w, st
		return true
	}
	if it.sk == nil {
		sk, err := sketch.New(it.format)
		if err != nil {
			it.err = err
			return false
		}
		it.sk = sk
	}
	if err := it.sk.UnmarshalBinary(st); err != nil {
		it.err = fmt.Errorf("merge: bucket at %d: %w", t, err)
		return false
	}
	for _, i := range it.group[1:] {
		_, wi, si := it.its[i].At()
		w = max(w, wi)
		if err := it.sk.DecodeAndMerge(si); err != nil {
			it.err = fmt.Errorf("merge: bucket at %d: %w", t, err)
			return false
		}
	}
	it.out = it.sk.AppendBinary(it.out[:0])
	it.t, it.w, it.state = t, w, it.out
	return true
}

func (it *mergeBucketIter) At() (int64, int64, []byte) { return it.t, it.w, it.state }
func (it *mergeBucketIter) Err() error                 { return it.err }

// mergeSampleIter merges float or histogram sample iterators by
// timestamp, keeping the first source's sample on equal timestamps.
type mergeSampleIter struct {
	seekMethod[int64]
	its    []chunkenc.Iterator
	ok     []bool
	want   chunkenc.ValueType // ValFloat or ValFloatHistogram
	cur    int                // index of the source whose sample is current, -1 if none
	consec bool               // the current sample follows the previous one in its source
	t      int64
	v      float64
	err    error
	fresh  bool // no Next or Seek yet
}

func (it *mergeSampleIter) reset(s *mergedSeries) {
	n := len(s.srcs)
	for len(it.its) < n {
		it.its = append(it.its, nil)
	}
	it.its = it.its[:n]
	for i, src := range s.srcs {
		it.its[i] = src.Samples(it.its[i])
	}
	it.ok = append(it.ok[:0], make([]bool, n)...)
	it.want = chunkenc.ValFloat
	if s.meta.Kind == series.KindHistogram {
		it.want = chunkenc.ValFloatHistogram
	}
	it.cur, it.err, it.fresh, it.consec = -1, nil, true, false
}

func (it *mergeSampleIter) advance(i int, seek bool, t int64) bool {
	var vt chunkenc.ValueType
	if seek {
		vt = it.its[i].Seek(t)
	} else {
		vt = it.its[i].Next()
	}
	switch vt {
	case chunkenc.ValNone:
		it.ok[i] = false
		if err := it.its[i].Err(); err != nil {
			it.err = err
			return false
		}
	case it.want:
		it.ok[i] = true
	default:
		it.err = fmt.Errorf("merge: sample of type %v in a series of %v samples", vt, it.want)
		return false
	}
	return true
}

// pick makes the smallest timestamp current and moves every other source
// past it on a tie.
func (it *mergeSampleIter) pick() chunkenc.ValueType {
	it.cur = -1
	for i, ok := range it.ok {
		if !ok {
			continue
		}
		t := it.its[i].AtT()
		if it.cur < 0 || t < it.t {
			it.cur, it.t = i, t
		}
	}
	if it.cur < 0 {
		return chunkenc.ValNone
	}
	it.v = 0
	if it.want == chunkenc.ValFloat {
		_, it.v = it.its[it.cur].At()
	}
	return it.want
}

func (it *mergeSampleIter) Next() chunkenc.ValueType {
	if it.err != nil {
		return chunkenc.ValNone
	}
	if it.fresh {
		it.fresh = false
		for i := range it.its {
			if !it.advance(i, false, 0) {
				return chunkenc.ValNone
			}
		}
		return it.pick()
	}
	if it.cur < 0 {
		return chunkenc.ValNone
	}
	t, prev := it.t, it.cur
	for i, ok := range it.ok {
		if ok && it.its[i].AtT() == t {
			if !it.advance(i, false, 0) {
				return chunkenc.ValNone
			}
		}
	}
	vt := it.pick()
	it.consec = it.cur == prev
	return vt
}

func (it *mergeSampleIter) seek(t int64) chunkenc.ValueType {
	if it.err != nil {
		return chunkenc.ValNone
	}
	if !it.fresh && it.cur >= 0 && it.t >= t {
		return it.want
	}
	if !it.fresh && it.cur < 0 {
		return chunkenc.ValNone
	}
	for i := range it.its {
		if it.fresh || (it.ok[i] && it.its[i].AtT() < t) {
			if !it.advance(i, true, t) {
				return chunkenc.ValNone
			}
		}
	}
	it.fresh, it.consec = false, false
	return it.pick()
}

func (it *mergeSampleIter) At() (int64, float64) { return it.t, it.v }
func (it *mergeSampleIter) AtT() int64           { return it.t }
func (it *mergeSampleIter) AtST() int64          { return 0 }
func (it *mergeSampleIter) Err() error           { return it.err }

func (it *mergeSampleIter) AtHistogram(*histogram.Histogram) (int64, *histogram.Histogram) {
	return it.t, nil
}

func (it *mergeSampleIter) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	if it.want != chunkenc.ValFloatHistogram || it.cur < 0 {
		return it.t, nil
	}
	t, fh := it.its[it.cur].AtFloatHistogram(fh)
	if !it.consec && fh.CounterResetHint == histogram.NotCounterReset {
		fh.CounterResetHint = histogram.UnknownCounterReset
	}
	return t, fh
}
