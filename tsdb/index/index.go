package index

import (
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/prometheus/model/labels"
)

const (
	pageBits = 12
	pageSize = 1 << pageBits // series slots per page of the ref → series table
	pageMask = pageSize - 1

	defaultStripes = 1024 // hash-map shards; a power of two
)

// Index is the in-memory series index of the head: it assigns a stable
// SeriesRef to each distinct label set, keeps inverted postings per label
// pair, and records the time range of each series' data.
//
// Goroutine safety: every method may be called concurrently with every
// other. Lookups of existing series (GetOrCreate hits, Labels, Touch) take no
// exclusive lock; creating and deleting series serialise on one write lock,
// which queries hold shared only while they collect postings.
//
// Consistency: a new series is in the postings before any GetOrCreate
// returns its ref, and Delete removes a series from the postings, the ref
// table (Labels, Touch) and GetOrCreate's lookups within one critical
// section. Postings returned by Select are a snapshot taken during the
// call; a ref in them may have been deleted since, and Labels then reports
// false.
//
// Create an Index with New; the zero value is not usable.
type Index struct {
	hash    func(labels.Labels) uint64
	stripes []stripe
	mask    uint64

	dir       atomic.Pointer[pageDir] // ref → series, read without locks
	numSeries atomic.Int64

	mu      sync.RWMutex // guards everything below and writes to dir
	nextRef SeriesRef
	all     []SeriesRef
	names   map[string]*nameIndex
}

// stripe is one shard of the hash → series map. Series whose label sets
// share a hash (a collision) are in conflicts, except the first.
type stripe struct {
	mu        sync.RWMutex
	series    map[uint64]*memSeries
	conflicts map[uint64][]*memSeries
	_         [24]byte // pad to 64 bytes: one cache line per stripe
}

// memSeries is one series. lset and ref never change; minT and maxT are
// updated lock-free; deleted is set once, under Index.mu.
type memSeries struct {
	lset       labels.Labels
	ref        SeriesRef
	minT, maxT atomic.Int64
	deleted    atomic.Bool
}

// overlaps reports whether s has data in [mint, maxt]. A series without
// data (minT > maxT) overlaps nothing.
func (s *memSeries) overlaps(mint, maxt int64) bool {
	lo, hi := s.minT.Load(), s.maxT.Load()
	return lo <= hi && lo <= maxt && hi >= mint
}

// pageDir is an immutable directory of pages; writers publish a new one.
type pageDir struct{ pages []*seriesPage }

type seriesPage struct {
	slots [pageSize]atomic.Pointer[memSeries]
	live  int // series stored in slots; guarded by Index.mu
}

// nameIndex holds the postings of one label name.
type nameIndex struct {
	values map[string]*postingsList
	sorted atomic.Pointer[[]string] // cache of sorted values; nil when stale
}

// postingsList is the sorted refs of one label pair. Writers only append
// in place (beyond the length readers captured) or replace refs with a new
// slice, so a captured slice never changes under a reader.
type postingsList struct{ refs []SeriesRef }

// Option configures an Index.
type Option func(*config)

type config struct {
	stripes int
	hash    func(labels.Labels) uint64
}

// WithStripes sets the number of shards of the hash → series map (rounded
// up to a power of two; default 1024). More shards mean less lock contention
// between goroutines looking up and creating series, at 64 bytes plus a map
// header each.
func WithStripes(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.stripes = n
		}
	}
}

// withHash replaces the label-set hash; tests use it to force collisions.
func withHash(h func(labels.Labels) uint64) Option {
	return func(c *config) { c.hash = h }
}

// New returns an empty Index.
func New(opts ...Option) *Index {
	c := config{stripes: defaultStripes, hash: labels.Labels.Hash}
	for _, o := range opts {
		o(&c)
	}
	n := 1
	for n < c.stripes {
		n <<= 1
	}
	ix := &Index{
		hash:    c.hash,
		stripes: make([]stripe, n),
		mask:    uint64(n - 1),
		names:   map[string]*nameIndex{},
	}
	for i := range ix.stripes {
		ix.stripes[i].series = map[uint64]*memSeries{}
	}
	ix.dir.Store(&pageDir{})
	return ix
}

// get returns the live series with label set lset and hash h, or nil.
// The caller holds s.mu (shared or exclusive).
func (s *stripe) get(h uint64, lset labels.Labels) *memSeries {
	if ms := s.series[h]; ms != nil && !ms.deleted.Load() && labels.Equal(ms.lset, lset) {
		return ms
	}
	for _, ms := range s.conflicts[h] {
		if !ms.deleted.Load() && labels.Equal(ms.lset, lset) {
			return ms
		}
	}
	return nil
}

// put adds ms under hash h, dropping entries of deleted series on the way.
// The caller holds s.mu exclusively.
func (s *stripe) put(h uint64, ms *memSeries) {
	if cur := s.series[h]; cur != nil && cur.deleted.Load() {
		s.remove(h, cur)
	}
	if c := s.conflicts[h]; len(c) > 0 {
		c = slices.DeleteFunc(c, func(x *memSeries) bool { return x.deleted.Load() })
		s.setConflicts(h, c)
	}
	if s.series[h] == nil {
		s.series[h] = ms
		return
	}
	if s.conflicts == nil {
		s.conflicts = map[uint64][]*memSeries{}
	}
	s.conflicts[h] = append(s.conflicts[h], ms)
}

// remove drops ms from hash h if it is there. The caller holds s.mu
// exclusively.
func (s *stripe) remove(h uint64, ms *memSeries) {
	if s.series[h] == ms {
		if c := s.conflicts[h]; len(c) > 0 {
			s.series[h] = c[0]
			s.setConflicts(h, c[1:])
		} else {
			delete(s.series, h)
		}
		return
	}
	if c := s.conflicts[h]; len(c) > 0 {
		s.setConflicts(h, slices.DeleteFunc(c, func(x *memSeries) bool { return x == ms }))
	}
}

func (s *stripe) setConflicts(h uint64, c []*memSeries) {
	if len(c) == 0 {
		delete(s.conflicts, h)
		return
	}
	s.conflicts[h] = slices.Clip(c)
}

// GetOrCreate returns the reference of the series with label set lset,
// creating the series if it does not exist (created reports which).
//
// Labels with an empty value are dropped first, as in Prometheus; label
// sets whose names are not sorted are sorted. It returns an error wrapping
// ErrInvalidLabels, and creates nothing, when the result has no metric name,
// an empty or duplicate label name, or invalid UTF-8. A new series starts
// with no data (see Touch). The index keeps its own copy of lset, so the
// caller may reuse the memory behind it.
func (ix *Index) GetOrCreate(lset labels.Labels) (ref SeriesRef, created bool, err error) {
	lset = lset.WithoutEmpty()
	h := ix.hash(lset)
	s := &ix.stripes[h&ix.mask]
	s.mu.RLock()
	ms := s.get(h, lset)
	s.mu.RUnlock()
	if ms != nil {
		return ms.ref, false, nil
	}

	if sorted := sortLabels(lset); !labels.Equal(sorted, lset) {
		lset = sorted
		h = ix.hash(lset)
		s = &ix.stripes[h&ix.mask]
	}
	if err := validateLabels(lset); err != nil {
		return 0, false, err
	}
	lset = lset.Copy()

	s.mu.Lock()
	defer s.mu.Unlock()
	if ms := s.get(h, lset); ms != nil {
		return ms.ref, false, nil
	}
	ms = &memSeries{lset: lset}
	ms.minT.Store(math.MaxInt64)
	ms.maxT.Store(math.MinInt64)

	ix.mu.Lock()
	ix.nextRef++
	ms.ref = ix.nextRef
	ix.storeSlot(ms)
	ix.addPostings(ms)
	ix.mu.Unlock()
	ix.numSeries.Add(1)

	s.put(h, ms)
	return ms.ref, true, nil
}

// storeSlot publishes ms in the ref table. The caller holds ix.mu.
func (ix *Index) storeSlot(ms *memSeries) {
	d := ix.dir.Load()
	pi := int(ms.ref >> pageBits)
	if pi >= len(d.pages) || d.pages[pi] == nil {
		// Refs are sequential, so this adds the next page. Appending may
		// write into the spare capacity of the array readers use, but only
		// beyond the length of the directory they loaded.
		var pages []*seriesPage
		if pi == len(d.pages) {
			pages = append(d.pages, &seriesPage{})
		} else {
			pages = slices.Clone(d.pages)
			for len(pages) <= pi {
				pages = append(pages, nil)
			}
			pages[pi] = &seriesPage{}
		}
		d = &pageDir{pages: pages}
		ix.dir.Store(d)
	}
	pg := d.pages[pi]
	pg.slots[ms.ref&pageMask].Store(ms)
	pg.live++
}

// addPostings appends ms.ref to its postings lists. Refs are assigned under
// ix.mu, so appending keeps every list sorted. The caller holds ix.mu.
func (ix *Index) addPostings(ms *memSeries) {
	ix.all = append(ix.all, ms.ref)
	ms.lset.Range(func(l labels.Label) {
		ni := ix.names[l.Name]
		if ni == nil {
			ni = &nameIndex{values: map[string]*postingsList{}}
			ix.names[strings.Clone(l.Name)] = ni
		}
		pl := ni.values[l.Value]
		if pl == nil {
			pl = &postingsList{}
			ni.values[strings.Clone(l.Value)] = pl
			ni.sorted.Store(nil)
		}
		pl.refs = append(pl.refs, ms.ref)
	})
}

// series returns the live series of ref, or nil. It takes no lock.
func (ix *Index) series(ref SeriesRef) *memSeries {
	d := ix.dir.Load()
	pi := uint64(ref >> pageBits)
	if pi >= uint64(len(d.pages)) {
		return nil
	}
	pg := d.pages[pi]
	if pg == nil {
		return nil
	}
	return pg.slots[ref&pageMask].Load()
}

// Labels returns the label set of ref, and false if ref does not exist (or
// was deleted). The returned Labels is immutable and may be kept.
func (ix *Index) Labels(ref SeriesRef) (labels.Labels, bool) {
	ms := ix.series(ref)
	if ms == nil {
		return labels.EmptyLabels(), false
	}
	return ms.lset, true
}

// NumSeries returns the number of live series.
func (ix *Index) NumSeries() int { return int(ix.numSeries.Load()) }

// Touch widens the time range of ref's data to include t (milliseconds, or
// whatever unit the caller uses consistently). It is lock-free and, once the
// range covers t, costs two atomic loads. It reports false if ref does not
// exist.
func (ix *Index) Touch(ref SeriesRef, t int64) bool {
	ms := ix.series(ref)
	if ms == nil {
		return false
	}
	for {
		cur := ms.minT.Load()
		if t >= cur || ms.minT.CompareAndSwap(cur, t) {
			break
		}
	}
	for {
		cur := ms.maxT.Load()
		if t <= cur || ms.maxT.CompareAndSwap(cur, t) {
			break
		}
	}
	return true
}

// TimeRange returns the time range of ref's data. ok is false if ref does
// not exist; hasData is false if it has never been touched (or was reset to
// no data).
func (ix *Index) TimeRange(ref SeriesRef) (mint, maxt int64, hasData, ok bool) {
	ms := ix.series(ref)
	if ms == nil {
		return 0, 0, false, false
	}
	mint, maxt = ms.minT.Load(), ms.maxT.Load()
	if mint > maxt {
		return 0, 0, false, true
	}
	return mint, maxt, true, true
}

// SetTimeRange replaces the time range of ref's data, for the head after it
// truncated old data from a series; mint > maxt means no data. It is not
// atomic with respect to a concurrent Touch of the same series (a Touch may
// be lost), so the caller serialises the two per series. It reports false if
// ref does not exist.
func (ix *Index) SetTimeRange(ref SeriesRef, mint, maxt int64) bool {
	ms := ix.series(ref)
	if ms == nil {
		return false
	}
	if mint > maxt {
		mint, maxt = math.MaxInt64, math.MinInt64
	}
	ms.minT.Store(mint)
	ms.maxT.Store(maxt)
	return true
}

// Delete removes the series refs, unknown and already deleted refs being
// ignored, and returns how many it removed. Their refs are never reused.
//
// Cost: every postings list touched, and the all-postings list, is copied
// once per call (so readers' snapshots stay valid), so delete in batches.
func (ix *Index) Delete(refs []SeriesRef) int {
	ix.mu.Lock()
	var victims []*memSeries
	d := ix.dir.Load()
	freed := false
	for _, ref := range refs {
		ms := ix.series(ref)
		if ms == nil {
			continue
		}
		ms.deleted.Store(true)
		pg := d.pages[ref>>pageBits]
		pg.slots[ref&pageMask].Store(nil)
		pg.live--
		// A page whose slots are all assigned and all deleted is dropped.
		if pg.live == 0 && (ref|pageMask) <= ix.nextRef {
			freed = true
		}
		victims = append(victims, ms)
	}
	if len(victims) == 0 {
		ix.mu.Unlock()
		return 0
	}
	if freed {
		pages := slices.Clone(d.pages)
		for i, pg := range pages {
			if pg != nil && pg.live == 0 && (SeriesRef(i)<<pageBits|pageMask) <= ix.nextRef {
				pages[i] = nil
			}
		}
		ix.dir.Store(&pageDir{pages: pages})
	}

	gone := make([]SeriesRef, len(victims))
	for i, ms := range victims {
		gone[i] = ms.ref
	}
	slices.Sort(gone)
	type pair struct{ name, value string }
	touched := map[pair]struct{}{}
	for _, ms := range victims {
		ms.lset.Range(func(l labels.Label) { touched[pair{l.Name, l.Value}] = struct{}{} })
	}
	for p := range touched {
		ni := ix.names[p.name]
		pl := ni.values[p.value]
		pl.refs = subtractSorted(pl.refs, gone)
		if len(pl.refs) == 0 {
			delete(ni.values, p.value)
			ni.sorted.Store(nil)
			if len(ni.values) == 0 {
				delete(ix.names, p.name)
			}
		}
	}
	ix.all = subtractSorted(ix.all, gone)
	ix.mu.Unlock()
	ix.numSeries.Add(-int64(len(victims)))

	for _, ms := range victims {
		h := ix.hash(ms.lset)
		s := &ix.stripes[h&ix.mask]
		s.mu.Lock()
		s.remove(h, ms)
		s.mu.Unlock()
	}
	return len(victims)
}

// subtractSorted returns a new slice with the elements of list not in gone;
// both are sorted.
func subtractSorted(list, gone []SeriesRef) []SeriesRef {
	out := make([]SeriesRef, 0, len(list))
	j := 0
	for _, v := range list {
		for j < len(gone) && gone[j] < v {
			j++
		}
		if j < len(gone) && gone[j] == v {
			continue
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Select returns the postings of the series matching every matcher, in
// increasing ref order, with Prometheus's semantics (see the package
// documentation); with no matchers, all series. It returns an error wrapping
// ErrInvalidMatcher for a nil matcher or an unknown match type.
//
// The postings are a snapshot: series created later are not in them, and
// series deleted later still are (Labels then reports false).
func (ix *Index) Select(ms ...*labels.Matcher) (Postings, error) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return selectPostings(memSource{ix}, ms)
}

// memSource reads postings; the caller holds ix.mu shared.
type memSource struct{ ix *Index }

func (s memSource) allPostings() (Postings, int) {
	return NewListPostings(s.ix.all), len(s.ix.all)
}

func (s memSource) postingsFor(name string, p *valuePlan) (Postings, int) {
	ni := s.ix.names[name]
	if ni == nil {
		return emptyPostings{}, 0
	}
	var lists [][]SeriesRef
	switch {
	case p.kind == planValues:
		for _, v := range p.values {
			if pl := ni.values[v]; pl != nil {
				lists = append(lists, pl.refs)
			}
		}
	case p.kind == planAllBut:
		lists = make([][]SeriesRef, 0, len(ni.values))
		for v, pl := range ni.values {
			if !p.excluded(v) {
				lists = append(lists, pl.refs)
			}
		}
	case p.prefix != "":
		vals := ni.sortedValues()
		i, _ := slices.BinarySearch(vals, p.prefix)
		for ; i < len(vals) && strings.HasPrefix(vals[i], p.prefix); i++ {
			if p.accept(vals[i]) {
				lists = append(lists, ni.values[vals[i]].refs)
			}
		}
	default:
		for v, pl := range ni.values {
			if p.accept(v) {
				lists = append(lists, pl.refs)
			}
		}
	}
	return unionLists(lists)
}

// sortedValues returns the cached sorted values of ni, building the cache
// if needed. The caller holds Index.mu (shared suffices: concurrent builders
// store equal slices, and writers, who invalidate, are excluded). The
// result must not be modified.
func (ni *nameIndex) sortedValues() []string {
	if p := ni.sorted.Load(); p != nil {
		return *p
	}
	vals := make([]string, 0, len(ni.values))
	for v := range ni.values {
		vals = append(vals, v)
	}
	slices.Sort(vals)
	ni.sorted.Store(&vals)
	return vals
}

// anyOverlaps reports whether a series in refs has data in [mint, maxt].
func (ix *Index) anyOverlaps(refs []SeriesRef, mint, maxt int64) bool {
	for _, ref := range refs {
		if ms := ix.series(ref); ms != nil && ms.overlaps(mint, maxt) {
			return true
		}
	}
	return false
}

// LabelNames returns, sorted, the label names of the series that match ms
// and have data overlapping [mint, maxt] (inclusive). Series that were never
// touched have no data and are never listed. The result is a new slice the
// caller owns.
func (ix *Index) LabelNames(mint, maxt int64, ms ...*labels.Matcher) ([]string, error) {
	if len(ms) == 0 {
		ix.mu.RLock()
		defer ix.mu.RUnlock()
		var out []string
		for name, ni := range ix.names {
			for _, pl := range ni.values {
				if ix.anyOverlaps(pl.refs, mint, maxt) {
					out = append(out, name)
					break
				}
			}
		}
		slices.Sort(out)
		return out, nil
	}
	p, err := ix.Select(ms...)
	if err != nil {
		return nil, err
	}
	set := map[string]struct{}{}
	for p.Next() {
		s := ix.series(p.At())
		if s == nil || !s.overlaps(mint, maxt) {
			continue
		}
		s.lset.Range(func(l labels.Label) {
			if _, ok := set[l.Name]; !ok {
				set[l.Name] = struct{}{}
			}
		})
	}
	return sortedKeys(set), p.Err()
}

// LabelValues returns, sorted, the values of label name among the series
// that match ms and have data overlapping [mint, maxt] (inclusive). The
// result is a new slice the caller owns.
func (ix *Index) LabelValues(name string, mint, maxt int64, ms ...*labels.Matcher) ([]string, error) {
	if len(ms) == 0 {
		ix.mu.RLock()
		defer ix.mu.RUnlock()
		ni := ix.names[name]
		if ni == nil {
			return nil, nil
		}
		var out []string
		for _, v := range ni.sortedValues() {
			if ix.anyOverlaps(ni.values[v].refs, mint, maxt) {
				out = append(out, v)
			}
		}
		return out, nil
	}
	p, err := ix.Select(ms...)
	if err != nil {
		return nil, err
	}
	refs, err := readOnlyRefs(p)
	if err != nil {
		return nil, err
	}
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	ni := ix.names[name]
	if ni == nil {
		return nil, nil
	}
	overlaps := func(ref SeriesRef) bool {
		s := ix.series(ref)
		return s != nil && s.overlaps(mint, maxt)
	}
	if len(ni.values)*valuesPerSeriesRatio < len(refs) {
		// Few values, many series: test each value's postings for a
		// common series; this usually stops at the first.
		var out []string
		for _, v := range ni.sortedValues() {
			if firstCommon(&listPostings{list: ni.values[v].refs, i: -1}, &listPostings{list: refs, i: -1}, overlaps) {
				out = append(out, v)
			}
		}
		return out, nil
	}
	set := map[string]struct{}{}
	for _, ref := range refs {
		s := ix.series(ref)
		if s == nil || !s.overlaps(mint, maxt) {
			continue
		}
		if v := s.lset.Get(name); v != "" {
			set[v] = struct{}{}
		}
	}
	return sortedKeys(set), nil
}

// valuesPerSeriesRatio picks LabelValues' strategy with matchers: with
// fewer than 1/ratio values per selected series, it intersects each value's
// postings with the selection instead of reading every selected series.
const valuesPerSeriesRatio = 8

// firstCommon reports whether unstarted a and b have a common element for
// which ok (nil: always true) holds. The caller checks a's and b's Err.
func firstCommon(a, b Postings, ok func(SeriesRef) bool) bool {
	if !a.Next() {
		return false
	}
	for {
		v := a.At()
		if !b.Seek(v) {
			return false
		}
		if w := b.At(); w != v {
			if !a.Seek(w) {
				return false
			}
			continue
		}
		if ok == nil || ok(v) {
			return true
		}
		if !a.Next() {
			return false
		}
	}
}

// Series returns the label sets of the series that match ms and have data
// overlapping [mint, maxt] (inclusive), sorted by labels.Compare. The slice
// is new; the Labels in it are immutable and may be kept.
func (ix *Index) Series(mint, maxt int64, ms ...*labels.Matcher) ([]labels.Labels, error) {
	p, err := ix.Select(ms...)
	if err != nil {
		return nil, err
	}
	var out []labels.Labels
	for p.Next() {
		s := ix.series(p.At())
		if s != nil && s.overlaps(mint, maxt) {
			out = append(out, s.lset)
		}
	}
	slices.SortFunc(out, labels.Compare)
	return out, p.Err()
}

func sortedKeys(set map[string]struct{}) []string {
	if len(set) == 0 {
		return nil
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
