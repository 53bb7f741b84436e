package sketch

import (
	"fmt"
	"math"
	"unsafe"
)

const (
	// DefaultScoreBins is the bin count of NewDefaultScoreHistogram: fine
	// enough that binning moved the AUC by less than 0.001 in every
	// measured configuration expecting 50 examples of each class
	// (docs/sketches.md),
	// while a dense state stays at 16 KB in memory.
	DefaultScoreBins = 1000
	// MaxScoreBins bounds the bin count. A decoder allocates the dense bins
	// the header asks for, so this also bounds what a few hostile bytes can
	// make it allocate (16 bytes a bin: 1 MiB).
	MaxScoreBins = 1 << 16
)

// logLossEps is the clipping scikit-learn's log_loss used by default before
// version 1.2; without it one confident mistake makes the loss infinite.
const logLossEps = 1e-15

// Class indices of the per-class arrays and of the encoding.
const (
	classNeg = 0
	classPos = 1
)

// The exact per-class sums, in encoding order.
const (
	sumScore   = iota // Σ s
	sumSqErr          // Σ (s − y)²
	sumLogLoss        // Σ −ln p(true class), p clipped
	numSums
)

// numSumFields is the number of float64 fields behind the presence mask:
// two classes × numSums sums × (hi, lo).
const numSumFields = 2 * numSums * 2

// ScoreHistogram is the state of a binary classifier's scores split by true
// class: for each class a histogram of the scores over Bins() equal-width
// bins of [0, 1], from which the threshold-free ranking metrics (ROC AUC,
// average precision) and calibration (ECE) are finished, plus exact sums
// for the metrics that need no binning (Brier score, log loss, mean score).
//
// Counts are signed so that a late label correction can be recorded as a
// delta (AddN with n = -1 on the old class, +1 on the new one) in whatever
// time bucket it arrives. A state with a negative bin is such a delta: it
// merges normally, but its metrics are NaN until merged with the
// observations it corrects.
//
// The zero value is an empty histogram without a bin count: it takes the
// bin count of the first state merged or decoded into it, or
// DefaultScoreBins on the first Add.
type ScoreHistogram struct {
	bins int
	// cnt holds the negatives' bins then the positives' bins, one backing
	// array so that Reset and decoding reuse a single allocation.
	cnt      []int64
	total    [2]int64 // Σ of each class's bins
	nonzero  [2]int   // bins of each class with a non-zero count
	negative int      // bins of either class with a negative count
	// mass is Σ |count| over all bins. Keeping it ≤ MaxInt64 proves that no
	// bin, class total or Count can overflow, with one O(1) check per Add
	// or Merge instead of a pass over the bins.
	mass int64
	// sums are double-double so that a retraction (a term added and later
	// subtracted) cancels to about 2⁻¹⁰⁴ of the largest partial sum rather
	// than float64's 2⁻⁵³, which could swamp a small remainder.
	sums [2][numSums]dd
}

var _ Sketch = (*ScoreHistogram)(nil)

// NewScoreHistogram returns an empty histogram with the given number of
// bins, between 1 and MaxScoreBins.
func NewScoreHistogram(bins int) (*ScoreHistogram, error) {
	if bins < 1 || bins > MaxScoreBins {
		return nil, fmt.Errorf("%w: score histogram bin count %d must be in [1, %d]", ErrInvalid, bins, MaxScoreBins)
	}
	h := &ScoreHistogram{}
	h.configure(bins)
	return h, nil
}

// NewDefaultScoreHistogram returns an empty histogram with DefaultScoreBins
// bins.
func NewDefaultScoreHistogram() *ScoreHistogram {
	h := &ScoreHistogram{}
	h.configure(DefaultScoreBins)
	return h
}

// configure empties h and gives it b bins, reusing memory where it can.
func (h *ScoreHistogram) configure(b int) {
	if cap(h.cnt) >= 2*b {
		h.cnt = h.cnt[:2*b]
	} else {
		h.cnt = make([]int64, 2*b)
	}
	h.bins = b
	h.Reset()
}

// Bins returns the number of bins, 0 for a zero value not yet given one.
func (h *ScoreHistogram) Bins() int { return h.bins }

func (h *ScoreHistogram) class(c int) []int64 { return h.cnt[c*h.bins : (c+1)*h.bins] }

func classOf(positive bool) int {
	if positive {
		return classPos
	}
	return classNeg
}

// binOf maps a score in [0, 1] to its bin. Scores equal to 1 belong to the
// last bin so that the top bin is closed like the range itself.
func (h *ScoreHistogram) binOf(s float64) int {
	j := int(s * float64(h.bins))
	if j >= h.bins {
		j = h.bins - 1
	}
	return j
}

// Add records one scored example; positive is its true class.
func (h *ScoreHistogram) Add(score float64, positive bool) error {
	return h.AddN(score, positive, 1)
}

// AddN records n examples with the same score and class. A negative n
// retracts examples recorded earlier (possibly in another state that this
// one will be merged with): to move an example to the other class after a
// label correction, AddN(s, old, -1) and AddN(s, new, 1). A retraction must
// repeat the score it retracts; the bins cannot tell scores of one bin
// apart, but the exact sums can. The sums are exact to double-double for
// |n| ≤ 2⁵³, where float64(n) is exact. The state is unchanged on error.
func (h *ScoreHistogram) AddN(score float64, positive bool, n int64) error {
	if !(score >= 0 && score <= 1) {
		return fmt.Errorf("%w: score %v must be in [0, 1]", ErrInvalid, score)
	}
	if n == 0 {
		return nil
	}
	if n == math.MinInt64 || abs64(n) > math.MaxInt64-h.mass {
		return fmt.Errorf("%w: adding %d examples would overflow the score histogram's int64 counts", ErrInvalid, n)
	}
	if score == 0 {
		score = 0 // -0 would otherwise reach the sums and break canonical encoding
	}
	c := classOf(positive)
	terms := scoreTerms(score, c)
	next := h.sums[c]
	for k := range next {
		next[k].addProduct(terms[k], float64(n))
		if !next[k].finite() {
			return fmt.Errorf("%w: score histogram sum %d of class %d would overflow", ErrInvalid, k, c)
		}
	}
	if h.bins == 0 {
		h.configure(DefaultScoreBins)
	}
	h.bump(c, h.binOf(score), n)
	h.sums[c] = next
	return nil
}

// scoreTerms returns one example's contribution to each sum of class c.
// The products are rounded explicitly so that the compiler cannot fuse them
// into the error-free additions of dd, whose error terms assume rounded
// inputs.
func scoreTerms(s float64, c int) [numSums]float64 {
	p := min(max(s, logLossEps), 1-logLossEps)
	if c == classPos {
		d := 1 - s
		return [numSums]float64{s, float64(d * d), -math.Log(p)}
	}
	// Log1p keeps −ln(1 − p) accurate for small p, where 1 − p rounds.
	return [numSums]float64{s, float64(s * s), -math.Log1p(-p)}
}

// bump adds n ≠ 0 to bin j of class c and keeps the derived counters. The
// caller has checked that mass cannot overflow.
func (h *ScoreHistogram) bump(c, j int, n int64) {
	i := c*h.bins + j
	old := h.cnt[i]
	v := old + n
	h.cnt[i] = v
	h.total[c] += n
	h.mass += abs64(v) - abs64(old)
	if old == 0 {
		h.nonzero[c]++
	} else if v == 0 {
		h.nonzero[c]--
	}
	if old < 0 {
		h.negative--
	}
	if v < 0 {
		h.negative++
	}
}

// Merge adds the examples of o to h. States with different bin counts are
// incompatible (a zero value adopts the other's); so are states whose
// combined counts would overflow int64. h is unchanged on error.
func (h *ScoreHistogram) Merge(o *ScoreHistogram) error {
	if o == nil || o.bins == 0 {
		return nil
	}
	next, err := h.mergeCheck(o.bins, o.mass, &o.sums)
	if err != nil {
		return err
	}
	if h.bins == 0 {
		h.configure(o.bins)
	}
	// One branch-free pass adds the bins and recounts the derived counters
	// from scratch, which is cheaper than tracking each bin's transitions
	// as bump does. Reading src[j] before writing dst[j] keeps h.Merge(h)
	// correct.
	h.mass, h.negative = 0, 0
	for c := range 2 {
		dst, src := h.class(c), o.cnt[c*o.bins:(c+1)*o.bins]
		var total, mass int64
		var nonzero, negative int
		for j, n := range src {
			v := dst[j] + n
			dst[j] = v
			total += v
			mass += abs64(v)
			nonzero += b2i(v != 0)
			negative += b2i(v < 0)
		}
		h.total[c], h.nonzero[c] = total, nonzero
		h.mass += mass
		h.negative += negative
	}
	h.sums = next
	return nil
}

// mergeCheck reports whether a state with the given bin count, mass and
// sums can be merged into h, and returns the merged sums.
func (h *ScoreHistogram) mergeCheck(bins int, mass int64, sums *[2][numSums]dd) ([2][numSums]dd, error) {
	next := h.sums
	if h.bins != 0 && h.bins != bins {
		return next, fmt.Errorf("%w: score histograms with %d and %d bins", ErrIncompatible, h.bins, bins)
	}
	if mass > math.MaxInt64-h.mass {
		return next, fmt.Errorf("%w: merged score histogram counts would overflow int64", ErrIncompatible)
	}
	for c := range next {
		for k := range next[c] {
			next[c][k].add(sums[c][k])
			if !next[c][k].finite() {
				return next, fmt.Errorf("%w: merged score histogram sum %d of class %d would overflow", ErrIncompatible, k, c)
			}
		}
	}
	return next, nil
}

// Reset empties the histogram, keeping its bin count and memory.
func (h *ScoreHistogram) Reset() {
	clear(h.cnt)
	h.total = [2]int64{}
	h.nonzero = [2]int{}
	h.negative = 0
	h.mass = 0
	h.sums = [2][numSums]dd{}
}

// MemSize estimates the bytes the state holds in memory.
func (h *ScoreHistogram) MemSize() int {
	return int(unsafe.Sizeof(*h)) + 8*cap(h.cnt)
}

// Format returns FormatScoreHistogram.
func (h *ScoreHistogram) Format() Format { return FormatScoreHistogram }

// sumField returns field i of the encoding's sum fields: class, then sum,
// then hi before lo.
func sumField(s *[2][numSums]dd, i int) *float64 {
	d := &s[i/(2*numSums)][(i/2)%numSums]
	if i%2 == 0 {
		return &d.hi
	}
	return &d.lo
}

// AppendBinary appends the encoding documented in docs/format.md: format
// id, bin count, the non-zero sum fields behind a presence mask, then each
// class's non-zero bins as (index gap, zig-zag count) pairs.
func (h *ScoreHistogram) AppendBinary(dst []byte) []byte {
	dst = append(dst, byte(FormatScoreHistogram))
	dst = appendUvarint(dst, uint64(h.bins))
	var mask uint64
	for i := range numSumFields {
		if *sumField(&h.sums, i) != 0 {
			mask |= 1 << i
		}
	}
	dst = appendUvarint(dst, mask)
	for i := range numSumFields {
		if mask&(1<<i) != 0 {
			dst = appendFloat64(dst, *sumField(&h.sums, i))
		}
	}
	for c := range 2 {
		dst = appendUvarint(dst, uint64(h.nonzero[c]))
		next := 0
		for j, n := range h.class(c) {
			if n != 0 {
				dst = appendUvarint(dst, uint64(j-next))
				dst = appendVarint(dst, n)
				next = j + 1
			}
		}
	}
	return dst
}

// scoreHistHeader is what parseScoreHistogram learns before the bins are
// applied.
type scoreHistHeader struct {
	bins    int
	sums    [2][numSums]dd
	mass    int64
	binsOff int // offset of the first class's bin list
}

// parseScoreHistogram validates the whole encoding without building a
// state, so that callers can refuse it before changing anything.
func parseScoreHistogram(src []byte) (scoreHistHeader, error) {
	var hd scoreHistHeader
	r := newReader(src)
	r.format(FormatScoreHistogram)
	b := r.uvarint("bin count")
	if b > MaxScoreBins {
		r.invalid("bin count %d exceeds %d", b, MaxScoreBins)
	}
	hd.bins = int(b)
	mask := r.uvarint("sum mask")
	if mask >= 1<<numSumFields {
		r.invalid("sum mask %#x has bits beyond the %d sum fields", mask, numSumFields)
	}
	for i := range numSumFields {
		if mask&(1<<i) == 0 {
			continue
		}
		v := r.float64("sum field")
		// Absent means zero, so a present zero (of either sign) is a
		// second encoding of the same state.
		if r.err() == nil && (v == 0 || math.IsNaN(v) || math.IsInf(v, 0)) {
			r.invalid("sum field %d is %v; present fields must be finite and non-zero", i, v)
		}
		*sumField(&hd.sums, i) = v
	}
	for c := range hd.sums {
		for k, d := range hd.sums[c] {
			// A normalised pair has hi = round(hi + lo); any other pair
			// is a second encoding of the same value.
			if d.hi+d.lo != d.hi {
				r.invalid("sum %d of class %d is not a normalised double-double (%v, %v)", k, c, d.hi, d.lo)
			}
		}
	}
	hd.binsOff = r.off
	hd.mass = walkScoreBins(&r, hd.bins, nil)
	return hd, r.done()
}

// walkScoreBins reads both classes' bin lists, validating them, and adds
// them to dst unless dst is nil. It returns Σ|count|.
func walkScoreBins(r *reader, bins int, dst *ScoreHistogram) (mass int64) {
	for c := range 2 {
		k := r.count("bin entries", 2)
		if k > bins {
			r.invalid("%d bin entries for %d bins", k, bins)
		}
		next := uint64(0) // lowest index the next entry may take
		for range k {
			gap := r.uvarint("bin index gap")
			n := r.varint("bin count")
			if r.err() != nil {
				return mass
			}
			if gap >= uint64(bins)-next {
				r.invalid("class %d bin index %d+%d is beyond %d bins", c, next, gap, bins)
				return mass
			}
			if n == 0 || n == math.MinInt64 {
				r.invalid("class %d bin %d has count %d", c, next+gap, n)
				return mass
			}
			if abs64(n) > math.MaxInt64-mass {
				r.invalid("total count overflows int64")
				return mass
			}
			mass += abs64(n)
			j := next + gap
			if dst != nil {
				dst.bump(c, int(j), n)
			}
			next = j + 1
		}
	}
	return mass
}

// DecodeAndMerge merges the encoded state src into h. Bad bytes give
// ErrCorrupt or ErrFormat; a valid state that Merge would refuse gives
// Merge's ErrIncompatible. h is unchanged on error.
func (h *ScoreHistogram) DecodeAndMerge(src []byte) error {
	hd, err := parseScoreHistogram(src)
	if err != nil {
		return err
	}
	if hd.bins == 0 {
		return nil
	}
	next, err := h.mergeCheck(hd.bins, hd.mass, &hd.sums)
	if err != nil {
		return err
	}
	if h.bins == 0 {
		h.configure(hd.bins)
	}
	r := newReader(src)
	r.off = hd.binsOff
	walkScoreBins(&r, hd.bins, h)
	h.sums = next
	return nil
}

// UnmarshalBinary replaces h with the encoded state src. h is unchanged on
// error.
func (h *ScoreHistogram) UnmarshalBinary(src []byte) error {
	hd, err := parseScoreHistogram(src)
	if err != nil {
		return err
	}
	h.configure(hd.bins)
	r := newReader(src)
	r.off = hd.binsOff
	walkScoreBins(&r, hd.bins, h)
	h.sums = hd.sums
	return nil
}

// Count returns the net number of examples.
func (h *ScoreHistogram) Count() int64 { return h.total[classNeg] + h.total[classPos] }

// Positives returns the net number of examples whose true class is positive.
func (h *ScoreHistogram) Positives() int64 { return h.total[classPos] }

// Negatives returns the net number of examples whose true class is negative.
func (h *ScoreHistogram) Negatives() int64 { return h.total[classNeg] }

// valid reports whether the state is a multiset of examples (no pending
// retraction) with at least one example.
func (h *ScoreHistogram) valid() bool { return h.negative == 0 && h.Count() > 0 }

// ranked reports whether both classes are present, which the ranking
// metrics need.
func (h *ScoreHistogram) ranked() bool {
	return h.negative == 0 && h.total[classNeg] > 0 && h.total[classPos] > 0
}

// ROCAUC returns the area under the ROC curve: the probability that a
// random positive scores above a random negative, counting pairs in the
// same bin as 1/2. That equals the trapezoid rule over the ROC points at
// the bin edges. NaN unless both classes are present.
func (h *ScoreHistogram) ROCAUC() float64 {
	if !h.ranked() {
		return math.NaN()
	}
	neg, pos := h.class(classNeg), h.class(classPos)
	var below, pairs float64
	for j, n := range neg {
		pairs += float64(pos[j]) * (below + 0.5*float64(n))
		below += float64(n)
	}
	return pairs / (float64(h.total[classNeg]) * float64(h.total[classPos]))
}

// PRAUC returns the average precision as scikit-learn's
// average_precision_score computes it, Σ (Rₙ − Rₙ₋₁)·Pₙ, with one
// threshold per non-empty bin in descending order. NaN unless both classes
// are present (with no negatives it would be 1 whatever the scores).
func (h *ScoreHistogram) PRAUC() float64 {
	if !h.ranked() {
		return math.NaN()
	}
	neg, pos := h.class(classNeg), h.class(classPos)
	var tp, fp, ap float64
	for j := h.bins - 1; j >= 0; j-- {
		if pos[j] == 0 {
			fp += float64(neg[j])
			continue
		}
		tp += float64(pos[j])
		fp += float64(neg[j])
		ap += float64(pos[j]) * tp / (tp + fp)
	}
	return ap / float64(h.total[classPos])
}

// mean returns (Σ of sum k over both classes) / Count, NaN unless valid.
func (h *ScoreHistogram) mean(k int) float64 {
	if !h.valid() {
		return math.NaN()
	}
	s := h.sums[classNeg][k]
	s.add(h.sums[classPos][k])
	return (s.hi + s.lo) / float64(h.Count())
}

// Brier returns the mean of (s − y)² from the exact sums. NaN when empty.
func (h *ScoreHistogram) Brier() float64 { return h.mean(sumSqErr) }

// LogLoss returns the mean of −ln p(true class), with p clipped to
// [1e-15, 1 − 1e-15], from the exact sums. NaN when empty.
func (h *ScoreHistogram) LogLoss() float64 { return h.mean(sumLogLoss) }

// MeanScore returns the mean predicted score from the exact sums. NaN when
// empty.
func (h *ScoreHistogram) MeanScore() float64 { return h.mean(sumScore) }

// eceBin returns the ECE bin (of m) that fine bin j is assigned to: the one
// holding its centre, in integer arithmetic so the assignment is exact.
func (h *ScoreHistogram) eceBin(j, m int) int64 {
	return (2*int64(j) + 1) * int64(m) / (2 * int64(h.bins))
}

// ECE returns the expected calibration error over m equal-width bins
// [k/m, (k+1)/m) (the last one closed): Σ_b (n_b/N)·|mean score_b −
// fraction positive_b| = (1/N)·Σ_b |Σ_{i∈b} (sᵢ − yᵢ)|. Each example's
// score is taken as its fine bin's centre and each fine bin goes to the
// ECE bin holding that centre; ECEBound gives the resulting worst-case
// error. NaN when empty or m is outside [1, Bins()].
func (h *ScoreHistogram) ECE(m int) float64 {
	if !h.valid() || m < 1 || m > h.bins {
		return math.NaN()
	}
	neg, pos := h.class(classNeg), h.class(classPos)
	width := 1 / float64(h.bins)
	cur := int64(-1)
	var ece, gap float64
	for j, n := range neg {
		all := n + pos[j]
		if all == 0 {
			continue
		}
		if b := h.eceBin(j, m); b != cur {
			ece += math.Abs(gap)
			gap, cur = 0, b
		}
		gap += float64(all)*((float64(j)+0.5)*width) - float64(pos[j])
	}
	ece += math.Abs(gap)
	return ece / float64(h.Count())
}

// ECEBound returns the largest possible |ECE(m) − exact ECE| for this
// state: 1/(2·Bins()) for moving each score to its fine bin's centre, plus
// 2·(examples in fine bins that straddle an ECE bin edge)/N for examples
// that may sit in the ECE bin next to the one their fine bin was assigned.
// The second term is zero when m divides Bins(). NaN when ECE(m) is.
func (h *ScoreHistogram) ECEBound(m int) float64 {
	if !h.valid() || m < 1 || m > h.bins {
		return math.NaN()
	}
	bound := 0.5 / float64(h.bins)
	if h.bins%m == 0 {
		return bound
	}
	neg, pos := h.class(classNeg), h.class(classPos)
	var straddling int64
	b, mm := int64(h.bins), int64(m)
	for j, n := range neg {
		lo := int64(j) * mm / b         // ECE bin of the fine bin's lower edge
		hi := ((int64(j)+1)*mm - 1) / b // ECE bin just below its upper edge
		if hi > lo {
			straddling += n + pos[j]
		}
	}
	return bound + 2*float64(straddling)/float64(h.Count())
}

// abs64 is branch-free because bin signs are unpredictable in merge loops.
// Callers never pass MinInt64.
func abs64(v int64) int64 {
	m := v >> 63
	return (v ^ m) - m
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// dd is an unevaluated sum hi + lo of two float64s with hi = round(hi + lo)
// (a double-double), which carries about 106 bits.
type dd struct{ hi, lo float64 }

// twoSum returns s = round(a + b) and the exact error e = a + b − s.
func twoSum(a, b float64) (s, e float64) {
	s = a + b
	bb := s - a
	e = (a - (s - bb)) + (b - bb)
	return s, e
}

// fastTwoSum is twoSum for |a| ≥ |b| (or a = 0).
func fastTwoSum(a, b float64) (s, e float64) {
	s = a + b
	e = b - (s - a)
	return s, e
}

// add sets d to d + y with the accurate double-double addition, which
// stays accurate when the two nearly cancel (a retraction).
func (d *dd) add(y dd) {
	s, e := twoSum(d.hi, y.hi)
	t, f := twoSum(d.lo, y.lo)
	e += t
	s, e = fastTwoSum(s, e)
	e += f
	d.hi, d.lo = fastTwoSum(s, e)
	// Cancellation can leave −0, a second encoding of zero.
	if d.hi == 0 {
		d.hi = 0
	}
	if d.lo == 0 {
		d.lo = 0
	}
}

// addProduct adds x·y exactly rounded to double-double.
func (d *dd) addProduct(x, y float64) {
	p := float64(x * y)
	d.add(dd{p, math.FMA(x, y, -p)})
}

func (d dd) finite() bool {
	return math.Abs(d.hi) <= math.MaxFloat64 && math.Abs(d.lo) <= math.MaxFloat64
}
