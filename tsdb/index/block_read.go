package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
)

// ErrCorrupt reports a block index whose bytes are not a valid encoding:
// a bad magic number, version, checksum, length or reference. Every error
// OpenBlockIndex and BlockIndex methods return for bad bytes wraps it.
var ErrCorrupt = errors.New("corrupt block index")

// ErrNotFound reports a series ref that is not in the block.
var ErrNotFound = errors.New("series not found")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// BlockIndex reads a block index written by WriteBlockIndex, straight from
// its bytes: opening verifies the checksums and table bounds, and queries
// decode only what they touch.
//
// Goroutine safety: a BlockIndex is immutable; all methods may be called
// concurrently. Lifetime: it and the Postings it returns read the byte
// slice given to OpenBlockIndex, which must stay valid and unmodified (for
// example mapped) until they are no longer used. Strings and Labels it
// returns are copies and may be kept after that.
//
// Series refs are ordinals 0..NumSeries()-1 in label-set order.
type BlockIndex struct {
	nsyms   uint32
	symOffs []byte // nsyms big-endian u32 offsets into symData
	symData []byte

	nseries uint32
	serOffs []byte
	serData []byte

	postings []byte

	nnames uint32
	names  []byte // nnames entries of nameEntrySize
	values []byte // value entries of valueEntrySize
}

// OpenBlockIndex opens the block index in b. It checks the header, the
// table of contents and every section's CRC-32C, so it reads all of b once.
// Errors wrap ErrCorrupt.
func OpenBlockIndex(b []byte) (*BlockIndex, error) {
	return openBlockIndex(b, true)
}

// openBlockIndex lets the fuzz test skip the checksums, so that it reaches
// the decoders with bytes the checksums would have refused.
func openBlockIndex(b []byte, verifyCRC bool) (*BlockIndex, error) {
	if len(b) < headerSize+tocSize {
		return nil, corrupt("%d bytes is too short", len(b))
	}
	if m := binary.BigEndian.Uint32(b); m != blockMagic {
		return nil, corrupt("bad magic number %#08x", m)
	}
	if v := b[4]; v != blockVersion {
		return nil, corrupt("unsupported version %d", v)
	}
	if b[5]|b[6]|b[7] != 0 {
		return nil, corrupt("reserved header bytes are not zero")
	}
	tab := castagnoli()
	tocStart := len(b) - tocSize
	toc := b[tocStart:]
	if verifyCRC {
		if got, want := crc32.Checksum(toc[:tocSize-4], tab), binary.BigEndian.Uint32(toc[tocSize-4:]); got != want {
			return nil, corrupt("table of contents checksum %#08x, want %#08x", got, want)
		}
	}
	var secs [numSections][]byte
	for i := range secs {
		e := toc[i*tocEntrySize:]
		off, n := binary.BigEndian.Uint64(e), binary.BigEndian.Uint64(e[8:])
		if off < headerSize || off > uint64(tocStart) || n > uint64(tocStart)-off {
			return nil, corrupt("section %d [%d, +%d) outside the data area [%d, %d)", i, off, n, headerSize, tocStart)
		}
		secs[i] = b[off : off+n]
		if verifyCRC {
			if got, want := crc32.Checksum(secs[i], tab), binary.BigEndian.Uint32(e[16:]); got != want {
				return nil, corrupt("section %d checksum %#08x, want %#08x", i, got, want)
			}
		}
	}
	bi := &BlockIndex{postings: secs[secPostings]}
	var err error
	if bi.nsyms, bi.symOffs, bi.symData, err = splitTable(secs[secSymbols], "symbol"); err != nil {
		return nil, err
	}
	if bi.nseries, bi.serOffs, bi.serData, err = splitTable(secs[secSeries], "series"); err != nil {
		return nil, err
	}
	li := secs[secLabelIndex]
	if len(li) < 4 {
		return nil, corrupt("label index section of %d bytes", len(li))
	}
	bi.nnames = binary.BigEndian.Uint32(li)
	if uint64(bi.nnames)*nameEntrySize > uint64(len(li)-4) {
		return nil, corrupt("%d label names do not fit the label index", bi.nnames)
	}
	bi.names = li[4 : 4+int(bi.nnames)*nameEntrySize]
	bi.values = li[4+len(bi.names):]
	if len(bi.values)%valueEntrySize != 0 {
		return nil, corrupt("value table of %d bytes", len(bi.values))
	}
	nvalues := uint64(len(bi.values) / valueEntrySize)
	for i := range int(bi.nnames) {
		e := bi.names[i*nameEntrySize:]
		first, n := uint64(binary.BigEndian.Uint32(e[4:])), uint64(binary.BigEndian.Uint32(e[8:]))
		if first+n > nvalues {
			return nil, corrupt("label name %d: values [%d, +%d) outside the %d entries", i, first, n, nvalues)
		}
	}
	return bi, nil
}

// splitTable splits a count-offsets-entries table (see encodeTable).
func splitTable(sec []byte, what string) (uint32, []byte, []byte, error) {
	if len(sec) < 4 {
		return 0, nil, nil, corrupt("%s section of %d bytes", what, len(sec))
	}
	n := binary.BigEndian.Uint32(sec)
	if uint64(n)*4 > uint64(len(sec)-4) {
		return 0, nil, nil, corrupt("%d %s offsets do not fit the section", n, what)
	}
	return n, sec[4 : 4+4*int(n)], sec[4+4*int(n):], nil
}

// entry returns the bytes of table entry i, from its offset to the end.
func entry(offs, data []byte, i uint32, what string) ([]byte, error) {
	if uint64(i)*4 >= uint64(len(offs)) {
		return nil, corrupt("%s %d out of range", what, i)
	}
	off := binary.BigEndian.Uint32(offs[4*int(i):])
	if uint64(off) >= uint64(len(data)) {
		return nil, corrupt("%s %d at offset %d beyond %d bytes", what, i, off, len(data))
	}
	return data[off:], nil
}

// NumSeries returns the number of series in the block.
func (bi *BlockIndex) NumSeries() int { return int(bi.nseries) }

// sym returns the bytes of symbol i (valid while the block's bytes are).
func (bi *BlockIndex) sym(i uint32) ([]byte, error) {
	e, err := entry(bi.symOffs, bi.symData, i, "symbol")
	if err != nil {
		return nil, err
	}
	n, k := binary.Uvarint(e)
	if k <= 0 || n > uint64(len(e)-k) {
		return nil, corrupt("symbol %d: bad length", i)
	}
	return e[k : k+int(n)], nil
}

func (bi *BlockIndex) symString(i uint32) (string, error) {
	b, err := bi.sym(i)
	return string(b), err
}

// lowerBound returns the first symbol id whose string is >= s (nsyms if
// none). Symbols are sorted, so this is a binary search.
func (bi *BlockIndex) lowerBound(s string) (uint32, error) {
	lo, hi := uint32(0), bi.nsyms
	for lo < hi {
		mid := lo + (hi-lo)/2
		b, err := bi.sym(mid)
		if err != nil {
			return 0, err
		}
		if string(b) < s {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// lookup returns the symbol id of s, ok false if s is not a symbol.
func (bi *BlockIndex) lookup(s string) (uint32, bool, error) {
	i, err := bi.lowerBound(s)
	if err != nil || i >= bi.nsyms {
		return 0, false, err
	}
	b, err := bi.sym(i)
	if err != nil {
		return 0, false, err
	}
	return i, string(b) == s, nil
}

// prefixEnd returns the first symbol id >= from that does not start with
// prefix; symbols from `from` on that do start with it are contiguous.
func (bi *BlockIndex) prefixEnd(from uint32, prefix string) (uint32, error) {
	lo, hi := from, bi.nsyms
	for lo < hi {
		mid := lo + (hi-lo)/2
		b, err := bi.sym(mid)
		if err != nil {
			return 0, err
		}
		if strings.HasPrefix(string(b), prefix) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// nameValues returns the value entries of label name (nil if absent).
func (bi *BlockIndex) nameValues(name string) ([]byte, error) {
	id, ok, err := bi.lookup(name)
	if err != nil || !ok {
		return nil, err
	}
	lo, hi := 0, int(bi.nnames)
	for lo < hi {
		mid := lo + (hi-lo)/2
		if binary.BigEndian.Uint32(bi.names[mid*nameEntrySize:]) < id {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo >= int(bi.nnames) {
		return nil, nil
	}
	e := bi.names[lo*nameEntrySize:]
	if binary.BigEndian.Uint32(e) != id {
		return nil, nil
	}
	first, n := int(binary.BigEndian.Uint32(e[4:])), int(binary.BigEndian.Uint32(e[8:]))
	return bi.values[first*valueEntrySize : (first+n)*valueEntrySize], nil // bounds checked at open
}

// valueSearch returns the index of the first value entry whose symbol is
// >= id.
func valueSearch(vals []byte, id uint32) int {
	lo, hi := 0, len(vals)/valueEntrySize
	for lo < hi {
		mid := lo + (hi-lo)/2
		if binary.BigEndian.Uint32(vals[mid*valueEntrySize:]) < id {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// postingsAt returns the postings list at offset off of the postings
// section.
func (bi *BlockIndex) postingsAt(off uint32) (*blockPostings, error) {
	if uint64(off)+4 > uint64(len(bi.postings)) {
		return nil, corrupt("postings offset %d beyond %d bytes", off, len(bi.postings))
	}
	n := binary.BigEndian.Uint32(bi.postings[off:])
	rest := bi.postings[int(off)+4:]
	if uint64(n)*4 > uint64(len(rest)) {
		return nil, corrupt("postings list at %d: %d entries do not fit", off, n)
	}
	return &blockPostings{data: rest[:4*int(n)], n: int(n), i: -1, limit: bi.nseries}, nil
}

// Select returns the postings (series ordinals) of the series matching every
// matcher, with the same semantics as Index.Select. Decoding errors surface
// from the iterator's Err and wrap ErrCorrupt; invalid matchers are
// reported directly, wrapping ErrInvalidMatcher.
func (bi *BlockIndex) Select(ms ...*labels.Matcher) (Postings, error) {
	return selectPostings(blockSource{bi}, ms)
}

type blockSource struct{ bi *BlockIndex }

func (s blockSource) allPostings() (Postings, int) {
	n := int(s.bi.nseries)
	if n == 0 {
		return emptyPostings{}, 0
	}
	return &rangePostings{n: SeriesRef(n)}, n
}

func (s blockSource) postingsFor(name string, p *valuePlan) (Postings, int) {
	bi := s.bi
	vals, err := bi.nameValues(name)
	if err != nil {
		return errPostings{err}, 0
	}
	nv := len(vals) / valueEntrySize
	if nv == 0 {
		return emptyPostings{}, 0
	}
	var offs []uint32
	add := func(i int) { offs = append(offs, binary.BigEndian.Uint32(vals[i*valueEntrySize+4:])) }
	valueSym := func(i int) uint32 { return binary.BigEndian.Uint32(vals[i*valueEntrySize:]) }

	switch {
	case p.kind == planValues:
		for _, v := range p.values {
			id, ok, err := bi.lookup(v)
			if err != nil {
				return errPostings{err}, 0
			}
			if i := valueSearch(vals, id); ok && i < nv && valueSym(i) == id {
				add(i)
			}
		}
	case p.kind == planAllBut:
		var skip []uint32
		for _, v := range p.values {
			id, ok, err := bi.lookup(v)
			if err != nil {
				return errPostings{err}, 0
			}
			if ok {
				skip = append(skip, id)
			}
		}
		for i := range nv {
			if !slices.Contains(skip, valueSym(i)) {
				add(i)
			}
		}
	default:
		from, to := 0, nv
		if p.prefix != "" {
			lo, err := bi.lowerBound(p.prefix)
			if err != nil {
				return errPostings{err}, 0
			}
			hi, err := bi.prefixEnd(lo, p.prefix)
			if err != nil {
				return errPostings{err}, 0
			}
			from, to = valueSearch(vals, lo), valueSearch(vals, hi)
		}
		for i := from; i < to; i++ {
			v, err := bi.symString(valueSym(i))
			if err != nil {
				return errPostings{err}, 0
			}
			if p.accept(v) {
				add(i)
			}
		}
	}
	return bi.union(offs)
}

// union returns the union of the postings lists at offs.
func (bi *BlockIndex) union(offs []uint32) (Postings, int) {
	lists := make([]Postings, 0, len(offs))
	n := 0
	for _, off := range offs {
		p, err := bi.postingsAt(off)
		if err != nil {
			return errPostings{err}, 0
		}
		if p.n > 0 {
			lists = append(lists, p)
			n += p.n
		}
	}
	switch {
	case len(lists) == 0:
		return emptyPostings{}, 0
	case len(lists) <= lazyMergeMax:
		return Merge(lists...), n
	}
	all := make([]SeriesRef, 0, n)
	for _, p := range lists {
		for p.Next() {
			all = append(all, p.At())
		}
		if err := p.Err(); err != nil {
			return errPostings{err}, 0
		}
	}
	slices.Sort(all)
	return NewListPostings(slices.Compact(all)), n
}

// seriesEntry decodes series ref: it calls fn for each label's symbol ids
// (names strictly increasing) and returns the undecoded rest (the chunk
// list).
func (bi *BlockIndex) seriesEntry(ref SeriesRef, fn func(name, value uint32)) ([]byte, error) {
	if ref >= SeriesRef(bi.nseries) {
		return nil, fmt.Errorf("%w: series %d of a block with %d", ErrNotFound, ref, bi.nseries)
	}
	e, err := entry(bi.serOffs, bi.serData, uint32(ref), "series")
	if err != nil {
		return nil, err
	}
	n, k := binary.Uvarint(e)
	if k <= 0 || n > uint64(len(e)-k)/2 {
		return nil, corrupt("series %d: bad label count", ref)
	}
	e = e[k:]
	prev := int64(-1)
	for range n {
		name, k1 := binary.Uvarint(e)
		if k1 <= 0 {
			return nil, corrupt("series %d: bad label", ref)
		}
		value, k2 := binary.Uvarint(e[k1:])
		if k2 <= 0 {
			return nil, corrupt("series %d: bad label", ref)
		}
		e = e[k1+k2:]
		if name >= uint64(bi.nsyms) || value >= uint64(bi.nsyms) || int64(name) <= prev {
			return nil, corrupt("series %d: bad label symbols (%d, %d)", ref, name, value)
		}
		prev = int64(name)
		fn(uint32(name), uint32(value))
	}
	return e, nil
}

// Series returns the label set and chunk references of series ref. The
// chunk references are appended to chks[:0] (pass nil or a buffer to
// reuse). A ref out of range gives an error wrapping ErrNotFound; bad bytes
// one wrapping ErrCorrupt.
func (bi *BlockIndex) Series(ref SeriesRef, chks []uint64) (labels.Labels, []uint64, error) {
	var ids []uint32
	rest, err := bi.seriesEntry(ref, func(name, value uint32) { ids = append(ids, name, value) })
	if err != nil {
		return labels.EmptyLabels(), chks, err
	}
	b := labels.NewScratchBuilder(len(ids) / 2)
	for i := 0; i < len(ids); i += 2 {
		name, err := bi.symString(ids[i])
		if err != nil {
			return labels.EmptyLabels(), chks, err
		}
		value, err := bi.symString(ids[i+1])
		if err != nil {
			return labels.EmptyLabels(), chks, err
		}
		b.Add(name, value)
	}
	n, k := binary.Uvarint(rest)
	if k <= 0 || n > uint64(len(rest)-k) {
		return labels.EmptyLabels(), chks, corrupt("series %d: bad chunk count", ref)
	}
	rest = rest[k:]
	chks = chks[:0]
	for range n {
		c, k := binary.Uvarint(rest)
		if k <= 0 {
			return labels.EmptyLabels(), chks, corrupt("series %d: bad chunk reference", ref)
		}
		rest = rest[k:]
		chks = append(chks, c)
	}
	return b.Labels(), chks, nil
}

// LabelNames returns the sorted label names of the series matching ms (of
// all series with no matchers). The result is a new slice.
func (bi *BlockIndex) LabelNames(ms ...*labels.Matcher) ([]string, error) {
	if err := validateMatchers(ms); err != nil {
		return nil, err
	}
	var ids []uint32
	if len(ms) == 0 {
		ids = make([]uint32, bi.nnames)
		for i := range ids {
			ids[i] = binary.BigEndian.Uint32(bi.names[i*nameEntrySize:])
		}
	} else {
		var err error
		if ids, err = bi.collect(ms, func(name, _ uint32, add func(uint32)) { add(name) }); err != nil {
			return nil, err
		}
	}
	return bi.strings(ids)
}

// LabelValues returns the sorted values of label name among the series
// matching ms (all series with no matchers). The result is a new slice.
func (bi *BlockIndex) LabelValues(name string, ms ...*labels.Matcher) ([]string, error) {
	if err := validateMatchers(ms); err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		vals, err := bi.nameValues(name)
		if err != nil {
			return nil, err
		}
		ids := make([]uint32, len(vals)/valueEntrySize)
		for i := range ids {
			ids[i] = binary.BigEndian.Uint32(vals[i*valueEntrySize:])
		}
		return bi.strings(ids)
	}
	vals, err := bi.nameValues(name)
	if err != nil || len(vals) == 0 {
		return nil, err
	}
	nv := len(vals) / valueEntrySize
	p, err := bi.Select(ms...)
	if err != nil {
		return nil, err
	}
	// selection returns a fresh iterator over the selected series: a copy
	// of an unstarted block list reads it in place, anything else is
	// expanded once.
	var selection func() Postings
	var refs []SeriesRef
	nsel := 0
	if bp, ok := p.(*blockPostings); ok && bp.i < 0 {
		selection = func() Postings { c := *bp; return &c }
		nsel = bp.n
	} else {
		if refs, err = readOnlyRefs(p); err != nil {
			return nil, err
		}
		selection = func() Postings { return &listPostings{list: refs, i: -1} }
		nsel = len(refs)
	}
	var ids []uint32
	if nv*valuesPerSeriesRatio < nsel {
		// Few values, many series: intersect each value's postings with
		// the selection (see Index.LabelValues).
		for i := range nv {
			e := vals[i*valueEntrySize:]
			vp, err := bi.postingsAt(binary.BigEndian.Uint32(e[4:]))
			if err != nil {
				return nil, err
			}
			sel := selection()
			if firstCommon(vp, sel, nil) {
				ids = append(ids, binary.BigEndian.Uint32(e))
			}
			if err := errors.Join(vp.Err(), sel.Err()); err != nil {
				return nil, err
			}
		}
	} else {
		id, _, err := bi.lookup(name) // found: nameValues found it
		if err != nil {
			return nil, err
		}
		if refs == nil {
			if refs, err = ExpandPostings(selection()); err != nil {
				return nil, err
			}
		}
		if ids, err = bi.collectRefs(refs, func(n, v uint32, add func(uint32)) {
			if n == id {
				add(v)
			}
		}); err != nil {
			return nil, err
		}
	}
	return bi.strings(ids)
}

// collect runs pick over the labels of every series matching ms and returns
// the distinct symbol ids it adds, sorted.
func (bi *BlockIndex) collect(ms []*labels.Matcher, pick func(name, value uint32, add func(uint32))) ([]uint32, error) {
	p, err := bi.Select(ms...)
	if err != nil {
		return nil, err
	}
	refs, err := readOnlyRefs(p)
	if err != nil {
		return nil, err
	}
	return bi.collectRefs(refs, pick)
}

// collectRefs is collect over the series refs.
func (bi *BlockIndex) collectRefs(refs []SeriesRef, pick func(name, value uint32, add func(uint32))) ([]uint32, error) {
	set := map[uint32]struct{}{}
	add := func(id uint32) { set[id] = struct{}{} }
	for _, ref := range refs {
		if _, err := bi.seriesEntry(ref, func(n, v uint32) { pick(n, v, add) }); err != nil {
			return nil, err
		}
	}
	ids := make([]uint32, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// strings decodes symbol ids (sorted, so the strings come out sorted).
func (bi *BlockIndex) strings(ids []uint32) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		s, err := bi.symString(id)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

// blockPostings iterates a postings list of big-endian u32 ordinals in
// place, checking as it goes that they increase and are series ordinals.
type blockPostings struct {
	data  []byte
	n     int
	i     int // current index; -1 before the first Next/Seek, n when done
	cur   SeriesRef
	limit uint32 // number of series
	err   error
}

func (p *blockPostings) get(i int) uint32 { return binary.BigEndian.Uint32(p.data[4*i:]) }

// land makes index i current after checking its value.
func (p *blockPostings) land(i int) bool {
	v := p.get(i)
	if v >= p.limit || (i > 0 && p.get(i-1) >= v) {
		p.err = corrupt("postings entry %d (%d) out of order or range", i, v)
		p.i = p.n
		return false
	}
	p.i, p.cur = i, SeriesRef(v)
	return true
}

func (p *blockPostings) Next() bool {
	if p.i+1 >= p.n {
		p.i = p.n
		return false
	}
	return p.land(p.i + 1)
}

func (p *blockPostings) Seek(v SeriesRef) bool {
	if p.i >= p.n {
		return false
	}
	if p.i >= 0 && p.cur >= v {
		return true
	}
	// Gallop from the current position, then binary search: intersections
	// mostly seek a short distance ahead.
	lo := max(p.i, 0)
	hi, step := lo, 1
	for hi < p.n && SeriesRef(p.get(hi)) < v {
		lo = hi + 1
		hi += step
		step <<= 1
	}
	hi = min(hi, p.n)
	for lo < hi {
		mid := lo + (hi-lo)/2
		if SeriesRef(p.get(mid)) < v {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo >= p.n {
		p.i = p.n
		return false
	}
	return p.land(lo)
}

// expand decodes the whole (unstarted) list at once.
func (p *blockPostings) expand() ([]SeriesRef, error) {
	out := make([]SeriesRef, p.n)
	prev := int64(-1)
	for i := range out {
		v := p.get(i)
		if v >= p.limit || int64(v) <= prev {
			return nil, corrupt("postings entry %d (%d) out of order or range", i, v)
		}
		out[i], prev = SeriesRef(v), int64(v)
	}
	p.i = p.n
	return out, nil
}

func (p *blockPostings) At() SeriesRef { return p.cur }
func (p *blockPostings) Err() error    { return p.err }

// rangePostings iterates 0..n-1, the all-postings of a block.
type rangePostings struct {
	n, cur  SeriesRef
	started bool
}

func (p *rangePostings) Next() bool {
	if !p.started {
		p.started = true
		p.cur = 0
	} else if p.cur < p.n {
		p.cur++
	}
	return p.cur < p.n
}

func (p *rangePostings) Seek(v SeriesRef) bool {
	if !p.started || v > p.cur {
		p.started = true
		p.cur = max(p.cur, v)
		if p.cur > p.n {
			p.cur = p.n
		}
	}
	return p.cur < p.n
}

func (p *rangePostings) At() SeriesRef { return p.cur }
func (p *rangePostings) Err() error    { return nil }
