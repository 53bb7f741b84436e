package sketch

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// regPairs is a list of (label, prediction) pairs.
type regPairs struct {
	y, yhat    []float64
	scale, off float64 // of the distribution regRandomPairs drew from
}

func regOf(t testing.TB, p regPairs) *Regression {
	t.Helper()
	r := NewRegression()
	for i := range p.y {
		if err := r.Add(p.y[i], p.yhat[i]); err != nil {
			t.Fatalf("Add(%v, %v): %v", p.y[i], p.yhat[i], err)
		}
	}
	return r
}

// regOracle computes sklearn's definitions directly from the pairs:
// mean_absolute_error = mean|y−ŷ|, mean_squared_error = mean (y−ŷ)²,
// r2_score = 1 − Σ(y−ŷ)²/Σ(y−ȳ)² (here NaN when the denominator is 0, as
// r2_score with force_finite=False gives for perfect predictions), plus
// bias = mean(ŷ−y) and the two means. Sums are plain sequential sums; the
// label's sum of squares is two-pass.
type regOracle struct {
	n, mae, mse, rmse, r2, bias, meanY, meanYhat float64
}

func newRegOracle(p regPairs) regOracle {
	n := float64(len(p.y))
	var sAbs, sSq, sErr, sY, sYhat float64
	for i := range p.y {
		d := p.y[i] - p.yhat[i]
		sAbs += math.Abs(d)
		sSq += d * d
		sErr += p.yhat[i] - p.y[i]
		sY += p.y[i]
		sYhat += p.yhat[i]
	}
	o := regOracle{n: n, mae: sAbs / n, mse: sSq / n, rmse: math.Sqrt(sSq / n), bias: sErr / n, meanY: sY / n, meanYhat: sYhat / n}
	var sst float64
	for _, y := range p.y {
		sst += (y - o.meanY) * (y - o.meanY)
	}
	o.r2 = 1 - sSq/sst
	if sst == 0 {
		o.r2 = math.NaN()
	}
	return o
}

// metrics lists each metric of r against the oracle with relative
// tolerance tol; scale bounds the magnitude of the errors and labels so
// that metrics near zero (bias, a mean) get an absolute floor.
func (o regOracle) metrics(r *Regression, tol, scale float64) []momMetric {
	return []momMetric{
		{"Count", r.Count(), o.n, 0, 0},
		{"MAE", r.MAE(), o.mae, tol, scale},
		{"MSE", r.MSE(), o.mse, tol, scale * scale},
		{"RMSE", r.RMSE(), o.rmse, tol, scale},
		{"R2", r.R2(), o.r2, tol, 1},
		{"Bias", r.Bias(), o.bias, tol, scale},
		{"MeanLabel", r.MeanLabel(), o.meanY, tol, scale},
		{"MeanPrediction", r.MeanPrediction(), o.meanYhat, tol, scale},
	}
}

func regScale(p regPairs) float64 {
	s := 1.0
	for i := range p.y {
		s = math.Max(s, math.Max(math.Abs(p.y[i]), math.Abs(p.yhat[i])))
	}
	return s
}

func TestRegressionSklearnExamples(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name                                string
		p                                   regPairs
		mae, mse, r2, bias, meanY, meanYhat float64
		sklearnR2Default, sklearnR2Unforced float64
	}{
		// sklearn docs (mean_absolute_error, mean_squared_error,
		// r2_score): e = ŷ−y = −0.5, 0.5, 0, 1; MAE = 2/4 = 0.5;
		// MSE = (0.25+0.25+0+1)/4 = 0.375; ȳ = 11.5/4 = 2.875,
		// SST = 0.125²+3.375²+0.875²+4.125² = 29.1875,
		// R² = 1 − 1.5/29.1875 = 0.9486081370449679; bias = 1/4;
		// mean ŷ = 12.5/4.
		{"docs", regPairs{y: []float64{3, -0.5, 2, 7}, yhat: []float64{2.5, 0.0, 2, 8}}, 0.5, 0.375, 0.9486081370449679, 0.25, 2.875, 3.125, 0.9486081370449679, 0.9486081370449679},
		// r2_score docs: SST = 1+0+1 = 2 for y = 1,2,3.
		{"perfect", regPairs{y: []float64{1, 2, 3}, yhat: []float64{1, 2, 3}}, 0, 0, 1, 0, 2, 2, 1, 1},
		// SSE = 1+0+1 = 2, R² = 1 − 2/2 = 0.
		{"mean predictor", regPairs{y: []float64{1, 2, 3}, yhat: []float64{2, 2, 2}}, 2.0 / 3, 2.0 / 3, 0, 0, 2, 2, 0, 0},
		// SSE = 4+0+4 = 8, R² = 1 − 8/2 = −3.
		{"reversed", regPairs{y: []float64{1, 2, 3}, yhat: []float64{3, 2, 1}}, 4.0 / 3, 8.0 / 3, -3, 0, 2, 2, -3, -3},
		// Constant labels: SST = 0, R² undefined. sklearn returns 1.0
		// (force_finite=True) or NaN (force_finite=False).
		{"constant perfect", regPairs{y: []float64{-2, -2, -2}, yhat: []float64{-2, -2, -2}}, 0, 0, nan, 0, -2, -2, 1, nan},
		// Constant labels, imperfect: sklearn 0.0 or −Inf; NaN here.
		// e = 0, 0, 0.5: MAE = 0.5/3, MSE = 0.25/3.
		{"constant imperfect", regPairs{y: []float64{-2, -2, -2}, yhat: []float64{-2, -2, -1.5}}, 0.5 / 3, 0.25 / 3, nan, 0.5 / 3, -2, -5.5 / 3, 0, math.Inf(-1)},
		// One pair: SST = 0. e = 4 − 1 = 3.
		{"single pair", regPairs{y: []float64{1}, yhat: []float64{4}}, 3, 9, nan, 3, 1, 4, nan, nan},
		{"empty", regPairs{}, nan, nan, nan, nan, nan, nan, nan, nan},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := regOf(t, tc.p)
			momCheckMetrics(t, []momMetric{
				{"Count", r.Count(), float64(len(tc.p.y)), 0, 0},
				{"MAE", r.MAE(), tc.mae, 1e-15, 1},
				{"MSE", r.MSE(), tc.mse, 1e-15, 1},
				{"RMSE", r.RMSE(), math.Sqrt(tc.mse), 1e-15, 1},
				{"R2", r.R2(), tc.r2, 1e-15, 1},
				{"Bias", r.Bias(), tc.bias, 1e-15, 1},
				{"MeanLabel", r.MeanLabel(), tc.meanY, 1e-15, 1},
				{"MeanPrediction", r.MeanPrediction(), tc.meanYhat, 1e-15, 1},
			})
			if len(tc.p.y) > 0 {
				momCheckMetrics(t, newRegOracle(tc.p).metrics(r, 1e-15, 1))
			}
			momCheckMetrics(t, []momMetric{
				{"sklearn force_finite=True", regSklearnR2(r, true), tc.sklearnR2Default, 1e-15, 1},
				{"sklearn force_finite=False", regSklearnR2(r, false), tc.sklearnR2Unforced, 1e-15, 1},
			})
		})
	}
}

// regSklearnR2 maps R2 to what sklearn's r2_score returns, as
// docs/sketches.md tells users to do: with constant labels (R2 NaN, two or
// more pairs) sklearn gives 1.0 for perfect predictions and 0.0 otherwise,
// or NaN and −Inf with force_finite=False.
func regSklearnR2(r *Regression, forceFinite bool) float64 {
	if !math.IsNaN(r.R2()) || r.Count() < 2 {
		return r.R2()
	}
	switch {
	case r.MSE() == 0 && forceFinite:
		return 1
	case r.MSE() == 0:
		return math.NaN()
	case forceFinite:
		return 0
	}
	return math.Inf(-1)
}

func TestRegressionSignOfError(t *testing.T) {
	r := regOf(t, regPairs{y: []float64{10, 20}, yhat: []float64{11, 23}})
	if r.Bias() != 2 || r.MeanPrediction() != 17 || r.MeanLabel() != 15 {
		t.Errorf("over-prediction by 1 and 3: Bias %v, MeanPrediction %v, MeanLabel %v; want 2, 17, 15", r.Bias(), r.MeanPrediction(), r.MeanLabel())
	}
}

// regFill adds k random pairs: labels around a random offset and noisy
// predictions; dyadic values are multiples of 1/8 so every sum is exact.
// Occasional exact predictions and signed zeros exercise e = 0 and -0.
func regFill(r *Regression, rng *rand.Rand, k int, dyadic bool) {
	off := float64(rng.IntN(2001)-1000) / 4
	for range k {
		var y, yhat float64
		switch {
		case rng.IntN(20) == 0:
			y, yhat = math.Copysign(0, -1), 0
		case dyadic:
			y = off + float64(rng.IntN(1601)-800)/8
			yhat = y + float64(rng.IntN(161)-80)/8
		default:
			y = off + 30*rng.NormFloat64()
			yhat = y + 0.5 + 5*rng.NormFloat64()
		}
		if rng.IntN(10) == 0 {
			yhat = y
		}
		if err := r.Add(y, yhat); err != nil {
			panic(err)
		}
	}
}

// regRandomPairs draws n pairs at a random scale (1e-4 to 1e4) and offset;
// regMorePairs draws more from the same distribution as p.
func regRandomPairs(rng *rand.Rand, n int) regPairs {
	scale := math.Pow(10, float64(rng.IntN(9)-4))
	return regPairsAt(rng, n, scale, scale*float64(rng.IntN(41)-20))
}

func regPairsAt(rng *rand.Rand, n int, scale, off float64) regPairs {
	p := regPairs{make([]float64, n), make([]float64, n), scale, off}
	for i := range n {
		p.y[i] = off + scale*rng.NormFloat64()
		p.yhat[i] = p.y[i] + scale*(0.3*rng.NormFloat64()+0.1)
	}
	return p
}

func TestRegressionRandomOracle(t *testing.T) {
	for seed := range uint64(30) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 21))
			p := regRandomPairs(rng, 2+rng.IntN(400))
			seq := regOf(t, p)
			merged := NewRegression()
			for i := 0; i < len(p.y); {
				j := min(len(p.y), i+1+rng.IntN(50))
				merged.Merge(regOf(t, regPairs{y: p.y[i:j], yhat: p.yhat[i:j]}))
				i = j
			}
			o := newRegOracle(p)
			momCheckMetrics(t, o.metrics(seq, 1e-12, regScale(p)))
			momCheckMetrics(t, o.metrics(merged, 1e-12, regScale(p)))
		})
	}
}

func TestRegressionAddRejects(t *testing.T) {
	r := regOf(t, regPairs{y: []float64{1, 2}, yhat: []float64{1.5, 2.5}})
	bad := []float64{math.NaN(), math.Inf(1), math.Inf(-1), math.Nextafter(MaxMomentValue, math.Inf(1)), -1e300}
	for _, v := range bad {
		for _, pair := range [][2]float64{{v, 1}, {1, v}} {
			before := momEncode(r)
			if err := r.Add(pair[0], pair[1]); !errors.Is(err, ErrInvalid) {
				t.Errorf("Add(%v, %v) err = %v, want ErrInvalid", pair[0], pair[1], err)
			}
			if err := r.Remove(pair[0], pair[1]); !errors.Is(err, ErrInvalid) {
				t.Errorf("Remove(%v, %v) err = %v, want ErrInvalid", pair[0], pair[1], err)
			}
			if !bytes.Equal(before, momEncode(r)) {
				t.Errorf("refused pair (%v, %v) changed the state", pair[0], pair[1])
			}
		}
	}
	if err := r.Add(MaxMomentValue, -MaxMomentValue); err != nil {
		t.Errorf("Add at the bounds: %v", err)
	}
	full := NewRegression()
	if err := full.UnmarshalBinary(regRaw(math.MaxUint64, 0, 0, 0, 0, 0)); err != nil {
		t.Fatal(err)
	}
	if err := full.Add(1, 1); !errors.Is(err, ErrInvalid) {
		t.Errorf("Add at the maximum count: err = %v, want ErrInvalid", err)
	}
}

func TestRegressionRemove(t *testing.T) {
	t.Run("add then remove", func(t *testing.T) {
		for seed := range uint64(30) {
			rng := rand.New(rand.NewPCG(seed, 31))
			p := regRandomPairs(rng, 2+rng.IntN(300))
			r := regOf(t, p)
			// Retraction is accurate relative to what was added, so the
			// extra pairs come from the same distribution (see
			// docs/sketches.md on removing outliers).
			extra := regPairsAt(rng, 1+rng.IntN(5), p.scale, p.off)
			for i := range extra.y {
				if err := r.Add(extra.y[i], extra.yhat[i]); err != nil {
					t.Fatal(err)
				}
			}
			for i := range extra.y {
				if err := r.Remove(extra.y[i], extra.yhat[i]); err != nil {
					t.Fatal(err)
				}
			}
			momCheckMetrics(t, newRegOracle(p).metrics(r, 1e-12, regScale(p)))
		}
	})
	t.Run("remove a subset", func(t *testing.T) {
		for seed := range uint64(30) {
			rng := rand.New(rand.NewPCG(seed, 41))
			p := regRandomPairs(rng, 3+rng.IntN(300))
			r := regOf(t, p)
			var kept regPairs
			for i := range p.y {
				if rng.IntN(3) == 0 {
					if err := r.Remove(p.y[i], p.yhat[i]); err != nil {
						t.Fatal(err)
					}
					continue
				}
				kept.y, kept.yhat = append(kept.y, p.y[i]), append(kept.yhat, p.yhat[i])
			}
			if len(kept.y) == 0 {
				continue
			}
			// Removing many pairs, up to all but one, cancels more digits
			// than one add-then-remove, hence 1e-10 (1000 seeds stay
			// within 5e-12; R² far below 0 amplifies the most).
			momCheckMetrics(t, newRegOracle(kept).metrics(r, 1e-10, regScale(p)))
		}
	})
	t.Run("label correction", func(t *testing.T) {
		p := regPairs{y: []float64{3, -0.5, 2, 7}, yhat: []float64{2.5, 0.0, 2, 8}}
		r := regOf(t, regPairs{y: []float64{30, -0.5, 2, 7}, yhat: []float64{2.5, 0.0, 2, 8}})
		if err := r.Remove(30, 2.5); err != nil {
			t.Fatal(err)
		}
		if err := r.Add(3, 2.5); err != nil {
			t.Fatal(err)
		}
		momCheckMetrics(t, newRegOracle(p).metrics(r, 1e-12, 1))
	})
	t.Run("remove everything", func(t *testing.T) {
		r := regOf(t, regPairs{y: []float64{0.1, 0.2, 0.7}, yhat: []float64{0.3, 0.3, 0.3}})
		for _, pair := range [][2]float64{{0.2, 0.3}, {0.7, 0.3}, {0.1, 0.3}} {
			if err := r.Remove(pair[0], pair[1]); err != nil {
				t.Fatal(err)
			}
		}
		if got, want := momEncode(r), momEncode(NewRegression()); !bytes.Equal(got, want) {
			t.Errorf("after removing every pair: % x, want the empty state % x", got, want)
		}
	})
	t.Run("remove from empty", func(t *testing.T) {
		r := NewRegression()
		if err := r.Remove(1, 1); !errors.Is(err, ErrInvalid) {
			t.Errorf("err = %v, want ErrInvalid", err)
		}
		if got := momEncode(r); !bytes.Equal(got, momEncode(NewRegression())) {
			t.Errorf("state changed: % x", got)
		}
	})
	t.Run("remove a pair never added", func(t *testing.T) {
		// Both labels are 1e100: taking out a label of −1e100 would leave
		// one label with mean 3e100, beyond any possible mean.
		r := regOf(t, regPairs{y: []float64{1e100, 1e100}, yhat: []float64{1e100, 1e100}})
		before := momEncode(r)
		if err := r.Remove(-1e100, -1e100); !errors.Is(err, ErrInvalid) {
			t.Errorf("err = %v, want ErrInvalid", err)
		}
		if !bytes.Equal(before, momEncode(r)) {
			t.Errorf("refused Remove changed the state")
		}
	})
}

func TestRegressionSubtract(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 51))
		pa := regRandomPairs(rng, 2+rng.IntN(200))
		pb := regPairsAt(rng, 1+rng.IntN(200), pa.scale, pa.off)
		a, b := regOf(t, pa), regOf(t, pb)
		c := regOf(t, pa)
		c.Merge(b)
		if err := c.Subtract(b); err != nil {
			t.Fatal(err)
		}
		// As for removing a subset: 1e-10 (1000 seeds stay within 5e-12).
		momCheckMetrics(t, newRegOracle(pa).metrics(c, 1e-10, math.Max(regScale(pa), regScale(pb))))
		if c.Count() != a.Count() {
			t.Errorf("count %v, want %v", c.Count(), a.Count())
		}
	}
	a := regOf(t, regPairs{y: []float64{1, 2, 3}, yhat: []float64{1, 1, 1}})
	if err := a.Subtract(a); err != nil || !bytes.Equal(momEncode(a), momEncode(NewRegression())) {
		t.Errorf("a.Subtract(a): err %v, state % x, want empty", err, momEncode(a))
	}
	small, large := regOf(t, regPairs{y: []float64{1}, yhat: []float64{2}}), regOf(t, regPairs{y: []float64{1, 2}, yhat: []float64{2, 3}})
	before := momEncode(small)
	if err := small.Subtract(large); !errors.Is(err, ErrInvalid) {
		t.Errorf("subtracting a larger state: err = %v, want ErrInvalid", err)
	}
	if !bytes.Equal(before, momEncode(small)) {
		t.Errorf("refused Subtract changed the state")
	}
	if err := small.Subtract(NewRegression()); err != nil || !bytes.Equal(before, momEncode(small)) {
		t.Errorf("subtracting the empty state: err %v, changed %v", err, !bytes.Equal(before, momEncode(small)))
	}
}

func regProps() momProps[*Regression] {
	return momProps[*Regression]{
		fresh: NewRegression,
		fill:  regFill,
		merge: func(a, b *Regression) { a.Merge(b) },
		compare: func(got, want *Regression, dyadic bool) string {
			sumTol := 1e-12
			if dyadic {
				sumTol = 0
			}
			// Scaled sums (MAE·n is Σ|e|) are exact for dyadic values;
			// the label's mean and M2 are within rounding.
			return momMismatch([]momMetric{
				{"Count", got.Count(), want.Count(), 0, 0},
				{"sum |e|", got.sumAbsErr, want.sumAbsErr, sumTol, 1},
				{"sum e²", got.sumSqErr, want.sumSqErr, sumTol, 1},
				{"sum e", got.sumErr, want.sumErr, sumTol, want.sumAbsErr},
				{"MeanLabel", got.MeanLabel(), want.MeanLabel(), 1e-12, 300},
				{"label M2", got.m2Y, want.m2Y, 1e-12, 0},
				{"R2", got.R2(), want.R2(), 1e-12, 1},
			})
		},
	}
}

func TestRegressionMergeAssocCommut(t *testing.T) { regProps().run(t) }

// regRaw builds an encoding by hand: count, then Σe, Σ|e|, Σe², ȳ, M2(y).
func regRaw(n uint64, fs ...float64) []byte {
	b := appendUvarint([]byte{byte(FormatRegression)}, n)
	for _, f := range fs {
		b = appendFloat64(b, f)
	}
	return b
}

func TestRegressionRoundTrip(t *testing.T) {
	states := map[string]*Regression{
		"empty":       NewRegression(),
		"one":         regOf(t, regPairs{y: []float64{-2.5}, yhat: []float64{1}}),
		"signed zero": regOf(t, regPairs{y: []float64{math.Copysign(0, -1)}, yhat: []float64{0}}),
		"bounds":      regOf(t, regPairs{y: []float64{MaxMomentValue, -MaxMomentValue}, yhat: []float64{-MaxMomentValue, MaxMomentValue}}),
		"random":      regProps().random(9, false),
	}
	removed := regProps().random(10, false)
	if err := removed.Remove(3, 4); err != nil {
		t.Fatal(err)
	}
	states["after remove"] = removed
	for name, r := range states {
		t.Run(name, func(t *testing.T) {
			momCheckRoundTrip(t, r, regOf(t, regPairs{y: []float64{1, 2}, yhat: []float64{3, 4}}), NewRegression())
		})
	}
	// One pair (y 1, ŷ 2): count 1, Σe = Σ|e| = Σe² = 1, ȳ = 1, M2 = 0.
	want := regRaw(1, 1, 1, 1, 1, 0)
	if got := momEncode(regOf(t, regPairs{y: []float64{1}, yhat: []float64{2}})); !bytes.Equal(got, want) {
		t.Errorf("encoding = % x, want % x", got, want)
	}
}

func TestRegressionDecodeCorrupt(t *testing.T) {
	nan, inf, negZero := math.NaN(), math.Inf(1), math.Copysign(0, -1)
	const l = MaxMomentValue
	tests := []struct {
		name string
		src  []byte
		want error
	}{
		{"nil", nil, ErrCorrupt},
		{"wrong format", []byte{byte(FormatMoments), 0}, ErrFormat},
		{"empty with payload", regRaw(0, 0), ErrCorrupt},
		{"missing fields", regRaw(2, 1, 1, 1, 1), ErrCorrupt},
		{"NaN sum", regRaw(2, nan, 1, 1, 1, 1), ErrCorrupt},
		{"Inf sum of squares", regRaw(2, 1, 1, inf, 1, 1), ErrCorrupt},
		{"negative sum of absolute errors", regRaw(2, 1, -1, 1, 1, 1), ErrCorrupt},
		{"negative sum of squares", regRaw(2, 1, 1, -1, 1, 1), ErrCorrupt},
		{"negative label m2", regRaw(2, 1, 1, 1, 1, -1), ErrCorrupt},
		{"label m2 with one pair", regRaw(1, 1, 1, 1, 1, 0.5), ErrCorrupt},
		{"label mean beyond 2L", regRaw(2, 1, 1, 1, 2.5*l, 1), ErrCorrupt},
		{"sum of errors beyond 4Ln", regRaw(1, 4.5*l, 4.5*l, 1, 1, 0), ErrCorrupt},
		{"sum of squares beyond 8L²n", regRaw(1, 1, 1, 9*l*l, 1, 0), ErrCorrupt},
		{"label m2 beyond 4L²n", regRaw(2, 1, 1, 1, 1, 9*l*l), ErrCorrupt},
		{"negative zero sum", regRaw(2, negZero, 1, 1, 1, 1), ErrCorrupt},
		{"negative zero mean", regRaw(2, 1, 1, 1, negZero, 1), ErrCorrupt},
	}
	recv := regOf(t, regPairs{y: []float64{1, 2, 3}, yhat: []float64{1.5, 2, 2}})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { momCheckAtomic(t, recv, tc.src, tc.want) })
	}
	t.Run("truncations", func(t *testing.T) {
		momCheckTruncations(t, recv, momEncode(regOf(t, regPairs{y: []float64{1, 2}, yhat: []float64{2, 2}})))
	})
	t.Run("count overflow", func(t *testing.T) {
		full := NewRegression()
		if err := full.UnmarshalBinary(regRaw(math.MaxUint64, 0, 0, 0, 0, 0)); err != nil {
			t.Fatal(err)
		}
		momCheckAtomicMerge(t, full, momEncode(recv))
	})
}

func TestRegressionReadsDoNotMutate(t *testing.T) {
	r := regProps().random(5, false)
	checkReadOnly(t, r, func() {
		_, _, _, _ = r.Count(), r.MAE(), r.MSE(), r.RMSE()
		_, _, _, _ = r.R2(), r.Bias(), r.MeanLabel(), r.MeanPrediction()
	})
}

func TestRegressionZeroAllocs(t *testing.T) {
	r := regOf(t, regPairs{y: []float64{1, 2}, yhat: []float64{2, 2}})
	o := regProps().random(3, false)
	enc := momEncode(o)
	buf := make([]byte, 0, 64)
	x := 0.0
	r.Merge(o) // so that Subtract(o) below always succeeds
	momCheckNoAllocs(t, map[string]func(){
		"Add":            func() { x += 0.5; _ = r.Add(x, x+1) },
		"Remove":         func() { _ = r.Remove(x, x+1); _ = r.Add(x, x+1) },
		"Merge":          func() { r.Merge(o) },
		"Subtract":       func() { _ = r.Subtract(o); r.Merge(o) },
		"DecodeAndMerge": func() { _ = r.DecodeAndMerge(enc) },
		"AppendBinary":   func() { buf = r.AppendBinary(buf[:0]) },
	})
}

func TestRegressionResetAndMemSize(t *testing.T) {
	r := regOf(t, regPairs{y: []float64{1, 2}, yhat: []float64{2, 2}})
	momCheckReset(t, r, NewRegression())
	if r.Format() != FormatRegression || r.Count() != 0 || !math.IsNaN(r.MAE()) {
		t.Errorf("after Reset: format %v count %v MAE %v", r.Format(), r.Count(), r.MAE())
	}
}

func FuzzDecodeRegression(f *testing.F) {
	f.Add(momEncode(NewRegression()))
	f.Add(momEncode(regOf(f, regPairs{y: []float64{1}, yhat: []float64{2}})))
	f.Add(momEncode(regOf(f, regPairs{y: []float64{3, -0.5, 2, 7}, yhat: []float64{2.5, 0.0, 2, 8}})))
	f.Add(momEncode(regProps().random(1, false)))
	f.Add(regRaw(2, 1, 1, 1, 1, -1))
	f.Fuzz(func(t *testing.T, data []byte) {
		momFuzzRoundTrip(t, data, func() Sketch { return NewRegression() })
	})
}

func BenchmarkRegression(b *testing.B) {
	ys := make([]float64, 1024)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range ys {
		ys[i] = 100 + 10*rng.NormFloat64()
	}
	momBench(b, NewRegression, regFill,
		func(r *Regression, i int) { _ = r.Add(ys[i&1023], ys[(i+1)&1023]) },
		func(a, o *Regression) { a.Merge(o) })
}

// TestRegressionExtremeValuesStayDecodable checks that every state Add,
// Remove, Merge and Subtract build from extreme values satisfies the
// decoder's invariants.
func TestRegressionExtremeValuesStayDecodable(t *testing.T) {
	rng := rand.New(rand.NewPCG(78, 1))
	pool := []*Regression{}
	for range 300 {
		r := NewRegression()
		var added [][2]float64
		for range rng.IntN(20) {
			p := [2]float64{momExtreme(rng), momExtreme(rng)}
			if err := r.Add(p[0], p[1]); err != nil {
				t.Fatal(err)
			}
			added = append(added, p)
		}
		for _, p := range added {
			if rng.IntN(3) == 0 {
				if err := r.Remove(p[0], p[1]); err != nil {
					t.Fatalf("Remove(%v, %v): %v", p[0], p[1], err)
				}
			}
		}
		if len(pool) > 0 {
			o := pool[rng.IntN(len(pool))]
			r.Merge(o)
			if rng.IntN(2) == 0 {
				if err := r.Subtract(o); err != nil {
					t.Fatalf("Subtract: %v", err)
				}
			}
		}
		if err := NewRegression().UnmarshalBinary(momEncode(r)); err != nil {
			t.Fatalf("state % x does not decode: %v", momEncode(r), err)
		}
		pool = append(pool, r)
	}
}
