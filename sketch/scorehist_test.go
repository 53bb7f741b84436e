package sketch

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
)

// scored is one raw example: a predicted score and its true class.
type scored struct {
	s   float64
	pos bool
}

func sc(s float64, pos bool) scored { return scored{s, pos} }

func buildScoreHist(t testing.TB, bins int, xs []scored) *ScoreHistogram {
	t.Helper()
	h, err := NewScoreHistogram(bins)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range xs {
		if err := h.Add(x.s, x.pos); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// --- oracles computed from the raw examples ---

// oracleAUC is the Mann-Whitney statistic from average ranks (ties 1/2).
func oracleAUC(xs []scored) float64 {
	ys := slices.Clone(xs)
	slices.SortFunc(ys, func(a, b scored) int { return cmp.Compare(a.s, b.s) })
	var rankSum, p, n float64
	for i := 0; i < len(ys); {
		j := i
		for j < len(ys) && ys[j].s == ys[i].s {
			j++
		}
		avg := float64(i+1+j) / 2 // mean of ranks i+1 … j
		for _, y := range ys[i:j] {
			if y.pos {
				rankSum += avg
				p++
			} else {
				n++
			}
		}
		i = j
	}
	return (rankSum - p*(p+1)/2) / (p * n)
}

// oracleAP is scikit-learn's average_precision_score: one threshold per
// distinct raw score, descending, Σ (Rₙ − Rₙ₋₁)·Pₙ.
func oracleAP(xs []scored) float64 {
	ys := slices.Clone(xs)
	slices.SortFunc(ys, func(a, b scored) int { return cmp.Compare(b.s, a.s) })
	var p float64
	for _, y := range ys {
		if y.pos {
			p++
		}
	}
	var tp, fp, ap float64
	for i := 0; i < len(ys); {
		j := i
		var gp float64
		for j < len(ys) && ys[j].s == ys[i].s {
			if ys[j].pos {
				tp++
				gp++
			} else {
				fp++
			}
			j++
		}
		ap += gp / p * (tp / (tp + fp))
		i = j
	}
	return ap
}

func label(x scored) float64 {
	if x.pos {
		return 1
	}
	return 0
}

func oracleBrier(xs []scored) float64 {
	var s float64
	for _, x := range xs {
		d := x.s - label(x)
		s += d * d
	}
	return s / float64(len(xs))
}

func oracleLogLoss(xs []scored) float64 {
	var s float64
	for _, x := range xs {
		p := math.Min(math.Max(x.s, 1e-15), 1-1e-15)
		if x.pos {
			s -= math.Log(p)
		} else {
			s -= math.Log1p(-p)
		}
	}
	return s / float64(len(xs))
}

func oracleMean(xs []scored) float64 {
	var s float64
	for _, x := range xs {
		s += x.s
	}
	return s / float64(len(xs))
}

// oracleECE bins the raw scores into [k/m, (k+1)/m) (last bin closed).
func oracleECE(xs []scored, m int) float64 {
	gap := make([]float64, m)
	for _, x := range xs {
		k := min(int(x.s*float64(m)), m-1)
		gap[k] += x.s - label(x)
	}
	var e float64
	for _, g := range gap {
		e += math.Abs(g)
	}
	return e / float64(len(xs))
}

// rawBins counts the raw examples per fine bin, with the binning rule the
// type documents (⌊s·B⌋, s = 1 in the last bin).
func rawBins(xs []scored, b int) (neg, pos []float64) {
	neg, pos = make([]float64, b), make([]float64, b)
	for _, x := range xs {
		j := min(int(x.s*float64(b)), b-1)
		if x.pos {
			pos[j]++
		} else {
			neg[j]++
		}
	}
	return neg, pos
}

// aucBinBound is the most binning can move the AUC: each pair inside one
// bin counts 1/2 where the raw scores give 0, 1/2 or 1.
func aucBinBound(xs []scored, b int) float64 {
	neg, pos := rawBins(xs, b)
	var pairs, p, n float64
	for j := range neg {
		pairs += neg[j] * pos[j]
		p += pos[j]
		n += neg[j]
	}
	return pairs / (2 * p * n)
}

// apBinBound is the most binning can move the AP. A positive in bin j has
// raw precision TP/k at its own score, where k = K_j − d counts the
// examples at or above it, K_j those at or above bin j's lower edge, and
// d ≤ n_j − 1 those of bin j below it; the binned precision is
// (TP + a)/K_j with 0 ≤ a ≤ d. Their difference is (TP·d − k·a)/(k·K_j),
// at most d/K_j ≤ (n_j − 1)/K_j in absolute value. Weighting by ΔR = 1/P:
// Σ_j (pos_j/P)·(n_j − 1)/K_j.
func apBinBound(xs []scored, b int) float64 {
	neg, pos := rawBins(xs, b)
	var p float64
	for _, v := range pos {
		p += v
	}
	var k, bound float64
	for j := b - 1; j >= 0; j-- {
		nj := neg[j] + pos[j]
		k += nj
		if pos[j] > 0 {
			bound += pos[j] / p * (nj - 1) / k
		}
	}
	return bound
}

func relClose(got, want, rel float64) bool {
	if got == want {
		return true
	}
	return math.Abs(got-want) <= rel*math.Max(math.Abs(want), math.SmallestNonzeroFloat64)
}

// --- generators ---

// genScores draws n examples. Distributions: overlap (two clamped normals,
// with mass exactly at 0 and 1), separated (disjoint uniforms), uniform
// (no skill), calibrated (logistic scores, y ~ Bernoulli(s)), rounded (overlap rounded to
// 0.01, so raw ties). posRate sets the class balance. Both classes are
// always present.
func genScores(rng *rand.Rand, dist string, n int, posRate float64) []scored {
	xs := make([]scored, n)
	clamp := func(v float64) float64 { return math.Min(math.Max(v, 0), 1) }
	for i := range xs {
		pos := rng.Float64() < posRate
		var s float64
		switch dist {
		case "overlap", "rounded":
			mu := 0.4
			if pos {
				mu = 0.6
			}
			s = clamp(mu + 0.2*rng.NormFloat64())
			if dist == "rounded" {
				s = math.Round(s*100) / 100
			}
		case "separated":
			s = 0.3 * rng.Float64()
			if pos {
				s += 0.7
			}
		case "uniform":
			s = rng.Float64()
		case "calibrated":
			// A logistic model centred on the class balance.
			z := math.Log(posRate/(1-posRate)) + 1.5*rng.NormFloat64()
			s = 1 / (1 + math.Exp(-z))
			pos = rng.Float64() < s
		default:
			panic("unknown distribution " + dist)
		}
		xs[i] = scored{s, pos}
	}
	xs[0].pos, xs[1].pos = true, false
	return xs
}

// checkScoreHistInvariants recomputes every derived counter from the bins.
func checkScoreHistInvariants(t testing.TB, h *ScoreHistogram) {
	t.Helper()
	if len(h.cnt) != 2*h.bins {
		t.Fatalf("len(cnt) = %d for %d bins", len(h.cnt), h.bins)
	}
	var total [2]int64
	var nonzero [2]int
	var negative int
	var mass int64
	for c := range 2 {
		for _, n := range h.class(c) {
			total[c] += n
			mass += abs64(n)
			if n != 0 {
				nonzero[c]++
			}
			if n < 0 {
				negative++
			}
		}
	}
	if total != h.total || nonzero != h.nonzero || negative != h.negative || mass != h.mass {
		t.Fatalf("counters total=%v nonzero=%v negative=%d mass=%d, recomputed %v %v %d %d",
			h.total, h.nonzero, h.negative, h.mass, total, nonzero, negative, mass)
	}
	for c := range 2 {
		for k, d := range h.sums[c] {
			if d.hi+d.lo != d.hi || math.Signbit(d.hi) && d.hi == 0 || math.Signbit(d.lo) && d.lo == 0 {
				t.Fatalf("sum %d of class %d not normalised: %v", k, c, d)
			}
		}
	}
}

// sameScoreHist compares two states: bins exactly, sums to relative tol
// (0 asks for identical encodings).
func sameScoreHist(a, b *ScoreHistogram, tol float64) error {
	if tol == 0 {
		if ea, eb := a.AppendBinary(nil), b.AppendBinary(nil); !bytes.Equal(ea, eb) {
			return fmt.Errorf("encodings differ:\n%x\n%x", ea, eb)
		}
		return nil
	}
	if a.bins != b.bins || !slices.Equal(a.cnt, b.cnt) {
		return fmt.Errorf("bins differ")
	}
	for c := range 2 {
		for k := range numSums {
			x, y := a.sums[c][k], b.sums[c][k]
			if !relClose(x.hi+x.lo, y.hi+y.lo, tol) {
				return fmt.Errorf("sum %d of class %d: %v vs %v", k, c, x, y)
			}
		}
	}
	return nil
}

// --- table tests ---

func TestScoreHistogramMetricsTable(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name                         string
		bins                         int
		xs                           []scored
		count, positives             int64
		auc, ap, brier, logLoss, ece float64 // ECE with m = 2
		mean                         float64
	}{
		{
			// scikit-learn's roc_auc_score / average_precision_score example.
			// AUC: 0.35 beats 0.1; 0.8 beats 0.1 and 0.4 → 3 of 4 pairs = 0.75.
			// AP: at 0.8 P=1, R=1/2; at 0.35 P=2/3, R=1 → 1/2·1 + 1/2·2/3 = 0.8333.
			// Brier: (0.1² + 0.4² + 0.65² + 0.2²)/4 = 0.6325/4 = 0.158125.
			// LogLoss: −(ln 0.9 + ln 0.6 + ln 0.35 + ln 0.8)/4.
			// ECE: centres 0.1005, 0.4005, 0.3505 | 0.8005:
			// (|0.8515 − 1| + |0.8005 − 1|)/4 = 0.348/4 = 0.087.
			name: "sklearn example", bins: DefaultScoreBins,
			xs:    []scored{sc(0.1, false), sc(0.4, false), sc(0.35, true), sc(0.8, true)},
			count: 4, positives: 2,
			auc: 0.75, ap: 0.8333333333333333, brier: 0.158125, logLoss: 0.47228795380917615,
			ece: 0.087, mean: 0.4125,
		},
		{
			// Fine bins 1, 2 | 8, 9 (centres .15 .25 | .85 .95).
			// Brier (0.01 + 0.04 + 0.04 + 0.01)/4 = 0.025.
			// ECE (|0.4 − 0| + |1.8 − 2|)/4 = 0.15. Mean 2.0/4.
			name: "perfect separation", bins: 10,
			xs:    []scored{sc(0.1, false), sc(0.2, false), sc(0.8, true), sc(0.9, true)},
			count: 4, positives: 2,
			auc: 1, ap: 1, brier: 0.025, logLoss: 0.16425203348601802, ece: 0.15, mean: 0.5,
		},
		{
			// AP: 0.9, 0.8 negatives; at 0.2 P=1/3, at 0.1 P=2/4 → (1/3 + 1/2)/2 = 5/12.
			// Brier (0.64 + 0.81 + 0.81 + 0.64)/4 = 0.725.
			// ECE (|0.4 − 2| + |1.8 − 0|)/4 = 3.4/4 = 0.85.
			name: "inverted", bins: 10,
			xs:    []scored{sc(0.8, false), sc(0.9, false), sc(0.1, true), sc(0.2, true)},
			count: 4, positives: 2,
			auc: 0, ap: 5.0 / 12, brier: 0.725, logLoss: 1.956011502714073, ece: 0.85, mean: 0.5,
		},
		{
			// All in fine bin 5: every pair counts 1/2 (raw AUC is 3/4).
			// AP: one threshold, P = 2/4 = 0.5.
			// Brier (0.51² + 0.55² + 0.48² + 0.42²)/4 = 0.9694/4 = 0.24235.
			// ECE: 4 × centre 0.55 − 2 = 0.2 → 0.2/4 = 0.05 (raw 0.16/4 = 0.04).
			name: "one bin", bins: 10,
			xs:    []scored{sc(0.51, false), sc(0.55, false), sc(0.52, true), sc(0.58, true)},
			count: 4, positives: 2,
			auc: 0.5, ap: 0.5, brier: 0.24235, logLoss: 0.6776278067358932, ece: 0.05, mean: 0.54,
		},
		{
			name: "empty", bins: 10,
			auc: nan, ap: nan, brier: nan, logLoss: nan, ece: nan, mean: nan,
		},
		{
			// Brier (0.04 + 0.16)/2; LogLoss −(ln 0.8 + ln 0.6)/2;
			// ECE centres 0.25 + 0.45 → 0.7/2.
			name: "negatives only", bins: 10,
			xs:    []scored{sc(0.2, false), sc(0.4, false)},
			count: 2, positives: 0,
			auc: nan, ap: nan, brier: 0.1, logLoss: 0.3669845875401002, ece: 0.35, mean: 0.3,
		},
		{
			// 1.0 is clipped to 1 − 1e-15: −ln(0.999999999999999) ≈ 9.99e-16.
			// LogLoss (9.99e-16 + ln 2)/2; Brier (0 + 0.25)/2.
			// ECE centres 0.95 + 0.55 − 2 → 0.5/2.
			name: "positives only", bins: 10,
			xs:    []scored{sc(1, true), sc(0.5, true)},
			count: 2, positives: 2,
			auc: nan, ap: nan, brier: 0.125, logLoss: 0.34657359027997314, ece: 0.25, mean: 0.75,
		},
		{
			// Both maximally wrong and clipped: −ln(1e-15) = 34.5388 and
			// −ln(1 − 0.999999999999999) = 34.5396, mean 34.5392.
			// AP: 1.0 negative first, then 0 positive at P = 1/2.
			// ECE centres: |0.05 − 1| + |0.95 − 0| = 1.9 → 1.9/2.
			name: "clipped", bins: 10,
			xs:    []scored{sc(0, true), sc(1, false)},
			count: 2, positives: 1,
			auc: 0, ap: 0.5, brier: 1, logLoss: 34.53917619362578, ece: 0.95, mean: 0.5,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := buildScoreHist(t, tc.bins, tc.xs)
			checkScoreHistMetrics(t, h, tc.count, tc.positives, tc.auc, tc.ap, tc.brier, tc.logLoss, tc.ece, tc.mean)
		})
	}
}

func checkScoreHistMetrics(t *testing.T, h *ScoreHistogram, count, positives int64, auc, ap, brier, logLoss, ece, mean float64) {
	t.Helper()
	if h.Count() != count || h.Positives() != positives || h.Negatives() != count-positives {
		t.Errorf("Count/Positives/Negatives = %d/%d/%d, want %d/%d/%d",
			h.Count(), h.Positives(), h.Negatives(), count, positives, count-positives)
	}
	for _, m := range []struct {
		name      string
		got, want float64
	}{
		{"ROCAUC", h.ROCAUC(), auc},
		{"PRAUC", h.PRAUC(), ap},
		{"Brier", h.Brier(), brier},
		{"LogLoss", h.LogLoss(), logLoss},
		{"ECE(2)", h.ECE(2), ece},
		{"MeanScore", h.MeanScore(), mean},
	} {
		if math.IsNaN(m.want) != math.IsNaN(m.got) || !math.IsNaN(m.want) && !relClose(m.got, m.want, 1e-12) {
			t.Errorf("%s = %v, want %v", m.name, m.got, m.want)
		}
	}
}

func TestScoreHistogramWeightsAndCorrections(t *testing.T) {
	t.Run("AddN weights", func(t *testing.T) {
		h, _ := NewScoreHistogram(10)
		for _, a := range []struct {
			s   float64
			pos bool
			n   int64
		}{{0.25, true, 3}, {0.75, false, 2}, {0.75, true, 1}} {
			if err := h.AddN(a.s, a.pos, a.n); err != nil {
				t.Fatal(err)
			}
		}
		// 4 positives (3 at 0.25, 1 at 0.75), 2 negatives at 0.75.
		// AUC: only the positive at 0.75 ties the 2 negatives: 2·½/(4·2) = 0.125.
		// AP: bin 7 P = 1/3 (ΔR 1/4), bin 2 P = 4/6 (ΔR 3/4) → 1/12 + 1/2 = 7/12.
		// Brier (3·0.5625 + 2·0.5625 + 0.0625)/6 = 2.875/6.
		// LogLoss (5·ln 4 + ln 4/3)/6. ECE (|0.75 − 3| + |2.25 − 1|)/6 = 3.5/6.
		checkScoreHistMetrics(t, h, 6, 4, 0.125, 7.0/12, 2.875/6, 1.203192313008539, 3.5/6, 0.5)
		checkScoreHistInvariants(t, h)
	})
	t.Run("label correction", func(t *testing.T) {
		h, _ := NewScoreHistogram(10)
		for _, x := range []scored{sc(0.35, false), sc(0.75, true), sc(0.65, false)} {
			if err := h.Add(x.s, x.pos); err != nil {
				t.Fatal(err)
			}
		}
		// The label of 0.65 turns out to be positive.
		if err := h.AddN(0.65, false, -1); err != nil {
			t.Fatal(err)
		}
		if err := h.AddN(0.65, true, 1); err != nil {
			t.Fatal(err)
		}
		// Now negatives {0.35}, positives {0.75, 0.65}, all at bin centres.
		// Brier (0.1225 + 0.0625 + 0.1225)/3 = 0.3075/3.
		// ECE (|0.35 − 0| + |1.4 − 2|)/3 = 0.95/3.
		checkScoreHistMetrics(t, h, 3, 2, 1, 1, 0.3075/3, 0.3830826348788965, 0.95/3, 1.75/3)
		checkScoreHistInvariants(t, h)
		want := buildScoreHist(t, 10, []scored{sc(0.35, false), sc(0.75, true), sc(0.65, true)})
		if err := sameScoreHist(h, want, 1e-15); err != nil {
			t.Error(err)
		}
	})
	t.Run("delta in a later bucket", func(t *testing.T) {
		base := buildScoreHist(t, 10, []scored{sc(0.35, false), sc(0.65, false), sc(0.75, true)})
		delta, _ := NewScoreHistogram(10)
		if err := delta.AddN(0.65, false, -1); err != nil {
			t.Fatal(err)
		}
		if err := delta.AddN(0.65, true, 1); err != nil {
			t.Fatal(err)
		}
		// A pending retraction is not a set of examples: every metric is NaN.
		for name, v := range map[string]float64{
			"ROCAUC": delta.ROCAUC(), "PRAUC": delta.PRAUC(), "Brier": delta.Brier(),
			"LogLoss": delta.LogLoss(), "ECE": delta.ECE(2), "ECEBound": delta.ECEBound(2), "MeanScore": delta.MeanScore(),
		} {
			if !math.IsNaN(v) {
				t.Errorf("delta %s = %v, want NaN", name, v)
			}
		}
		if delta.Count() != 0 || delta.Negatives() != -1 || delta.Positives() != 1 {
			t.Errorf("delta counts %d/%d/%d", delta.Count(), delta.Negatives(), delta.Positives())
		}
		checkScoreHistInvariants(t, delta)
		if err := base.DecodeAndMerge(delta.AppendBinary(nil)); err != nil {
			t.Fatal(err)
		}
		checkScoreHistMetrics(t, base, 3, 2, 1, 1, 0.3075/3, 0.3830826348788965, 0.95/3, 1.75/3)
		checkScoreHistInvariants(t, base)
	})
	t.Run("retraction cancels", func(t *testing.T) {
		h := NewDefaultScoreHistogram()
		rng := rand.New(rand.NewPCG(7, 7))
		xs := genScores(rng, "overlap", 200, 0.3)
		for _, x := range xs {
			if err := h.Add(x.s, x.pos); err != nil {
				t.Fatal(err)
			}
		}
		for _, x := range xs {
			if err := h.AddN(x.s, x.pos, -1); err != nil {
				t.Fatal(err)
			}
		}
		checkScoreHistInvariants(t, h)
		if h.mass != 0 || h.Count() != 0 || !math.IsNaN(h.Brier()) {
			t.Fatalf("after retracting everything: mass %d count %d Brier %v", h.mass, h.Count(), h.Brier())
		}
		// The double-double sums cancel to far below any term (~1e-2).
		for c := range 2 {
			for k, d := range h.sums[c] {
				if math.Abs(d.hi) > 1e-25 {
					t.Errorf("sum %d of class %d left %v", k, c, d)
				}
			}
		}
		// One example added and retracted leaves exactly the empty state.
		one := NewDefaultScoreHistogram()
		empty := one.AppendBinary(nil)
		_ = one.Add(0.123, true)
		_ = one.AddN(0.123, true, -1)
		if got := one.AppendBinary(nil); !bytes.Equal(got, empty) {
			t.Errorf("add then retract: %x, want %x", got, empty)
		}
	})
	t.Run("retraction keeps small sums exact", func(t *testing.T) {
		// A confident mistake (log-loss term 34.5) added and retracted must
		// not swamp the tiny remaining terms, as a float64 sum would.
		h := NewDefaultScoreHistogram()
		var xs []scored
		for i := range 1000 {
			x := sc(float64(i%7)*1e-17, false)
			xs = append(xs, x)
			if err := h.Add(x.s, x.pos); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.Add(0, true); err != nil {
			t.Fatal(err)
		}
		if err := h.AddN(0, true, -1); err != nil {
			t.Fatal(err)
		}
		if got, want := h.LogLoss(), oracleLogLoss(xs); !relClose(got, want, 1e-12) {
			t.Errorf("LogLoss = %v, want %v", got, want)
		}
	})
}

func TestScoreHistogramBinning(t *testing.T) {
	h, _ := NewScoreHistogram(4)
	for _, tc := range []struct {
		s   float64
		bin int
	}{
		{0, 0}, {math.Copysign(0, -1), 0}, {0.2499999, 0}, {0.25, 1}, {0.5, 2}, {0.74, 2},
		{0.75, 3}, {math.Nextafter(1, 0), 3}, {1, 3},
	} {
		if got := h.binOf(tc.s); got != tc.bin {
			t.Errorf("binOf(%v) = %d, want %d", tc.s, got, tc.bin)
		}
	}
	// -0 is recorded as 0: the state equals one built from +0.
	a, b := buildScoreHist(t, 4, []scored{sc(math.Copysign(0, -1), true)}), buildScoreHist(t, 4, []scored{sc(0, true)})
	if err := sameScoreHist(a, b, 0); err != nil {
		t.Error(err)
	}
}

func TestScoreHistogramAddErrors(t *testing.T) {
	h := buildScoreHist(t, 10, []scored{sc(0.5, true), sc(0.25, false)})
	before := h.AppendBinary(nil)
	tests := []struct {
		name  string
		score float64
		n     int64
	}{
		{"NaN", math.NaN(), 1},
		{"negative", -0.001, 1},
		{"above one", 1.001, 1},
		{"+Inf", math.Inf(1), 1},
		{"-Inf", math.Inf(-1), 1},
		{"MinInt64", 0.5, math.MinInt64},
		{"overflow", 0.5, math.MaxInt64 - 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := h.AddN(tc.score, true, tc.n); !errors.Is(err, ErrInvalid) {
				t.Fatalf("AddN err = %v, want ErrInvalid", err)
			}
			if got := h.AppendBinary(nil); !bytes.Equal(got, before) {
				t.Fatal("state changed on error")
			}
		})
	}
	if err := h.AddN(0.5, true, 0); err != nil {
		t.Errorf("AddN(n=0) = %v", err)
	}
	if got := h.AppendBinary(nil); !bytes.Equal(got, before) {
		t.Error("AddN(n=0) changed the state")
	}
}

func TestNewScoreHistogram(t *testing.T) {
	for _, b := range []int{0, -1, MaxScoreBins + 1} {
		if _, err := NewScoreHistogram(b); !errors.Is(err, ErrInvalid) {
			t.Errorf("NewScoreHistogram(%d) err = %v, want ErrInvalid", b, err)
		}
	}
	for _, b := range []int{1, MaxScoreBins} {
		h, err := NewScoreHistogram(b)
		if err != nil || h.Bins() != b {
			t.Errorf("NewScoreHistogram(%d) = %v, %v", b, h, err)
		}
	}
	if got := NewDefaultScoreHistogram().Bins(); got != DefaultScoreBins {
		t.Errorf("default bins = %d", got)
	}
	var z ScoreHistogram
	if err := z.Add(0.5, true); err != nil || z.Bins() != DefaultScoreBins {
		t.Errorf("zero value Add: %v, bins %d", err, z.Bins())
	}
}

// --- randomized tests against the oracles ---

func TestScoreHistogramVsOracle(t *testing.T) {
	type cfg struct {
		n    int
		seed uint64
	}
	sizes := []cfg{{100, 1}, {100, 2}, {1000, 3}, {1000, 4}, {10000, 5}, {10000, 6}, {100000, 7}}
	for _, dist := range []string{"overlap", "separated", "uniform", "calibrated", "rounded"} {
		for _, rate := range []float64{0.5, 0.1, 0.01} {
			for _, c := range sizes {
				if c.n == 100000 && rate != 0.1 {
					continue // keep the package fast under -race
				}
				name := fmt.Sprintf("%s/pos=%v/n=%d/seed=%d", dist, rate, c.n, c.seed)
				t.Run(name, func(t *testing.T) {
					rng := rand.New(rand.NewPCG(c.seed, uint64(c.n)))
					xs := genScores(rng, dist, c.n, rate)
					h := buildScoreHist(t, DefaultScoreBins, xs)
					checkVsOracle(t, h, xs, dist == "rounded")
				})
			}
		}
	}
}

// checkVsOracle compares every metric of h, built from xs, with the raw
// computation. exact says the bins separate all distinct raw scores, so
// the ranking metrics must match exactly.
func checkVsOracle(t *testing.T, h *ScoreHistogram, xs []scored, exact bool) {
	t.Helper()
	b := h.Bins()
	auc, wantAUC := h.ROCAUC(), oracleAUC(xs)
	aucBound := aucBinBound(xs, b) + 1e-12
	if exact {
		aucBound = 1e-12
	}
	// The fixed 0.002 target needs 50 examples of each class. With fewer,
	// one tied pair moves the AUC by 1/(2PN) (0.005 for one positive among
	// 99 negatives), far below the AUC's own sampling error at that size;
	// the rigorous bound above still applies.
	fixed := b == DefaultScoreBins && min(h.Positives(), h.Negatives()) >= 50
	if d := math.Abs(auc - wantAUC); d > aucBound || fixed && d > 0.002 {
		t.Errorf("ROCAUC = %v, raw %v: |diff| %.3g > bound %.3g", auc, wantAUC, d, aucBound)
	}
	ap, wantAP := h.PRAUC(), oracleAP(xs)
	apBound := apBinBound(xs, b) + 1e-12
	if exact {
		apBound = 1e-12
	}
	if d := math.Abs(ap - wantAP); d > apBound {
		t.Errorf("PRAUC = %v, raw %v: |diff| %.3g > bound %.3g", ap, wantAP, d, apBound)
	}
	for _, m := range []struct {
		name      string
		got, want float64
	}{
		{"Brier", h.Brier(), oracleBrier(xs)},
		{"LogLoss", h.LogLoss(), oracleLogLoss(xs)},
		{"MeanScore", h.MeanScore(), oracleMean(xs)},
	} {
		if !relClose(m.got, m.want, 1e-12) {
			t.Errorf("%s = %v, raw %v", m.name, m.got, m.want)
		}
	}
	for _, m := range []int{1, 10, 15, 20} {
		if m > b {
			continue
		}
		got, want, bound := h.ECE(m), oracleECE(xs, m), h.ECEBound(m)
		if b%m == 0 && bound != 0.5/float64(b) {
			t.Errorf("ECEBound(%d) = %v, want 1/(2B) as %d divides %d", m, bound, m, b)
		}
		if d := math.Abs(got - want); d > bound+1e-12 {
			t.Errorf("ECE(%d) = %v, raw %v: |diff| %.3g > bound %.3g", m, got, want, d, bound)
		}
	}
	if h.Count() != int64(len(xs)) {
		t.Errorf("Count = %d, want %d", h.Count(), len(xs))
	}
}

// TestScoreHistogramAccuracyReport measures the worst binning error of the
// default bins over 30 seeds per configuration, for docs/sketches.md. It
// takes tens of seconds, so it runs only when SCOREHIST_ACCURACY=1.
func TestScoreHistogramAccuracyReport(t *testing.T) {
	if os.Getenv("SCOREHIST_ACCURACY") != "1" {
		t.Skip("set SCOREHIST_ACCURACY=1 to run")
	}
	t.Logf("%-10s %5s %6s %9s %9s %9s %9s", "dist", "pos", "n", "max|dAUC|", "max|dAP|", "max|dECE|", "ECE bnd")
	for _, dist := range []string{"overlap", "separated", "uniform", "calibrated", "rounded"} {
		for _, rate := range []float64{0.5, 0.1, 0.01} {
			for _, n := range []int{100, 1000, 10000, 100000} {
				var dAUC, dAP, dECE, bnd float64
				for seed := uint64(1); seed <= 30; seed++ {
					xs := genScores(rand.New(rand.NewPCG(seed, uint64(n))), dist, n, rate)
					h := buildScoreHist(t, DefaultScoreBins, xs)
					dAUC = math.Max(dAUC, math.Abs(h.ROCAUC()-oracleAUC(xs)))
					dAP = math.Max(dAP, math.Abs(h.PRAUC()-oracleAP(xs)))
					dECE = math.Max(dECE, math.Abs(h.ECE(15)-oracleECE(xs, 15)))
					bnd = math.Max(bnd, h.ECEBound(15))
				}
				t.Logf("%-10s %5v %6d %9.5f %9.5f %9.5f %9.5f", dist, rate, n, dAUC, dAP, dECE, bnd)
			}
		}
	}
}

func TestScoreHistogramBinCentresExact(t *testing.T) {
	// With every score at a bin centre, each bin holds one distinct score,
	// so the bins are exactly scikit-learn's thresholds: AUC and AP are
	// exact, and so is ECE for any m dividing B (the centre is the mean).
	for _, b := range []int{1, 2, 7, 10, 1000} {
		for _, rate := range []float64{0.5, 0.05} {
			t.Run(fmt.Sprintf("bins=%d/pos=%v", b, rate), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(b), 11))
				xs := make([]scored, 3000)
				for i := range xs {
					j := rng.IntN(b)
					pos := rng.Float64() < rate*(1+float64(j)/float64(b))
					xs[i] = sc((float64(j)+0.5)/float64(b), pos)
				}
				xs[0].pos, xs[1].pos = true, false
				h := buildScoreHist(t, b, xs)
				checkVsOracle(t, h, xs, true)
				for m := 1; m <= b && m <= 20; m++ {
					if b%m != 0 {
						continue
					}
					if got, want := h.ECE(m), oracleECE(xs, m); math.Abs(got-want) > 1e-12 {
						t.Errorf("ECE(%d) = %v, raw %v", m, got, want)
					}
				}
			})
		}
	}
}

func TestScoreHistogramECEBound(t *testing.T) {
	// B = 10, m = 3: fine bins 3 ([0.3, 0.4)) and 6 ([0.6, 0.7)) straddle
	// the ECE edges 1/3 and 2/3; the other eight do not.
	h := buildScoreHist(t, 10, []scored{sc(0.35, true), sc(0.05, false), sc(0.65, false), sc(0.95, true)})
	// 1/(2·10) + 2·(2 straddling examples)/4 = 0.05 + 1.
	if got := h.ECEBound(3); !relClose(got, 1.05, 1e-15) {
		t.Errorf("ECEBound(3) = %v, want 1.05", got)
	}
	if got := h.ECEBound(5); got != 0.05 {
		t.Errorf("ECEBound(5) = %v, want 0.05", got)
	}
	for _, m := range []int{0, -1, 11} {
		if !math.IsNaN(h.ECE(m)) || !math.IsNaN(h.ECEBound(m)) {
			t.Errorf("ECE(%d) = %v, bound %v, want NaN", m, h.ECE(m), h.ECEBound(m))
		}
	}
}

// --- property tests ---

// genOps draws examples with dyadic scores (multiples of 1/8, so Σs and
// Σ(s − y)² are exact) and occasional retractions.
func genOps(rng *rand.Rand, n int) []struct {
	x scored
	k int64
} {
	ops := make([]struct {
		x scored
		k int64
	}, n)
	for i := range ops {
		ops[i].x = sc(float64(rng.IntN(9))/8, rng.IntN(3) == 0)
		ops[i].k = int64(rng.IntN(3) + 1)
		if rng.IntN(5) == 0 {
			ops[i].k = -1
		}
	}
	return ops
}

func TestScoreHistogramMergeProperties(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 99))
		bins := []int{1, 8, 10, 1000}[seed%4]
		parts := make([]*ScoreHistogram, 3)
		all, _ := NewScoreHistogram(bins)
		for p := range parts {
			parts[p], _ = NewScoreHistogram(bins)
			for _, op := range genOps(rng, rng.IntN(200)) {
				if err := parts[p].AddN(op.x.s, op.x.pos, op.k); err != nil {
					t.Fatal(err)
				}
				if err := all.AddN(op.x.s, op.x.pos, op.k); err != nil {
					t.Fatal(err)
				}
			}
		}
		a, b, c := parts[0], parts[1], parts[2]
		merged := func(xs ...*ScoreHistogram) *ScoreHistogram {
			out, _ := NewScoreHistogram(bins)
			for _, x := range xs {
				if err := out.Merge(x); err != nil {
					t.Fatal(err)
				}
			}
			checkScoreHistInvariants(t, out)
			return out
		}
		ab := merged(a, b)
		ba := merged(b, a)
		abC := merged(ab, c)
		bc := merged(b, c)
		aBC := merged(a, bc)
		// The bins are integers and must match exactly; the sums exactly
		// up to the double-double rounding.
		for _, pair := range []struct {
			name string
			x, y *ScoreHistogram
		}{{"commutative", ab, ba}, {"associative", abC, aBC}, {"equals adding all", abC, all}} {
			if err := sameScoreHist(pair.x, pair.y, 1e-15); err != nil {
				t.Errorf("seed %d %s: %v", seed, pair.name, err)
			}
			// Dyadic scores: Σs and Σ(s − y)² are exact in any order.
			for cl := range 2 {
				for _, k := range []int{sumScore, sumSqErr} {
					if pair.x.sums[cl][k] != pair.y.sums[cl][k] {
						t.Errorf("seed %d %s: sum %d class %d %v vs %v", seed, pair.name, k, cl, pair.x.sums[cl][k], pair.y.sums[cl][k])
					}
				}
			}
		}
		// Commutativity is exact: dd addition is commutative.
		if err := sameScoreHist(ab, ba, 0); err != nil {
			t.Errorf("seed %d: %v", seed, err)
		}
		// DecodeAndMerge(enc(b)) into a == Merge(a, b), byte for byte.
		viaBytes := merged(a)
		if err := viaBytes.DecodeAndMerge(b.AppendBinary(nil)); err != nil {
			t.Fatal(err)
		}
		checkScoreHistInvariants(t, viaBytes)
		if err := sameScoreHist(viaBytes, ab, 0); err != nil {
			t.Errorf("seed %d DecodeAndMerge: %v", seed, err)
		}
		// Self-merge doubles.
		twice := merged(a, a)
		self := merged(a)
		if err := self.Merge(self); err != nil {
			t.Fatal(err)
		}
		if err := sameScoreHist(self, twice, 0); err != nil {
			t.Errorf("seed %d self-merge: %v", seed, err)
		}
	}
}

func TestScoreHistogramMergeIncompatible(t *testing.T) {
	a := buildScoreHist(t, 10, []scored{sc(0.5, true)})
	b := buildScoreHist(t, 20, []scored{sc(0.5, false)})
	before := a.AppendBinary(nil)
	if err := a.Merge(b); !errors.Is(err, ErrIncompatible) {
		t.Errorf("Merge err = %v, want ErrIncompatible", err)
	}
	if err := a.DecodeAndMerge(b.AppendBinary(nil)); !errors.Is(err, ErrIncompatible) {
		t.Errorf("DecodeAndMerge err = %v, want ErrIncompatible", err)
	}
	big, _ := NewScoreHistogram(10)
	if err := big.AddN(0.5, true, math.MaxInt64); err != nil {
		t.Fatal(err)
	}
	if err := a.Merge(big); !errors.Is(err, ErrIncompatible) {
		t.Errorf("overflowing Merge err = %v, want ErrIncompatible", err)
	}
	if err := a.DecodeAndMerge(big.AppendBinary(nil)); !errors.Is(err, ErrIncompatible) {
		t.Errorf("overflowing DecodeAndMerge err = %v, want ErrIncompatible", err)
	}
	if got := a.AppendBinary(nil); !bytes.Equal(got, before) {
		t.Error("state changed on error")
	}
	// A zero value adopts the other's bin count; merging a zero value or
	// nil changes nothing.
	var z ScoreHistogram
	if err := z.Merge(b); err != nil || z.Bins() != 20 {
		t.Errorf("zero value Merge: %v, bins %d", err, z.Bins())
	}
	var z2 ScoreHistogram
	if err := z2.DecodeAndMerge(b.AppendBinary(nil)); err != nil || sameScoreHist(&z2, b, 0) != nil {
		t.Errorf("zero value DecodeAndMerge: %v", err)
	}
	var empty ScoreHistogram
	for _, err := range []error{a.Merge(&empty), a.Merge(nil), a.DecodeAndMerge(empty.AppendBinary(nil))} {
		if err != nil {
			t.Errorf("merging an unconfigured state: %v", err)
		}
	}
	if got := a.AppendBinary(nil); !bytes.Equal(got, before) {
		t.Error("merging an unconfigured state changed the receiver")
	}
}

func TestScoreHistogramRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	states := map[string]*ScoreHistogram{"zero value": {}}
	states["empty"], _ = NewScoreHistogram(10)
	states["default random"] = buildScoreHist(t, DefaultScoreBins, genScores(rng, "overlap", 5000, 0.3))
	states["one bin"] = buildScoreHist(t, 1, genScores(rng, "uniform", 50, 0.5))
	delta, _ := NewScoreHistogram(100)
	_ = delta.AddN(0.3, false, -2)
	_ = delta.AddN(0.3, true, 2)
	states["delta"] = delta
	for name, h := range states {
		t.Run(name, func(t *testing.T) {
			enc := h.AppendBinary([]byte{0xAA}) // appends after existing bytes
			if enc[0] != 0xAA || Format(enc[1]) != FormatScoreHistogram || h.Format() != FormatScoreHistogram {
				t.Fatalf("AppendBinary prefix %x", enc[:2])
			}
			enc = enc[1:]
			// Decoding into a state of another shape replaces it entirely.
			got := buildScoreHist(t, 7, []scored{sc(0.1, true)})
			if err := got.UnmarshalBinary(enc); err != nil {
				t.Fatal(err)
			}
			checkScoreHistInvariants(t, got)
			if re := got.AppendBinary(nil); !bytes.Equal(re, enc) {
				t.Fatalf("re-encoding differs:\n%x\n%x", re, enc)
			}
			if got.Bins() != h.Bins() || !slices.Equal(got.cnt, h.cnt) || got.sums != h.sums {
				t.Error("decoded state differs")
			}
		})
	}
}

func TestScoreHistogramResetAndMemSize(t *testing.T) {
	h := buildScoreHist(t, 1000, genScores(rand.New(rand.NewPCG(1, 2)), "uniform", 1000, 0.5))
	mem := h.MemSize()
	if mem < 16000 {
		t.Errorf("MemSize = %d, want at least the 16000 bytes of bins", mem)
	}
	h.Reset()
	empty, _ := NewScoreHistogram(1000)
	if err := sameScoreHist(h, empty, 0); err != nil {
		t.Error(err)
	}
	checkScoreHistInvariants(t, h)
	if h.MemSize() != mem || h.Bins() != 1000 {
		t.Errorf("after Reset MemSize %d bins %d, want %d 1000", h.MemSize(), h.Bins(), mem)
	}
	// Decoding a smaller state reuses the memory.
	small := buildScoreHist(t, 10, []scored{sc(0.5, true)})
	if err := h.UnmarshalBinary(small.AppendBinary(nil)); err != nil {
		t.Fatal(err)
	}
	if h.MemSize() != mem {
		t.Errorf("MemSize after decoding a smaller state = %d, want %d", h.MemSize(), mem)
	}
	var z ScoreHistogram
	if z.MemSize() <= 0 {
		t.Error("zero value MemSize must count the struct")
	}
}

// --- decoding hostile input ---

func TestScoreHistogramDecodeCorrupt(t *testing.T) {
	good := buildScoreHist(t, 10, []scored{sc(0.15, true), sc(0.55, false), sc(0.95, true)})
	enc := good.AppendBinary(nil)
	// Hand-built encodings: header then bins.
	hdr := func(bins uint64, mask uint64, fields ...float64) []byte {
		b := []byte{byte(FormatScoreHistogram)}
		b = appendUvarint(b, bins)
		b = appendUvarint(b, mask)
		for _, f := range fields {
			b = appendFloat64(b, f)
		}
		return b
	}
	// A valid one-negative state: s = 0.5 → Σs = 0.5, Σs² = 0.25, ln 2.
	negFields := []float64{0.5, 0.25, math.Ln2}
	negMask := uint64(1<<0 | 1<<2 | 1<<4)
	oneNeg := func(gap uint64, n int64) []byte {
		b := hdr(10, negMask, negFields...)
		b = appendUvarint(b, 1)
		b = appendUvarint(b, gap)
		b = appendVarint(b, n)
		return appendUvarint(b, 0)
	}
	{
		// The builder itself must produce a valid state.
		var h ScoreHistogram
		if err := h.UnmarshalBinary(oneNeg(5, 1)); err != nil {
			t.Fatalf("hand-built encoding rejected: %v", err)
		}
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrCorrupt},
		{"wrong format", append([]byte{byte(FormatTDigest)}, enc[1:]...), ErrFormat},
		{"too many bins", append(hdr(MaxScoreBins+1, 0), 0, 0), ErrCorrupt},
		{"mask beyond fields", append(hdr(10, 1<<12), 0, 0), ErrCorrupt},
		{"present zero", append(hdr(10, 1, 0), 0, 0), ErrCorrupt},
		{"present -0", append(hdr(10, 1, math.Copysign(0, -1)), 0, 0), ErrCorrupt},
		{"NaN sum", append(hdr(10, 1, math.NaN()), 0, 0), ErrCorrupt},
		{"Inf sum", append(hdr(10, 1, math.Inf(1)), 0, 0), ErrCorrupt},
		{"unnormalised pair", append(hdr(10, 3, 1, 1), 0, 0), ErrCorrupt},
		{"bins of empty zero value", append(hdr(0, 0), 1, 0, 2, 0), ErrCorrupt},
		{"index beyond bins", oneNeg(10, 1), ErrCorrupt},
		{"huge gap", oneNeg(math.MaxUint64, 1), ErrCorrupt},
		{"zero count", oneNeg(5, 0), ErrCorrupt},
		{"MinInt64 count", oneNeg(5, math.MinInt64), ErrCorrupt},
		{"more entries than bins", append(hdr(1, 0), 2, 0, 2, 0, 2, 0), ErrCorrupt},
		{"entry count beyond input", append(hdr(10, 0), 9, 0, 2), ErrCorrupt},
		{"trailing byte", append(slices.Clone(enc), 0), ErrCorrupt},
	}
	// Two entries whose |counts| sum past MaxInt64.
	{
		b := hdr(10, 0)
		b = appendUvarint(b, 2)
		b = appendUvarint(b, 0)
		b = appendVarint(b, math.MaxInt64)
		b = appendUvarint(b, 0)
		b = appendVarint(b, -1)
		b = appendUvarint(b, 0)
		tests = append(tests, struct {
			name string
			in   []byte
			want error
		}{"mass overflow", b, ErrCorrupt})
	}
	// Every strict prefix of a valid encoding is truncated.
	for i := range len(enc) {
		tests = append(tests, struct {
			name string
			in   []byte
			want error
		}{fmt.Sprintf("prefix %d", i), enc[:i], ErrCorrupt})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := buildScoreHist(t, 10, []scored{sc(0.25, false), sc(0.75, true)})
			before := h.AppendBinary(nil)
			if err := h.DecodeAndMerge(tc.in); !errors.Is(err, tc.want) {
				t.Errorf("DecodeAndMerge err = %v, want %v", err, tc.want)
			}
			if got := h.AppendBinary(nil); !bytes.Equal(got, before) {
				t.Error("DecodeAndMerge changed the receiver on error")
			}
			if err := h.UnmarshalBinary(tc.in); !errors.Is(err, tc.want) {
				t.Errorf("UnmarshalBinary err = %v, want %v", err, tc.want)
			}
			if got := h.AppendBinary(nil); !bytes.Equal(got, before) {
				t.Error("UnmarshalBinary changed the receiver on error")
			}
		})
	}
}

func FuzzDecodeScoreHistogram(f *testing.F) {
	rng := rand.New(rand.NewPCG(5, 5))
	var z ScoreHistogram
	f.Add(z.AppendBinary(nil))
	for _, b := range []int{1, 10, 100} {
		h := buildScoreHist(f, b, genScores(rng, "overlap", 40, 0.4))
		f.Add(h.AppendBinary(nil))
	}
	delta, _ := NewScoreHistogram(10)
	_ = delta.AddN(0.3, false, -1)
	_ = delta.AddN(0.3, true, 1)
	f.Add(delta.AppendBinary(nil))
	base := buildScoreHist(f, 10, []scored{sc(0.2, false), sc(0.9, true)})
	baseEnc := base.AppendBinary(nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		var h ScoreHistogram
		err := h.UnmarshalBinary(data)
		into := buildScoreHist(t, 10, []scored{sc(0.2, false), sc(0.9, true)})
		mergeErr := into.DecodeAndMerge(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrFormat) {
				t.Fatalf("UnmarshalBinary error %v wraps neither ErrCorrupt nor ErrFormat", err)
			}
			if mergeErr == nil {
				t.Fatalf("DecodeAndMerge accepted what UnmarshalBinary refused: %v", err)
			}
			if !bytes.Equal(into.AppendBinary(nil), baseEnc) {
				t.Fatal("DecodeAndMerge changed the receiver on error")
			}
			return
		}
		checkScoreHistInvariants(t, &h)
		enc := h.AppendBinary(nil)
		var h2 ScoreHistogram
		if err := h2.UnmarshalBinary(enc); err != nil {
			t.Fatalf("re-encoding does not decode: %v", err)
		}
		if enc2 := h2.AppendBinary(nil); !bytes.Equal(enc, enc2) {
			t.Fatalf("re-encoding unstable:\n%x\n%x", enc, enc2)
		}
		// DecodeAndMerge must agree with decode-then-Merge.
		want := buildScoreHist(t, 10, []scored{sc(0.2, false), sc(0.9, true)})
		wantErr := want.Merge(&h)
		if (mergeErr == nil) != (wantErr == nil) {
			t.Fatalf("DecodeAndMerge err %v, Merge err %v", mergeErr, wantErr)
		}
		if mergeErr == nil {
			checkScoreHistInvariants(t, into)
			if err := sameScoreHist(into, want, 0); err != nil {
				t.Fatal(err)
			}
		} else if !bytes.Equal(into.AppendBinary(nil), baseEnc) {
			t.Fatal("DecodeAndMerge changed the receiver on error")
		}
		// Reading a decoded state never panics.
		_, _, _, _ = h.ROCAUC(), h.PRAUC(), h.Brier(), h.LogLoss()
		_, _, _ = h.ECE(10), h.ECEBound(7), h.MeanScore()
	})
}

// --- reading never mutates ---

func readAllScoreHist(h *ScoreHistogram) []float64 {
	return []float64{
		h.ROCAUC(), h.PRAUC(), h.Brier(), h.LogLoss(), h.MeanScore(),
		h.ECE(10), h.ECE(15), h.ECEBound(15), h.ECEBound(10),
		float64(h.Count()), float64(h.Positives()), float64(h.Negatives()),
		float64(h.Bins()), float64(h.MemSize()), float64(len(h.AppendBinary(nil))), float64(h.Format()),
	}
}

func TestScoreHistogramReadsDoNotMutate(t *testing.T) {
	h := buildScoreHist(t, DefaultScoreBins, genScores(rand.New(rand.NewPCG(8, 8)), "overlap", 3000, 0.3))
	before := h.AppendBinary(nil)
	want := readAllScoreHist(h)
	if got := h.AppendBinary(nil); !bytes.Equal(got, before) {
		t.Fatal("reading changed the encoding")
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for range 8 {
		wg.Go(func() {
			for range 20 {
				if got := readAllScoreHist(h); !slices.Equal(got, want) {
					errs <- fmt.Sprintf("concurrent read %v, want %v", got, want)
					return
				}
			}
		})
	}
	wg.Wait()
	// (stats_test.go shadows the builtin close, so drain by length.)
	for len(errs) > 0 {
		t.Error(<-errs)
	}
	if got := h.AppendBinary(nil); !bytes.Equal(got, before) {
		t.Fatal("concurrent reading changed the encoding")
	}
}

// --- allocations ---

func TestScoreHistogramZeroAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	xs := genScores(rng, "overlap", 1024, 0.3)
	h := buildScoreHist(t, DefaultScoreBins, xs)
	o := buildScoreHist(t, DefaultScoreBins, genScores(rng, "uniform", 5000, 0.5))
	enc := o.AppendBinary(nil)
	buf := make([]byte, 0, 1<<16)
	i := 0
	for name, fn := range map[string]func(){
		"Add":  func() { _ = h.Add(xs[i%len(xs)].s, xs[i%len(xs)].pos); i++ },
		"AddN": func() { _ = h.AddN(xs[i%len(xs)].s, xs[i%len(xs)].pos, -1); i++ },
		"Merge": func() {
			if err := h.Merge(o); err != nil {
				t.Fatal(err)
			}
		},
		"DecodeAndMerge": func() {
			if err := h.DecodeAndMerge(enc); err != nil {
				t.Fatal(err)
			}
		},
		"AppendBinary": func() { buf = h.AppendBinary(buf[:0]) },
		"metrics":      func() { _ = h.ROCAUC() + h.PRAUC() + h.ECE(15) + h.Brier() + h.ECEBound(15) },
	} {
		if a := testing.AllocsPerRun(100, fn); a != 0 {
			t.Errorf("%s: %v allocs, want 0", name, a)
		}
	}
}

// --- benchmarks ---

func BenchmarkScoreHistogram(b *testing.B) {
	const bins = DefaultScoreBins
	rng := rand.New(rand.NewPCG(1, 1))
	xs := genScores(rng, "overlap", 4096, 0.3)
	b.Run(fmt.Sprintf("op=add/bins=%d", bins), func(b *testing.B) {
		h := buildScoreHist(b, bins, nil)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			x := xs[i&4095]
			_ = h.Add(x.s, x.pos)
			i++
		}
		b.ReportMetric(float64(len(h.AppendBinary(nil))), "B/state")
	})
	for _, n := range []int{100, 100000} {
		o := buildScoreHist(b, bins, genScores(rng, "overlap", n, 0.3))
		enc := o.AppendBinary(nil)
		b.Run(fmt.Sprintf("op=merge/bins=%d/n=%d", bins, n), func(b *testing.B) {
			h := buildScoreHist(b, bins, xs)
			b.SetBytes(int64(len(enc)))
			b.ReportAllocs()
			for b.Loop() {
				_ = h.Merge(o)
			}
			b.ReportMetric(float64(len(enc)), "B/state")
		})
		b.Run(fmt.Sprintf("op=decode_and_merge/bins=%d/n=%d", bins, n), func(b *testing.B) {
			h := buildScoreHist(b, bins, xs)
			b.SetBytes(int64(len(enc)))
			b.ReportAllocs()
			for b.Loop() {
				_ = h.DecodeAndMerge(enc)
			}
			b.ReportMetric(float64(len(enc)), "B/state")
		})
	}
	h := buildScoreHist(b, bins, genScores(rng, "overlap", 100000, 0.3))
	enc := h.AppendBinary(nil)
	for _, r := range []struct {
		name string
		fn   func()
	}{
		{"encode", func() { enc = h.AppendBinary(enc[:0]) }},
		{"rocauc", func() { _ = h.ROCAUC() }},
		{"prauc", func() { _ = h.PRAUC() }},
		{"ece", func() { _ = h.ECE(15) }},
	} {
		b.Run(fmt.Sprintf("op=%s/bins=%d/n=100000", r.name, bins), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r.fn()
			}
			b.ReportMetric(float64(len(enc)), "B/state")
		})
	}
}
