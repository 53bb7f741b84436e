package sketch

import (
	"fmt"
	"math"
	"slices"
	"unsafe"
)

// DefaultCompression is the compression (δ) NewTDigest callers should use
// unless they measured a need for more: 60 to 70 centroids, under 1 KB
// encoded.
const DefaultCompression = 100

// Compression bounds. Below 10 the scale functions leave too few centroids
// to interpolate; the upper bound caps memory, as a digest holds about
// 0.65·δ centroids of 16 bytes plus a buffer of 5·δ values while adding.
const (
	tdMinCompression = 10
	tdMaxCompression = 10000
)

const (
	// tdBufferFactor sizes the unmerged buffer as a multiple of the
	// compression: large enough that sorting and folding it is amortised
	// over many Adds, small enough to stay in cache.
	tdBufferFactor = 5
	// tdMaxIntWeight is the largest integer a float64 holds exactly; weights
	// and counts at or below it are encoded as varints.
	tdMaxIntWeight = 1 << 53
	// tdCountTolerance bounds the relative difference between the stored
	// count and the sum of centroid weights: both sum the same positive
	// weights in different orders, so they may differ by rounding only.
	tdCountTolerance = 1e-6
	// tdWeightsInt and tdWeightsFloat are the weight encodings.
	tdWeightsInt   = 0
	tdWeightsFloat = 1
)

// tdScale names the scale function k(q) that bounds centroid sizes: a
// centroid spanning quantiles [q0, q1] must satisfy k(q1) - k(q0) <= 1.
type tdScale uint8

const (
	// tdScaleK1 is k1(q) = δ/(2π)·asin(2q-1): uniform relative accuracy
	// around the median, centroids of O(n/δ²) points at the extremes.
	tdScaleK1 tdScale = 1
	// tdScaleK2 is k2(q) = δ/Z(n)·log(q/(1-q)), Z(n) = 4·log(n/δ)+24 (n >= δ):
	// centroid sizes shrink in proportion to q(1-q), so the tails keep
	// singletons.
	tdScaleK2 tdScale = 2
	// tdScaleK3 is k3(q) = δ/Z(n)·log(2q) below the median and
	// -δ/Z(n)·log(2(1-q)) above, Z(n) = 4·log(n/δ)+21 (n >= δ): sizes shrink in
	// proportion to min(q, 1-q), even finer tails than k2.
	tdScaleK3 tdScale = 3
	// tdDefaultScale is the scale NewTDigest uses; docs/sketches.md ("t-digest")
	// gives the measurements that chose it.
	tdDefaultScale = tdScaleK2
)

func (s tdScale) valid() bool { return s >= tdScaleK1 && s <= tdScaleK3 }

// tdCentroid is a cluster of weight observations with the given mean.
type tdCentroid struct {
	mean, weight float64
}

// tdLess orders centroids by mean, then weight, so sorting a buffer gives
// the same sequence whatever order the observations arrived in.
func tdLess(a, b tdCentroid) bool {
	return a.mean < b.mean || (a.mean == b.mean && a.weight < b.weight)
}

func tdCompare(a, b tdCentroid) int {
	switch {
	case a.mean < b.mean:
		return -1
	case a.mean > b.mean:
		return 1
	case a.weight < b.weight:
		return -1
	case a.weight > b.weight:
		return 1
	}
	return 0
}

// TDigest is a merging t-digest (Dunning & Ertl 2019): a sorted list of
// centroids whose sizes are bounded by a scale function, so quantiles near
// 0 and 1 are estimated from small centroids and stay accurate. The exact
// count, sum, minimum and maximum are kept alongside.
//
// Add buffers observations and folds the buffer into the centroids when it
// fills; reads that need the centroids fold a copy instead, so they never
// mutate the digest. The logical state is that folded view: it is what
// AppendBinary encodes and what Merge combines, so merges depend only on
// the encoded states involved.
//
// The zero value is an empty digest that adopts the compression of the
// first state merged into it, or DefaultCompression on its first Add.
type TDigest struct {
	compression float64
	scale       tdScale

	cs []tdCentroid // folded centroids, sorted by tdLess
	// Unfolded observations in arrival order: weight-1 values apart, as
	// plain floats sort about twice as fast and take half the memory.
	buf  []float64
	wbuf []tdCentroid
	tmp  []tdCentroid // scratch: output of a fold, swapped with cs
	aux  []tdCentroid // scratch: the other side of a merge

	count, sum float64
	min, max   float64 // valid only when the digest is not empty
}

var (
	_ Sketch              = (*TDigest)(nil)
	_ NumericDistribution = (*TDigest)(nil)
)

// NewDefaultTDigest returns an empty digest with DefaultCompression.
func NewDefaultTDigest() *TDigest {
	d, _ := NewTDigest(DefaultCompression) // the default is always valid
	return d
}

// NewTDigest returns an empty digest with the given compression δ, which
// must be in [10, 10000]. A digest holds on the order of δ centroids;
// quantile error falls roughly as 1/δ.
func NewTDigest(compression float64) (*TDigest, error) {
	if !(compression >= tdMinCompression && compression <= tdMaxCompression) {
		return nil, fmt.Errorf("%w: t-digest compression %v must be in [%d, %d]",
			ErrInvalid, compression, tdMinCompression, tdMaxCompression)
	}
	return newTDigest(compression, tdDefaultScale), nil
}

func newTDigest(compression float64, scale tdScale) *TDigest {
	d := &TDigest{}
	d.setParams(compression, scale)
	return d
}

// setParams configures an uninitialised digest and sizes its centroid
// lists for the number of centroids the scale functions allow (about δ).
func (d *TDigest) setParams(compression float64, scale tdScale) {
	d.compression, d.scale = compression, scale
	n := int(compression) + 8
	if cap(d.cs) < n {
		d.cs = make([]tdCentroid, 0, n)
	}
	if cap(d.tmp) < n {
		d.tmp = make([]tdCentroid, 0, n)
	}
}

// params returns the compression and scale, with the defaults for a zero
// value.
func (d *TDigest) params() (float64, tdScale) {
	if d.compression == 0 {
		return DefaultCompression, tdDefaultScale
	}
	return d.compression, d.scale
}

func (d *TDigest) bufCap() int { return int(math.Ceil(tdBufferFactor * d.compression)) }

func (d *TDigest) buffered() int { return len(d.buf) + len(d.wbuf) }

func (d *TDigest) empty() bool { return len(d.cs) == 0 && d.buffered() == 0 }

// Format returns FormatTDigest.
func (d *TDigest) Format() Format { return FormatTDigest }

// Add records one observation of weight 1. NaN and ±Inf are refused with
// ErrInvalid.
func (d *TDigest) Add(x float64) error { return d.AddWeighted(x, 1) }

// AddWeighted records x with weight w, as if x had been added w times:
// the interpolation treats weights as repeat counts. x must be finite and
// w finite and positive, else ErrInvalid.
func (d *TDigest) AddWeighted(x, w float64) error {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return fmt.Errorf("%w: t-digest observation %v is not finite", ErrInvalid, x)
	}
	if !(w > 0) || math.IsInf(w, 0) {
		return fmt.Errorf("%w: t-digest weight %v must be finite and positive", ErrInvalid, w)
	}
	if math.IsInf(d.count+w, 0) {
		return fmt.Errorf("%w: t-digest total weight %v + %v overflows", ErrInvalid, d.count, w)
	}
	if d.compression == 0 {
		d.setParams(DefaultCompression, tdDefaultScale)
	}
	if d.empty() {
		d.min, d.max = x, x
	} else {
		d.min, d.max = min(d.min, x), max(d.max, x)
	}
	if w == 1 {
		d.buf = append(d.buf, x)
	} else {
		d.wbuf = append(d.wbuf, tdCentroid{x, w})
	}
	d.count += w
	d.sum += x * w
	if d.buffered() >= d.bufCap() {
		d.Compress()
	}
	return nil
}

// Compress folds the buffered observations into the centroids. It does not
// change the logical state (what reads return and AppendBinary encodes);
// call it before sharing a digest with readers to spare each read the fold
// of a temporary copy.
func (d *TDigest) Compress() {
	if d.buffered() == 0 {
		return
	}
	tdSortBuffers(d.buf, d.wbuf)
	d.tmp = tdFold(d.tmp[:0], d.cs, d.wbuf, d.buf, d.compression, d.scale)
	d.cs, d.tmp = d.tmp, d.cs
	d.buf, d.wbuf = d.buf[:0], d.wbuf[:0]
}

func tdSortBuffers(xs []float64, ws []tdCentroid) {
	slices.Sort(xs)
	slices.SortFunc(ws, tdCompare)
}

// view returns the folded centroids without mutating d: the centroids
// themselves when nothing is buffered, else a freshly allocated fold.
func (d *TDigest) view() []tdCentroid {
	if d.buffered() == 0 {
		return d.cs
	}
	xs, ws := slices.Clone(d.buf), slices.Clone(d.wbuf)
	tdSortBuffers(xs, ws)
	dst := make([]tdCentroid, 0, len(d.cs)+len(xs)+len(ws))
	return tdFold(dst, d.cs, ws, xs, d.compression, d.scale)
}

// Merge folds the state of o into d using d's compression and scale (o's
// if d is an uninitialised zero value). o is not modified. The result
// depends only on the logical states of d and o; it is exactly
// commutative for digests with equal compression and scale but, as for
// every t-digest, only approximately associative.
func (d *TDigest) Merge(o *TDigest) {
	if o == nil || o.compression == 0 {
		return
	}
	if d.compression == 0 {
		d.setParams(o.compression, o.scale)
	}
	if o.empty() {
		return
	}
	// Read o's scalars first: o may be d.
	oc, os, omin, omax := o.count, o.sum, o.min, o.max
	d.Compress()
	if o.buffered() == 0 {
		d.mergeSorted(o.cs, oc, os, omin, omax)
		return
	}
	// Fold o's view into aux without touching o: its buffers are copied
	// to d's (now empty) ones and sorted there.
	d.buf, d.wbuf = append(d.buf[:0], o.buf...), append(d.wbuf[:0], o.wbuf...)
	tdSortBuffers(d.buf, d.wbuf)
	d.aux = tdFold(d.aux[:0], o.cs, d.wbuf, d.buf, o.compression, o.scale)
	d.buf, d.wbuf = d.buf[:0], d.wbuf[:0]
	d.mergeSorted(d.aux, oc, os, omin, omax)
}

// mergeSorted folds a sorted centroid list with the given scalars into d,
// whose buffer must be empty.
func (d *TDigest) mergeSorted(other []tdCentroid, count, sum, lo, hi float64) {
	if len(d.cs) == 0 {
		d.min, d.max = lo, hi
	} else {
		d.min, d.max = min(d.min, lo), max(d.max, hi)
	}
	d.tmp = tdFold(d.tmp[:0], d.cs, other, nil, d.compression, d.scale)
	d.cs, d.tmp = d.tmp, d.cs
	d.count += count
	d.sum += sum
}

// tdFold merges the sorted runs a and b and the sorted weight-1 values xs
// into dst (which must not alias them), greedily combining neighbours
// while the combined centroid stays within one unit of the scale function:
// the merge pass of Dunning & Ertl's merging digest. It reads only its
// arguments. Equal items are taken from a, then b, then xs, though the
// order of identical items cannot show in the result.
func tdFold(dst, a, b []tdCentroid, xs []float64, compression float64, scale tdScale) []tdCentroid {
	total := float64(len(xs))
	for _, c := range a {
		total += c.weight
	}
	for _, c := range b {
		total += c.weight
	}
	if total == 0 {
		return dst
	}
	lim := newTDLimit(scale, compression, total)
	i, j, k := 0, 0, 0
	var cur tdCentroid
	started := false
	before, limit := 0.0, 0.0 // weight already emitted; cur's bound
	for {
		// Take the smallest head; the conditions are ordered so that a
		// head is taken only when no other is strictly smaller.
		var x tdCentroid
		switch {
		case i < len(a) && (j == len(b) || !tdLess(b[j], a[i])) &&
			(k == len(xs) || !tdLess(tdCentroid{xs[k], 1}, a[i])):
			x = a[i]
			i++
		case j < len(b) && (k == len(xs) || !tdLess(tdCentroid{xs[k], 1}, b[j])):
			x = b[j]
			j++
		case k < len(xs):
			x = tdCentroid{xs[k], 1}
			k++
		default:
			return append(dst, cur)
		}
		switch {
		case !started:
			cur, started = x, true
			limit = total * lim.next(0)
		case before+cur.weight+x.weight <= limit:
			cur = tdCombine(cur, x)
		default:
			dst = append(dst, cur)
			before += cur.weight
			cur = x
			limit = total * lim.next(before/total)
		}
	}
}

// tdCombine merges x into c, where x.mean >= c.mean. The mean is clamped
// to [c.mean, x.mean] so rounding can never unsort the centroids.
func tdCombine(c, x tdCentroid) tdCentroid {
	w := c.weight + x.weight
	f := x.weight / w
	d := x.mean - c.mean
	m := c.mean + d*f
	if math.IsInf(d, 0) {
		// Opposite-signed means near the float64 range: avoid the
		// overflowing difference.
		m = c.mean*(1-f) + x.mean*f
	}
	return tdCentroid{mean: min(max(m, c.mean), x.mean), weight: w}
}

// tdLimit gives, for a centroid starting at quantile q0, the largest q1
// with k(q1) - k(q0) <= 1. For k2 and k3 the step is a multiplication by
// e^(Z/δ) in the odds or tail mass, so no logarithm is needed per centroid.
type tdLimit struct {
	scale tdScale
	step  float64 // k1: 2π/δ in asin space; k2, k3: e^(Z(n)/δ)
}

func newTDLimit(scale tdScale, compression, total float64) tdLimit {
	// Z(n) uses max(n, δ): for fewer points log(n/δ) would shrink Z, and
	// with it the room for merging, towards zero and below; such small
	// digests are cheap anyway.
	logn := math.Log(max(total, compression) / compression)
	switch scale {
	case tdScaleK1:
		return tdLimit{scale, 2 * math.Pi / compression}
	case tdScaleK3:
		return tdLimit{scale, math.Exp((4*logn + 21) / compression)}
	}
	return tdLimit{tdScaleK2, math.Exp((4*logn + 24) / compression)}
}

func (l tdLimit) next(q0 float64) float64 {
	q0 = min(max(q0, 0), 1)
	switch l.scale {
	case tdScaleK1:
		a := math.Asin(2*q0-1) + l.step
		if a >= math.Pi/2 {
			return 1
		}
		return (1 + math.Sin(a)) / 2
	case tdScaleK3:
		if q0 <= 0.5 {
			if q := q0 * l.step; q <= 0.5 {
				return q
			}
			return 1 - 1/(4*q0*l.step)
		}
		return 1 - (1-q0)/l.step
	}
	return q0 * l.step / (1 - q0 + q0*l.step)
}

// Count returns the total weight added, exact for integer weights below 2^53.
func (d *TDigest) Count() float64 { return d.count }

// Sum returns the weighted sum of the observations (0 when empty). It may
// overflow to ±Inf, and to NaN if it overflowed both ways.
func (d *TDigest) Sum() float64 { return d.sum }

// Min returns the smallest observation, NaN when empty.
func (d *TDigest) Min() float64 {
	if d.empty() {
		return math.NaN()
	}
	return d.min
}

// Max returns the largest observation, NaN when empty.
func (d *TDigest) Max() float64 {
	if d.empty() {
		return math.NaN()
	}
	return d.max
}

// Mean returns Sum/Count, NaN when empty.
func (d *TDigest) Mean() float64 {
	if d.empty() {
		return math.NaN()
	}
	return d.sum / d.count
}

// tdKnots describes the piecewise-linear quantile function of a centroid
// list. Observation i (0-based, unit weights) sits at position i+0.5 of
// the cumulative weight; a centroid of weight w starting at W stands at
// its centre W+w/2, the minimum at lo = 0.5 and the maximum at hi = n-0.5
// (clamped to the extreme centroid centres for weights below 1). The
// function is linear between these knots. With all-singleton centroids it
// is exactly the linearly interpolated order statistic at rank q·(n-1)
// (Hyndman & Fan type 7, numpy's default).
type tdKnots struct {
	cs         []tdCentroid
	total      float64
	lo, hi     float64 // positions of the minimum and maximum
	vmin, vmax float64
}

func (d *TDigest) knots() (tdKnots, bool) {
	if d.empty() {
		return tdKnots{}, false
	}
	cs := d.view()
	k := tdKnots{cs: cs, vmin: d.min, vmax: d.max}
	for _, c := range cs {
		k.total += c.weight
	}
	k.lo = min(0.5, cs[0].weight/2)
	k.hi = max(k.total-0.5, k.total-cs[len(cs)-1].weight/2)
	return k, true
}

// Quantile returns the estimated value at rank q in [0, 1]: the minimum at
// 0, the maximum at 1, and in between the linear interpolation between
// centroid means at their half-weight positions described in
// docs/sketches.md ("t-digest"). NaN when empty or q is outside [0, 1].
func (d *TDigest) Quantile(q float64) float64 {
	if !(q >= 0 && q <= 1) {
		return math.NaN()
	}
	k, ok := d.knots()
	if !ok {
		return math.NaN()
	}
	switch {
	case q == 0:
		return k.vmin
	case q == 1:
		return k.vmax
	case k.hi <= k.lo:
		// One centroid of total weight at most 1: no positions to spread
		// over, so spread over the value range.
		return tdLerp(k.vmin, k.vmax, q)
	}
	t := k.lo + q*(k.hi-k.lo)
	p0, v0 := k.lo, k.vmin
	cum := 0.0
	for _, c := range k.cs {
		p := cum + c.weight/2
		if t <= p {
			return tdSegment(t, p0, v0, p, c.mean)
		}
		p0, v0 = p, c.mean
		cum += c.weight
	}
	return tdSegment(t, p0, v0, k.hi, k.vmax)
}

// tdSegment evaluates at position t the line from (p0, v0) to (p1, v1).
func tdSegment(t, p0, v0, p1, v1 float64) float64 {
	if p1 <= p0 {
		return v1
	}
	return tdLerp(v0, v1, (t-p0)/(p1-p0))
}

// tdLerp returns v0 + f·(v1-v0) for v0 <= v1, f in [0, 1], without
// overflowing and within [v0, v1].
func tdLerp(v0, v1, f float64) float64 {
	d := v1 - v0
	v := v0 + f*d
	if math.IsInf(d, 0) {
		v = v0*(1-f) + v1*f
	}
	return min(max(v, v0), v1)
}

// CDF returns the estimated fraction of the weight at or below x: 0 below
// the minimum, 1 from the maximum on, and in between the inverse of
// Quantile, so it is linear between the points AppendBreakpoints returns.
// 0 when empty; NaN for a NaN x.
func (d *TDigest) CDF(x float64) float64 {
	if math.IsNaN(x) {
		return math.NaN()
	}
	k, ok := d.knots()
	if !ok || x < k.vmin {
		return 0
	}
	if x >= k.vmax {
		return 1
	}
	if k.hi <= k.lo {
		return tdFraction(x, k.vmin, k.vmax)
	}
	// Walk the knots to the first whose value exceeds x; on a run of
	// equal values this lands after the run, so all weight at x counts.
	p0, v0 := k.lo, k.vmin
	cum := 0.0
	for _, c := range k.cs {
		p := cum + c.weight/2
		if x < c.mean {
			return tdPosFraction(k, p0+tdFraction(x, v0, c.mean)*(p-p0))
		}
		p0, v0 = p, c.mean
		cum += c.weight
	}
	return tdPosFraction(k, p0+tdFraction(x, v0, k.vmax)*(k.hi-p0))
}

func tdPosFraction(k tdKnots, t float64) float64 {
	return min(max((t-k.lo)/(k.hi-k.lo), 0), 1)
}

// tdFraction returns (x-v0)/(v1-v0) in [0, 1] for v0 <= x < v1, without
// overflowing.
func tdFraction(x, v0, v1 float64) float64 {
	f := (x - v0) / (v1 - v0)
	if math.IsInf(v1-v0, 0) || math.IsInf(x-v0, 0) {
		f = (x/2 - v0/2) / (v1/2 - v0/2)
	}
	if math.IsNaN(f) {
		return 0
	}
	return min(max(f, 0), 1)
}

// AppendBreakpoints appends the minimum, the distinct centroid means and
// the maximum in increasing order: CDF is linear between consecutive ones.
// Nothing is appended for an empty digest.
func (d *TDigest) AppendBreakpoints(dst []float64) []float64 {
	k, ok := d.knots()
	if !ok {
		return dst
	}
	dst = append(dst, k.vmin)
	last := k.vmin
	for _, c := range k.cs {
		if c.mean > last {
			dst = append(dst, c.mean)
			last = c.mean
		}
	}
	if k.vmax > last {
		dst = append(dst, k.vmax)
	}
	return dst
}

// Reset empties the digest, keeping its compression and memory.
func (d *TDigest) Reset() {
	d.cs, d.buf, d.wbuf, d.tmp, d.aux = d.cs[:0], d.buf[:0], d.wbuf[:0], d.tmp[:0], d.aux[:0]
	d.count, d.sum, d.min, d.max = 0, 0, 0, 0
}

// MemSize estimates the bytes the digest holds, including spare capacity.
func (d *TDigest) MemSize() int {
	n := cap(d.cs) + cap(d.wbuf) + cap(d.tmp) + cap(d.aux)
	return int(unsafe.Sizeof(*d)) + n*int(unsafe.Sizeof(tdCentroid{})) + cap(d.buf)*8
}

// tdIntWeights reports whether every weight and the count are integers
// that varints carry exactly, the canonical condition for the compact
// weight encoding.
func tdIntWeights(cs []tdCentroid, count float64) bool {
	sum := 0.0
	for _, c := range cs {
		if c.weight != math.Trunc(c.weight) || c.weight > tdMaxIntWeight {
			return false
		}
		sum += c.weight
	}
	return sum == count && sum <= tdMaxIntWeight
}

// AppendBinary appends the encoding of the logical state (buffered
// observations folded into a copy) to dst. The layout is in
// docs/format.md ("t-digest").
func (d *TDigest) AppendBinary(dst []byte) []byte {
	compression, scale := d.params()
	cs := d.view()
	mode := byte(tdWeightsFloat)
	if tdIntWeights(cs, d.count) {
		mode = tdWeightsInt
	}
	dst = append(dst, byte(FormatTDigest), byte(scale), mode)
	dst = appendFloat64(dst, compression)
	dst = appendUvarint(dst, uint64(len(cs)))
	if len(cs) == 0 {
		return dst
	}
	dst = appendFloat64(dst, d.min)
	dst = appendFloat64(dst, d.max)
	dst = appendFloat64(dst, d.sum)
	if mode == tdWeightsFloat {
		dst = appendFloat64(dst, d.count)
	}
	for _, c := range cs {
		dst = appendFloat64(dst, c.mean)
		if mode == tdWeightsInt {
			dst = appendUvarint(dst, uint64(c.weight))
		} else {
			dst = appendFloat64(dst, c.weight)
		}
	}
	return dst
}

// tdHeader is a validated encoding; body is the offset of the first
// centroid.
type tdHeader struct {
	compression          float64
	scale                tdScale
	mode                 byte
	n, body              int
	min, max, sum, count float64
}

// tdParse validates a whole encoding without allocating.
func tdParse(src []byte) (tdHeader, error) {
	var h tdHeader
	r := newReader(src)
	r.format(FormatTDigest)
	h.scale = tdScale(r.byte("scale"))
	h.mode = r.byte("weight encoding")
	h.compression = r.float64("compression")
	if r.err() != nil {
		return h, r.err()
	}
	if !h.scale.valid() {
		r.invalid("t-digest scale function id %d is unknown", h.scale)
	}
	if h.mode != tdWeightsInt && h.mode != tdWeightsFloat {
		r.invalid("t-digest weight encoding %d is unknown", h.mode)
	}
	if !(h.compression >= tdMinCompression && h.compression <= tdMaxCompression) {
		r.invalid("t-digest compression %v outside [%d, %d]", h.compression, tdMinCompression, tdMaxCompression)
	}
	minBytes := 9
	if h.mode == tdWeightsFloat {
		minBytes = 16
	}
	h.n = r.count("t-digest centroid count", minBytes)
	if r.err() != nil {
		return h, r.err()
	}
	if h.n == 0 {
		if h.mode != tdWeightsInt {
			r.invalid("empty t-digest must use weight encoding %d", tdWeightsInt)
		}
		return h, r.done()
	}
	h.min = r.float64("min")
	h.max = r.float64("max")
	h.sum = r.float64("sum")
	if h.mode == tdWeightsFloat {
		h.count = r.float64("count")
	}
	h.body = r.off
	if r.err() != nil {
		return h, r.err()
	}
	if math.IsNaN(h.min) || math.IsInf(h.min, 0) || math.IsNaN(h.max) || math.IsInf(h.max, 0) || h.min > h.max {
		r.invalid("t-digest min %v and max %v must be finite with min <= max", h.min, h.max)
	}
	prev := h.min
	sum := 0.0
	allInt := true
	for i := 0; i < h.n && r.err() == nil; i++ {
		m := r.float64("centroid mean")
		var w float64
		if h.mode == tdWeightsInt {
			u := r.uvarint("centroid weight")
			if u == 0 || u > tdMaxIntWeight {
				r.invalid("t-digest centroid %d weight %d outside [1, 2^53]", i, u)
			}
			w = float64(u)
		} else {
			w = r.float64("centroid weight")
			if !(w > 0) || math.IsInf(w, 0) {
				r.invalid("t-digest centroid %d weight %v must be finite and positive", i, w)
			}
			allInt = allInt && w == math.Trunc(w) && w <= tdMaxIntWeight
		}
		if math.IsNaN(m) || m < prev || m > h.max {
			r.invalid("t-digest centroid %d mean %v must be in [%v, %v] and sorted", i, m, prev, h.max)
		}
		prev = m
		sum += w
	}
	if r.err() != nil {
		return h, r.err()
	}
	if h.mode == tdWeightsInt {
		if sum > tdMaxIntWeight {
			r.invalid("t-digest integer weights sum to %v, above 2^53", sum)
		}
		h.count = sum
	} else {
		switch {
		case !(h.count > 0) || math.IsInf(h.count, 0):
			r.invalid("t-digest count %v must be finite and positive", h.count)
		case math.Abs(h.count-sum) > tdCountTolerance*h.count:
			r.invalid("t-digest count %v differs from the centroid weights' sum %v", h.count, sum)
		case allInt && sum == h.count && sum <= tdMaxIntWeight:
			r.invalid("t-digest integer weights in float encoding (not canonical)")
		}
	}
	return h, r.done()
}

// tdCentroids decodes the n centroids of a validated encoding into dst.
func tdCentroids(dst []tdCentroid, src []byte, h tdHeader) []tdCentroid {
	r := reader{b: src, off: h.body}
	dst = slices.Grow(dst[:0], h.n)
	for range h.n {
		c := tdCentroid{mean: r.float64("mean")}
		if h.mode == tdWeightsInt {
			c.weight = float64(r.uvarint("weight"))
		} else {
			c.weight = r.float64("weight")
		}
		dst = append(dst, c)
	}
	return dst
}

// DecodeAndMerge merges an encoded digest into d, exactly as Merge with the
// decoded digest would. The whole input is validated first; on error d is
// unchanged and the error wraps ErrCorrupt or ErrFormat.
func (d *TDigest) DecodeAndMerge(src []byte) error {
	h, err := tdParse(src)
	if err != nil {
		return err
	}
	if d.compression == 0 {
		d.setParams(h.compression, h.scale)
	}
	if h.n == 0 {
		return nil
	}
	d.Compress()
	d.aux = tdCentroids(d.aux, src, h)
	d.mergeSorted(d.aux, h.count, h.sum, h.min, h.max)
	return nil
}

// UnmarshalBinary replaces d, compression included, with an encoded
// digest. On error d is unchanged.
func (d *TDigest) UnmarshalBinary(src []byte) error {
	h, err := tdParse(src)
	if err != nil {
		return err
	}
	d.Reset()
	d.setParams(h.compression, h.scale)
	if h.n == 0 {
		return nil
	}
	d.cs = tdCentroids(d.cs, src, h)
	d.count, d.sum, d.min, d.max = h.count, h.sum, h.min, h.max
	return nil
}
