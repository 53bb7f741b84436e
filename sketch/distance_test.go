package sketch

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
)

// distPL is an exact NumericDistribution for tests: its CDF runs linearly
// between consecutive points (x, F) and jumps where two points share an x,
// which represents a point mass exactly.
type distPL struct {
	xs, fs []float64
	n      float64
}

func (d *distPL) Count() float64 { return d.n }

func (d *distPL) CDF(x float64) float64 {
	if d.n == 0 {
		return 0
	}
	i := sort.Search(len(d.xs), func(i int) bool { return d.xs[i] > x })
	switch {
	case i == 0:
		return 0
	case i == len(d.xs):
		return d.fs[i-1]
	}
	x0, x1, f0, f1 := d.xs[i-1], d.xs[i], d.fs[i-1], d.fs[i]
	return f0 + (x-x0)/(x1-x0)*(f1-f0)
}

func (d *distPL) Quantile(q float64) float64 {
	if d.n == 0 || !(q >= 0 && q <= 1) {
		return math.NaN()
	}
	i := sort.Search(len(d.fs), func(i int) bool { return d.fs[i] >= q })
	if i == 0 {
		return d.xs[0]
	}
	x0, x1, f0, f1 := d.xs[i-1], d.xs[i], d.fs[i-1], d.fs[i]
	return x0 + (q-f0)/(f1-f0)*(x1-x0)
}

func (d *distPL) AppendBreakpoints(dst []float64) []float64 {
	for i, x := range d.xs {
		if i == 0 || x != d.xs[i-1] {
			dst = append(dst, x)
		}
	}
	return dst
}

// distLinear builds a distribution from (x, F) points.
func distLinear(pts ...[2]float64) *distPL {
	d := &distPL{n: 1}
	for _, p := range pts {
		d.xs = append(d.xs, p[0])
		d.fs = append(d.fs, p[1])
	}
	return d
}

// distWeighted builds the step CDF of point masses at vals.
func distWeighted(vals, weights []float64) *distPL {
	type vw struct{ v, w float64 }
	var ps []vw
	var total float64
	for i, v := range vals {
		w := 1.0
		if weights != nil {
			w = weights[i]
		}
		ps = append(ps, vw{v, w})
		total += w
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].v < ps[j].v })
	d := &distPL{n: total}
	var cum float64
	for i := 0; i < len(ps); {
		v, before := ps[i].v, cum
		for ; i < len(ps) && ps[i].v == v; i++ {
			cum += ps[i].w
		}
		d.xs = append(d.xs, v, v)
		d.fs = append(d.fs, before/total, cum/total)
	}
	d.fs[len(d.fs)-1] = 1
	return d
}

func distSample(vals ...float64) *distPL { return distWeighted(vals, nil) }

func TestDistanceNames(t *testing.T) {
	for d := PSI; d <= ChiSquared; d++ {
		got, err := ParseDistance(strings.ToUpper(d.String()))
		if err != nil || got != d {
			t.Errorf("ParseDistance(%q) = %v, %v", strings.ToUpper(d.String()), got, err)
		}
	}
	want := []string{"psi", "js", "ks", "wasserstein", "hellinger", "chi2"}
	for i, name := range want {
		if d, err := ParseDistance(name); err != nil || d != Distance(i+1) {
			t.Errorf("ParseDistance(%q) = %v, %v", name, d, err)
		}
	}
	for _, bad := range []string{"", "kl", "chi"} {
		if _, err := ParseDistance(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseDistance(%q) err = %v", bad, err)
		}
	}
	if s := Distance(0).String(); s != "distance(0)" {
		t.Errorf("Distance(0).String() = %q", s)
	}
}

func TestCategoricalDistanceHandComputed(t *testing.T) {
	// p = (.5, .3, .2) from 50/30/20, q = (.4, .4, .2) from 40/40/20.
	cur := catFromCounts(8, map[string]uint64{"a": 50, "b": 30, "c": 20})
	ref := catFromCounts(8, map[string]uint64{"a": 40, "b": 40, "c": 20})
	// One-hot [1,0,0] vs [0,1,0]; [1,0] vs [.5,.5].
	oneA := catFromCounts(8, map[string]uint64{"a": 1})
	oneB := catFromCounts(8, map[string]uint64{"b": 1})
	twoA := catFromCounts(8, map[string]uint64{"a": 2})
	halves := catFromCounts(8, map[string]uint64{"a": 1, "b": 1})
	// Summarised cur (capacity 1): a:3 then b: d=1 → a:2, other 2, total 4.
	// Bins a: .5/.5, b: 0/.5, other: .5/0.
	sum := NewCategorical(1)
	sum.AddN("a", 3)
	sum.Add("b")
	tests := []struct {
		name     string
		d        Distance
		cur, ref *Categorical
		want     float64
	}{
		// .1·ln(.5/.4) + (−.1)·ln(.3/.4) + 0
		{"psi", PSI, cur, ref, 0.05108256237659907},
		// sqrt(½[(√.5−√.4)² + (√.3−√.4)²])
		{"hellinger", Hellinger, cur, ref, 0.079851380615908},
		// .1²/.4 + .1²/.4 + 0
		{"chi2", ChiSquared, cur, ref, 0.05},
		// ½(.1 + .1 + 0)
		{"ks", KolmogorovSmirnov, cur, ref, 0.1},
		{"wasserstein", Wasserstein, cur, ref, 0.1},
		// m = (.45, .35, .2): sqrt(½[.5·log2(.5/.45) + .3·log2(.3/.35) +
		// .4·log2(.4/.45) + .4·log2(.4/.35)])
		{"js", JensenShannon, cur, ref, 0.09584323377689272},
		// scipy: jensenshannon([1,0,0], [0,1,0], base=2) = 1.0
		{"js disjoint", JensenShannon, oneA, oneB, 1},
		{"hellinger disjoint", Hellinger, oneA, oneB, 1},
		{"tv disjoint", KolmogorovSmirnov, oneA, oneB, 1},
		// 2 bins at 1 vs ε=1e-4: 2·(1−ε)·ln(1/ε)
		{"psi disjoint", PSI, oneA, oneB, 18.41883867587797},
		// (1−0)²/ε + (0−1)²/1
		{"chi2 disjoint", ChiSquared, oneA, oneB, 10001},
		// scipy: jensenshannon([1.0,0.0],[0.5,0.5]) = 0.46450140402245893
		// in nats; base 2 divides the divergence by ln 2.
		{"js scipy", JensenShannon, twoA, halves, 0.46450140402245893 / math.Sqrt(math.Ln2)},
		{"tv other bin", Wasserstein, sum, halves, 0.5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CategoricalDistance(tc.d, tc.cur, tc.ref, DistanceOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !approxEq(got, tc.want, 1e-12*math.Max(1, tc.want)) {
				t.Fatalf("%v = %.17g, want %.17g", tc.d, got, tc.want)
			}
		})
	}
}

// distBinOracle computes a binned distance straight from the formulas.
func distBinOracle(d Distance, p, q []float64, eps float64) float64 {
	var s float64
	for i := range p {
		switch d {
		case PSI:
			pi, qi := math.Max(p[i], eps), math.Max(q[i], eps)
			s += (pi - qi) * math.Log(pi/qi)
		case JensenShannon:
			m := (p[i] + q[i]) / 2
			if p[i] > 0 {
				s += p[i] * math.Log2(p[i]/m) / 2
			}
			if q[i] > 0 {
				s += q[i] * math.Log2(q[i]/m) / 2
			}
		case Hellinger:
			s += (math.Sqrt(p[i]) - math.Sqrt(q[i])) * (math.Sqrt(p[i]) - math.Sqrt(q[i])) / 2
		case ChiSquared:
			s += (p[i] - q[i]) * (p[i] - q[i]) / math.Max(q[i], eps)
		case KolmogorovSmirnov, Wasserstein:
			s += math.Abs(p[i]-q[i]) / 2
		}
	}
	switch d {
	case JensenShannon, Hellinger:
		return math.Sqrt(s)
	}
	return s
}

func TestCategoricalDistanceRandom(t *testing.T) {
	for seed := uint64(1); seed <= 10; seed++ {
		a := catZipfStream(seed, 2000, 1.3, 60)
		b := catZipfStream(seed+77, 1500, 1.6, 60)
		cur, ref := NewCategorical(100), NewCategorical(100)
		for _, k := range a {
			cur.Add(k)
		}
		for _, k := range b {
			ref.Add(k)
		}
		ca, na := catOracle(a)
		cb, nb := catOracle(b)
		var p, q []float64
		for k := range ca {
			p, q = append(p, float64(ca[k])/float64(na)), append(q, float64(cb[k])/float64(nb))
		}
		for k := range cb {
			if ca[k] == 0 {
				p, q = append(p, 0), append(q, float64(cb[k])/float64(nb))
			}
		}
		for d := PSI; d <= ChiSquared; d++ {
			got, err := CategoricalDistance(d, cur, ref, DistanceOptions{Epsilon: 1e-3})
			if err != nil {
				t.Fatal(err)
			}
			want := distBinOracle(d, p, q, 1e-3)
			if !approxEq(got, want, 1e-12*math.Max(1, want)) {
				t.Errorf("seed %d %v = %.17g, oracle %.17g", seed, d, got, want)
			}
		}
	}
}

func TestNumericDistanceHandComputed(t *testing.T) {
	u010 := distLinear([2]float64{0, 0}, [2]float64{10, 1})
	u05 := distLinear([2]float64{0, 0}, [2]float64{5, 1})
	u02 := distLinear([2]float64{0, 0}, [2]float64{2, 1})
	u0515 := distLinear([2]float64{0.5, 0}, [2]float64{1.5, 1})
	u01 := distLinear([2]float64{0, 0}, [2]float64{1, 1})
	u23 := distLinear([2]float64{2, 0}, [2]float64{3, 1})
	// Reference atoms {0: .5, 1: .5}: quantiles .1-.5 are 0 and .6-.9 are
	// 1, so the 10 bins collapse to (−∞,0], (0,1], (1,∞) with q = .5 .5 0.
	atomsRef := distWeighted([]float64{0, 1}, []float64{1, 1})
	atomsCur := distWeighted([]float64{0, 1}, []float64{1, 3})
	tests := []struct {
		name     string
		d        Distance
		cur, ref NumericDistribution
		want     float64
	}{
		// Edges 1..9 of U[0,10]: q = .1 each, p = .2 ×5 then 0 ×5.
		// 5·.1·ln 2 + 5·(ε−.1)·ln(ε/.1), ε = 1e-4
		{"psi", PSI, u05, u010, 3.79699735213155},
		// Bhattacharyya coefficient 5·√.02 = 1/√2: sqrt(1 − 1/√2)
		{"hellinger", Hellinger, u05, u010, 0.541196100146197},
		// 5·.1²/.1 + 5·.1²/.1
		{"chi2", ChiSquared, u05, u010, 1},
		// sqrt(½[log2(4/3) + .5·log2(.1/.15) + .5·log2(.1/.05)])
		{"js", JensenShannon, u05, u010, 0.5579230452841438},
		// F_cur − F_ref = 1 − .5 at x = 5
		{"ks", KolmogorovSmirnov, u05, u010, 0.5},
		// ∫0^1 |5u − 10u| du
		{"wasserstein", Wasserstein, u05, u010, 2.5},
		// ∫0^1 |u − 2u| du
		{"wasserstein scale", Wasserstein, u01, u02, 0.5},
		// F − G changes sign at x = 1 inside the segment (0.5, 1.5):
		// ∫0^1 |2u − (u + .5)| du = 1/4
		{"wasserstein crossing", Wasserstein, u02, u0515, 0.25},
		{"ks crossing", KolmogorovSmirnov, u02, u0515, 0.25},
		{"wasserstein disjoint", Wasserstein, u23, u01, 2},
		{"ks disjoint", KolmogorovSmirnov, u23, u01, 1},
		// p = .25 .75 0, q = .5 .5 0: (−.25)·ln .5 + .25·ln 1.5 + 0
		{"psi repeated edges", PSI, atomsCur, atomsRef, 0.2746530721670274},
		// sqrt(1 − √(.25·.5) − √(.75·.5))
		{"hellinger repeated edges", Hellinger, atomsCur, atomsRef, 0.18459191128251476},
		// scipy: wasserstein_distance([0,1,3], [5,6,8]) = 5.0
		{"wasserstein scipy", Wasserstein, distSample(0, 1, 3), distSample(5, 6, 8), 5},
		// scipy: wasserstein_distance([0,1], [0,1], [3,1], [2,2]) = 0.25
		{"wasserstein scipy weighted", Wasserstein, distWeighted([]float64{0, 1}, []float64{3, 1}),
			distWeighted([]float64{0, 1}, []float64{2, 2}), 0.25},
		// Jump of 1 at 0 vs at 1: F_cur − F_ref = 1 on [0, 1).
		{"ks atoms", KolmogorovSmirnov, distSample(0), distSample(1), 1},
		{"wasserstein atoms", Wasserstein, distSample(0), distSample(1), 1},
		// F_cur = 0 then jumps to 1 at x = 1, F_ref = x on [0, 1]: the
		// supremum 1 is the left limit at 1, where the CDFs agree.
		{"ks left limit", KolmogorovSmirnov, distSample(1), u01, 1},
		// ∫0^1 x dx
		{"wasserstein ramp to atom", Wasserstein, distSample(1), u01, 0.5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NumericDistance(tc.d, tc.cur, tc.ref, DistanceOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !approxEq(got, tc.want, 1e-12*math.Max(1, tc.want)) {
				t.Fatalf("%v = %.17g, want %.17g", tc.d, got, tc.want)
			}
		})
	}
}

// distKSOracle is the two-sample KS statistic of raw samples:
// max over the pooled values v of |#a≤v/len(a) − #b≤v/len(b)|.
func distKSOracle(a, b []float64) float64 {
	sa, sb := slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b))
	var best float64
	for _, v := range append(slices.Clone(a), b...) {
		ca := sort.Search(len(sa), func(i int) bool { return sa[i] > v })
		cb := sort.Search(len(sb), func(i int) bool { return sb[i] > v })
		best = math.Max(best, math.Abs(float64(ca)/float64(len(a))-float64(cb)/float64(len(b))))
	}
	return best
}

// distW1Oracle is ∫0^1 |Qa(u) − Qb(u)| du for raw samples, summed over
// the L = lcm(len(a), len(b)) intervals on which both quantile functions
// are constant.
func distW1Oracle(a, b []float64) float64 {
	sa, sb := slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b))
	na, nb := len(a), len(b)
	g := na
	for r := nb; r != 0; {
		g, r = r, g%r
	}
	l := na / g * nb
	var s float64
	for k := range l {
		s += math.Abs(sa[k/(l/na)] - sb[k/(l/nb)])
	}
	return s / float64(l)
}

func TestNumericDistanceRawSamples(t *testing.T) {
	for seed := uint64(1); seed <= 30; seed++ {
		rng := rand.New(rand.NewPCG(seed, 3))
		draw := func(n int, shift float64) []float64 {
			out := make([]float64, n)
			for i := range out {
				if seed%2 == 0 {
					out[i] = float64(rng.IntN(8)) + shift // many ties
				} else {
					out[i] = rng.NormFloat64() + shift
				}
			}
			return out
		}
		a, b := draw(1+rng.IntN(40), 0), draw(1+rng.IntN(40), rng.Float64())
		da, db := distSample(a...), distSample(b...)
		ks, err := NumericDistance(KolmogorovSmirnov, da, db, DistanceOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if want := distKSOracle(a, b); !approxEq(ks, want, 1e-12) {
			t.Errorf("seed %d: KS = %.17g, oracle %.17g", seed, ks, want)
		}
		w, err := NumericDistance(Wasserstein, da, db, DistanceOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if want := distW1Oracle(a, b); !approxEq(w, want, 1e-9*math.Max(1, want)) {
			t.Errorf("seed %d: W1 = %.17g, oracle %.17g", seed, w, want)
		}
	}
}

func TestNumericDistanceBinnedRandom(t *testing.T) {
	// The reference is a sample of bins·m distinct values, so its
	// i/bins quantile is its (i·m)-th smallest value and each bin holds
	// exactly 1/bins of it; the oracle counts the current sample's values
	// in each bin (e_{i−1}, e_i].
	for seed := uint64(1); seed <= 10; seed++ {
		rng := rand.New(rand.NewPCG(seed, 4))
		bins := 2 + rng.IntN(15)
		m := 1 + rng.IntN(6)
		ref := make([]float64, bins*m)
		for i := range ref {
			ref[i] = rng.NormFloat64()
		}
		cur := make([]float64, 50+rng.IntN(100))
		for i := range cur {
			cur[i] = rng.NormFloat64()*1.5 + 0.3
		}
		sr := slices.Sorted(slices.Values(ref))
		p, q := make([]float64, bins), make([]float64, bins)
		for i := range bins {
			q[i] = 1 / float64(bins)
			lo, hi := math.Inf(-1), math.Inf(1)
			if i > 0 {
				lo = sr[i*m-1]
			}
			if i < bins-1 {
				hi = sr[(i+1)*m-1]
			}
			for _, v := range cur {
				if v > lo && v <= hi {
					p[i]++
				}
			}
			p[i] /= float64(len(cur))
		}
		opt := DistanceOptions{Bins: bins, Epsilon: 1e-3}
		for _, d := range []Distance{PSI, JensenShannon, Hellinger, ChiSquared} {
			got, err := NumericDistance(d, distSample(cur...), distSample(ref...), opt)
			if err != nil {
				t.Fatal(err)
			}
			if want := distBinOracle(d, p, q, 1e-3); !approxEq(got, want, 1e-9*math.Max(1, want)) {
				t.Errorf("seed %d bins %d: %v = %.17g, oracle %.17g", seed, bins, d, got, want)
			}
		}
	}
}

func TestDistanceProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	var nums []NumericDistribution
	var cats []*Categorical
	for i := range 6 {
		vals := make([]float64, 30)
		for j := range vals {
			vals[j] = rng.NormFloat64() + float64(i)/3
		}
		nums = append(nums, distSample(vals...))
		c := NewCategorical(16)
		for _, k := range catZipfStream(uint64(i+1), 400, 1.2, 40) {
			c.Add(k)
		}
		cats = append(cats, c)
	}
	nums = append(nums, distLinear([2]float64{-1, 0}, [2]float64{0, 0.3}, [2]float64{0, 0.6}, [2]float64{4, 1}))
	bounded := func(d Distance) bool { return d != PSI && d != ChiSquared }
	for d := PSI; d <= ChiSquared; d++ {
		for i := range nums {
			if v, err := NumericDistance(d, nums[i], nums[i], DistanceOptions{}); err != nil || v != 0 {
				t.Errorf("%v(P, P) = %v, %v; want 0", d, v, err)
			}
			for j := range nums {
				v, err := NumericDistance(d, nums[i], nums[j], DistanceOptions{})
				if err != nil || !(v >= 0) || (bounded(d) && d != Wasserstein && v > 1) {
					t.Errorf("%v(%d, %d) = %v, %v", d, i, j, v, err)
				}
				if d == KolmogorovSmirnov || d == Wasserstein {
					w, _ := NumericDistance(d, nums[j], nums[i], DistanceOptions{})
					if !approxEq(v, w, 1e-12) {
						t.Errorf("%v not symmetric: %v vs %v", d, v, w)
					}
				}
			}
		}
		for i := range cats {
			if v, err := CategoricalDistance(d, cats[i], cats[i], DistanceOptions{}); err != nil || v != 0 {
				t.Errorf("categorical %v(P, P) = %v, %v; want 0", d, v, err)
			}
			for j := range cats {
				v, err := CategoricalDistance(d, cats[i], cats[j], DistanceOptions{})
				if err != nil || !(v >= 0) || (bounded(d) && v > 1) {
					t.Errorf("categorical %v(%d, %d) = %v, %v", d, i, j, v, err)
				}
				if d != ChiSquared {
					w, _ := CategoricalDistance(d, cats[j], cats[i], DistanceOptions{})
					if !approxEq(v, w, 1e-12) {
						t.Errorf("categorical %v not symmetric: %v vs %v", d, v, w)
					}
				}
			}
		}
	}
}

func TestDistanceErrors(t *testing.T) {
	full := distSample(1, 2, 3)
	empty := &distPL{}
	cat := catFromCounts(4, map[string]uint64{"a": 1})
	emptyCat := NewCategorical(4)
	tests := []struct {
		name string
		f    func() (float64, error)
		want string
	}{
		{"numeric empty current", func() (float64, error) { return NumericDistance(PSI, empty, full, DistanceOptions{}) }, "current"},
		{"numeric empty reference", func() (float64, error) { return NumericDistance(KolmogorovSmirnov, full, empty, DistanceOptions{}) }, "reference"},
		{"numeric nil current", func() (float64, error) { return NumericDistance(Wasserstein, nil, full, DistanceOptions{}) }, "current"},
		{"numeric nil reference", func() (float64, error) { return NumericDistance(Hellinger, full, nil, DistanceOptions{}) }, "reference"},
		{"categorical empty current", func() (float64, error) { return CategoricalDistance(PSI, emptyCat, cat, DistanceOptions{}) }, "current"},
		{"categorical empty reference", func() (float64, error) { return CategoricalDistance(PSI, cat, emptyCat, DistanceOptions{}) }, "reference"},
		{"categorical nil current", func() (float64, error) { return CategoricalDistance(PSI, nil, cat, DistanceOptions{}) }, "current"},
		{"categorical nil reference", func() (float64, error) { return CategoricalDistance(PSI, cat, nil, DistanceOptions{}) }, "reference"},
		{"unknown distance", func() (float64, error) { return NumericDistance(Distance(99), full, full, DistanceOptions{}) }, "distance(99)"},
		{"zero distance", func() (float64, error) { return CategoricalDistance(0, cat, cat, DistanceOptions{}) }, "distance(0)"},
		{"one bin", func() (float64, error) { return NumericDistance(PSI, full, full, DistanceOptions{Bins: 1}) }, "bins"},
		{"negative bins", func() (float64, error) { return NumericDistance(PSI, full, full, DistanceOptions{Bins: -3}) }, "bins"},
		{"too many bins", func() (float64, error) {
			return NumericDistance(PSI, full, full, DistanceOptions{Bins: MaxDistanceBins + 1})
		}, "bins"},
		{"negative epsilon", func() (float64, error) { return NumericDistance(PSI, full, full, DistanceOptions{Epsilon: -1}) }, "epsilon"},
		{"NaN epsilon", func() (float64, error) {
			return CategoricalDistance(PSI, cat, cat, DistanceOptions{Epsilon: math.NaN()})
		}, "epsilon"},
		{"epsilon 1", func() (float64, error) { return CategoricalDistance(PSI, cat, cat, DistanceOptions{Epsilon: 1}) }, "epsilon"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.f()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrInvalid mentioning %q", err, tc.want)
			}
		})
	}
}

func TestNumericDistanceConcurrentReads(t *testing.T) {
	a, b := distSample(1, 2, 2, 5), distSample(0, 3, 4)
	want := make([]float64, ChiSquared+1)
	for d := PSI; d <= ChiSquared; d++ {
		want[d], _ = NumericDistance(d, a, b, DistanceOptions{})
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for d := PSI; d <= ChiSquared; d++ {
				if got, err := NumericDistance(d, a, b, DistanceOptions{}); err != nil || got != want[d] {
					t.Errorf("%v = %v, %v; want %v", d, got, err, want[d])
				}
			}
		})
	}
	wg.Wait()
}

// distBenchPL is a piecewise-linear distribution through n breakpoints.
func distBenchPL(seed uint64, n int, shift float64) *distPL {
	rng := rand.New(rand.NewPCG(seed, 8))
	d := &distPL{n: 1e6}
	x := shift
	for i := range n {
		x += rng.ExpFloat64()
		d.xs = append(d.xs, x)
		d.fs = append(d.fs, float64(i)/float64(n-1))
	}
	return d
}

func BenchmarkNumericDistance(b *testing.B) {
	const n = 1000
	cur, ref := distBenchPL(1, n, 0.5), distBenchPL(2, n, 0)
	for _, d := range []Distance{PSI, JensenShannon, Hellinger, ChiSquared, KolmogorovSmirnov, Wasserstein} {
		b.Run(fmt.Sprintf("op=%v/breakpoints=%d", d, n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := NumericDistance(d, cur, ref, DistanceOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
