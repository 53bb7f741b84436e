package sketch

import (
	"fmt"
	"math"
	"unsafe"
)

// MaxMomentValue bounds the magnitude of every value Moments and Regression
// accept. With |x| <= 1e100 no sum, square or centred second moment can
// overflow for any count up to 2^64, so every state stays finite and NaN
// never enters through arithmetic; no real measure comes near the bound.
const MaxMomentValue = 1e100

// Moments summarises a stream of numbers (latency, revenue, a score) as its
// count, sum, minimum, maximum, mean and second central moment, from which
// mean, variance and Welch's t-test follow.
//
// The mean and M2 = Σ(x−mean)² are kept in Welford/Chan form rather than as
// Σx and Σx²: the naive formula Σx² − (Σx)²/n cancels catastrophically when
// the mean is large relative to the spread (1e9 + N(0,1) loses every
// digit), while Welford's update and Chan's merge stay accurate. The sum is
// kept as well, separately, so that Sum is exact and exactly associative for
// values whose additions are exact (integers, dyadic fractions) instead of
// being mean×count with its rounding.
//
// The zero value is an empty state ready to use.
type Moments struct {
	n    uint64
	min  float64
	max  float64
	mean float64
	m2   float64
	sum  float64
}

var _ Sketch = (*Moments)(nil)

// NewMoments returns an empty state.
func NewMoments() *Moments { return &Moments{} }

// checkMomentValue rejects what would make a state non-finite; what names
// the argument in the error.
func checkMomentValue(what string, x float64) error {
	if math.IsNaN(x) || math.IsInf(x, 0) || math.Abs(x) > MaxMomentValue {
		return fmt.Errorf("%w: %s %v is not finite or exceeds %g in magnitude", ErrInvalid, what, x, MaxMomentValue)
	}
	return nil
}

// combineMoments merges two (count, mean, M2) summaries with Chan et al.'s
// parallel formula. The operands are first put in a canonical order (larger
// count first, then smaller mean) so the result does not depend on argument
// order: Merge is then exactly commutative, not just up to rounding. When
// the means are equal, d is zero and both results are exact, so constant
// data keeps an exact mean and a zero M2 however it is split and merged.
func combineMoments(na, ma, m2a, nb, mb, m2b float64) (mean, m2 float64) {
	if nb > na || (nb == na && mb < ma) {
		na, ma, m2a, nb, mb, m2b = nb, mb, m2b, na, ma, m2a
	}
	n := na + nb
	d := mb - ma
	mean = ma + d*(nb/n)
	m2 = m2a + m2b + d*d*(na/n)*nb
	return mean, m2
}

// splitMoments removes the summary (nb, mb, m2b) from (n, mean, m2), the
// inverse of combineMoments; nb < n. Cancellation can leave M2 slightly
// negative, which is clamped, and a single remaining observation has no
// spread by definition.
func splitMoments(n, mean, m2, nb, mb, m2b float64) (ma, m2a float64) {
	na := n - nb
	ma = mean + (mean-mb)*(nb/na)
	d := mb - ma
	m2a = m2 - m2b - d*d*(na/n)*nb
	if m2a < 0 || na == 1 {
		m2a = 0
	}
	return ma, m2a
}

// Add records one observation. NaN, ±Inf and |x| > MaxMomentValue are
// refused with ErrInvalid and leave the state unchanged.
func (m *Moments) Add(x float64) error {
	if err := checkMomentValue("value", x); err != nil {
		return err
	}
	if m.n == math.MaxUint64 {
		return fmt.Errorf("%w: moments count would overflow", ErrInvalid)
	}
	// -0 becomes +0 so that the encoding of min, max and sum does not
	// depend on the order in which zeros of either sign arrive.
	x += 0
	m.merge(1, x, x, x, 0, x)
	return nil
}

// Merge folds o into m. o may be m itself. Counts are uint64: a merged
// count above 2^64−1 observations would wrap, which DecodeAndMerge refuses.
func (m *Moments) Merge(o *Moments) {
	m.merge(o.n, o.min, o.max, o.mean, o.m2, o.sum)
}

func (m *Moments) merge(n uint64, lo, hi, mean, m2, sum float64) {
	if n == 0 {
		return
	}
	if m.n == 0 {
		*m = Moments{n: n, min: lo, max: hi, mean: mean, m2: m2, sum: sum}
		return
	}
	m.mean, m.m2 = combineMoments(float64(m.n), m.mean, m.m2, float64(n), mean, m2)
	m.n += n
	m.sum += sum
	// Plain comparisons suffice: states hold neither NaN nor -0.
	if lo < m.min {
		m.min = lo
	}
	if hi > m.max {
		m.max = hi
	}
	// The true mean lies in [min, max] and the decoder relies on that
	// bound; this cheap guard keeps rounding from ever breaking it.
	if m.mean < m.min {
		m.mean = m.min
	} else if m.mean > m.max {
		m.mean = m.max
	}
}

// Count returns the number of observations.
func (m *Moments) Count() float64 { return float64(m.n) }

// Sum returns the sum of the observations, 0 for an empty state.
func (m *Moments) Sum() float64 { return m.sum }

// Mean returns the arithmetic mean, NaN for an empty state.
func (m *Moments) Mean() float64 {
	if m.n == 0 {
		return math.NaN()
	}
	return m.mean
}

// Variance returns the unbiased sample variance M2/(n−1), NaN with fewer
// than two observations.
func (m *Moments) Variance() float64 {
	if m.n < 2 {
		return math.NaN()
	}
	return m.m2 / float64(m.n-1)
}

// Stddev returns the square root of Variance, NaN with fewer than two
// observations.
func (m *Moments) Stddev() float64 { return math.Sqrt(m.Variance()) }

// Min returns the smallest observation, NaN for an empty state.
func (m *Moments) Min() float64 {
	if m.n == 0 {
		return math.NaN()
	}
	return m.min
}

// Max returns the largest observation, NaN for an empty state.
func (m *Moments) Max() float64 {
	if m.n == 0 {
		return math.NaN()
	}
	return m.max
}

// TTest runs Welch's unequal-variance t-test of mean(a) − mean(b) at
// confidence level (see WelchTTest). Each state needs at least two
// observations; otherwise the error wraps ErrInvalid.
func TTest(a, b *Moments, level float64) (TestResult, error) {
	return WelchTTest(a.Mean(), a.Variance(), a.Count(), b.Mean(), b.Variance(), b.Count(), level)
}

// Format returns FormatMoments.
func (m *Moments) Format() Format { return FormatMoments }

// AppendBinary appends the canonical encoding (docs/format.md): format id,
// uvarint count, then nothing for an empty state, the single value for one
// observation, or min, max, mean, M2 and sum as float64s.
func (m *Moments) AppendBinary(dst []byte) []byte {
	dst = append(dst, byte(FormatMoments))
	dst = appendUvarint(dst, m.n)
	switch m.n {
	case 0:
	case 1:
		dst = appendFloat64(dst, m.min)
	default:
		dst = appendFloat64(dst, m.min)
		dst = appendFloat64(dst, m.max)
		dst = appendFloat64(dst, m.mean)
		dst = appendFloat64(dst, m.m2)
		dst = appendFloat64(dst, m.sum)
	}
	return dst
}

// DecodeAndMerge merges the encoded state src into m. On error m is
// unchanged.
func (m *Moments) DecodeAndMerge(src []byte) error {
	var o Moments
	if err := o.decode(src); err != nil {
		return err
	}
	if m.n+o.n < m.n {
		return fmt.Errorf("%w: moments count %d plus %d overflows", ErrCorrupt, m.n, o.n)
	}
	m.Merge(&o)
	return nil
}

// UnmarshalBinary replaces m with the encoded state src. On error m is
// unchanged.
func (m *Moments) UnmarshalBinary(src []byte) error {
	var o Moments
	if err := o.decode(src); err != nil {
		return err
	}
	*m = o
	return nil
}

// decode fills the zero value m from src, refusing anything Add and Merge
// cannot produce so that decoded states satisfy the invariants the readers
// and Merge rely on.
func (m *Moments) decode(src []byte) error {
	r := newReader(src)
	r.format(FormatMoments)
	n := r.uvarint("moments count")
	switch n {
	case 0:
		return r.done()
	case 1:
		x := r.float64("moments value")
		if err := r.done(); err != nil {
			return err
		}
		if err := checkDecodedMoment("moments value", x, -MaxMomentValue, MaxMomentValue); err != nil {
			return err
		}
		*m = Moments{n: 1, min: x, max: x, mean: x, sum: x}
		return nil
	}
	o := Moments{n: n}
	o.min = r.float64("moments min")
	o.max = r.float64("moments max")
	o.mean = r.float64("moments mean")
	o.m2 = r.float64("moments m2")
	o.sum = r.float64("moments sum")
	if err := r.done(); err != nil {
		return err
	}
	if err := o.validate(); err != nil {
		return err
	}
	*m = o
	return nil
}

// validate checks the cross-field invariants of a state with n >= 2. The
// bounds on M2 and the sum are loose (Popoviciu's inequality gives
// M2 <= n·range²/4; a sum of n values bounded by M is at most n·M) so that
// rounding never makes a state built by Add and Merge fail them.
func (m *Moments) validate() error {
	const l = MaxMomentValue
	fn := float64(m.n)
	if err := checkDecodedMoment("moments min", m.min, -l, l); err != nil {
		return err
	}
	if err := checkDecodedMoment("moments max", m.max, m.min, l); err != nil {
		return err
	}
	if err := checkDecodedMoment("moments mean", m.mean, m.min, m.max); err != nil {
		return err
	}
	rng := m.max - m.min
	if err := checkDecodedMoment("moments m2", m.m2, 0, fn*rng*rng); err != nil {
		return err
	}
	bound := 2 * fn * math.Max(-m.min, m.max)
	return checkDecodedMoment("moments sum", m.sum, -bound, bound)
}

// checkDecodedMoment rejects a decoded float that is NaN, infinite, outside
// [lo, hi], or a negative zero (Add and Merge only ever store +0, so -0
// would be a second encoding of an equal state).
func checkDecodedMoment(what string, v, lo, hi float64) error {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return fmt.Errorf("%w: %s is %v", ErrCorrupt, what, v)
	case v < lo || v > hi:
		return fmt.Errorf("%w: %s %v is outside [%g, %g]", ErrCorrupt, what, v, lo, hi)
	case v == 0 && math.Signbit(v):
		return fmt.Errorf("%w: %s is a negative zero", ErrCorrupt, what)
	}
	return nil
}

// Reset empties the state.
func (m *Moments) Reset() { *m = Moments{} }

// MemSize returns the size of the struct; Moments holds no other memory.
func (m *Moments) MemSize() int { return int(unsafe.Sizeof(*m)) }
