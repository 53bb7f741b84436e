package sketch

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// confPair is one raw observation for the oracle.
type confPair struct{ actual, predicted int }

// confOracle computes every metric straight from raw pairs, the way
// scikit-learn defines them: count TP, FP and FN per class, take the label
// set from the classes seen in either column, and average with undefined
// per-class values counted as 0. Sums run in increasing class order, the
// order the implementation uses, so results compare exactly.
type confOracle struct {
	tp, fp, fn     map[int]int64
	labels         []int
	total, correct int64
}

func newConfOracle(pairs []confPair) *confOracle {
	o := &confOracle{tp: map[int]int64{}, fp: map[int]int64{}, fn: map[int]int64{}}
	seen := map[int]bool{}
	for _, q := range pairs {
		o.total++
		seen[q.actual], seen[q.predicted] = true, true
		if q.actual == q.predicted {
			o.correct++
			o.tp[q.actual]++
		} else {
			o.fp[q.predicted]++
			o.fn[q.actual]++
		}
	}
	for c := range seen {
		o.labels = append(o.labels, c)
	}
	slices.Sort(o.labels)
	return o
}

func confDiv(num, den int64) float64 {
	if den == 0 {
		return math.NaN()
	}
	return float64(num) / float64(den)
}

func (o *confOracle) precision(c int) float64 { return confDiv(o.tp[c], o.tp[c]+o.fp[c]) }
func (o *confOracle) recall(c int) float64    { return confDiv(o.tp[c], o.tp[c]+o.fn[c]) }
func (o *confOracle) f1(c int) float64 {
	return confDiv(2*o.tp[c], 2*o.tp[c]+o.fp[c]+o.fn[c])
}
func (o *confOracle) support(c int) int64 { return o.tp[c] + o.fn[c] }
func (o *confOracle) predicted(c int) int64 {
	return o.tp[c] + o.fp[c]
}

// average applies sklearn's macro (weighted=false) or support-weighted
// average of metric over the labels, with NaN (0/0) counted as 0.
func (o *confOracle) average(metric func(int) float64, weighted bool) float64 {
	var sum float64
	var wsum int64
	for _, c := range o.labels {
		v := metric(c)
		if math.IsNaN(v) {
			v = 0
		}
		if weighted {
			sum += float64(o.support(c)) * v
			wsum += o.support(c)
		} else {
			sum += v
		}
	}
	if !weighted {
		wsum = int64(len(o.labels))
	}
	if wsum == 0 {
		return math.NaN()
	}
	return sum / float64(wsum)
}

func confSame(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }

// confCheckOracle compares every metric of c with the oracle, exactly.
func confCheckOracle(t *testing.T, c *Confusion, pairs []confPair) {
	t.Helper()
	o := newConfOracle(pairs)
	k := 0
	if len(o.labels) > 0 {
		k = o.labels[len(o.labels)-1] + 1
	}
	if got := c.Classes(); got != k {
		t.Errorf("Classes() = %d, want %d", got, k)
	}
	if got := c.Count(); got != o.total {
		t.Errorf("Count() = %d, want %d", got, o.total)
	}
	scalar := []struct {
		name      string
		got, want float64
	}{
		{"Accuracy", c.Accuracy(), confDiv(o.correct, o.total)},
		{"MicroPrecision", c.MicroPrecision(), confDiv(o.correct, o.total)},
		{"MicroRecall", c.MicroRecall(), confDiv(o.correct, o.total)},
		{"MicroF1", c.MicroF1(), confDiv(o.correct, o.total)},
		{"MacroPrecision", c.MacroPrecision(), o.average(o.precision, false)},
		{"MacroRecall", c.MacroRecall(), o.average(o.recall, false)},
		{"MacroF1", c.MacroF1(), o.average(o.f1, false)},
		{"WeightedPrecision", c.WeightedPrecision(), o.average(o.precision, true)},
		{"WeightedRecall", c.WeightedRecall(), o.average(o.recall, true)},
		{"WeightedF1", c.WeightedF1(), o.average(o.f1, true)},
	}
	for _, s := range scalar {
		if !confSame(s.got, s.want) {
			t.Errorf("%s = %v, want %v", s.name, s.got, s.want)
		}
	}
	// Classes beyond K and negative ones exercise the out-of-range paths.
	// Large K: every 7th class keeps the race-detector run short; the
	// averages above still cover every class.
	step := 1
	if k > 60 {
		step = 7
	}
	for cls := -1; cls <= k+1; cls += step {
		per := []struct {
			name      string
			got, want float64
		}{
			{"Precision", c.Precision(cls), o.precision(cls)},
			{"Recall", c.Recall(cls), o.recall(cls)},
			{"F1", c.F1(cls), o.f1(cls)},
			{"PositiveRate", c.PositiveRate(cls), confDiv(o.predicted(cls), o.total)},
		}
		for _, s := range per {
			if !confSame(s.got, s.want) {
				t.Errorf("%s(%d) = %v, want %v", s.name, cls, s.got, s.want)
			}
		}
		if got, want := c.Support(cls), o.support(cls); got != want {
			t.Errorf("Support(%d) = %d, want %d", cls, got, want)
		}
	}
	cells := map[confPair]int64{}
	for _, q := range pairs {
		cells[q]++
	}
	for q, n := range cells {
		if got := c.Cell(q.actual, q.predicted); got != n {
			t.Errorf("Cell(%d, %d) = %d, want %d", q.actual, q.predicted, got, n)
		}
	}
	got := c.AppendCells(nil)
	if len(got) != len(cells) {
		t.Errorf("AppendCells returned %d cells, want %d", len(got), len(cells))
	}
	for i, e := range got {
		if n := cells[confPair{e.Actual, e.Predicted}]; n != e.Count {
			t.Errorf("AppendCells[%d] = %+v, want count %d", i, e, n)
		}
		if i > 0 && (got[i-1].Actual > e.Actual || got[i-1].Actual == e.Actual && got[i-1].Predicted >= e.Predicted) {
			t.Errorf("AppendCells not in row-major order at %d", i)
		}
	}
}

func confFromPairs(pairs []confPair) *Confusion {
	c := NewConfusion()
	for _, q := range pairs {
		c.Add(q.actual, q.predicted)
	}
	return c
}

func confPairs(as, ps []int) []confPair {
	out := make([]confPair, len(as))
	for i := range as {
		out[i] = confPair{as[i], ps[i]}
	}
	return out
}

// confRandPairs draws n observations over k classes, right with
// probability pRight, otherwise uniformly confused.
func confRandPairs(rng *rand.Rand, k, n int, pRight float64) []confPair {
	out := make([]confPair, n)
	for i := range out {
		a := rng.IntN(k)
		p := a
		if rng.Float64() >= pRight {
			p = rng.IntN(k)
		}
		out[i] = confPair{a, p}
	}
	return out
}

func confEnc(c *Confusion) []byte { return c.AppendBinary(nil) }

func confClone(t testing.TB, c *Confusion) *Confusion {
	t.Helper()
	d := NewConfusion()
	if err := d.UnmarshalBinary(confEnc(c)); err != nil {
		t.Fatalf("clone: %v", err)
	}
	return d
}

func TestConfusionSklearnExamples(t *testing.T) {
	const tol = 1e-15
	near := func(t *testing.T, name string, got, want float64) {
		t.Helper()
		if !(math.Abs(got-want) <= tol) && !confSame(got, want) {
			t.Errorf("%s = %.17g, want %.17g", name, got, want)
		}
	}
	t.Run("precision_recall_fscore_support", func(t *testing.T) {
		// sklearn docs: y_true = [0,1,2,0,1,2], y_pred = [0,2,1,0,0,1].
		// Class 0: TP=2, predicted 3, support 2 -> P=2/3, R=1, F1=4/5.
		// Classes 1, 2: TP=0 -> P=R=F1=0.
		// macro: P=(2/3)/3=0.2222, R=1/3, F1=0.8/3=0.2667; weighted
		// (supports 2,2,2) is the same; micro = accuracy = 2/6.
		c := confFromPairs(confPairs([]int{0, 1, 2, 0, 1, 2}, []int{0, 2, 1, 0, 0, 1}))
		near(t, "MacroPrecision", c.MacroPrecision(), 0.2222222222222222)
		near(t, "MacroRecall", c.MacroRecall(), 0.3333333333333333)
		near(t, "MacroF1", c.MacroF1(), 0.26666666666666666)
		near(t, "WeightedPrecision", c.WeightedPrecision(), 0.2222222222222222)
		near(t, "WeightedRecall", c.WeightedRecall(), 0.3333333333333333)
		near(t, "WeightedF1", c.WeightedF1(), 0.26666666666666666)
		near(t, "MicroPrecision", c.MicroPrecision(), 0.3333333333333333)
		near(t, "MicroRecall", c.MicroRecall(), 0.3333333333333333)
		near(t, "MicroF1", c.MicroF1(), 0.3333333333333333)
		for cls, want := range [][3]float64{{2.0 / 3, 1, 0.8}, {0, 0, 0}, {0, 0, 0}} {
			near(t, fmt.Sprint("Precision", cls), c.Precision(cls), want[0])
			near(t, fmt.Sprint("Recall", cls), c.Recall(cls), want[1])
			near(t, fmt.Sprint("F1", cls), c.F1(cls), want[2])
			if s := c.Support(cls); s != 2 {
				t.Errorf("Support(%d) = %d, want 2", cls, s)
			}
		}
	})
	t.Run("precision_score zero_division", func(t *testing.T) {
		// sklearn docs: y_pred all 0. Class 0: 2 of 6 predictions right ->
		// P=1/3; classes 1, 2 never predicted: sklearn prints 0 (with a
		// warning), we return NaN per class and count it as 0 in the
		// macro average: (1/3)/3 = 0.1111. Recall: [1, 0, 0] -> 1/3.
		// F1(0) = 2*2/(2+6) = 0.5; F1(1) = 0/(2+0) = 0 (defined).
		c := confFromPairs(confPairs([]int{0, 1, 2, 0, 1, 2}, []int{0, 0, 0, 0, 0, 0}))
		near(t, "Precision(0)", c.Precision(0), 1.0/3)
		near(t, "Precision(1)", c.Precision(1), math.NaN())
		near(t, "Precision(2)", c.Precision(2), math.NaN())
		near(t, "MacroPrecision", c.MacroPrecision(), 0.1111111111111111)
		near(t, "MacroRecall", c.MacroRecall(), 0.3333333333333333)
		near(t, "F1(0)", c.F1(0), 0.5)
		near(t, "F1(1)", c.F1(1), 0)
		near(t, "MacroF1", c.MacroF1(), 0.5/3)
		near(t, "PositiveRate(0)", c.PositiveRate(0), 1)
		near(t, "PositiveRate(1)", c.PositiveRate(1), 0)
	})
	t.Run("confusion_matrix", func(t *testing.T) {
		// sklearn docs: y_true = [2,0,2,2,0,1], y_pred = [0,0,2,2,0,2]
		// -> [[2,0,0],[0,0,1],[1,0,2]].
		c := confFromPairs(confPairs([]int{2, 0, 2, 2, 0, 1}, []int{0, 0, 2, 2, 0, 2}))
		want := [3][3]int64{{2, 0, 0}, {0, 0, 1}, {1, 0, 2}}
		for a := range 3 {
			for p := range 3 {
				if got := c.Cell(a, p); got != want[a][p] {
					t.Errorf("Cell(%d, %d) = %d, want %d", a, p, got, want[a][p])
				}
			}
		}
		// Accuracy = (2+0+2)/6.
		near(t, "Accuracy", c.Accuracy(), 4.0/6)
	})
	t.Run("accuracy_score", func(t *testing.T) {
		// sklearn docs: y_pred = [0,2,1,3], y_true = [0,1,2,3] -> 0.5.
		c := confFromPairs(confPairs([]int{0, 1, 2, 3}, []int{0, 2, 1, 3}))
		near(t, "Accuracy", c.Accuracy(), 0.5)
	})
	t.Run("binary", func(t *testing.T) {
		// Positive class 1. TP=3, FP=1, FN=2, TN=4 (10 observations).
		// P = 3/4, R = 3/5, F1 = 6/(6+1+2) = 2/3, positive rate 4/10,
		// accuracy (3+4)/10; class 0: P=4/6, R=4/5, F1=8/11.
		// macro F1 = (8/11 + 2/3)/2; weighted F1 = (5*8/11 + 5*2/3)/10.
		c := NewConfusion()
		c.AddN(1, 1, 3)
		c.AddN(0, 1, 1)
		c.AddN(1, 0, 2)
		c.AddN(0, 0, 4)
		near(t, "Precision", c.Precision(1), 0.75)
		near(t, "Recall", c.Recall(1), 0.6)
		near(t, "F1", c.F1(1), 2.0/3)
		near(t, "PositiveRate", c.PositiveRate(1), 0.4)
		near(t, "Accuracy", c.Accuracy(), 0.7)
		near(t, "F1(0)", c.F1(0), 8.0/11)
		near(t, "MacroF1", c.MacroF1(), (8.0/11+2.0/3)/2)
		near(t, "WeightedF1", c.WeightedF1(), (5*(8.0/11)+5*(2.0/3))/10)
	})
}

func TestConfusionOracle(t *testing.T) {
	tests := []struct {
		name   string
		k, n   int
		pRight float64
		seed   uint64
	}{
		{"k=2", 2, 500, 0.8, 1},
		{"k=2 few", 2, 3, 0.5, 2},
		{"k=5", 5, 2000, 0.6, 3},
		{"k=5 random", 5, 50, 0, 4},
		{"k=40", 40, 400, 0.7, 5},
		{"k=200 sparse", 200, 3000, 0.9, 6},
		{"k=200 dense cells", 200, 3000, 0, 7},
		{"k=1000", 1000, 2000, 0.8, 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(tc.seed, 0xc0f))
			pairs := confRandPairs(rng, tc.k, tc.n, tc.pRight)
			c := confFromPairs(pairs)
			confCheckOracle(t, c, pairs)
			// The same data by other routes: merged chunks and a decoded copy.
			m := NewConfusion()
			for i := 0; i < len(pairs); i += 331 {
				m.Merge(confFromPairs(pairs[i:min(i+331, len(pairs))]))
			}
			confCheckOracle(t, m, pairs)
			confCheckOracle(t, confClone(t, c), pairs)
			if !bytes.Equal(confEnc(m), confEnc(c)) {
				t.Errorf("merged chunks encode differently from one state")
			}
		})
	}
	t.Run("empty", func(t *testing.T) {
		confCheckOracle(t, NewConfusion(), nil)
		var zero Confusion
		confCheckOracle(t, &zero, nil)
	})
}

func TestConfusionEmptyAndInvalid(t *testing.T) {
	c := NewConfusion()
	// Out-of-range indices and zero deltas are ignored.
	c.Add(-1, 0)
	c.Add(0, -1)
	c.Add(ConfusionMaxClasses, 0)
	c.AddN(3, 3, 0)
	if !bytes.Equal(confEnc(c), []byte{byte(FormatConfusion), 0}) {
		t.Fatalf("ignored adds changed the state: % x", confEnc(c))
	}
	for name, v := range map[string]float64{
		"Accuracy": c.Accuracy(), "Precision": c.Precision(0), "Recall": c.Recall(0),
		"F1": c.F1(0), "PositiveRate": c.PositiveRate(0), "MacroPrecision": c.MacroPrecision(),
		"MacroRecall": c.MacroRecall(), "MacroF1": c.MacroF1(), "MicroF1": c.MicroF1(),
		"WeightedPrecision": c.WeightedPrecision(), "WeightedRecall": c.WeightedRecall(),
		"WeightedF1": c.WeightedF1(),
	} {
		if !math.IsNaN(v) {
			t.Errorf("%s of empty state = %v, want NaN", name, v)
		}
	}
	if c.Count() != 0 || c.Support(0) != 0 || c.Classes() != 0 || c.Cell(0, 0) != 0 {
		t.Errorf("counts of empty state not 0")
	}
	// The largest allowed index works and lands in the sparse form.
	c.Add(ConfusionMaxClasses-1, 0)
	if c.Classes() != ConfusionMaxClasses || !c.sparse || c.Cell(ConfusionMaxClasses-1, 0) != 1 {
		t.Errorf("Classes = %d, sparse = %v", c.Classes(), c.sparse)
	}
	confRoundTrip(t, c)
	if c.MemSize() > 1024 {
		t.Errorf("MemSize = %d for one cell", c.MemSize())
	}
}

func confRoundTrip(t *testing.T, c *Confusion) {
	t.Helper()
	enc := confEnc(c)
	d := NewConfusion()
	d.AddN(7, 3, 5) // UnmarshalBinary must replace, not merge
	if err := d.UnmarshalBinary(enc); err != nil {
		t.Fatalf("UnmarshalBinary: %v", err)
	}
	if got := confEnc(d); !bytes.Equal(got, enc) {
		t.Fatalf("round trip changed the encoding:\n got % x\nwant % x", got, enc)
	}
	e := NewConfusion()
	if err := e.DecodeAndMerge(enc); err != nil {
		t.Fatalf("DecodeAndMerge: %v", err)
	}
	if got := confEnc(e); !bytes.Equal(got, enc) {
		t.Fatalf("DecodeAndMerge into empty changed the encoding")
	}
}

func TestConfusionEncodingBytes(t *testing.T) {
	tests := []struct {
		name  string
		cells [][3]int64
		want  []byte
	}{
		{"empty", nil, []byte{0x01, 0x00}},
		// K=2, all cells set: dense. Zig-zag: 3->6, 1->2, -1->1, 64->128 (0x80 0x01).
		{"dense k=2", [][3]int64{{0, 0, 3}, {0, 1, 1}, {1, 0, -1}, {1, 1, 64}},
			[]byte{0x01, 0x02, 0x00, 0x06, 0x02, 0x01, 0x80, 0x01}},
		// K=2, only (0,0) and (1,0): dense overhead 2 zero bytes, sparse
		// 1 (count) + 2 (gaps 0, 1) = 3 -> dense.
		{"dense k=2 half", [][3]int64{{0, 0, 1}, {1, 0, 1}},
			[]byte{0x01, 0x02, 0x00, 0x02, 0x00, 0x02, 0x00}},
		// K=2, only (1,1): dense overhead 3, sparse 1+1 = 2 -> sparse,
		// one cell at flat index 3 (gap 3), count 1 (zig-zag 2).
		{"sparse k=2", [][3]int64{{1, 1, 1}}, []byte{0x01, 0x02, 0x01, 0x01, 0x03, 0x02}},
		// K=200 (0xc8 0x01), cells (0,199)=5 and (199,0)=-2: flat indices
		// 199 and 199*200=39800; gaps 199 (0xc7 0x01) and 39800-200=39600
		// (0xb0 0xb5 0x02); counts 10 and 3.
		{"sparse k=200", [][3]int64{{0, 199, 5}, {199, 0, -2}},
			[]byte{0x01, 0xc8, 0x01, 0x01, 0x02, 0xc7, 0x01, 0x0a, 0xb0, 0xb5, 0x02, 0x03}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := NewConfusion()
			for _, e := range tc.cells {
				c.AddN(int(e[0]), int(e[1]), e[2])
			}
			if got := confEnc(c); !bytes.Equal(got, tc.want) {
				t.Errorf("encoding\n got % x\nwant % x", got, tc.want)
			}
			confRoundTrip(t, c)
			prefix := []byte("xy")
			if got := c.AppendBinary(prefix); !bytes.Equal(got, append([]byte("xy"), tc.want...)) {
				t.Errorf("AppendBinary does not append")
			}
		})
	}
}

func TestConfusionRetraction(t *testing.T) {
	tests := []struct {
		name string
		k, n int
		// retract are extra observations added then retracted one by one.
		retract []confPair
	}{
		{"dense in the middle", 4, 50, []confPair{{1, 2}, {3, 0}}},
		{"dense grows K then shrinks", 4, 50, []confPair{{9, 1}, {2, 12}}},
		{"sparse", 300, 200, []confPair{{5, 250}, {120, 3}}},
		{"sparse grows K then shrinks", 300, 200, []confPair{{299, 5000}, {7000, 1}}},
		{"only retracted", 0, 0, []confPair{{0, 0}, {200, 3}}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var pairs []confPair
			if tc.k > 0 {
				pairs = confRandPairs(rand.New(rand.NewPCG(uint64(i), 9)), tc.k, tc.n, 0.5)
			}
			want := confEnc(confFromPairs(pairs))
			c := confFromPairs(pairs)
			for _, q := range tc.retract {
				c.Add(q.actual, q.predicted)
			}
			for _, q := range tc.retract {
				c.AddN(q.actual, q.predicted, -1)
			}
			if got := confEnc(c); !bytes.Equal(got, want) {
				t.Errorf("add then retract\n got % x\nwant % x", got, want)
			}
			confCheckOracle(t, c, pairs)
			// A correction delta merged later: retract in a separate state.
			d := NewConfusion()
			for _, q := range tc.retract {
				d.AddN(q.actual, q.predicted, -1)
			}
			e := confFromPairs(pairs)
			for _, q := range tc.retract {
				e.Add(q.actual, q.predicted)
			}
			e.Merge(d)
			if got := confEnc(e); !bytes.Equal(got, want) {
				t.Errorf("merged delta\n got % x\nwant % x", got, want)
			}
			// The delta on its own encodes its negative cells.
			confRoundTrip(t, d)
			if d.Count() != -int64(len(tc.retract)) {
				t.Errorf("delta Count = %d", d.Count())
			}
		})
	}
}

func TestConfusionTransitions(t *testing.T) {
	t.Run("dense grows to sparse", func(t *testing.T) {
		c := NewConfusion()
		for a := range 10 {
			c.Add(a, a)
		}
		if c.sparse {
			t.Fatal("10 classes should be dense")
		}
		c.Add(150, 3) // past confDenseMaxK
		if !c.sparse {
			t.Fatal("150 classes with 11 cells should be sparse")
		}
		c.Add(20, 20)
		want := []confPair{{0, 0}, {1, 1}, {2, 2}, {3, 3}, {4, 4}, {5, 5}, {6, 6}, {7, 7}, {8, 8}, {9, 9}, {150, 3}, {20, 20}}
		confCheckOracle(t, c, want)
		// Retracting the far cell does not bring the dense form back, but
		// the encoding forgets it.
		c.AddN(150, 3, -1)
		if got, wantEnc := confEnc(c), confEnc(confFromPairs(slices.Delete(slices.Clone(want), 10, 11))); !bytes.Equal(got, wantEnc) {
			t.Errorf("after retraction\n got % x\nwant % x", got, wantEnc)
		}
	})
	t.Run("sparse fills to dense", func(t *testing.T) {
		// K=40 stays sparse until 40*40/8 = 200 cells are non-zero.
		c := NewConfusion()
		var pairs []confPair
		for i := range 40 * 40 {
			q := confPair{i / 40, i % 40}
			if i == 0 {
				q = confPair{39, 39} // K=40 from the start
			} else if i == 39*40+39 {
				q = confPair{0, 0}
			}
			c.Add(q.actual, q.predicted)
			pairs = append(pairs, q)
			if nnz := i + 1; c.sparse != (nnz < 200) {
				t.Fatalf("after %d cells sparse = %v", nnz, c.sparse)
			}
		}
		confCheckOracle(t, c, pairs)
		if !bytes.Equal(confEnc(c), confEnc(confClone(t, c))) {
			t.Error("clone differs")
		}
	})
	t.Run("small k always dense", func(t *testing.T) {
		c := NewConfusion()
		c.Add(15, 0)
		if c.sparse || c.k != 16 {
			t.Fatalf("k=16 with one cell: sparse = %v, k = %d", c.sparse, c.k)
		}
		c.Add(0, 16)
		if !c.sparse {
			t.Fatalf("k=17 with two cells should be sparse")
		}
	})
	t.Run("merge across representations", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(11, 12))
		shapes := []struct {
			k, n   int
			sparse bool
		}{{3, 100, false}, {12, 400, false}, {60, 3000, false}, {60, 30, true}, {128, 4000, false}, {500, 800, true}}
		pairs := make([][]confPair, len(shapes))
		states := make([]*Confusion, len(shapes))
		for i, x := range shapes {
			pairs[i] = confRandPairs(rng, x.k, x.n, 0.3)
			states[i] = confFromPairs(pairs[i])
			if states[i].sparse != x.sparse {
				t.Fatalf("k=%d n=%d: sparse = %v, want %v", x.k, x.n, states[i].sparse, x.sparse)
			}
		}
		for i, x := range shapes {
			for j, y := range shapes {
				name := fmt.Sprintf("k=%d(sparse=%v)+k=%d(sparse=%v)", x.k, x.sparse, y.k, y.sparse)
				a, b := states[i], states[j]
				all := confClone(t, a)
				for _, q := range pairs[j] {
					all.Add(q.actual, q.predicted)
				}
				want := confEnc(all)
				m := confClone(t, a)
				m.Merge(b)
				if !bytes.Equal(confEnc(m), want) {
					t.Errorf("%s: Merge differs from adding all", name)
				}
				dm := confClone(t, a)
				if err := dm.DecodeAndMerge(confEnc(b)); err != nil || !bytes.Equal(confEnc(dm), want) {
					t.Errorf("%s: DecodeAndMerge differs from Merge (err %v)", name, err)
				}
				m.Subtract(b)
				if !bytes.Equal(confEnc(m), confEnc(a)) {
					t.Errorf("%s: Subtract does not undo Merge", name)
				}
			}
		}
	})
}

// confRandState builds a state from random signed deltas whose counts are
// small integers, mixing dense and sparse shapes.
func confRandState(rng *rand.Rand, k, n int) *Confusion {
	c := NewConfusion()
	for range n {
		c.AddN(rng.IntN(k), rng.IntN(k), rng.Int64N(7)-2)
	}
	return c
}

func TestConfusionMergeProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	ks := []int{2, 9, 40, 130, 900}
	for trial := range 40 {
		a := confRandState(rng, ks[rng.IntN(len(ks))], rng.IntN(300))
		b := confRandState(rng, ks[rng.IntN(len(ks))], rng.IntN(300))
		c := confRandState(rng, ks[rng.IntN(len(ks))], rng.IntN(300))
		ab := confClone(t, a)
		ab.Merge(b)
		abc1 := confClone(t, ab)
		abc1.Merge(c)
		bc := confClone(t, b)
		bc.Merge(c)
		abc2 := confClone(t, a)
		abc2.Merge(bc)
		cba := confClone(t, c)
		cba.Merge(b)
		cba.Merge(a)
		ba := confClone(t, b)
		ba.Merge(a)
		if !bytes.Equal(confEnc(abc1), confEnc(abc2)) {
			t.Fatalf("trial %d: Merge not associative", trial)
		}
		if !bytes.Equal(confEnc(abc1), confEnc(cba)) || !bytes.Equal(confEnc(ab), confEnc(ba)) {
			t.Fatalf("trial %d: Merge not commutative", trial)
		}
		// Decode-and-merge equals Merge, from both representations.
		dm := confClone(t, a)
		if err := dm.DecodeAndMerge(confEnc(b)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(confEnc(dm), confEnc(ab)) {
			t.Fatalf("trial %d: DecodeAndMerge differs from Merge", trial)
		}
		// Subtract is the inverse of Merge.
		ab.Subtract(b)
		if !bytes.Equal(confEnc(ab), confEnc(a)) {
			t.Fatalf("trial %d: Subtract does not undo Merge", trial)
		}
		// Self-merge doubles; self-subtract empties.
		self := confClone(t, a)
		self.Merge(self)
		aa := confClone(t, a)
		aa.Merge(confClone(t, a))
		if !bytes.Equal(confEnc(self), confEnc(aa)) {
			t.Fatalf("trial %d: self-merge", trial)
		}
		self.Subtract(self)
		if !bytes.Equal(confEnc(self), []byte{byte(FormatConfusion), 0}) {
			t.Fatalf("trial %d: self-subtract not empty", trial)
		}
		confRoundTrip(t, abc1)
	}
	// Merging nil or empty is a no-op.
	a := confRandState(rng, 9, 50)
	before := confEnc(a)
	a.Merge(nil)
	a.Merge(NewConfusion())
	a.Subtract(&Confusion{})
	if !bytes.Equal(confEnc(a), before) {
		t.Error("merging empty changed the state")
	}
}

func TestConfusionReset(t *testing.T) {
	for _, k := range []int{5, 300} {
		c := confRandState(rand.New(rand.NewPCG(uint64(k), 1)), k, 2000)
		size := c.MemSize()
		c.Reset()
		if !bytes.Equal(confEnc(c), []byte{byte(FormatConfusion), 0}) || c.Count() != 0 {
			t.Errorf("k=%d: Reset did not empty", k)
		}
		if c.MemSize() != size {
			t.Errorf("k=%d: Reset changed MemSize %d -> %d", k, size, c.MemSize())
		}
		c.Add(1, 2)
		confCheckOracle(t, c, []confPair{{1, 2}})
	}
}

func TestConfusionMemSize(t *testing.T) {
	// 1000 classes on the diagonal: sparse, far below a dense 1000×1000.
	c := NewConfusion()
	for i := range 1000 {
		c.Add(i, i)
	}
	if !c.sparse || c.MemSize() > 64<<10 {
		t.Errorf("1000-class diagonal: sparse = %v, MemSize = %d", c.sparse, c.MemSize())
	}
	d := NewConfusion()
	for i := range 100 * 100 {
		d.Add(i/100, i%100)
	}
	if d.sparse || d.MemSize() < 8*100*100 {
		t.Errorf("full 100×100: sparse = %v, MemSize = %d", d.sparse, d.MemSize())
	}
}

func TestConfusionDecodeErrors(t *testing.T) {
	f := byte(FormatConfusion)
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrCorrupt},
		{"wrong format", []byte{byte(FormatMoments), 0}, ErrFormat},
		{"no K", []byte{f}, ErrCorrupt},
		{"K too large", append([]byte{f}, appendUvarint(nil, ConfusionMaxClasses+1)...), ErrCorrupt},
		{"overlong K", []byte{f, 0x82, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02}, ErrCorrupt},
		{"empty with layout", []byte{f, 0, 0}, ErrCorrupt},
		{"no layout", []byte{f, 1}, ErrCorrupt},
		{"unknown layout", []byte{f, 1, 2, 2}, ErrCorrupt},
		{"dense truncated", []byte{f, 2, 0, 2, 2, 2}, ErrCorrupt},
		{"dense huge K", []byte{f, 0xff, 0x7f, 0, 2}, ErrCorrupt},
		{"dense trailing", []byte{f, 1, 0, 2, 0}, ErrCorrupt},
		{"dense last class empty", []byte{f, 2, 0, 2, 0, 0, 0}, ErrCorrupt},
		{"dense all zero", []byte{f, 1, 0, 0}, ErrCorrupt},
		{"dense overlong cell", []byte{f, 2, 0, 2, 0x82, 0x00, 2, 2}, ErrCorrupt},
		{"dense where sparse is smaller", []byte{f, 2, 0, 0, 0, 0, 2}, ErrCorrupt},
		{"sparse where dense is smaller", []byte{f, 2, 1, 4, 0, 2, 0, 2, 0, 2, 0, 2}, ErrCorrupt},
		{"sparse tie goes dense", []byte{f, 2, 1, 2, 0, 2, 1, 2}, ErrCorrupt},
		{"sparse zero count", []byte{f, 2, 1, 1, 3, 0}, ErrCorrupt},
		{"sparse beyond matrix", []byte{f, 2, 1, 1, 4, 2}, ErrCorrupt},
		{"sparse huge gap", []byte{f, 2, 1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 2}, ErrCorrupt},
		{"sparse count too large", []byte{f, 2, 1, 9, 3, 2}, ErrCorrupt},
		{"sparse truncated", []byte{f, 2, 1, 1, 3}, ErrCorrupt},
		{"sparse truncated count", []byte{f, 0xc8, 0x01, 1, 1, 0xc7, 0x01}, ErrCorrupt},
		{"sparse trailing", []byte{f, 2, 1, 1, 3, 2, 0}, ErrCorrupt},
		{"sparse overlong gap", []byte{f, 2, 1, 1, 0x83, 0x00, 2}, ErrCorrupt},
		{"sparse overlong count", []byte{f, 2, 1, 0x81, 0x00, 3, 2}, ErrCorrupt},
		{"sparse K not canonical", []byte{f, 3, 1, 1, 4, 2}, ErrCorrupt},
		{"bad varint", []byte{f, 2, 1, 1, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, ErrCorrupt},
	}
	rng := rand.New(rand.NewPCG(31, 32))
	receivers := []*Confusion{NewConfusion(), confRandState(rng, 5, 100), confRandState(rng, 400, 300)}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range receivers {
				before := confEnc(r)
				size := r.MemSize()
				if err := r.DecodeAndMerge(tc.in); !errors.Is(err, tc.want) {
					t.Errorf("DecodeAndMerge err = %v, want %v", err, tc.want)
				}
				if err := r.UnmarshalBinary(tc.in); !errors.Is(err, tc.want) {
					t.Errorf("UnmarshalBinary err = %v, want %v", err, tc.want)
				}
				if !bytes.Equal(confEnc(r), before) || r.MemSize() != size {
					t.Errorf("failed decode changed the receiver")
				}
			}
		})
	}
	// Every strict prefix of a valid encoding fails.
	for _, c := range receivers[1:] {
		enc := confEnc(c)
		for i := range enc {
			if err := NewConfusion().UnmarshalBinary(enc[:i]); err == nil {
				t.Errorf("prefix of %d of %d bytes decoded", i, len(enc))
			}
		}
	}
}

func TestConfusionReadsDoNotMutate(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	states := map[string]*Confusion{
		"dense":  confFromPairs(confRandPairs(rng, 6, 500, 0.5)),
		"sparse": confFromPairs(confRandPairs(rng, 300, 500, 0.5)),
	}
	for name, c := range states {
		t.Run(name, func(t *testing.T) {
			read := func() {
				_ = c.Classes()
				_ = c.Count()
				_ = c.Accuracy()
				for cls := range 8 {
					_ = c.Cell(cls, cls+1)
					_, _, _, _ = c.Precision(cls), c.Recall(cls), c.F1(cls), c.PositiveRate(cls)
					_ = c.Support(cls)
					for m := ProportionAccuracy; m <= ProportionPositiveRate; m++ {
						_, _ = c.Proportion(m, cls)
					}
				}
				_, _, _ = c.MacroPrecision(), c.MacroRecall(), c.MacroF1()
				_, _, _ = c.MicroPrecision(), c.MicroRecall(), c.MicroF1()
				_, _, _ = c.WeightedPrecision(), c.WeightedRecall(), c.WeightedF1()
				_ = c.AppendCells(nil)
				_ = c.AppendBinary(nil)
				_ = c.MemSize()
				_ = c.Format()
				_, _ = ZTest(c, c, ProportionRecall, 1, 0.95)
			}
			before := confEnc(c)
			size := c.MemSize()
			read()
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(read)
			}
			wg.Wait()
			if !bytes.Equal(confEnc(c), before) || c.MemSize() != size {
				t.Error("reading changed the state")
			}
		})
	}
}

func TestConfusionZeroAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(51, 52))
	dense := confFromPairs(confRandPairs(rng, 10, 1000, 0))
	dense2 := confFromPairs(confRandPairs(rng, 10, 1000, 0))
	small := confFromPairs(confRandPairs(rng, 4, 100, 0))
	sparse := confFromPairs(confRandPairs(rng, 1000, 3000, 0.8))
	sparse2 := confFromPairs(confRandPairs(rng, 1000, 3000, 0.8))
	if dense.sparse || dense2.sparse || !sparse.sparse || !sparse2.sparse {
		t.Fatal("unexpected representations")
	}
	sparse.Merge(sparse2) // reach capacity: the key set is now a superset
	sparse.Merge(sparse2)
	enc := confEnc(dense2)
	tests := []struct {
		name string
		f    func()
	}{
		{"Add dense", func() { dense.Add(3, 4) }},
		{"AddN dense", func() { dense.AddN(3, 4, -1) }},
		{"Add sparse existing cell", func() { sparse.Add(999, 999) }},
		{"Merge dense same K", func() { dense.Merge(dense2) }},
		{"Subtract dense same K", func() { dense.Subtract(dense2) }},
		{"Merge dense smaller K", func() { dense.Merge(small) }},
		{"Merge sparse", func() { sparse.Merge(sparse2) }},
		{"Subtract sparse", func() { sparse.Subtract(sparse2) }},
		{"Merge dense into sparse", func() { sparse.Merge(small) }},
		{"DecodeAndMerge dense", func() {
			if err := dense.DecodeAndMerge(enc); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		tc.f() // warm up to steady state
		if n := testing.AllocsPerRun(100, tc.f); n != 0 {
			t.Errorf("%s: %v allocs, want 0", tc.name, n)
		}
	}
}

func TestConfusionProportionAndZTest(t *testing.T) {
	// a: TP0=80, TP1=40, (0->1)=50, (1->0)=30; b: 60, 30, 70, 40.
	a, b := NewConfusion(), NewConfusion()
	for _, e := range []struct {
		s    *Confusion
		x, y int
		n    int64
	}{
		{a, 0, 0, 80}, {a, 1, 1, 40}, {a, 0, 1, 50}, {a, 1, 0, 30},
		{b, 0, 0, 60}, {b, 1, 1, 30}, {b, 0, 1, 70}, {b, 1, 0, 40},
	} {
		e.s.AddN(e.x, e.y, e.n)
	}
	props := []struct {
		m      ProportionMetric
		cls    int
		x, n   int64
		metric func() float64
	}{
		{ProportionAccuracy, 0, 120, 200, a.Accuracy},                              // 80+40 of 200
		{ProportionPrecision, 1, 40, 90, func() float64 { return a.Precision(1) }}, // 40 of 40+50
		{ProportionRecall, 1, 40, 70, func() float64 { return a.Recall(1) }},       // 40 of 40+30
		{ProportionPositiveRate, 1, 90, 200, func() float64 { return a.PositiveRate(1) }},
		{ProportionPrecision, 7, 0, 0, func() float64 { return a.Precision(7) }},
		{ProportionPositiveRate, 7, 0, 200, func() float64 { return a.PositiveRate(7) }},
	}
	for _, p := range props {
		x, n := a.Proportion(p.m, p.cls)
		if x != p.x || n != p.n {
			t.Errorf("Proportion(%v, %d) = %d/%d, want %d/%d", p.m, p.cls, x, n, p.x, p.n)
		}
		if got := p.metric(); !confSame(got, confDiv(x, n)) {
			t.Errorf("%v(%d) = %v, want %d/%d", p.m, p.cls, got, x, n)
		}
	}
	if x, n := a.Proportion(0, 0); x != 0 || n != 0 {
		t.Errorf("invalid metric proportion = %d/%d", x, n)
	}

	within := func(t *testing.T, name string, got, want, tol float64) {
		t.Helper()
		if !(math.Abs(got-want) <= tol) {
			t.Errorf("%s = %.10g, want %.10g ± %g", name, got, want, tol)
		}
	}
	t.Run("accuracy", func(t *testing.T) {
		// 120/200 vs 90/200: pooled p = 210/400 = 0.525,
		// SE0 = sqrt(0.525*0.475*(1/200+1/200)) = 0.04993746089,
		// z = 0.15/SE0 = 3.003757046, p = erfc(z/sqrt2) = 0.002666682;
		// SE = sqrt(0.6*0.4/200 + 0.45*0.55/200) = 0.04937104415,
		// 95% CI = 0.15 ± 1.959963985*SE = [0.05323453, 0.24676547].
		r, err := ZTest(a, b, ProportionAccuracy, 0, 0.95)
		if err != nil {
			t.Fatal(err)
		}
		within(t, "z", r.Statistic, 3.003757046, 1e-9)
		within(t, "p", r.PValue, 0.002666682, 1e-9)
		within(t, "effect", r.Effect, 0.15, 1e-15)
		within(t, "lower", r.Lower, 0.05323453, 1e-8)
		within(t, "upper", r.Upper, 0.24676547, 1e-8)
	})
	t.Run("precision", func(t *testing.T) {
		// Class 1: 40/90 vs 30/100. Pooled p = 70/190 = 0.3684210526,
		// SE0 = sqrt(0.3684210526*0.6315789474*(1/90+1/100)) = 0.07008766441,
		// z = (0.4444444444-0.3)/SE0 = 2.060911084, p = erfc(z/sqrt2)
		// = 0.03931152363; SE = sqrt(0.4444*0.5556/90 + 0.3*0.7/100)
		// = 0.06959514512, 95% CI = [0.008040466501, 0.2808484224].
		r, err := ZTest(a, b, ProportionPrecision, 1, 0.95)
		if err != nil {
			t.Fatal(err)
		}
		within(t, "z", r.Statistic, 2.060911084, 1e-9)
		within(t, "p", r.PValue, 0.03931152363, 1e-10)
		within(t, "stderr", r.StdErr, 0.06959514512, 1e-10)
		within(t, "lower", r.Lower, 0.008040466501, 1e-11)
		within(t, "upper", r.Upper, 0.2808484224, 1e-10)
	})
	errs := []struct {
		name  string
		a, b  *Confusion
		m     ProportionMetric
		cls   int
		level float64
	}{
		{"unknown metric", a, b, 0, 0, 0.95},
		{"metric past the end", a, b, ProportionPositiveRate + 1, 0, 0.95},
		{"nil state", a, nil, ProportionAccuracy, 0, 0.95},
		{"negative class", a, b, ProportionRecall, -1, 0.95},
		{"no trials", a, b, ProportionPrecision, 5, 0.95},
		{"empty state", a, NewConfusion(), ProportionAccuracy, 0, 0.95},
		{"bad level", a, b, ProportionAccuracy, 0, 1},
	}
	for _, e := range errs {
		if _, err := ZTest(e.a, e.b, e.m, e.cls, e.level); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", e.name, err)
		}
	}
	for m, want := range map[ProportionMetric]string{
		ProportionAccuracy: "accuracy", ProportionPrecision: "precision", ProportionRecall: "recall",
		ProportionPositiveRate: "positive_rate", 9: "ProportionMetric(9)",
	} {
		if m.String() != want {
			t.Errorf("String(%d) = %q, want %q", int(m), m.String(), want)
		}
	}
}

func FuzzDecodeConfusion(f *testing.F) {
	rng := rand.New(rand.NewPCG(61, 62))
	f.Add([]byte{byte(FormatConfusion), 0})
	for _, c := range []*Confusion{
		confFromPairs(confRandPairs(rng, 2, 20, 0.5)),
		confFromPairs(confRandPairs(rng, 5, 100, 0.5)),
		confRandState(rng, 3, 10),
		confFromPairs(confRandPairs(rng, 40, 30, 0.5)),
		confFromPairs(confRandPairs(rng, 300, 50, 0.9)),
	} {
		f.Add(confEnc(c))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c := NewConfusion()
		if err := c.UnmarshalBinary(in); err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrFormat) {
				t.Fatalf("error wraps neither ErrCorrupt nor ErrFormat: %v", err)
			}
			if c.Count() != 0 || c.k != 0 {
				t.Fatal("failed decode changed the receiver")
			}
			return
		}
		// The decoder accepts only canonical encodings, so an accepted
		// input re-encodes to itself.
		enc := confEnc(c)
		if !bytes.Equal(enc, in) {
			t.Fatalf("accepted a non-canonical encoding:\n in % x\nout % x", in, enc)
		}
		d := NewConfusion()
		if err := d.DecodeAndMerge(enc); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(confEnc(d), enc) {
			t.Fatal("re-decode changed the encoding")
		}
		_ = c.MacroF1()
		_ = c.Accuracy()
	})
}

// confBenchState fills every cell of a k×k matrix (dense for k ≤ 128) or,
// for larger k, draws 20·k observations that are right 80% of the time.
func confBenchState(seed uint64, k int) *Confusion {
	rng := rand.New(rand.NewPCG(seed, 7))
	c := NewConfusion()
	if k > confDenseMaxK {
		for _, q := range confRandPairs(rng, k, 20*k, 0.8) {
			c.Add(q.actual, q.predicted)
		}
		return c
	}
	for a := range k {
		for p := range k {
			c.AddN(a, p, 1+rng.Int64N(1000))
		}
	}
	return c
}

func BenchmarkConfusion(b *testing.B) {
	b.Run("op=add/k=2", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(1, 2))
		pairs := confRandPairs(rng, 2, 1024, 0.8)
		c := confFromPairs(pairs)
		enc := confEnc(c)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			q := pairs[i&1023]
			c.Add(q.actual, q.predicted)
			i++
		}
		b.ReportMetric(float64(len(enc)), "B/state")
	})
	for _, k := range []int{2, 10, 100, 1000} {
		src := confBenchState(uint64(k), k)
		enc := confEnc(src)
		bytesMerged := int64(8 * k * k)
		if src.sparse {
			bytesMerged = int64(len(src.cells)) * int64(16)
		}
		b.Run(fmt.Sprintf("op=merge/k=%d", k), func(b *testing.B) {
			dst := confBenchState(uint64(k)+100, k)
			// Two warm-up merges size both cell arrays of a sparse state.
			dst.Merge(src)
			dst.Merge(src)
			b.SetBytes(bytesMerged)
			b.ReportAllocs()
			for b.Loop() {
				dst.Merge(src)
			}
			b.ReportMetric(float64(len(enc)), "B/state")
		})
		b.Run(fmt.Sprintf("op=decode_and_merge/k=%d", k), func(b *testing.B) {
			dst := confBenchState(uint64(k)+100, k)
			for range 2 {
				if err := dst.DecodeAndMerge(enc); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(len(enc)))
			b.ReportAllocs()
			for b.Loop() {
				if err := dst.DecodeAndMerge(enc); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(enc)), "B/state")
		})
	}
}
