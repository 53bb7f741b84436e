package sketch

import (
	"cmp"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"unsafe"
)

// ConfusionMaxClasses bounds class indices. Add and AddN ignore indices
// outside [0, ConfusionMaxClasses) because they cannot return an error; the
// definitions layer that maps class names to indices must refuse more
// classes than this. The bound keeps K×K within uint64 and bounds what a
// decoder accepts.
const ConfusionMaxClasses = 1 << 20

const (
	// A dense matrix of up to confSmallK² cells (2 KiB) costs less than
	// the bookkeeping of a sparse one, so small states are always dense.
	confSmallK = 16
	// Above confDenseMaxK a dense matrix would cost 128 KiB or more per
	// state, which a TSDB holding many buckets cannot afford.
	confDenseMaxK = 128
	// Between the two, a state is dense only when at least 1/confDensity of
	// its cells are non-zero: the dense matrix then costs at most 4× the
	// 16-byte sparse entries and merges an order of magnitude faster.
	confDensity = 8

	confLayoutDense  = 0
	confLayoutSparse = 1
)

// Confusion is a confusion matrix: Cell(a, p) counts observations whose
// actual class is a and predicted class is p. Classes are dense indices
// 0..K-1; K grows as classes are seen.
//
// Counts are signed so that a corrected label can be written as a delta
// (AddN(old, pred, -1) plus Add(new, pred)) and merged by plain addition,
// which makes Merge exactly associative and commutative. Arithmetic wraps
// modulo 2^64 (which keeps that property); real counts never get near it.
// A complete state has non-negative cells; a delta state on its own may
// hold negative cells, and its metrics are then not meaningful.
//
// The zero value is an empty state ready to use.
type Confusion struct {
	// k is the in-memory dimension: 1 + the largest class index written.
	// It may exceed Classes() after retractions zero out the last classes.
	k int
	// dense holds the k×k cells row-major (actual major) when !sparse.
	dense []int64
	// cells holds the non-zero cells sorted by key when sparse. Zero
	// cells are removed at once so that equal counts mean equal cells.
	cells []confCell
	// spare is the previous cells array, kept so that a steady-state merge
	// (output no larger than before) writes into it without allocating.
	spare  []confCell
	sparse bool
}

var _ Sketch = (*Confusion)(nil)

// confCell is one sparse cell. The key puts actual in the high 32 bits so
// key order is row-major order, the order of the encoding.
type confCell struct {
	key uint64
	n   int64
}

func confKey(actual, predicted int) uint64 { return uint64(actual)<<32 | uint64(predicted) }

func confActual(key uint64) int    { return int(key >> 32) }
func confPredicted(key uint64) int { return int(uint32(key)) }

// ConfusionCell is one non-zero cell, as returned by AppendCells.
type ConfusionCell struct {
	Actual, Predicted int
	Count             int64
}

// NewConfusion returns an empty confusion matrix.
func NewConfusion() *Confusion { return &Confusion{} }

// Add records one observation of class actual predicted as predicted.
func (c *Confusion) Add(actual, predicted int) { c.AddN(actual, predicted, 1) }

// AddN adds n (which may be negative, to retract earlier observations) to
// cell (actual, predicted). Indices outside [0, ConfusionMaxClasses) are
// ignored; see ConfusionMaxClasses.
func (c *Confusion) AddN(actual, predicted int, n int64) {
	if n == 0 || uint(actual) >= ConfusionMaxClasses || uint(predicted) >= ConfusionMaxClasses {
		return
	}
	if !c.sparse {
		if actual < c.k && predicted < c.k {
			c.dense[actual*c.k+predicted] += n
			return
		}
		c.growDense(max(actual, predicted)+1, 1)
		if !c.sparse {
			c.dense[actual*c.k+predicted] += n
			return
		}
	}
	c.k = max(c.k, actual+1, predicted+1)
	c.addSparse(confKey(actual, predicted), n)
	c.maybeDensify()
}

func (c *Confusion) addSparse(key uint64, n int64) {
	i, found := slices.BinarySearchFunc(c.cells, key, func(e confCell, k uint64) int { return cmp.Compare(e.key, k) })
	if !found {
		c.cells = slices.Insert(c.cells, i, confCell{key, n})
		return
	}
	if v := c.cells[i].n + n; v != 0 {
		c.cells[i].n = v
	} else {
		c.cells = slices.Delete(c.cells, i, i+1)
	}
}

// growDense makes a dense receiver able to hold classes below k, which is
// larger than c.k, expecting about extra more non-zero cells. It switches
// to the sparse representation when a k×k matrix would be mostly zeros.
func (c *Confusion) growDense(k, extra int) {
	if k <= confSmallK || (k <= confDenseMaxK && k*k <= confDensity*(c.denseNonZero()+extra)) {
		c.resizeDense(k)
		return
	}
	c.toSparse()
	c.k = max(c.k, k)
}

// resizeDense re-lays the k0×k0 matrix out as k×k (k > k0), in place when
// the capacity allows.
func (c *Confusion) resizeDense(k int) {
	k0, need := c.k, k*k
	if cap(c.dense) < need {
		// Doubling the capacity amortises the growth of a state that
		// meets its classes one at a time.
		d := make([]int64, need, max(need, min(2*cap(c.dense), confDenseMaxK*confDenseMaxK)))
		for a := range k0 {
			copy(d[a*k:a*k+k0], c.dense[a*k0:a*k0+k0])
		}
		c.dense, c.k = d, k
		return
	}
	d := c.dense[:need]
	// Rows move to higher offsets, so moving the last row first never
	// overwrites a row not yet moved.
	for a := k0 - 1; a >= 0; a-- {
		copy(d[a*k:a*k+k0], d[a*k0:a*k0+k0])
		clear(d[a*k+k0 : a*k+k])
	}
	clear(d[k0*k:])
	c.dense, c.k = d, k
}

func (c *Confusion) denseNonZero() int {
	n := 0
	for _, v := range c.dense[:c.k*c.k] {
		if v != 0 {
			n++
		}
	}
	return n
}

// toSparse converts a dense receiver. The dense array is released: a state
// that outgrew it rarely comes back, and 128 KiB per state is too much to
// keep idle.
func (c *Confusion) toSparse() {
	cells := c.cells[:0]
	k := c.k
	for a := range k {
		for p, n := range c.dense[a*k : a*k+k] {
			if n != 0 {
				cells = append(cells, confCell{confKey(a, p), n})
			}
		}
	}
	c.cells, c.dense, c.sparse = cells, nil, true
}

// maybeDensify switches a sparse receiver to dense once enough of its
// cells are non-zero.
func (c *Confusion) maybeDensify() {
	k := c.k
	if !c.sparse || k > confDenseMaxK || (k > confSmallK && k*k > confDensity*len(c.cells)) {
		return
	}
	need := k * k
	d := c.dense
	if cap(d) < need {
		d = make([]int64, need)
	} else {
		d = d[:need]
		clear(d)
	}
	for _, e := range c.cells {
		d[confActual(e.key)*k+confPredicted(e.key)] = e.n
	}
	c.dense, c.cells, c.sparse = d, c.cells[:0], false
}

// Merge adds the counts of o into c. Merging c into itself doubles it.
func (c *Confusion) Merge(o *Confusion) { c.mergeState(o, 1) }

// Subtract removes the counts of o from c, so that after c.Merge(o),
// c.Subtract(o) restores c exactly (same encoding).
func (c *Confusion) Subtract(o *Confusion) { c.mergeState(o, -1) }

func (c *Confusion) mergeState(o *Confusion, sign int64) {
	if o == nil || o.k == 0 {
		return
	}
	if !c.sparse && !o.sparse && c.k == o.k {
		n := c.k * c.k
		if sign > 0 {
			confAddInt64s(c.dense[:n], o.dense[:n])
		} else {
			confSubInt64s(c.dense[:n], o.dense[:n])
		}
		return
	}
	if !c.sparse && !o.sparse && o.k < c.k {
		// Row by row: each row of o is a prefix of a row of c.
		for a := range o.k {
			dst := c.dense[a*c.k : a*c.k+o.k]
			src := o.dense[a*o.k : a*o.k+o.k]
			if sign > 0 {
				confAddInt64s(dst, src)
			} else {
				confSubInt64s(dst, src)
			}
		}
		return
	}
	nnz := len(o.cells)
	if !o.sparse {
		nnz = o.denseNonZero()
	}
	it := o.cursor()
	c.mergeCells(o.k, nnz, &it, sign)
}

// confAddInt64s adds src to dst element-wise. Reslicing dst to len(src)
// lets the compiler drop the bounds checks from this, the hot loop of
// query-time merging; manual unrolling measured no faster.
func confAddInt64s(dst, src []int64) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] += v
	}
}

func confSubInt64s(dst, src []int64) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] -= v
	}
}

// mergeCells adds sign times the cells of it into c. The cursor yields
// non-zero cells in increasing key order with both indices below k; nnz is
// how many it yields (or an estimate), used to pick the representation.
// A cursor rather than a callback keeps the merge free of heap-allocated
// closures.
func (c *Confusion) mergeCells(k, nnz int, it *confCursor, sign int64) {
	if !c.sparse && k > c.k {
		c.growDense(k, nnz)
	}
	if !c.sparse {
		d, ck := c.dense, c.k
		for key, n, ok := it.next(); ok; key, n, ok = it.next() {
			d[confActual(key)*ck+confPredicted(key)] += sign * n
		}
		return
	}
	// A merge join of two sorted lists into the spare array; sums that
	// cancel to zero are dropped to keep the cells canonical.
	old := c.cells
	out := c.spare[:0]
	i := 0
	for key, n, ok := it.next(); ok; key, n, ok = it.next() {
		for i < len(old) && old[i].key < key {
			out = append(out, old[i])
			i++
		}
		n *= sign
		if i < len(old) && old[i].key == key {
			n += old[i].n
			i++
		}
		if n != 0 {
			out = append(out, confCell{key, n})
		}
	}
	out = append(out, old[i:]...)
	c.cells, c.spare = out, old[:0]
	c.k = max(c.k, k)
	c.maybeDensify()
}

// confCursor walks the non-zero cells of a state or of a validated
// encoding in key order. It tracks the row and column as it goes, so
// walking needs no division per cell.
type confCursor struct {
	kind   uint8
	cells  []confCell // confFromCells
	dense  []int64    // confFromDense
	r      reader     // confFromDenseBytes, confFromSparseBytes
	k      int
	i      int    // next cell or entry
	end    int    // number of cells or entries
	a, p   int    // row and column of cell i (dense kinds), or current row
	idx    uint64 // next flat index of a sparse encoding
	rowEnd uint64 // flat index where row a ends in a sparse encoding
}

const (
	confFromCells = iota
	confFromDense
	confFromDenseBytes
	confFromSparseBytes
)

func (c *Confusion) cursor() confCursor {
	if c.sparse {
		return confCursor{kind: confFromCells, cells: c.cells, end: len(c.cells)}
	}
	return confCursor{kind: confFromDense, dense: c.dense[:c.k*c.k], k: c.k, end: c.k * c.k}
}

func (h confEncoded) cursor(src []byte) confCursor {
	it := confCursor{kind: confFromDenseBytes, r: newReader(src), k: h.k, end: h.k * h.k}
	if h.sparse {
		it.kind, it.end = confFromSparseBytes, h.nnz
	}
	it.r.off = h.body
	return it
}

func (it *confCursor) next() (key uint64, n int64, ok bool) {
	switch it.kind {
	case confFromCells:
		if it.i < it.end {
			e := it.cells[it.i]
			it.i++
			return e.key, e.n, true
		}
	case confFromDense, confFromDenseBytes:
		for it.i < it.end {
			if it.kind == confFromDense {
				n = it.dense[it.i]
			} else {
				n = it.r.varint("cell count")
			}
			key = confKey(it.a, it.p)
			it.i++
			if it.p++; it.p == it.k {
				it.a, it.p = it.a+1, 0
			}
			if n != 0 {
				return key, n, true
			}
		}
	case confFromSparseBytes:
		if it.i < it.end {
			it.i++
			idx := it.idx + it.r.uvarint("cell gap")
			it.idx = idx + 1
			k := uint64(it.k)
			if idx >= it.rowEnd {
				it.a = int(idx / k)
				it.rowEnd = uint64(it.a+1) * k
			}
			return confKey(it.a, int(idx-uint64(it.a)*k)), it.r.varint("cell count"), true
		}
	}
	return 0, 0, false
}

// eachNonZero yields the non-zero cells in key order.
func (c *Confusion) eachNonZero(yield func(key uint64, n int64)) {
	it := c.cursor()
	for key, n, ok := it.next(); ok; key, n, ok = it.next() {
		yield(key, n)
	}
}

// AppendCells appends the non-zero cells in row-major order (by actual,
// then predicted) and returns the extended slice.
func (c *Confusion) AppendCells(dst []ConfusionCell) []ConfusionCell {
	c.eachNonZero(func(key uint64, n int64) {
		dst = append(dst, ConfusionCell{confActual(key), confPredicted(key), n})
	})
	return dst
}

// Reset empties the state, keeping its memory.
func (c *Confusion) Reset() {
	c.k = 0
	c.dense = c.dense[:0]
	c.cells = c.cells[:0]
	c.sparse = false
}

// MemSize estimates the bytes held: the struct and the capacity of its
// arrays.
func (c *Confusion) MemSize() int {
	return int(unsafe.Sizeof(*c)) + 8*cap(c.dense) + int(unsafe.Sizeof(confCell{}))*(cap(c.cells)+cap(c.spare))
}

// Cell returns the count of cell (actual, predicted); 0 outside the matrix.
func (c *Confusion) Cell(actual, predicted int) int64 {
	if uint(actual) >= uint(c.k) || uint(predicted) >= uint(c.k) {
		return 0
	}
	if !c.sparse {
		return c.dense[actual*c.k+predicted]
	}
	key := confKey(actual, predicted)
	i, found := slices.BinarySearchFunc(c.cells, key, func(e confCell, k uint64) int { return cmp.Compare(e.key, k) })
	if !found {
		return 0
	}
	return c.cells[i].n
}

// Classes returns K: 1 + the largest class index with a non-zero cell in
// its row or column, 0 for an empty state. It depends only on the counts,
// so a class whose observations were all retracted no longer counts.
func (c *Confusion) Classes() int {
	k := 0
	c.eachNonZero(func(key uint64, _ int64) {
		k = max(k, confActual(key)+1, confPredicted(key)+1)
	})
	return k
}

// Count returns the total of all cells: the number of observations.
func (c *Confusion) Count() int64 {
	var s int64
	c.eachNonZero(func(_ uint64, n int64) { s += n })
	return s
}

// classCounts returns, for class cls, the true positives, the row sum
// (support: actual == cls) and the column sum (predicted == cls).
func (c *Confusion) classCounts(cls int) (tp, row, col int64) {
	if uint(cls) >= uint(c.k) {
		return 0, 0, 0
	}
	if c.sparse {
		for _, e := range c.cells {
			a, p := confActual(e.key), confPredicted(e.key)
			if a == cls {
				row += e.n
			}
			if p == cls {
				col += e.n
			}
		}
		return c.Cell(cls, cls), row, col
	}
	k := c.k
	for _, n := range c.dense[cls*k : cls*k+k] {
		row += n
	}
	for a := range k {
		col += c.dense[a*k+cls]
	}
	return c.dense[cls*k+cls], row, col
}

// confRatio is num/den, NaN when den is 0 ("undefined", as PromQL reports
// it) rather than an arbitrary 0 or 1.
func confRatio(num, den int64) float64 {
	if den == 0 {
		return math.NaN()
	}
	return float64(num) / float64(den)
}

// Accuracy returns the fraction of observations on the diagonal; NaN when
// empty.
func (c *Confusion) Accuracy() float64 {
	var trace, count int64
	c.eachNonZero(func(key uint64, n int64) {
		count += n
		if confActual(key) == confPredicted(key) {
			trace += n
		}
	})
	return confRatio(trace, count)
}

// Precision returns TP/(TP+FP) for class cls: the fraction of predictions
// of cls that were right; NaN when cls was never predicted.
func (c *Confusion) Precision(cls int) float64 {
	tp, _, col := c.classCounts(cls)
	return confRatio(tp, col)
}

// Recall returns TP/(TP+FN) for class cls: the fraction of actual cls that
// was predicted as cls; NaN when cls never occurred.
func (c *Confusion) Recall(cls int) float64 {
	tp, row, _ := c.classCounts(cls)
	return confRatio(tp, row)
}

// F1 returns 2TP/(2TP+FP+FN) for class cls, the harmonic mean of precision
// and recall written so that it is defined (0) when only one of them is;
// NaN when cls neither occurred nor was predicted.
func (c *Confusion) F1(cls int) float64 {
	tp, row, col := c.classCounts(cls)
	return confRatio(2*tp, row+col)
}

// PositiveRate returns the fraction of observations predicted as cls; NaN
// when empty.
func (c *Confusion) PositiveRate(cls int) float64 {
	_, _, col := c.classCounts(cls)
	return confRatio(col, c.Count())
}

// Support returns the number of observations whose actual class is cls.
func (c *Confusion) Support(cls int) int64 {
	_, row, _ := c.classCounts(cls)
	return row
}

// confClass holds the per-class sums of one class present in the matrix.
type confClass struct {
	tp, row, col int64
}

// presentClasses returns, in class order, the sums of every class with a
// non-zero cell in its row or column: scikit-learn's label set,
// unique_labels(y_true, y_pred).
func (c *Confusion) presentClasses() []confClass {
	if !c.sparse {
		k := c.k
		out := make([]confClass, 0, k)
		for cls := range k {
			var s confClass
			present := false
			for _, n := range c.dense[cls*k : cls*k+k] {
				s.row += n
				present = present || n != 0
			}
			for a := range k {
				n := c.dense[a*k+cls]
				s.col += n
				present = present || n != 0
			}
			if present {
				s.tp = c.dense[cls*k+cls]
				out = append(out, s)
			}
		}
		return out
	}
	// Sparse: rows come grouped in key order; columns are gathered and
	// sorted, which costs O(nnz log nnz) and never O(K).
	type colSum struct {
		cls int
		n   int64
	}
	cols := make([]colSum, 0, len(c.cells))
	for _, e := range c.cells {
		cols = append(cols, colSum{confPredicted(e.key), e.n})
	}
	slices.SortStableFunc(cols, func(x, y colSum) int { return cmp.Compare(x.cls, y.cls) })
	var out []confClass
	ri, ci := 0, 0
	for ri < len(c.cells) || ci < len(cols) {
		cls := math.MaxInt
		if ri < len(c.cells) {
			cls = confActual(c.cells[ri].key)
		}
		if ci < len(cols) {
			cls = min(cls, cols[ci].cls)
		}
		var s confClass
		for ; ri < len(c.cells) && confActual(c.cells[ri].key) == cls; ri++ {
			s.row += c.cells[ri].n
			if confPredicted(c.cells[ri].key) == cls {
				s.tp = c.cells[ri].n
			}
		}
		for ; ci < len(cols) && cols[ci].cls == cls; ci++ {
			s.col += cols[ci].n
		}
		out = append(out, s)
	}
	return out
}

// confAverages returns the macro and support-weighted averages of
// precision, recall and F1 with scikit-learn's defaults: over the present
// classes, an undefined (0/0) per-class value counting as 0.
func (c *Confusion) confAverages() (macro, weighted [3]float64) {
	classes := c.presentClasses()
	var sum, wsum [3]float64
	var support int64
	for _, s := range classes {
		v := [3]float64{
			confZeroIfUndefined(s.tp, s.col),
			confZeroIfUndefined(s.tp, s.row),
			confZeroIfUndefined(2*s.tp, s.row+s.col),
		}
		for i := range v {
			sum[i] += v[i]
			wsum[i] += float64(s.row) * v[i]
		}
		support += s.row
	}
	for i := range macro {
		macro[i], weighted[i] = math.NaN(), math.NaN()
		if len(classes) > 0 {
			macro[i] = sum[i] / float64(len(classes))
		}
		if support != 0 {
			weighted[i] = wsum[i] / float64(support)
		}
	}
	return macro, weighted
}

// confZeroIfUndefined is num/den with 0/0 as 0: zero_division="warn".
func confZeroIfUndefined(num, den int64) float64 {
	if den == 0 {
		return 0
	}
	return float64(num) / float64(den)
}

// MacroPrecision returns the unweighted mean of per-class precision over
// the present classes, an undefined precision counting as 0 (scikit-learn's
// average="macro"); NaN when empty.
func (c *Confusion) MacroPrecision() float64 { m, _ := c.confAverages(); return m[0] }

// MacroRecall is the macro average of recall; see MacroPrecision.
func (c *Confusion) MacroRecall() float64 { m, _ := c.confAverages(); return m[1] }

// MacroF1 is the macro average of per-class F1 (not the F1 of the macro
// precision and recall); see MacroPrecision.
func (c *Confusion) MacroF1() float64 { m, _ := c.confAverages(); return m[2] }

// WeightedPrecision returns the mean of per-class precision weighted by
// support (scikit-learn's average="weighted"); NaN when empty.
func (c *Confusion) WeightedPrecision() float64 { _, w := c.confAverages(); return w[0] }

// WeightedRecall is the support-weighted average of recall, which equals
// accuracy up to rounding; see WeightedPrecision.
func (c *Confusion) WeightedRecall() float64 { _, w := c.confAverages(); return w[1] }

// WeightedF1 is the support-weighted average of per-class F1.
func (c *Confusion) WeightedF1() float64 { _, w := c.confAverages(); return w[2] }

// MicroPrecision pools TP and FP over all classes. With one label per
// observation every FP of one class is an FN of another, so micro
// precision, recall and F1 all equal Accuracy.
func (c *Confusion) MicroPrecision() float64 { return c.Accuracy() }

// MicroRecall equals Accuracy; see MicroPrecision.
func (c *Confusion) MicroRecall() float64 { return c.Accuracy() }

// MicroF1 equals Accuracy; see MicroPrecision.
func (c *Confusion) MicroF1() float64 { return c.Accuracy() }

// ProportionMetric names a metric of a Confusion that is a proportion of
// counts, and so can be compared between two states with a z-test.
type ProportionMetric int

// The zero ProportionMetric is invalid so that an unset field is caught.
const (
	ProportionAccuracy     ProportionMetric = iota + 1 // diagonal / all
	ProportionPrecision                                // TP / predicted as class
	ProportionRecall                                   // TP / actually class
	ProportionPositiveRate                             // predicted as class / all
)

func (m ProportionMetric) String() string {
	switch m {
	case ProportionAccuracy:
		return "accuracy"
	case ProportionPrecision:
		return "precision"
	case ProportionRecall:
		return "recall"
	case ProportionPositiveRate:
		return "positive_rate"
	}
	return fmt.Sprintf("ProportionMetric(%d)", int(m))
}

// Proportion returns the counts behind metric m for class cls (ignored for
// accuracy): the metric equals successes/trials. An unknown m gives 0, 0.
func (c *Confusion) Proportion(m ProportionMetric, cls int) (successes, trials int64) {
	switch m {
	case ProportionAccuracy:
		c.eachNonZero(func(key uint64, n int64) {
			trials += n
			if confActual(key) == confPredicted(key) {
				successes += n
			}
		})
		return successes, trials
	case ProportionPrecision:
		tp, _, col := c.classCounts(cls)
		return tp, col
	case ProportionRecall:
		tp, row, _ := c.classCounts(cls)
		return tp, row
	case ProportionPositiveRate:
		_, _, col := c.classCounts(cls)
		return col, c.Count()
	}
	return 0, 0
}

// ZTest compares metric m (for class cls) of state a with that of state b
// using TwoProportionZTest at confidence level. Effect is a's proportion
// minus b's. It fails with ErrInvalid for an unknown metric, a negative
// class, or a state with no trials for the metric.
func ZTest(a, b *Confusion, m ProportionMetric, cls int, level float64) (TestResult, error) {
	if m < ProportionAccuracy || m > ProportionPositiveRate {
		return TestResult{}, fmt.Errorf("%w: unknown proportion metric %v", ErrInvalid, m)
	}
	if a == nil || b == nil {
		return TestResult{}, fmt.Errorf("%w: %v z-test needs two states", ErrInvalid, m)
	}
	if m != ProportionAccuracy && (cls < 0 || cls >= ConfusionMaxClasses) {
		return TestResult{}, fmt.Errorf("%w: class %d outside [0, %d)", ErrInvalid, cls, ConfusionMaxClasses)
	}
	xa, na := a.Proportion(m, cls)
	xb, nb := b.Proportion(m, cls)
	r, err := TwoProportionZTest(float64(xa), float64(na), float64(xb), float64(nb), level)
	if err != nil {
		return TestResult{}, fmt.Errorf("%v z-test for class %d: %w", m, cls, err)
	}
	return r, nil
}

// Format returns FormatConfusion.
func (c *Confusion) Format() Format { return FormatConfusion }

func confUvarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }

func confVarintLen(v int64) int { return confUvarintLen(uint64(v<<1) ^ uint64(v>>63)) }

// confSparseSmaller is the canonical layout rule. The cell values cost the
// same in both layouts, so the sparse layout wins when its index bytes (the
// cell count and the gaps) are fewer than the one-byte zeros of the dense
// layout. A tie goes to dense.
func confSparseSmaller(k, nnz int, gapBytes uint64) bool {
	return uint64(confUvarintLen(uint64(nnz)))+gapBytes < uint64(k)*uint64(k)-uint64(nnz)
}

// AppendBinary appends the canonical encoding (see docs/format.md):
// format id, K, then either all K×K cells or the non-zero ones.
func (c *Confusion) AppendBinary(dst []byte) []byte {
	k, nnz, valBytes := 0, 0, 0
	c.eachNonZero(func(key uint64, n int64) {
		k = max(k, confActual(key)+1, confPredicted(key)+1)
		nnz++
		valBytes += confVarintLen(n)
	})
	if k == 0 {
		return appendUvarint(append(dst, byte(FormatConfusion)), 0)
	}
	kk := uint64(k) * uint64(k)
	var gapBytes uint64
	next := uint64(0)
	c.eachNonZero(func(key uint64, _ int64) {
		idx := uint64(confActual(key))*uint64(k) + uint64(confPredicted(key))
		gapBytes += uint64(confUvarintLen(idx - next))
		next = idx + 1
	})
	sparse := confSparseSmaller(k, nnz, gapBytes)
	size := 2 + confUvarintLen(uint64(k)) + valBytes
	if sparse {
		size += confUvarintLen(uint64(nnz)) + int(gapBytes)
	} else {
		size += int(kk) - nnz
	}
	dst = slices.Grow(dst, size)
	dst = append(dst, byte(FormatConfusion))
	dst = appendUvarint(dst, uint64(k))
	if sparse {
		dst = append(dst, confLayoutSparse)
		dst = appendUvarint(dst, uint64(nnz))
	} else {
		dst = append(dst, confLayoutDense)
	}
	if !sparse && !c.sparse {
		for a := range k {
			for _, n := range c.dense[a*c.k : a*c.k+k] {
				dst = appendVarint(dst, n)
			}
		}
		return dst
	}
	next = 0
	c.eachNonZero(func(key uint64, n int64) {
		idx := uint64(confActual(key))*uint64(k) + uint64(confPredicted(key))
		if sparse {
			dst = appendUvarint(dst, idx-next)
		} else {
			for ; next < idx; next++ {
				dst = append(dst, 0)
			}
		}
		dst = appendVarint(dst, n)
		next = idx + 1
	})
	if !sparse {
		for ; next < kk; next++ {
			dst = append(dst, 0)
		}
	}
	return dst
}

// confEncoded describes a validated encoding.
type confEncoded struct {
	k      int
	nnz    int
	sparse bool
	body   int // offset of the first cell
}

// confMinimal flags a varint read from offset start that is longer than
// needed (its last byte is zero), which would let two byte strings encode
// one state.
func confMinimal(r *reader, start int, what string) {
	if r.err() == nil && r.off-start > 1 && r.b[r.off-1] == 0 {
		r.invalid("%s at byte %d is not minimally encoded", what, start)
	}
}

// parseConfusion validates a whole encoding, canonical form included,
// without allocating.
func parseConfusion(src []byte) (confEncoded, error) {
	r := newReader(src)
	r.format(FormatConfusion)
	start := r.off
	k64 := r.uvarint("class count K")
	confMinimal(&r, start, "class count K")
	if err := r.err(); err != nil {
		return confEncoded{}, err
	}
	if k64 > ConfusionMaxClasses {
		r.invalid("class count K %d exceeds %d", k64, ConfusionMaxClasses)
		return confEncoded{}, r.err()
	}
	h := confEncoded{k: int(k64)}
	if h.k == 0 {
		h.body = r.off
		return h, r.done()
	}
	layout := r.byte("layout")
	kk := k64 * k64
	maxClass := 0
	var gapBytes uint64
	switch {
	case r.err() != nil:
	case layout == confLayoutDense:
		h.body = r.off
		if kk > uint64(len(src)-r.off) {
			r.invalid("dense layout needs %d cells but %d bytes are left", kk, len(src)-r.off)
			break
		}
		next := uint64(0)
		for a := range h.k {
			for p := range h.k {
				start := r.off
				n := r.varint("cell count")
				confMinimal(&r, start, "cell count")
				if n != 0 {
					idx := uint64(a)*k64 + uint64(p)
					maxClass = max(maxClass, a, p)
					gapBytes += uint64(confUvarintLen(idx - next))
					next = idx + 1
					h.nnz++
				}
			}
		}
	case layout == confLayoutSparse:
		h.sparse = true
		start := r.off
		h.nnz = r.count("non-zero cell count", 2)
		confMinimal(&r, start, "non-zero cell count")
		h.body = r.off
		next, row, rowEnd := uint64(0), uint64(0), uint64(0)
		for i := 0; i < h.nnz && r.err() == nil; i++ {
			start := r.off
			gap := r.uvarint("cell gap")
			confMinimal(&r, start, "cell gap")
			start = r.off
			n := r.varint("cell count")
			confMinimal(&r, start, "cell count")
			if r.err() != nil {
				break
			}
			if gap >= kk-next {
				r.invalid("cell %d lies beyond the %d×%d matrix", i, k64, k64)
				break
			}
			if n == 0 {
				r.invalid("cell %d has a zero count, which the sparse layout omits", i)
				break
			}
			idx := next + gap
			if idx >= rowEnd {
				row = idx / k64
				rowEnd = (row + 1) * k64
			}
			maxClass = max(maxClass, int(row), int(idx-row*k64))
			gapBytes += uint64(confUvarintLen(gap))
			next = idx + 1
		}
	default:
		r.invalid("unknown layout %d", layout)
	}
	if err := r.done(); err != nil {
		return confEncoded{}, err
	}
	if h.nnz == 0 || maxClass != h.k-1 {
		r.invalid("class count K %d is not 1 + the largest class with a non-zero cell", h.k)
		return confEncoded{}, r.err()
	}
	if confSparseSmaller(h.k, h.nnz, gapBytes) != h.sparse {
		r.invalid("layout %d is not the smaller one for K %d with %d non-zero cells", layout, h.k, h.nnz)
		return confEncoded{}, r.err()
	}
	return h, nil
}

// DecodeAndMerge adds the encoded state src to c. The whole input is
// validated first, so c is unchanged on error.
func (c *Confusion) DecodeAndMerge(src []byte) error {
	h, err := parseConfusion(src)
	if err != nil {
		return err
	}
	c.mergeEncoded(src, h)
	return nil
}

func (c *Confusion) mergeEncoded(src []byte, h confEncoded) {
	if h.k == 0 {
		return
	}
	if !h.sparse && !c.sparse && c.k == h.k {
		// Same shape: add the cells in order, skipping the key arithmetic.
		r := newReader(src)
		r.off = h.body
		for i := range c.dense[:h.k*h.k] {
			c.dense[i] += r.varint("cell count")
		}
		return
	}
	it := h.cursor(src)
	c.mergeCells(h.k, h.nnz, &it, 1)
}

// UnmarshalBinary replaces c with the encoded state src; c is unchanged on
// error.
func (c *Confusion) UnmarshalBinary(src []byte) error {
	h, err := parseConfusion(src)
	if err != nil {
		return err
	}
	c.Reset()
	c.mergeEncoded(src, h)
	return nil
}
