package sketch

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
	"unsafe"
)

// DefaultCategoricalCapacity is the number of distinct keys a Categorical
// counts exactly before it turns into a heavy-hitters summary. 1024 keeps
// every class label, country or language code and most bucketed features
// exact, while a summarised state still bounds the undercount of any key by
// Total()/1025 (under 0.1% of the mass). A full state of 16-byte keys
// takes about 80 KiB in memory and 17 KiB encoded per series and bucket;
// small states only pay for the keys they hold.
const DefaultCategoricalCapacity = 1024

// MaxCategoricalCapacity bounds the capacity a state may declare, so that a
// decoded state cannot make later merges grow without limit.
const MaxCategoricalCapacity = 1 << 16

// Memory accounting constants for MemSize: a string header, and a rough
// per-entry cost of the key index (Go's swiss-table map stores the 16-byte
// key and 4-byte value in 8-slot groups with a control word, at up to 7/8
// load).
const (
	catStringHeaderBytes = int(unsafe.Sizeof(""))
	catIndexEntryBytes   = 32
)

// Categorical counts string values (categorical features, predicted
// classes). It counts exactly up to Capacity() distinct keys; beyond that it
// is a Misra-Gries heavy-hitters summary in the mergeable form of Agarwal et
// al., "Mergeable Summaries" (PODS 2012): at most Capacity() keys are
// tracked, each Count is a lower bound at most ErrorBound() below the true
// count, and the mass taken off tracked keys is kept in Other() so that
// Total() stays exact.
//
// The zero value is an empty state with DefaultCategoricalCapacity.
type Categorical struct {
	capacity int // 0 means DefaultCategoricalCapacity
	index    map[string]int32
	keys     []string // unsorted; index maps keys[i] to i
	counts   []uint64 // counts[i] belongs to keys[i]; always > 0
	other    uint64
	bound    uint64 // sum of the decrements applied; 0 while exact
	total    uint64
	keyBytes int      // sum of len(keys[i]), for MemSize
	peak     int      // most entries the index has held, for MemSize
	scratch  []uint64 // selection buffer, kept so merges do not allocate
}

var _ Sketch = (*Categorical)(nil)

// NewCategorical returns an empty state that counts up to capacity distinct
// keys exactly. A capacity below 1 selects DefaultCategoricalCapacity; one
// above MaxCategoricalCapacity is lowered to it.
func NewCategorical(capacity int) *Categorical {
	return &Categorical{capacity: normCapacity(capacity)}
}

func normCapacity(capacity int) int {
	if capacity < 1 {
		return DefaultCategoricalCapacity
	}
	return min(capacity, MaxCategoricalCapacity)
}

// Capacity returns the most keys the state tracks.
func (c *Categorical) Capacity() int { return normCapacity(c.capacity) }

// Add counts one occurrence of key.
func (c *Categorical) Add(key string) { c.AddN(key, 1) }

// AddN counts n occurrences of key. Counting a key that is already tracked
// does not allocate. A new key is copied, so the state never pins a larger
// buffer the caller's string may point into (a substring of a request
// body), and may also allocate its index entry. Once Total reaches 2^64-1
// further mass is dropped, so that counts never wrap.
func (c *Categorical) AddN(key string, n uint64) {
	n = min(n, math.MaxUint64-c.total)
	if n == 0 {
		return
	}
	c.total += n
	if i, ok := c.index[key]; ok {
		c.counts[i] += n // cannot wrap: counts[i] + n <= total
		return
	}
	k := c.Capacity()
	if len(c.keys) < k {
		c.insert(strings.Clone(key), n)
		return
	}
	// Weighted Misra-Gries step: the k counters and the new key are k+1
	// candidates; the smallest of them, d, is taken off each, so exactly
	// (k+1)*d moves to other and no key loses more than d.
	d := n
	for _, v := range c.counts {
		d = min(d, v)
	}
	c.decrement(d)
	c.other = addSat(c.other, d) // the new key's own share
	c.bound = addSat(c.bound, d)
	if n > d {
		c.insert(strings.Clone(key), n-d)
	}
}

func (c *Categorical) insert(key string, n uint64) {
	if c.index == nil {
		c.index = make(map[string]int32)
	}
	c.index[key] = int32(len(c.keys))
	c.keys = append(c.keys, key)
	c.counts = append(c.counts, n)
	c.keyBytes += len(key)
	c.peak = max(c.peak, len(c.keys))
}

// decrement takes d off every tracked counter, drops the counters it
// empties and adds the mass taken to other. The caller accounts for bound.
func (c *Categorical) decrement(d uint64) {
	var removed uint64
	w := 0
	for r, v := range c.counts {
		if v <= d {
			removed += v
			c.keyBytes -= len(c.keys[r])
			delete(c.index, c.keys[r])
			continue
		}
		removed += d
		if w != r {
			c.keys[w] = c.keys[r]
			c.index[c.keys[w]] = int32(w)
		}
		c.counts[w] = v - d
		w++
	}
	clear(c.keys[w:]) // release the dropped strings
	c.keys = c.keys[:w]
	c.counts = c.counts[:w]
	c.other = addSat(c.other, removed)
}

// reduce brings the state back to at most k tracked keys after a merge, by
// taking the (k+1)-th largest counter off every counter (Agarwal et al.,
// section 2). It depends only on the multiset of counters, so the result of
// a merge does not depend on the order the keys were visited in.
func (c *Categorical) reduce(k int) {
	if len(c.counts) <= k {
		return
	}
	c.scratch = append(c.scratch[:0], c.counts...)
	d := nthLargest(c.scratch, k)
	c.decrement(d)
	c.bound = addSat(c.bound, d)
}

// Merge folds o into c. The result tracks at most min(c.Capacity(),
// o.Capacity()) keys, which keeps the error guarantee of both inputs. It is
// commutative exactly, and associative exactly while the union of keys fits
// the capacity; otherwise different merge orders give estimates that all
// lie within their ErrorBound of the truth. Merging keys that c already
// tracks does not allocate; new keys share o's immutable key strings.
func (c *Categorical) Merge(o *Categorical) {
	if o == nil {
		return
	}
	k := min(c.Capacity(), o.Capacity())
	c.capacity = k
	if o == c {
		for i := range c.counts {
			c.counts[i] = addSat(c.counts[i], c.counts[i])
		}
	} else {
		for i, key := range o.keys {
			c.addCount(key, o.counts[i])
		}
	}
	c.other = addSat(c.other, o.other)
	c.bound = addSat(c.bound, o.bound)
	c.total = addSat(c.total, o.total)
	c.reduce(k)
}

// addCount adds n to key's counter, inserting the key past capacity if
// needed; the caller reduces afterwards.
func (c *Categorical) addCount(key string, n uint64) {
	if i, ok := c.index[key]; ok {
		c.counts[i] = addSat(c.counts[i], n)
		return
	}
	c.insert(key, n)
}

func addSat(a, b uint64) uint64 {
	s, carry := bits.Add64(a, b, 0)
	if carry != 0 {
		return math.MaxUint64
	}
	return s
}

// Count returns the count of key: exact while Exact(), otherwise a lower
// bound at most ErrorBound() below the true count (0 for untracked keys).
func (c *Categorical) Count(key string) uint64 {
	if i, ok := c.index[key]; ok {
		return c.counts[i]
	}
	return 0
}

// Other returns the mass not attributed to a tracked key: 0 while Exact().
func (c *Categorical) Other() uint64 { return c.other }

// Total returns the number of observations, exactly.
func (c *Categorical) Total() uint64 { return c.total }

// Exact reports whether every count is exact, that is whether the state has
// never held more distinct keys than its capacity.
func (c *Categorical) Exact() bool { return c.bound == 0 }

// ErrorBound returns the most any key's Count may be below its true count.
// It is the sum of the Misra-Gries decrements and never exceeds
// Other()/(Capacity()+1).
func (c *Categorical) ErrorBound() uint64 { return c.bound }

// Len returns the number of tracked keys.
func (c *Categorical) Len() int { return len(c.keys) }

// AppendKeys appends the tracked keys to dst in increasing byte order and
// returns the extended slice.
func (c *Categorical) AppendKeys(dst []string) []string {
	n := len(dst)
	dst = append(dst, c.keys...)
	slices.Sort(dst[n:])
	return dst
}

// sortedOrder returns the positions of the tracked keys in increasing key
// order, leaving the state untouched so concurrent readers stay safe.
func (c *Categorical) sortedOrder() []int32 {
	order := make([]int32, len(c.keys))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return strings.Compare(c.keys[a], c.keys[b]) })
	return order
}

// Format returns FormatCategorical.
func (c *Categorical) Format() Format { return FormatCategorical }

// AppendBinary appends the canonical encoding: keys in increasing byte
// order, so equal states encode to equal bytes.
func (c *Categorical) AppendBinary(dst []byte) []byte {
	dst = append(dst, byte(FormatCategorical))
	dst = appendUvarint(dst, uint64(c.Capacity()))
	dst = appendUvarint(dst, c.bound)
	dst = appendUvarint(dst, c.other)
	dst = appendUvarint(dst, uint64(len(c.keys)))
	for _, i := range c.sortedOrder() {
		dst = appendUvarint(dst, uint64(len(c.keys[i])))
		dst = append(dst, c.keys[i]...)
		dst = appendUvarint(dst, c.counts[i])
	}
	return dst
}

// catHeader is the fixed part of an encoded Categorical.
type catHeader struct {
	capacity     int
	bound, other uint64
	n            int
	total        uint64
}

// catEntryMinBytes is the smallest encoded entry: an empty key (one length
// byte) and a one-byte count.
const catEntryMinBytes = 2

// readCatHeader reads the fields before the entries.
func readCatHeader(r *reader) catHeader {
	var h catHeader
	r.format(FormatCategorical)
	capacity := r.uvarint("capacity")
	h.bound = r.uvarint("error bound")
	h.other = r.uvarint("other count")
	h.n = r.count("key count", catEntryMinBytes)
	if r.err() != nil {
		return h
	}
	if capacity < 1 || capacity > MaxCategoricalCapacity {
		r.invalid("capacity %d outside [1, %d]", capacity, MaxCategoricalCapacity)
		return h
	}
	h.capacity = int(capacity)
	if h.n > h.capacity {
		r.invalid("%d keys exceed the capacity %d", h.n, h.capacity)
	}
	if (h.bound == 0) != (h.other == 0) {
		r.invalid("error bound %d and other count %d must be both zero or both positive", h.bound, h.other)
	}
	// Every decrement of d moves at least (capacity+1)*d to other; a
	// saturated other no longer tells how much moved.
	if h.other != math.MaxUint64 && h.bound > h.other/uint64(h.capacity+1) {
		r.invalid("error bound %d exceeds other count %d / (capacity %d + 1)", h.bound, h.other, h.capacity)
	}
	return h
}

// readCatEntry reads one key and its count; the key aliases the input.
func readCatEntry(r *reader) ([]byte, uint64) {
	key := r.bytes(r.uvarint("key length"), "key")
	n := r.uvarint("count")
	return key, n
}

// validateCategorical checks a whole encoding without building a state.
func validateCategorical(src []byte) (catHeader, error) {
	r := newReader(src)
	h := readCatHeader(&r)
	h.total = h.other
	var prev []byte
	for i := 0; i < h.n && r.err() == nil; i++ {
		key, n := readCatEntry(&r)
		if r.err() != nil {
			break
		}
		if n == 0 {
			r.invalid("key %d (%q) has count 0", i, key)
		}
		if i > 0 && bytes.Compare(prev, key) >= 0 {
			r.invalid("key %d (%q) is not greater than the previous key %q", i, key, prev)
		}
		prev = key
		h.total = addSat(h.total, n)
	}
	return h, r.done()
}

// mergeEncoded adds the entries of a validated encoding to c.
func (c *Categorical) mergeEncoded(src []byte, h catHeader) {
	r := newReader(src)
	readCatHeader(&r)
	for range h.n {
		key, n := readCatEntry(&r)
		if i, ok := c.index[string(key)]; ok {
			c.counts[i] = addSat(c.counts[i], n)
		} else {
			c.insert(string(key), n)
		}
	}
	c.other = addSat(c.other, h.other)
	c.bound = addSat(c.bound, h.bound)
	c.total = addSat(c.total, h.total)
}

// DecodeAndMerge merges an encoded Categorical into c, as Merge would. The
// whole input is validated first, so c is unchanged on error. Keys c
// already tracks are looked up without allocating.
func (c *Categorical) DecodeAndMerge(src []byte) error {
	h, err := validateCategorical(src)
	if err != nil {
		return fmt.Errorf("categorical: %w", err)
	}
	k := min(c.Capacity(), h.capacity)
	c.capacity = k
	c.mergeEncoded(src, h)
	c.reduce(k)
	return nil
}

// UnmarshalBinary replaces c with the encoded state; c is unchanged on
// error.
func (c *Categorical) UnmarshalBinary(src []byte) error {
	h, err := validateCategorical(src)
	if err != nil {
		return fmt.Errorf("categorical: %w", err)
	}
	c.Reset()
	c.capacity = h.capacity
	c.mergeEncoded(src, h)
	return nil
}

// Reset empties the state and keeps its capacity and memory.
func (c *Categorical) Reset() {
	clear(c.index)
	clear(c.keys)
	c.keys = c.keys[:0]
	c.counts = c.counts[:0]
	c.other, c.bound, c.total, c.keyBytes = 0, 0, 0, 0
}

// MemSize estimates the bytes the state holds: its slices, the key bytes
// and the index at the most entries it has held (Go maps do not shrink).
func (c *Categorical) MemSize() int {
	return int(unsafe.Sizeof(*c)) +
		cap(c.keys)*catStringHeaderBytes + c.keyBytes +
		cap(c.counts)*8 + cap(c.scratch)*8 +
		c.peak*catIndexEntryBytes
}

// nthLargest returns the element that would be at position n if a were
// sorted in decreasing order, reordering a. It is a quickselect with a
// three-way partition (counts are often equal) that falls back to sorting
// when the partitions keep coming out lopsided, so it is O(len(a)) in
// practice and O(len(a) log len(a)) at worst.
func nthLargest(a []uint64, n int) uint64 {
	return nthLargestBudget(a, n, 2*bits.Len(uint(len(a)))+4)
}

func nthLargestBudget(a []uint64, n, budget int) uint64 {
	lo, hi := 0, len(a)-1
	for lo < hi {
		if budget == 0 {
			slices.SortFunc(a[lo:hi+1], func(x, y uint64) int { return cmp.Compare(y, x) })
			return a[n]
		}
		budget--
		x, y, z := a[lo], a[lo+(hi-lo)/2], a[hi]
		p := max(min(x, y), min(max(x, y), z)) // median of three
		lt, i, gt := lo, lo, hi
		for i <= gt {
			switch {
			case a[i] > p:
				a[lt], a[i] = a[i], a[lt]
				lt++
				i++
			case a[i] < p:
				a[i], a[gt] = a[gt], a[i]
				gt--
			default:
				i++
			}
		}
		switch {
		case n < lt:
			hi = lt - 1
		case n > gt:
			lo = gt + 1
		default:
			return p
		}
	}
	return a[n]
}
