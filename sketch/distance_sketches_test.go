package sketch

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// rawKS is the exact two-sample Kolmogorov-Smirnov statistic of sorted a, b.
func rawKS(a, b []float64) float64 {
	var i, j int
	d := 0.0
	for i < len(a) && j < len(b) {
		x := min(a[i], b[j])
		for i < len(a) && a[i] == x {
			i++
		}
		for j < len(b) && b[j] == x {
			j++
		}
		d = max(d, math.Abs(float64(i)/float64(len(a))-float64(j)/float64(len(b))))
	}
	return d
}

// rawW1 is the exact Wasserstein-1 distance of two equal-sized sorted samples:
// the mean absolute difference of their order statistics.
func rawW1(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += math.Abs(a[i] - b[i])
	}
	return s / float64(len(a))
}

// rawBinned computes a binned distance on bins whose inner edges are the
// reference's empirical quantiles at i/bins (rank ⌊q·(n−1)⌋).
func rawBinned(d Distance, cur, ref []float64, bins int, eps float64) float64 {
	edges := make([]float64, 0, bins-1)
	for i := 1; i < bins; i++ {
		edges = append(edges, ref[int(float64(i)/float64(bins)*float64(len(ref)-1))])
	}
	frac := func(xs []float64) []float64 {
		p := make([]float64, bins)
		for _, x := range xs {
			k, _ := slices.BinarySearch(edges, x)
			// Bins are (edge[k-1], edge[k]]: x equal to an edge falls below it.
			p[k]++
		}
		for k := range p {
			p[k] /= float64(len(xs))
		}
		return p
	}
	return distBinOracle(d, frac(cur), frac(ref), eps)
}

// TestNumericDistanceOfSketches checks every distance computed from real
// sketch states against the same distance computed exactly from the raw
// samples the states were built from. The tolerances are the sketches'
// resolution (measured differences are about half of them): a schema-6 log
// histogram moves a value by at most 0.54%; a δ=100 t-digest's rank error
// is a few tenths of a percent.
func TestNumericDistanceOfSketches(t *testing.T) {
	type builder struct {
		name  string
		build func(xs []float64) NumericDistribution
		// tolerances: KS (absolute), W1 (relative), binned (absolute)
		ks, w1, binned float64
	}
	builders := []builder{
		{"loghist", func(xs []float64) NumericDistribution {
			h := NewDefaultLogHistogram()
			for _, x := range xs {
				if err := h.Add(x); err != nil {
					t.Fatal(err)
				}
			}
			return h
		}, 0.002, 0.002, 0.002},
		{"tdigest", func(xs []float64) NumericDistribution {
			d := NewDefaultTDigest()
			for _, x := range xs {
				if err := d.Add(x); err != nil {
					t.Fatal(err)
				}
			}
			return d
		}, 0.004, 0.01, 0.005},
	}
	shifts := []struct {
		name      string
		mu, sigma float64
	}{{"same", 0, 1}, {"shifted", 0.3, 1}, {"wider", 0, 1.5}, {"far", 3, 0.5}}
	const n = 20000
	for _, b := range builders {
		for i, sh := range shifts {
			t.Run(b.name+"/"+sh.name, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(100+i), 7))
				ref := make([]float64, n)
				cur := make([]float64, n)
				for k := range n {
					ref[k] = math.Exp(rng.NormFloat64())
					cur[k] = math.Exp(sh.mu + sh.sigma*rng.NormFloat64())
				}
				rs, cs := b.build(ref), b.build(cur)
				slices.Sort(ref)
				slices.Sort(cur)
				got := func(d Distance) float64 {
					v, err := NumericDistance(d, cs, rs, DistanceOptions{})
					if err != nil {
						t.Fatal(err)
					}
					return v
				}
				if ks, want := got(KolmogorovSmirnov), rawKS(cur, ref); math.Abs(ks-want) > b.ks {
					t.Errorf("KS = %.6f, raw %.6f (tolerance %g)", ks, want, b.ks)
				}
				if w1, want := got(Wasserstein), rawW1(cur, ref); math.Abs(w1-want) > b.w1*want+1e-3 {
					t.Errorf("W1 = %.6f, raw %.6f (tolerance %g relative)", w1, want, b.w1)
				}
				for _, d := range []Distance{PSI, JensenShannon, Hellinger, ChiSquared} {
					want := rawBinned(d, cur, ref, DefaultDistanceBins, DefaultDistanceEpsilon)
					if v := got(d); math.Abs(v-want) > b.binned*max(1, want) {
						t.Errorf("%v = %.6f, raw %.6f (tolerance %g)", d, v, want, b.binned)
					}
				}
			})
		}
	}
}
