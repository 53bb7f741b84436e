package index

import "slices"

// SeriesRef identifies a series. In the in-memory Index it is assigned by
// GetOrCreate, starts at 1 and is never reused, even after Delete. In a
// BlockIndex it is the series' ordinal (0-based) in label-set order.
type SeriesRef uint64

// Postings iterates over a strictly increasing sequence of series
// references.
//
// Call order: Next or Seek first; At is valid only after one of them returned
// true. Once Next or Seek returns false the iterator is exhausted: later calls
// return false, and Err tells whether it ended because of an error.
//
// A Postings is not safe for concurrent use; each goroutine needs its own.
// The iterators returned by Index.Select stay valid after the Index changes
// (they iterate a snapshot); those returned by a BlockIndex read its byte
// slice, which must stay mapped until they are done.
type Postings interface {
	// Next advances to the next reference and reports whether there is one.
	Next() bool
	// Seek advances to the first reference >= v and reports whether there
	// is one. If the iterator already stands on a reference >= v it does
	// not move. Seek may be called before Next.
	Seek(v SeriesRef) bool
	// At returns the current reference.
	At() SeriesRef
	// Err returns the error that ended the iteration, if any.
	Err() error
}

// emptyPostings is the iterator over nothing. It is a distinct type so that
// Select can recognise a matcher that selects nothing and stop early.
type emptyPostings struct{}

func (emptyPostings) Next() bool          { return false }
func (emptyPostings) Seek(SeriesRef) bool { return false }
func (emptyPostings) At() SeriesRef       { return 0 }
func (emptyPostings) Err() error          { return nil }

// EmptyPostings returns an iterator over no references.
func EmptyPostings() Postings { return emptyPostings{} }

func isEmpty(p Postings) bool {
	_, ok := p.(emptyPostings)
	return ok
}

// errPostings is an exhausted iterator that reports an error.
type errPostings struct{ err error }

func (errPostings) Next() bool          { return false }
func (errPostings) Seek(SeriesRef) bool { return false }
func (errPostings) At() SeriesRef       { return 0 }
func (e errPostings) Err() error        { return e.err }

// ErrPostings returns an exhausted iterator whose Err returns err.
func ErrPostings(err error) Postings { return errPostings{err: err} }

// listPostings iterates a sorted slice.
type listPostings struct {
	list []SeriesRef
	i    int // index of the current element; -1 before the first Next/Seek
}

// NewListPostings returns an iterator over list, which must be sorted
// strictly increasing. The iterator reads list without copying it, so the
// caller must not modify list while the iterator is in use.
func NewListPostings(list []SeriesRef) Postings {
	if len(list) == 0 {
		return emptyPostings{}
	}
	return &listPostings{list: list, i: -1}
}

func (p *listPostings) Next() bool {
	if p.i < len(p.list) {
		p.i++
	}
	return p.i < len(p.list)
}

func (p *listPostings) Seek(v SeriesRef) bool {
	if p.i < 0 {
		p.i = 0
	}
	if p.i >= len(p.list) {
		return false
	}
	if p.list[p.i] >= v {
		return true
	}
	// Gallop: intersections mostly seek a short distance ahead.
	lo, step := p.i+1, 1
	hi := lo
	for hi < len(p.list) && p.list[hi] < v {
		lo = hi + 1
		hi += step
		step <<= 1
	}
	if hi > len(p.list) {
		hi = len(p.list)
	}
	k, _ := slices.BinarySearch(p.list[lo:hi], v)
	p.i = lo + k
	return p.i < len(p.list)
}

func (p *listPostings) At() SeriesRef {
	if p.i < 0 || p.i >= len(p.list) {
		return 0
	}
	return p.list[p.i]
}

func (p *listPostings) Err() error { return nil }

// Intersect returns the references present in every one of its. It is
// lazy: the inputs are advanced only as far as the caller iterates. The
// inputs must not be used directly afterwards. With no inputs it returns
// EmptyPostings.
func Intersect(its ...Postings) Postings {
	switch len(its) {
	case 0:
		return emptyPostings{}
	case 1:
		return its[0]
	}
	for _, p := range its {
		if isEmpty(p) {
			return emptyPostings{}
		}
	}
	return &intersectPostings{its: slices.Clone(its)}
}

type intersectPostings struct {
	its  []Postings
	cur  SeriesRef
	on   bool // stands on a common reference
	done bool
	err  error
}

func (p *intersectPostings) fail(q Postings) bool {
	p.done, p.on = true, false
	p.err = q.Err()
	return false
}

// align seeks every input to the smallest common reference >= p.cur.
func (p *intersectPostings) align() bool {
	for {
		moved := false
		for _, q := range p.its {
			if !q.Seek(p.cur) {
				return p.fail(q)
			}
			if v := q.At(); v > p.cur {
				p.cur, moved = v, true
			}
		}
		if !moved {
			p.on = true
			return true
		}
	}
}

func (p *intersectPostings) Next() bool {
	if p.done {
		return false
	}
	if !p.its[0].Next() {
		return p.fail(p.its[0])
	}
	p.cur = p.its[0].At()
	return p.align()
}

func (p *intersectPostings) Seek(v SeriesRef) bool {
	if p.done {
		return false
	}
	if p.on && p.cur >= v {
		return true
	}
	p.cur = max(p.cur, v) // not started yet, or standing below v
	return p.align()
}

func (p *intersectPostings) At() SeriesRef {
	if !p.on {
		return 0
	}
	return p.cur
}

func (p *intersectPostings) Err() error { return p.err }

// Merge returns the union of its, without duplicates. It is lazy (a heap
// of the inputs' heads) and the inputs must not be used directly
// afterwards. With no inputs it returns EmptyPostings.
func Merge(its ...Postings) Postings {
	var in []Postings
	for _, p := range its {
		if !isEmpty(p) {
			in = append(in, p)
		}
	}
	switch len(in) {
	case 0:
		return emptyPostings{}
	case 1:
		return in[0]
	}
	return &mergePostings{pending: in}
}

type mergePostings struct {
	pending []Postings // inputs not yet started
	h       []Postings // heap of started inputs, ordered by At
	cur     SeriesRef
	on      bool
	done    bool
	err     error
}

func (p *mergePostings) less(i, j int) bool { return p.h[i].At() < p.h[j].At() }

func (p *mergePostings) down(i int) {
	n := len(p.h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && p.less(r, l) {
			m = r
		}
		if !p.less(m, i) {
			return
		}
		p.h[i], p.h[m] = p.h[m], p.h[i]
		i = m
	}
}

// pop removes the heap's top, recording its error if it ended with one.
func (p *mergePostings) pop() {
	if err := p.h[0].Err(); err != nil && p.err == nil {
		p.err = err
	}
	last := len(p.h) - 1
	p.h[0] = p.h[last]
	p.h[last] = nil
	p.h = p.h[:last]
	p.down(0)
}

// start positions every pending input with step (Next or Seek) and heapifies.
func (p *mergePostings) start(step func(Postings) bool) {
	p.h = p.pending[:0]
	for _, q := range p.pending {
		if step(q) {
			p.h = append(p.h, q)
		} else if err := q.Err(); err != nil && p.err == nil {
			p.err = err
		}
	}
	p.pending = nil
	for i := len(p.h)/2 - 1; i >= 0; i-- {
		p.down(i)
	}
}

func (p *mergePostings) settle() bool {
	if p.err != nil || len(p.h) == 0 {
		p.done, p.on = true, false
		return false
	}
	p.cur, p.on = p.h[0].At(), true
	return true
}

func (p *mergePostings) Next() bool {
	if p.done {
		return false
	}
	if p.pending != nil {
		p.start(func(q Postings) bool { return q.Next() })
		return p.settle()
	}
	for len(p.h) > 0 && p.h[0].At() <= p.cur {
		if p.h[0].Next() {
			p.down(0)
		} else {
			p.pop()
		}
	}
	return p.settle()
}

func (p *mergePostings) Seek(v SeriesRef) bool {
	if p.done {
		return false
	}
	if p.pending != nil {
		p.start(func(q Postings) bool { return q.Seek(v) })
		return p.settle()
	}
	if p.on && p.cur >= v {
		return true
	}
	for len(p.h) > 0 && p.h[0].At() < v {
		if p.h[0].Seek(v) {
			p.down(0)
		} else {
			p.pop()
		}
	}
	return p.settle()
}

func (p *mergePostings) At() SeriesRef {
	if !p.on {
		return 0
	}
	return p.cur
}

func (p *mergePostings) Err() error { return p.err }

// Without returns the references of full that are not in drop. It is lazy
// and the inputs must not be used directly afterwards.
func Without(full, drop Postings) Postings {
	if isEmpty(full) {
		return emptyPostings{}
	}
	if isEmpty(drop) {
		return full
	}
	return &withoutPostings{full: full, drop: drop}
}

type withoutPostings struct {
	full, drop Postings
	dropOn     bool // drop stands on a reference (has been positioned)
	dropDone   bool
	on, done   bool
	err        error
}

// keep reports whether the reference full stands on is not dropped,
// advancing drop as needed. A drop error ends the iteration.
func (p *withoutPostings) keep(v SeriesRef) (bool, bool) {
	if p.dropDone {
		return true, true
	}
	if !p.dropOn || p.drop.At() < v {
		if !p.drop.Seek(v) {
			if err := p.drop.Err(); err != nil {
				p.err = err
				return false, false
			}
			p.dropDone = true
			return true, true
		}
		p.dropOn = true
	}
	return p.drop.At() != v, true
}

// settle moves full forward (starting from its current position when ok)
// until it stands on a kept reference.
func (p *withoutPostings) settle(ok bool) bool {
	for ok {
		keep, alive := p.keep(p.full.At())
		if !alive {
			break
		}
		if keep {
			p.on = true
			return true
		}
		ok = p.full.Next()
	}
	if p.err == nil {
		p.err = p.full.Err()
	}
	p.on, p.done = false, true
	return false
}

func (p *withoutPostings) Next() bool {
	if p.done {
		return false
	}
	return p.settle(p.full.Next())
}

func (p *withoutPostings) Seek(v SeriesRef) bool {
	if p.done {
		return false
	}
	if p.on && p.full.At() >= v {
		return true
	}
	return p.settle(p.full.Seek(v))
}

func (p *withoutPostings) At() SeriesRef {
	if !p.on {
		return 0
	}
	return p.full.At()
}

func (p *withoutPostings) Err() error { return p.err }

// readOnlyRefs drains p like ExpandPostings, but returns the slice behind
// an unstarted list iterator itself: the caller must not modify the result.
func readOnlyRefs(p Postings) ([]SeriesRef, error) {
	switch l := p.(type) {
	case *listPostings:
		if l.i < 0 {
			return l.list, nil
		}
	case *blockPostings:
		if l.i < 0 {
			return l.expand()
		}
	}
	return ExpandPostings(p)
}

// ExpandPostings drains p into a new slice.
func ExpandPostings(p Postings) ([]SeriesRef, error) {
	var out []SeriesRef
	for p.Next() {
		out = append(out, p.At())
	}
	return out, p.Err()
}
