package sketch

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// NumericDistribution is the read-only view of a numeric distribution state
// (LogHistogram, TDigest) that the distance functions need. Implementations
// must not mutate the state in any of these methods.
type NumericDistribution interface {
	// Count returns the total weight observed.
	Count() float64
	// CDF returns the estimated fraction of the weight at or below x, in
	// [0, 1]; 0 for an empty state.
	CDF(x float64) float64
	// Quantile returns the estimated value at rank q in [0, 1]; NaN for an
	// empty state or q outside [0, 1].
	Quantile(q float64) float64
	// AppendBreakpoints appends to dst, in increasing order and without
	// duplicates, the points between which the estimated CDF is linear
	// (bucket bounds, centroid means, the minimum and maximum), and
	// returns the extended slice.
	AppendBreakpoints(dst []float64) []float64
}

// Distance names a measure of how far a current distribution is from a
// reference one (drift). See docs/sketches.md for the formulas.
type Distance int

// The distances. Zero is not a distance so that an unset field is refused.
const (
	// PSI is the population stability index Σ (p−q)·ln(p/q), natural log,
	// with both proportions raised to at least Epsilon.
	PSI Distance = iota + 1
	// JensenShannon is the Jensen-Shannon distance (the square root of the
	// divergence) with base-2 logarithms, in [0, 1].
	JensenShannon
	// KolmogorovSmirnov is sup |F_cur − F_ref|; on categories, the total
	// variation distance.
	KolmogorovSmirnov
	// Wasserstein is the earth mover's distance W1 = ∫ |F_cur − F_ref| dx;
	// on categories, the total variation distance.
	Wasserstein
	// Hellinger is sqrt(½ Σ (√p − √q)²), in [0, 1].
	Hellinger
	// ChiSquared is Pearson's chi-squared divergence Σ (p−q)²/q of the
	// current proportions p from the reference proportions q, with q raised
	// to at least Epsilon.
	ChiSquared
)

func (d Distance) valid() bool { return d >= PSI && d <= ChiSquared }

// String returns the name ParseDistance accepts.
func (d Distance) String() string {
	switch d {
	case PSI:
		return "psi"
	case JensenShannon:
		return "js"
	case KolmogorovSmirnov:
		return "ks"
	case Wasserstein:
		return "wasserstein"
	case Hellinger:
		return "hellinger"
	case ChiSquared:
		return "chi2"
	}
	return fmt.Sprintf("distance(%d)", int(d))
}

// ParseDistance returns the distance named name: "psi", "js", "ks",
// "wasserstein", "hellinger" or "chi2", in any letter case.
func ParseDistance(name string) (Distance, error) {
	for d := PSI; d <= ChiSquared; d++ {
		if strings.EqualFold(name, d.String()) {
			return d, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown distance %q (want psi, js, ks, wasserstein, hellinger or chi2)", ErrInvalid, name)
}

// Defaults and limits of DistanceOptions.
const (
	// DefaultDistanceBins is the number of equal-frequency bins cut from
	// the reference's quantiles, as is common practice for PSI.
	DefaultDistanceBins = 10
	// MaxDistanceBins bounds the bins, and so the CDF evaluations, of one
	// numeric distance.
	MaxDistanceBins = 10000
	// DefaultDistanceEpsilon is the smallest proportion PSI and ChiSquared
	// use for a bin, so that an empty bin gives a large finite value
	// instead of +Inf.
	DefaultDistanceEpsilon = 1e-4
)

// DistanceOptions tunes the binned distances. The zero value selects the
// defaults.
type DistanceOptions struct {
	// Bins is the number of equal-frequency bins a numeric reference is
	// cut into for PSI, JensenShannon, Hellinger and ChiSquared: 0 means
	// DefaultDistanceBins, otherwise 2 to MaxDistanceBins. Categorical
	// distances bin by key and ignore it.
	Bins int
	// Epsilon is the floor PSI applies to both proportions of a bin, and
	// ChiSquared to the reference proportion: 0 means
	// DefaultDistanceEpsilon, otherwise in (0, 1).
	Epsilon float64
}

func (o DistanceOptions) resolve() (DistanceOptions, error) {
	switch {
	case o.Bins == 0:
		o.Bins = DefaultDistanceBins
	case o.Bins < 2 || o.Bins > MaxDistanceBins:
		return o, fmt.Errorf("%w: distance bins %d outside [2, %d]", ErrInvalid, o.Bins, MaxDistanceBins)
	}
	switch {
	case o.Epsilon == 0:
		o.Epsilon = DefaultDistanceEpsilon
	case !(o.Epsilon > 0 && o.Epsilon < 1):
		return o, fmt.Errorf("%w: distance epsilon %v outside (0, 1)", ErrInvalid, o.Epsilon)
	}
	return o, nil
}

func checkDistance(d Distance, opt DistanceOptions) (DistanceOptions, error) {
	if !d.valid() {
		return opt, fmt.Errorf("%w: unknown distance %v", ErrInvalid, d)
	}
	return opt.resolve()
}

// binSum accumulates a binned distance one bin at a time, p being the
// current and q the reference proportion of the bin.
type binSum struct {
	d   Distance
	eps float64
	sum float64
}

func (s *binSum) add(p, q float64) {
	// Estimated CDFs may step back by a rounding error; a negative mass
	// would make the logarithms and square roots NaN.
	p, q = max(p, 0), max(q, 0)
	switch s.d {
	case PSI:
		p, q = max(p, s.eps), max(q, s.eps)
		s.sum += (p - q) * math.Log(p/q)
	case JensenShannon:
		m := (p + q) / 2
		if p > 0 {
			s.sum += p * math.Log2(p/m)
		}
		if q > 0 {
			s.sum += q * math.Log2(q/m)
		}
	case KolmogorovSmirnov, Wasserstein:
		s.sum += math.Abs(p - q)
	case Hellinger:
		r := math.Sqrt(p) - math.Sqrt(q)
		s.sum += r * r
	case ChiSquared:
		s.sum += (p - q) * (p - q) / max(q, s.eps)
	}
}

func (s *binSum) result() float64 {
	switch s.d {
	case JensenShannon:
		// Rounding can push the divergence just outside [0, 1].
		return math.Sqrt(min(max(s.sum/2, 0), 1))
	case KolmogorovSmirnov, Wasserstein:
		return s.sum / 2
	case Hellinger:
		return math.Sqrt(min(s.sum/2, 1))
	}
	return s.sum
}

func checkNumeric(side string, x NumericDistribution) error {
	if x == nil {
		return fmt.Errorf("%w: %s distribution is nil", ErrInvalid, side)
	}
	if n := x.Count(); !(n > 0) {
		return fmt.Errorf("%w: %s distribution is empty (count %v)", ErrInvalid, side, n)
	}
	return nil
}

// NumericDistance measures how far cur is from the reference ref.
//
// PSI, JensenShannon, Hellinger and ChiSquared compare bin masses: the bin
// edges are ref.Quantile(i/Bins) for i = 1..Bins-1, with repeated edges
// dropped, the first and last bins are open-ended, and each bin (a, b]
// holds CDF(b) − CDF(a). They depend on which side is the reference.
// KolmogorovSmirnov is the largest |F_cur − F_ref| and Wasserstein the
// integral of |F_cur − F_ref|, both exact for the piecewise-linear CDFs
// the states describe: they evaluate the CDFs at, and just below, every
// breakpoint of either side. Both are symmetric.
//
// An empty or nil side is an ErrInvalid error naming that side.
func NumericDistance(d Distance, cur, ref NumericDistribution, opt DistanceOptions) (float64, error) {
	opt, err := checkDistance(d, opt)
	if err != nil {
		return 0, err
	}
	if err := checkNumeric("current", cur); err != nil {
		return 0, err
	}
	if err := checkNumeric("reference", ref); err != nil {
		return 0, err
	}
	switch d {
	case KolmogorovSmirnov, Wasserstein:
		return cdfDistance(d, cur, ref)
	}
	s := binSum{d: d, eps: opt.Epsilon}
	var fc, fr float64 // CDFs at the previous edge; 0 below the first bin
	edge := math.Inf(-1)
	for i := 1; i < opt.Bins; i++ {
		e := ref.Quantile(float64(i) / float64(opt.Bins))
		// Quantiles repeat where the reference has a point mass; NaN
		// would be an estimate error and is skipped like a repeat.
		if !(e > edge) || math.IsInf(e, 0) {
			continue
		}
		edge = e
		c, r := cur.CDF(e), ref.CDF(e)
		s.add(c-fc, r-fr)
		fc, fr = c, r
	}
	s.add(1-fc, 1-fr)
	return s.result(), nil
}

// cdfDistance computes KolmogorovSmirnov or Wasserstein over the union of
// the breakpoints of cur and ref.
func cdfDistance(d Distance, cur, ref NumericDistribution) (float64, error) {
	buf := cur.AppendBreakpoints(nil)
	nc := len(buf)
	buf = ref.AppendBreakpoints(buf)
	a, b := buf[:nc], buf[nc:]
	// The interface promises increasing breakpoints; sorting a slice that
	// breaks the promise keeps the walk below correct at little cost.
	if !slices.IsSorted(a) {
		slices.Sort(a)
	}
	if !slices.IsSorted(b) {
		slices.Sort(b)
	}
	diff := func(x float64) float64 { return cur.CDF(x) - ref.CDF(x) }
	var (
		ks, w1 float64
		prev   float64 // last breakpoint visited
		right  float64 // diff at prev, the value just right of it
		seen   bool
	)
	for i, j := 0, 0; i < len(a) || j < len(b); {
		var x float64
		switch {
		case j >= len(b) || (i < len(a) && a[i] < b[j]):
			x = a[i]
			i++
		case i >= len(a) || b[j] < a[i]:
			x = b[j]
			j++
		default:
			x = a[i]
			i++
			j++
		}
		// Breakpoints at ±Inf or NaN bound no segment of finite length.
		if math.IsNaN(x) || math.IsInf(x, 0) || (seen && x <= prev) {
			continue
		}
		// The CDFs are linear on (prev, x); the value just below x is the
		// left limit, which differs from diff(x) where a CDF jumps at x.
		left := diff(math.Nextafter(x, math.Inf(-1)))
		at := diff(x)
		ks = max(ks, math.Abs(left), math.Abs(at))
		if seen {
			w1 += absLinearIntegral(right, left, x-prev)
		}
		prev, right, seen = x, at, true
	}
	if !seen {
		return 0, fmt.Errorf("%w: neither distribution has a finite breakpoint", ErrInvalid)
	}
	if d == KolmogorovSmirnov {
		return min(ks, 1), nil
	}
	return w1, nil
}

// absLinearIntegral returns ∫|f| over an interval of width w on which f is
// linear from u to v, splitting it where f changes sign.
func absLinearIntegral(u, v, w float64) float64 {
	if (u >= 0) == (v >= 0) || u == 0 || v == 0 {
		return (math.Abs(u) + math.Abs(v)) / 2 * w
	}
	// f crosses zero at a fraction |u|/(|u|+|v|) of the interval; the two
	// triangles have areas u²/(|u|+|v|)·w/2 and v²/(|u|+|v|)·w/2.
	return (u*u + v*v) / (math.Abs(u) + math.Abs(v)) * w / 2
}

func checkCategorical(side string, x *Categorical) error {
	if x == nil {
		return fmt.Errorf("%w: %s categorical state is nil", ErrInvalid, side)
	}
	if x.Total() == 0 {
		return fmt.Errorf("%w: %s categorical state is empty", ErrInvalid, side)
	}
	return nil
}

// CategoricalDistance measures how far cur is from the reference ref over
// the bins formed by the union of their tracked keys plus one bin for the
// mass in Other(). A key tracked on one side only has proportion 0 on the
// other, so once a side is summarised its untracked keys' mass is compared
// through the other bin. KolmogorovSmirnov and Wasserstein have no order
// to use on categories; both return the total variation distance
// ½ Σ |p − q|, which is W1 under the discrete metric and the largest
// |P(A) − Q(A)| over sets of categories A. Bins is ignored.
//
// An empty or nil side is an ErrInvalid error naming that side.
func CategoricalDistance(d Distance, cur, ref *Categorical, opt DistanceOptions) (float64, error) {
	opt, err := checkDistance(d, opt)
	if err != nil {
		return 0, err
	}
	if err := checkCategorical("current", cur); err != nil {
		return 0, err
	}
	if err := checkCategorical("reference", ref); err != nil {
		return 0, err
	}
	nc, nr := float64(cur.Total()), float64(ref.Total())
	s := binSum{d: d, eps: opt.Epsilon}
	// Walking both key sets in sorted order joins them without a map and
	// fixes the order of the float sums, so equal states give equal values.
	oc, or := cur.sortedOrder(), ref.sortedOrder()
	for i, j := 0, 0; i < len(oc) || j < len(or); {
		var p, q float64
		switch c := cmpKeys(cur, oc, i, ref, or, j); {
		case c < 0:
			p = float64(cur.counts[oc[i]]) / nc
			i++
		case c > 0:
			q = float64(ref.counts[or[j]]) / nr
			j++
		default:
			p = float64(cur.counts[oc[i]]) / nc
			q = float64(ref.counts[or[j]]) / nr
			i++
			j++
		}
		s.add(p, q)
	}
	s.add(float64(cur.other)/nc, float64(ref.other)/nr)
	return s.result(), nil
}

// cmpKeys compares the i-th key of a with the j-th key of b in sorted
// order, an exhausted side comparing greater.
func cmpKeys(a *Categorical, oa []int32, i int, b *Categorical, ob []int32, j int) int {
	switch {
	case i >= len(oa):
		return 1
	case j >= len(ob):
		return -1
	}
	return strings.Compare(a.keys[oa[i]], b.keys[ob[j]])
}
