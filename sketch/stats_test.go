package sketch

import (
	"errors"
	"math"
	"testing"
)

func approxEq(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// meanVar computes the mean and unbiased variance of xs directly.
func meanVar(xs []float64) (m, v float64) {
	for _, x := range xs {
		m += x
	}
	m /= float64(len(xs))
	for _, x := range xs {
		v += (x - m) * (x - m)
	}
	return m, v / float64(len(xs)-1)
}

func TestWelchTTestPublished(t *testing.T) {
	// R's documented example, t.test(extra ~ group, data = sleep):
	// t = -1.8608, df = 17.776, p-value = 0.07939,
	// 95 percent confidence interval: -3.3654832  0.2054832.
	g1 := []float64{0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0}
	g2 := []float64{1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4}
	m1, v1 := meanVar(g1)
	m2, v2 := meanVar(g2)
	r, err := WelchTTest(m1, v1, 10, m2, v2, 10, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want float64
		tol       float64
	}{
		{"t", r.Statistic, -1.8608, 5e-5},
		{"df", r.DF, 17.776, 5e-4},
		{"p", r.PValue, 0.07939, 5e-6},
		{"lower", r.Lower, -3.3654832, 5e-7},
		{"upper", r.Upper, 0.2054832, 5e-7},
		{"effect", r.Effect, 0.75 - 2.33, 1e-12},
	}
	for _, c := range checks {
		if !approxEq(c.got, c.want, c.tol) {
			t.Errorf("%s = %.8g, want %.8g ± %g", c.name, c.got, c.want, c.tol)
		}
	}
}

func TestTwoProportionZTestHandComputed(t *testing.T) {
	// 120/200 vs 90/200. Pooled p = 210/400 = 0.525,
	// SE0 = sqrt(0.525*0.475*(2/200)) = 0.04993746089,
	// z = 0.15/SE0 = 3.003757046, two-sided p = erfc(z/sqrt2) = 0.002666682.
	// Unpooled SE = sqrt(0.6*0.4/200 + 0.45*0.55/200) = 0.04937104415,
	// 95% CI = 0.15 ± 1.959963985*SE = [0.05323453, 0.24676547].
	r, err := TwoProportionZTest(120, 200, 90, 200, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	se0 := math.Sqrt(0.525 * 0.475 * 0.01)
	z := 0.15 / se0
	se := math.Sqrt(0.6*0.4/200 + 0.45*0.55/200)
	checks := []struct {
		name      string
		got, want float64
	}{
		{"z", r.Statistic, z},
		{"z(hand digits)", r.Statistic, 3.003757046},
		{"p", r.PValue, math.Erfc(z / math.Sqrt2)},
		{"p(hand digits)", r.PValue, 0.002666682},
		{"lower", r.Lower, 0.15 - 1.959963985*se},
		{"upper", r.Upper, 0.15 + 1.959963985*se},
		{"lower(hand digits)", r.Lower, 0.05323453},
	}
	for _, c := range checks {
		if !approxEq(c.got, c.want, 1e-6) {
			t.Errorf("%s = %.10g, want %.10g", c.name, c.got, c.want)
		}
	}
}

func TestStatsEdgeCases(t *testing.T) {
	tests := []struct {
		name    string
		run     func() (TestResult, error)
		wantErr bool
		wantP   float64
	}{
		{"z equal extremes", func() (TestResult, error) { return TwoProportionZTest(10, 10, 5, 5, 0.95) }, false, 1},
		{"z zero trials", func() (TestResult, error) { return TwoProportionZTest(0, 0, 5, 5, 0.95) }, true, 0},
		{"z more successes than trials", func() (TestResult, error) { return TwoProportionZTest(6, 5, 5, 5, 0.95) }, true, 0},
		{"z bad level", func() (TestResult, error) { return TwoProportionZTest(1, 5, 2, 5, 1) }, true, 0},
		{"t one observation", func() (TestResult, error) { return WelchTTest(1, 0, 1, 2, 1, 5, 0.95) }, true, 0},
		{"t constant equal", func() (TestResult, error) { return WelchTTest(3, 0, 4, 3, 0, 4, 0.95) }, false, 1},
		{"t constant different", func() (TestResult, error) { return WelchTTest(3, 0, 4, 4, 0, 4, 0.95) }, false, 0},
		{"t negative variance", func() (TestResult, error) { return WelchTTest(3, -1, 4, 4, 0, 4, 0.95) }, true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := tc.run()
			if tc.wantErr {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.PValue != tc.wantP {
				t.Errorf("p = %v, want %v", r.PValue, tc.wantP)
			}
		})
	}
}
