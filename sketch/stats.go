package sketch

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// TestResult is the outcome of a two-sample test comparing state A with
// state B. Effect is A minus B (difference of proportions or of means), and
// [Lower, Upper] is the two-sided confidence interval of that difference at
// Level. PValue is two-sided.
type TestResult struct {
	Statistic float64 // z for proportions, Welch's t for means
	DF        float64 // degrees of freedom; +Inf for the z-test
	PValue    float64
	Effect    float64
	Lower     float64
	Upper     float64
	Level     float64
	StdErr    float64 // standard error used for the interval
}

func checkLevel(level float64) error {
	if !(level > 0 && level < 1) {
		return fmt.Errorf("%w: confidence level %v must be in (0, 1)", ErrInvalid, level)
	}
	return nil
}

// TwoProportionZTest compares proportions xa/na and xb/nb. The statistic
// uses the pooled proportion under H0 (pa == pb); the interval is the Wald
// interval with unpooled variances, as in most textbooks and in
// statsmodels' proportions_ztest / confint_proportions_2indep(method="wald").
// When both samples are all successes or all failures the pooled variance
// is zero: the statistic is 0 and the p-value 1 if the proportions are
// equal.
func TwoProportionZTest(xa, na, xb, nb, level float64) (TestResult, error) {
	if err := checkLevel(level); err != nil {
		return TestResult{}, err
	}
	for _, v := range []struct {
		name string
		x, n float64
	}{{"a", xa, na}, {"b", xb, nb}} {
		if !(v.n > 0) || !(v.x >= 0) || v.x > v.n || math.IsInf(v.n, 0) {
			return TestResult{}, fmt.Errorf("%w: sample %s has %v successes of %v trials", ErrInvalid, v.name, v.x, v.n)
		}
	}
	pa, pb := xa/na, xb/nb
	pool := (xa + xb) / (na + nb)
	se0 := math.Sqrt(pool * (1 - pool) * (1/na + 1/nb))
	r := TestResult{Effect: pa - pb, DF: math.Inf(1), Level: level}
	if se0 == 0 {
		r.Statistic, r.PValue = 0, 1
	} else {
		r.Statistic = r.Effect / se0
		r.PValue = 2 * distuv.UnitNormal.Survival(math.Abs(r.Statistic))
	}
	r.StdErr = math.Sqrt(pa*(1-pa)/na + pb*(1-pb)/nb)
	z := distuv.UnitNormal.Quantile(1 - (1-level)/2)
	r.Lower, r.Upper = r.Effect-z*r.StdErr, r.Effect+z*r.StdErr
	return r, nil
}

// WelchTTest compares means ma and mb of samples of sizes na and nb with
// unbiased sample variances va and vb, without assuming equal variances.
// Degrees of freedom follow Welch-Satterthwaite. Each sample needs at least
// two observations.
func WelchTTest(ma, va, na, mb, vb, nb, level float64) (TestResult, error) {
	if err := checkLevel(level); err != nil {
		return TestResult{}, err
	}
	if !(na >= 2) || !(nb >= 2) {
		return TestResult{}, fmt.Errorf("%w: Welch's t-test needs at least 2 observations per sample, got %v and %v", ErrInvalid, na, nb)
	}
	if !(va >= 0) || !(vb >= 0) {
		return TestResult{}, fmt.Errorf("%w: variances %v and %v must be non-negative", ErrInvalid, va, vb)
	}
	sa, sb := va/na, vb/nb
	r := TestResult{Effect: ma - mb, Level: level}
	r.StdErr = math.Sqrt(sa + sb)
	if r.StdErr == 0 {
		// Both samples are constant: the means either are equal (no
		// evidence of a difference) or differ with certainty.
		r.DF = na + nb - 2
		if r.Effect == 0 {
			r.Statistic, r.PValue = 0, 1
		} else {
			r.Statistic, r.PValue = math.Copysign(math.Inf(1), r.Effect), 0
		}
		r.Lower, r.Upper = r.Effect, r.Effect
		return r, nil
	}
	r.DF = (sa + sb) * (sa + sb) / (sa*sa/(na-1) + sb*sb/(nb-1))
	r.Statistic = r.Effect / r.StdErr
	t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: r.DF}
	r.PValue = 2 * t.Survival(math.Abs(r.Statistic))
	q := t.Quantile(1 - (1-level)/2)
	r.Lower, r.Upper = r.Effect-q*r.StdErr, r.Effect+q*r.StdErr
	return r, nil
}
