package sketch

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/histogram"
)

// --- helpers ---------------------------------------------------------------

func newLH(t testing.TB, schema int32, zt float64) *LogHistogram {
	t.Helper()
	h, err := NewLogHistogramWithZeroThreshold(schema, zt)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func addLH(t testing.TB, h *LogHistogram, xs ...float64) {
	t.Helper()
	for _, x := range xs {
		if err := h.Add(x); err != nil {
			t.Fatalf("Add(%v): %v", x, err)
		}
	}
}

func encLH(h *LogHistogram) []byte { return h.AppendBinary(nil) }

func cloneLH(t testing.TB, h *LogHistogram) *LogHistogram {
	t.Helper()
	var c LogHistogram
	if err := c.UnmarshalBinary(encLH(h)); err != nil {
		t.Fatalf("clone: %v", err)
	}
	return &c
}

func mergedLH(t testing.TB, a, b *LogHistogram) *LogHistogram {
	t.Helper()
	c := cloneLH(t, a)
	c.Merge(b)
	return c
}

// dyadic returns multiples of 2^-6 below 2^14 in magnitude, so that float
// sums are exact in any order; a few zeros and both signs.
func dyadic(rng *rand.Rand, n int) []float64 {
	xs := make([]float64, n)
	for i := range xs {
		switch rng.IntN(12) {
		case 0:
			xs[i] = 0
		case 10, 11:
			xs[i] = float64(rng.IntN(128)-64) / 64 // near the zero thresholds
		case 1, 2, 3:
			xs[i] = -float64(rng.IntN(1<<20)) / 64
		default:
			xs[i] = float64(rng.IntN(1<<20)) / 64
		}
	}
	return xs
}

// orderStat is the exact element of rank ⌊q·(n−1)⌋ of the sorted values.
func orderStat(sorted []float64, q float64) float64 {
	return sorted[int(math.Floor(q*float64(len(sorted)-1)))]
}

// empiricalCDF is the exact fraction of values <= x.
func empiricalCDF(sorted []float64, x float64) float64 {
	return float64(sort.Search(len(sorted), func(i int) bool { return sorted[i] > x })) / float64(len(sorted))
}

// --- schema math -----------------------------------------------------------

func TestSchemaForRelativeError(t *testing.T) {
	tests := []struct {
		alpha float64
		want  int32
	}{
		// α(s) = (b−1)/(b+1), b = 2^(2^−s):
		// α(6) = (2^(1/64)−1)/(2^(1/64)+1) ≈ 0.0054152, α(5) ≈ 0.0108299.
		{0.01, 6},
		{DefaultRelativeError, DefaultLogHistogramSchema},
		{0.011, 5},
		// α(7) ≈ 0.0027076, α(8) ≈ 0.0013538.
		{0.005, 7},
		{0.0014, 8},
		// α(0) = 1/3, α(−1) = 3/5, α(−3) = 255/257 ≈ 0.99222, α(−4) = 65535/65537.
		{0.5, 0},
		{0.6 + 1e-9, -1},
		{0.9999, -3},
		{0.99999, -4},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.alpha), func(t *testing.T) {
			got, err := SchemaForRelativeError(tc.alpha)
			if err != nil || got != tc.want {
				t.Fatalf("SchemaForRelativeError(%v) = %d, %v; want %d", tc.alpha, got, err, tc.want)
			}
		})
	}
	for _, bad := range []float64{0, -0.1, 1, 2, math.NaN(), math.Inf(1), 0.001} {
		if _, err := SchemaForRelativeError(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("SchemaForRelativeError(%v) err = %v, want ErrInvalid", bad, err)
		}
	}
	// The guarantee itself, hand-computed for the coarse schemas.
	for _, tc := range []struct {
		s    int32
		want float64
	}{{0, 1.0 / 3}, {-1, 3.0 / 5}, {-2, 15.0 / 17}, {-4, 65535.0 / 65537}} {
		h := newLH(t, tc.s, 0)
		if got := h.RelativeError(); math.Abs(got-tc.want) > 1e-15 {
			t.Errorf("RelativeError(schema %d) = %v, want %v", tc.s, got, tc.want)
		}
	}
}

func TestLogHistogramBucketIndexTable(t *testing.T) {
	tests := []struct {
		schema int32
		x      float64
		want   int32
	}{
		// schema 0: bucket i is (2^(i−1), 2^i].
		{0, 1, 0}, {0, 2, 1}, {0, 0.5, -1}, {0, 3, 2}, {0, 4, 2}, {0, 1024, 10}, {0, 1025, 11},
		// schema −2: bucket i is (16^(i−1), 16^i].
		{-2, 1, 0}, {-2, 2, 1}, {-2, 16, 1}, {-2, 17, 2}, {-2, 0.0625, -1}, {-2, 0.07, 0},
		// schema 2: bounds 2^(i/4): 0.8409, 1, 1.1892, 1.4142, 1.6818, 2.
		{2, 1, 0}, {2, 0.9, 0}, {2, 1.1, 1}, {2, 1.19, 2}, {2, 2, 4}, {2, 2.0000001, 5},
		// Infinity sits one bucket above MaxFloat64's: 1024·2^s (+1).
		{0, math.MaxFloat64, 1024}, {0, math.Inf(1), 1025}, {3, math.Inf(1), 8193}, {-4, math.Inf(1), 65},
		// The smallest subnormal, 2^−1074.
		{0, math.SmallestNonzeroFloat64, -1074}, {-4, math.SmallestNonzeroFloat64, -67},
	}
	for _, tc := range tests {
		if got := bucketIndex(tc.x, tc.schema); got != tc.want {
			t.Errorf("bucketIndex(%v, schema %d) = %d, want %d", tc.x, tc.schema, got, tc.want)
		}
	}
	if b := bucketBound(1024, 0); b != math.MaxFloat64 {
		t.Errorf("bound of the last finite bucket = %v, want MaxFloat64", b)
	}
	if b := bucketBound(1025, 0); !math.IsInf(b, 1) {
		t.Errorf("bound of the infinity bucket = %v, want +Inf", b)
	}
}

// TestLogHistogramBoundsMatchPrometheus compares every bucket bound we use
// with the bounds Prometheus's server reports for the same index, and checks
// that our index function puts each bound in its own bucket (upper-inclusive)
// and the next float above it in the next bucket.
func TestLogHistogramBoundsMatchPrometheus(t *testing.T) {
	for s := MinLogHistogramSchema; s <= MaxLogHistogramSchema; s++ {
		n := int32(1) << max(s, 0)
		ranges := [][2]int32{
			{-3 * n, 3 * n},
			{absMinIndex(s), absMinIndex(s) + n + 2},
			{absMaxIndex(s) - n - 2, absMaxIndex(s)},
			{bucketIndex(DefaultZeroThreshold, s) - 2, bucketIndex(DefaultZeroThreshold, s) + 2},
		}
		for _, r := range ranges {
			length := uint32(r[1] - r[0] + 1)
			ph := &histogram.Histogram{
				Schema: s, Count: 1,
				PositiveSpans:   []histogram.Span{{Offset: r[0], Length: length}},
				PositiveBuckets: make([]int64, length),
			}
			ph.PositiveBuckets[0] = 1
			it := ph.PositiveBucketIterator()
			i := r[0]
			for it.Next() {
				b := it.At()
				if b.Index != i {
					t.Fatalf("schema %d: iterator index %d, want %d", s, b.Index, i)
				}
				lo, hi := bucketBound(i-1, s), bucketBound(i, s)
				if lo != b.Lower || hi != b.Upper {
					t.Fatalf("schema %d bucket %d: bounds (%v, %v], Prometheus (%v, %v]", s, i, lo, hi, b.Lower, b.Upper)
				}
				// Subnormal bounds round together, leaving some buckets
				// unreachable, so check membership for normal ones.
				if hi >= 0x1p-1022 && !math.IsInf(hi, 1) {
					if got := bucketIndex(hi, s); got != i {
						t.Fatalf("schema %d: index of bound %v = %d, want %d", s, hi, got, i)
					}
					if got := bucketIndex(math.Nextafter(hi, math.Inf(1)), s); got != i+1 {
						t.Fatalf("schema %d: index just above bound %v = %d, want %d", s, hi, got, i+1)
					}
				}
				i++
			}
			if i != r[1]+1 {
				t.Fatalf("schema %d: iterated to %d, want %d", s, i, r[1]+1)
			}
		}
	}
}

// --- compatibility with the Prometheus client ---------------------------------

// clientSpans rewrites compact spans the way client_golang lays them out:
// gaps of up to two buckets are filled with empty buckets inside a span.
func clientSpans(spans []Span, deltas []int64) ([]Span, []int64) {
	var outS []Span
	var outD []int64
	var idx, next int32
	var prev, abs int64
	b := 0
	for _, sp := range spans {
		idx += sp.Offset
		for j := uint32(0); j < sp.Length; j++ {
			abs += deltas[b]
			b++
			i := idx + int32(j)
			if len(outS) == 0 || i-next > 2 {
				off := i - next
				if len(outS) == 0 {
					off = i
				}
				outS = append(outS, Span{Offset: off})
			} else {
				for range i - next {
					outS[len(outS)-1].Length++
					outD = append(outD, -prev)
					prev = 0
				}
			}
			outS[len(outS)-1].Length++
			outD = append(outD, abs-prev)
			prev = abs
			next = i + 1
		}
		idx += int32(sp.Length)
	}
	return outS, outD
}

func dtoSpans(ss []*dto.BucketSpan) []Span {
	var out []Span
	for _, s := range ss {
		out = append(out, Span{Offset: s.GetOffset(), Length: s.GetLength()})
	}
	return out
}

// compatValues are values at, next to and between bucket bounds of schema s,
// tiny, huge, negative, zero and infinite.
func compatValues(s int32, rng *rand.Rand) []float64 {
	xs := []float64{1, 2, 0.5, 3, 0.1, 1e-300, math.SmallestNonzeroFloat64, DefaultZeroThreshold,
		math.Nextafter(DefaultZeroThreshold, 1), math.Nextafter(DefaultZeroThreshold, 0), 1e-3,
		math.MaxFloat64, 1e308, math.Nextafter(math.MaxFloat64, 0), math.Inf(1), 0, math.Copysign(0, -1)}
	n := int32(1) << max(s, 0)
	for i := -2 * n; i <= 2*n; i++ {
		b := bucketBound(i, s)
		xs = append(xs, b, math.Nextafter(b, 0), math.Nextafter(b, math.Inf(1)))
	}
	for range 200 {
		xs = append(xs, math.Exp(rng.NormFloat64()*20))
	}
	for _, x := range slices.Clone(xs) {
		xs = append(xs, -x)
	}
	rng.Shuffle(len(xs), func(i, j int) { xs[i], xs[j] = xs[j], xs[i] })
	return xs
}

func TestLogHistogramClientGolangCompatibility(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range []int32{-4, -2, -1, 0, 1, 2, 3, 5, 6, 8} {
		for _, zt := range []struct {
			opt, want float64
		}{{0, DefaultZeroThreshold}, {prometheus.NativeHistogramZeroThresholdZero, 0}, {1e-3, 1e-3}} {
			t.Run(fmt.Sprintf("schema=%d/zt=%g", s, zt.want), func(t *testing.T) {
				// Any factor in [2^(2^−s), 2^(2^−(s−1))) picks schema s.
				factor := math.Exp2(1.5 * math.Exp2(float64(-s)))
				ch := prometheus.NewHistogram(prometheus.HistogramOpts{
					Name: "x", Help: "x",
					NativeHistogramBucketFactor:  factor,
					NativeHistogramZeroThreshold: zt.opt,
				})
				h := newLH(t, s, zt.want)
				for _, x := range compatValues(s, rng) {
					ch.Observe(x)
					addLH(t, h, x)
				}
				var m dto.Metric
				if err := ch.Write(&m); err != nil {
					t.Fatal(err)
				}
				d := m.GetHistogram()
				n := h.Native()
				if d.GetSchema() != n.Schema || d.GetZeroThreshold() != n.ZeroThreshold {
					t.Fatalf("schema/zt: client %d/%v, ours %d/%v", d.GetSchema(), d.GetZeroThreshold(), n.Schema, n.ZeroThreshold)
				}
				if d.GetZeroCount() != n.ZeroCount || d.GetSampleCount() != n.Count {
					t.Errorf("zero count/count: client %d/%d, ours %d/%d", d.GetZeroCount(), d.GetSampleCount(), n.ZeroCount, n.Count)
				}
				if cs, ours := d.GetSampleSum(), n.Sum; cs != ours && !(math.IsNaN(cs) && math.IsNaN(ours)) {
					t.Errorf("sum: client %v, ours %v", cs, ours)
				}
				for _, side := range []struct {
					name      string
					cSp       []*dto.BucketSpan
					cD        []int64
					ourS      []Span
					ourDeltas []int64
				}{
					{"positive", d.GetPositiveSpan(), d.GetPositiveDelta(), n.PositiveSpans, n.PositiveDeltas},
					{"negative", d.GetNegativeSpan(), d.GetNegativeDelta(), n.NegativeSpans, n.NegativeDeltas},
				} {
					wantS, wantD := clientSpans(side.ourS, side.ourDeltas)
					if gotS := dtoSpans(side.cSp); !slices.Equal(gotS, wantS) || !slices.Equal(side.cD, wantD) {
						t.Errorf("%s: client spans %v deltas %v, ours (client layout) %v %v", side.name, gotS, side.cD, wantS, wantD)
					}
					if len(wantS) == 0 {
						t.Errorf("%s: no buckets; the test values should populate both sides", side.name)
					}
				}
			})
		}
	}
}

// --- conversion to and from Prometheus's model --------------------------------

func toModel(n NativeHistogram) *histogram.Histogram {
	conv := func(ss []Span) []histogram.Span {
		var out []histogram.Span
		for _, s := range ss {
			out = append(out, histogram.Span{Offset: s.Offset, Length: s.Length})
		}
		return out
	}
	return &histogram.Histogram{
		Schema: n.Schema, ZeroThreshold: n.ZeroThreshold, ZeroCount: n.ZeroCount, Count: n.Count, Sum: n.Sum,
		PositiveSpans: conv(n.PositiveSpans), PositiveBuckets: n.PositiveDeltas,
		NegativeSpans: conv(n.NegativeSpans), NegativeBuckets: n.NegativeDeltas,
	}
}

func fromModelSpans(ss []histogram.Span) []Span {
	var out []Span
	for _, s := range ss {
		out = append(out, Span{Offset: s.Offset, Length: s.Length})
	}
	return out
}

func fromModel(h *histogram.Histogram) NativeHistogram {
	return NativeHistogram{
		Schema: h.Schema, ZeroThreshold: h.ZeroThreshold, ZeroCount: h.ZeroCount, Count: h.Count, Sum: h.Sum,
		PositiveSpans: fromModelSpans(h.PositiveSpans), PositiveDeltas: h.PositiveBuckets,
		NegativeSpans: fromModelSpans(h.NegativeSpans), NegativeDeltas: h.NegativeBuckets,
	}
}

func fromModelFloat(h *histogram.FloatHistogram) NativeFloatHistogram {
	return NativeFloatHistogram{
		Schema: h.Schema, ZeroThreshold: h.ZeroThreshold, ZeroCount: h.ZeroCount, Count: h.Count, Sum: h.Sum,
		PositiveSpans: fromModelSpans(h.PositiveSpans), PositiveCounts: h.PositiveBuckets,
		NegativeSpans: fromModelSpans(h.NegativeSpans), NegativeCounts: h.NegativeBuckets,
	}
}

// randModel builds a valid Prometheus histogram with spans of assorted
// lengths and gaps (zero-length spans and empty buckets included), all
// buckets above the zero threshold, sometimes with NaN observations.
func randModel(rng *rand.Rand, zt float64) *histogram.Histogram {
	s := int32(rng.IntN(13)) - 4
	if zt < 0 {
		zt = []float64{0, DefaultZeroThreshold, 1e-3}[rng.IntN(3)]
	}
	h := &histogram.Histogram{Schema: s, ZeroThreshold: zt, Sum: float64(rng.IntN(1<<20)) / 8}
	var total uint64
	side := func() ([]histogram.Span, []int64) {
		var spans []histogram.Span
		var deltas []int64
		var prev int64
		idx := keepFromIndex(s, zt) + int32(rng.IntN(40))
		for k := range rng.IntN(5) {
			off := int32(rng.IntN(4))
			if k == 0 {
				off = idx
			}
			sp := histogram.Span{Offset: off, Length: uint32(rng.IntN(5))}
			spans = append(spans, sp)
			for range sp.Length {
				c := int64(rng.IntN(6)) // some empty buckets
				deltas = append(deltas, c-prev)
				prev = c
				total += uint64(c)
			}
		}
		return spans, deltas
	}
	h.PositiveSpans, h.PositiveBuckets = side()
	h.NegativeSpans, h.NegativeBuckets = side()
	h.ZeroCount = uint64(rng.IntN(3))
	total += h.ZeroCount
	if total == 0 {
		h.ZeroCount, total = 1, 1
	}
	h.Count = total
	if rng.IntN(5) == 0 {
		h.Count += uint64(rng.IntN(3) + 1)
		h.Sum = math.NaN()
	}
	return h
}

func TestLogHistogramPrometheusRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for k := range 500 {
		orig := randModel(rng, -1)
		if err := orig.Validate(); err != nil {
			t.Fatalf("case %d: generated histogram invalid: %v", k, err)
		}
		want := orig.Copy().Compact(0)

		var h LogHistogram
		if err := h.MergeNative(fromModel(orig)); err != nil {
			t.Fatalf("case %d: MergeNative(%v): %v", k, orig, err)
		}
		got := toModel(h.Native())
		if err := got.Validate(); err != nil {
			t.Fatalf("case %d: Native() fails Prometheus validation: %v (%v)", k, err, got)
		}
		sameSum := got.Sum == want.Sum || (math.IsNaN(got.Sum) && math.IsNaN(want.Sum))
		if got.Schema != want.Schema || got.ZeroThreshold != want.ZeroThreshold || got.ZeroCount != want.ZeroCount ||
			got.Count != want.Count || !sameSum ||
			!slices.Equal(got.PositiveSpans, want.PositiveSpans) || !slices.Equal(got.PositiveBuckets, want.PositiveBuckets) ||
			!slices.Equal(got.NegativeSpans, want.NegativeSpans) || !slices.Equal(got.NegativeBuckets, want.NegativeBuckets) {
			t.Fatalf("case %d: round trip\n got  %v\n want %v", k, got, want)
		}
		if h.NaNCount() != orig.Count-(h.Native().Count-h.NaNCount()) {
			t.Fatalf("case %d: NaNCount %d inconsistent", k, h.NaNCount())
		}

		// The float variant converts the same way.
		forig := orig.ToFloat(nil)
		var fh LogHistogram
		if err := fh.MergeNativeFloat(fromModelFloat(forig)); err != nil {
			t.Fatalf("case %d: MergeNativeFloat: %v", k, err)
		}
		if !bytes.Equal(encLH(&fh), encLH(&h)) {
			t.Fatalf("case %d: float and integer conversions differ", k)
		}
		fn := fh.NativeFloat()
		fwant := want.ToFloat(nil)
		if fn.Count != fwant.Count || fn.ZeroCount != fwant.ZeroCount ||
			!slices.Equal(fromModelSpans(fwant.PositiveSpans), fn.PositiveSpans) || !slices.Equal(fwant.PositiveBuckets, fn.PositiveCounts) ||
			!slices.Equal(fromModelSpans(fwant.NegativeSpans), fn.NegativeSpans) || !slices.Equal(fwant.NegativeBuckets, fn.NegativeCounts) {
			t.Fatalf("case %d: float round trip\n got  %+v\n want %v", k, fn, fwant)
		}
	}
}

// TestLogHistogramMergeNativeMatchesPrometheusAdd merges random integer
// histograms of mixed schemas (default zero threshold) both with
// Prometheus's FloatHistogram.Add and with ours, and compares the buckets.
func TestLogHistogramMergeNativeMatchesPrometheusAdd(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for k := range 200 {
		var ours LogHistogram
		var theirs *histogram.FloatHistogram
		for range 1 + rng.IntN(4) {
			m := randModel(rng, DefaultZeroThreshold)
			m.Sum = float64(rng.IntN(64))
			m.Count = m.ZeroCount
			for _, d := range [][]int64{m.PositiveBuckets, m.NegativeBuckets} {
				var abs int64
				for _, x := range d {
					abs += x
					m.Count += uint64(abs)
				}
			}
			if err := ours.MergeNative(fromModel(m)); err != nil {
				t.Fatal(err)
			}
			// Prometheus v0.316.0's FloatHistogram.Add misplaces buckets
			// when the receiver has zero-length spans, so hand it
			// compacted inputs.
			m.Compact(0)
			if theirs == nil {
				theirs = m.ToFloat(nil)
				continue
			}
			if _, _, _, err := theirs.Add(m.ToFloat(nil)); err != nil {
				t.Fatal(err)
			}
		}
		theirs.Compact(0)
		got := ours.NativeFloat()
		if got.Schema != theirs.Schema || got.ZeroThreshold != theirs.ZeroThreshold || got.ZeroCount != theirs.ZeroCount ||
			got.Count != theirs.Count || got.Sum != theirs.Sum ||
			!slices.Equal(got.PositiveSpans, fromModelSpans(theirs.PositiveSpans)) || !slices.Equal(got.PositiveCounts, theirs.PositiveBuckets) ||
			!slices.Equal(got.NegativeSpans, fromModelSpans(theirs.NegativeSpans)) || !slices.Equal(got.NegativeCounts, theirs.NegativeBuckets) {
			t.Fatalf("case %d:\n ours       %+v\n Prometheus %v", k, got, theirs)
		}
	}
}

func TestLogHistogramMergeNativeValidation(t *testing.T) {
	valid := NativeHistogram{
		Schema: 0, ZeroThreshold: DefaultZeroThreshold, ZeroCount: 1, Count: 4, Sum: 3,
		PositiveSpans: []Span{{Offset: 0, Length: 2}}, PositiveDeltas: []int64{1, 1},
	}
	with := func(f func(n *NativeHistogram)) NativeHistogram {
		n := valid
		n.PositiveSpans = slices.Clone(valid.PositiveSpans)
		n.PositiveDeltas = slices.Clone(valid.PositiveDeltas)
		f(&n)
		return n
	}
	tests := []struct {
		name string
		n    NativeHistogram
	}{
		{"custom bucket schema", with(func(n *NativeHistogram) { n.Schema = -53 })},
		{"schema 9", with(func(n *NativeHistogram) { n.Schema = 9 })},
		{"schema -5", with(func(n *NativeHistogram) { n.Schema = -5 })},
		{"negative zero threshold", with(func(n *NativeHistogram) { n.ZeroThreshold = -1 })},
		{"NaN zero threshold", with(func(n *NativeHistogram) { n.ZeroThreshold = math.NaN() })},
		{"infinite zero threshold", with(func(n *NativeHistogram) { n.ZeroThreshold = math.Inf(1) })},
		{"too few deltas", with(func(n *NativeHistogram) { n.PositiveDeltas = n.PositiveDeltas[:1] })},
		{"too many deltas", with(func(n *NativeHistogram) { n.PositiveDeltas = append(n.PositiveDeltas, 0) })},
		{"negative later offset", with(func(n *NativeHistogram) {
			n.PositiveSpans = []Span{{0, 1}, {-1, 1}}
		})},
		{"negative bucket count", with(func(n *NativeHistogram) { n.PositiveDeltas = []int64{1, -2} })},
		{"delta overflow", with(func(n *NativeHistogram) { n.PositiveDeltas = []int64{math.MaxInt64, 1} })},
		{"count below buckets", with(func(n *NativeHistogram) { n.Count = 3 })},
		{"count above buckets without NaN sum", with(func(n *NativeHistogram) { n.Count = 5 })},
		{"sum without observations", NativeHistogram{Schema: 0, Sum: 1}},
		{"stale marker", NativeHistogram{Schema: 0, Sum: math.Float64frombits(0x7ff0000000000002)}},
		{"index beyond infinity bucket", with(func(n *NativeHistogram) { n.PositiveSpans[0].Offset = 1026 })},
		{"index below the float range", with(func(n *NativeHistogram) { n.PositiveSpans[0].Offset = -2000 })},
		{"bucket total overflow", with(func(n *NativeHistogram) {
			n.PositiveSpans = []Span{{0, 3}}
			n.PositiveDeltas = []int64{math.MaxInt64, 0, 0}
		})},
		{"negative side mismatch", with(func(n *NativeHistogram) { n.NegativeSpans = []Span{{0, 1}} })},
	}
	h := newLH(t, 0, DefaultZeroThreshold)
	addLH(t, h, 1, 2, -7)
	before := encLH(h)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := h.MergeNative(tc.n); !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if !bytes.Equal(before, encLH(h)) {
				t.Fatal("receiver changed on error")
			}
		})
	}
	floatTests := []struct {
		name string
		n    NativeFloatHistogram
	}{
		{"fractional count", NativeFloatHistogram{Count: 1.5, ZeroCount: 1.5}},
		{"fractional zero count", NativeFloatHistogram{Count: 2, ZeroCount: 0.5, PositiveSpans: []Span{{0, 1}}, PositiveCounts: []float64{1.5}}},
		{"fractional bucket", NativeFloatHistogram{Count: 2, ZeroCount: 0, PositiveSpans: []Span{{0, 1}}, PositiveCounts: []float64{0.5}}},
		{"negative bucket", NativeFloatHistogram{Count: 0, PositiveSpans: []Span{{0, 1}}, PositiveCounts: []float64{-1}}},
		{"NaN bucket", NativeFloatHistogram{Count: 1, PositiveSpans: []Span{{0, 1}}, PositiveCounts: []float64{math.NaN()}}},
		{"infinite count", NativeFloatHistogram{Count: math.Inf(1), ZeroCount: 1, Sum: math.NaN()}},
		{"count 2^64", NativeFloatHistogram{Count: 0x1p64, ZeroCount: 0x1p64}},
		{"counts mismatch", NativeFloatHistogram{Count: 1, PositiveSpans: []Span{{0, 2}}, PositiveCounts: []float64{1}}},
		{"custom buckets", NativeFloatHistogram{Schema: -53, Count: 1, PositiveSpans: []Span{{0, 1}}, PositiveCounts: []float64{1}}},
	}
	for _, tc := range floatTests {
		t.Run("float/"+tc.name, func(t *testing.T) {
			if err := h.MergeNativeFloat(tc.n); !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if !bytes.Equal(before, encLH(h)) {
				t.Fatal("receiver changed on error")
			}
		})
	}
	if err := h.MergeNative(valid); err != nil {
		t.Fatalf("valid histogram refused: %v", err)
	}
}

func TestLogHistogramMergeNativeEdgeCases(t *testing.T) {
	t.Run("buckets inside the zero bucket fold into it", func(t *testing.T) {
		// zt = 1 at schema 0: bucket 0 is (0.5, 1], entirely ≤ zt; bucket 1
		// is (1, 2]. Prometheus counts bucket 0 as zero-bucket weight.
		var h LogHistogram
		err := h.MergeNative(NativeHistogram{
			Schema: 0, ZeroThreshold: 1, ZeroCount: 2, Count: 6, Sum: 7,
			PositiveSpans: []Span{{0, 2}}, PositiveDeltas: []int64{3, -2},
			NegativeSpans: []Span{{-3, 1}}, NegativeDeltas: []int64{0}, // an empty bucket
		})
		if err != nil {
			t.Fatal(err)
		}
		n := h.Native()
		if n.ZeroCount != 5 || !slices.Equal(n.PositiveSpans, []Span{{1, 1}}) || !slices.Equal(n.PositiveDeltas, []int64{1}) ||
			n.NegativeSpans != nil || n.Count != 6 {
			t.Fatalf("got %+v", n)
		}
		// Min and max come from the outer regions: the zero bucket [−1, 1]
		// and bucket 1, (1, 2].
		if h.Min() != -1 || h.Max() != 2 {
			t.Fatalf("min, max = %v, %v; want -1, 2", h.Min(), h.Max())
		}
	})
	t.Run("NaN observations", func(t *testing.T) {
		var h LogHistogram
		err := h.MergeNative(NativeHistogram{Schema: 3, ZeroThreshold: DefaultZeroThreshold, ZeroCount: 1, Count: 3, Sum: math.NaN()})
		if err != nil {
			t.Fatal(err)
		}
		if h.Count() != 1 || h.NaNCount() != 2 || !math.IsNaN(h.Sum()) || !math.IsNaN(h.Mean()) || h.Native().Count != 3 {
			t.Fatalf("count %v nan %d sum %v native count %d", h.Count(), h.NaNCount(), h.Sum(), h.Native().Count)
		}
		// NaN observations survive encoding and merging.
		c := mergedLH(t, &h, &h)
		if c.NaNCount() != 4 || c.Count() != 2 {
			t.Fatalf("after self merge: count %v nan %d", c.Count(), c.NaNCount())
		}
	})
	t.Run("derived min and max with negative and infinite buckets", func(t *testing.T) {
		// Schema 0: negative bucket 1025 holds −Inf; positive bucket 2 is (2, 4].
		var h LogHistogram
		err := h.MergeNative(NativeHistogram{
			Schema: 0, Count: 2, Sum: math.Inf(-1),
			PositiveSpans: []Span{{2, 1}}, PositiveDeltas: []int64{1},
			NegativeSpans: []Span{{1025, 1}}, NegativeDeltas: []int64{1},
		})
		if err != nil {
			t.Fatal(err)
		}
		if !math.IsInf(h.Min(), -1) || h.Max() != 4 {
			t.Fatalf("min, max = %v, %v; want -Inf, 4", h.Min(), h.Max())
		}
		if q := h.Quantile(0); !math.IsInf(q, -1) {
			t.Fatalf("Quantile(0) = %v, want -Inf", q)
		}
	})
	t.Run("empty native leaves an empty receiver empty", func(t *testing.T) {
		h := NewDefaultLogHistogram()
		if err := h.MergeNative(NativeHistogram{Schema: 2, ZeroThreshold: DefaultZeroThreshold}); err != nil {
			t.Fatal(err)
		}
		if h.Count() != 0 || h.Schema() != 2 {
			t.Fatalf("count %v schema %d; want 0, 2 (empty states meet at the coarser schema)", h.Count(), h.Schema())
		}
	})
}

// --- derived metrics ------------------------------------------------------

func TestLogHistogramDerivedTable(t *testing.T) {
	sqrt2 := math.Sqrt2
	tests := []struct {
		name      string
		schema    int32
		xs        []float64
		count     float64
		sum, mean float64
		min, max  float64
		quantiles map[float64]float64
		cdf       map[float64]float64
		breaks    []float64
	}{
		{
			// Schema 0 (b = 2): 1 → (0.5, 1], 2 → (1, 2], 3 and 4 → (2, 4],
			// 10 → (8, 16]. Estimates are 2u/3. Ranks ⌊q·4⌋.
			name: "schema 0", schema: 0, xs: []float64{4, 1, 10, 3, 2},
			count: 5, sum: 20, mean: 4, min: 1, max: 10,
			quantiles: map[float64]float64{
				0:    1,       // 2·1/3 clamped up to min 1
				0.25: 4.0 / 3, // rank 1 in (1, 2]: 2·2/3
				0.5:  8.0 / 3, // rank 2 in (2, 4]: 2·4/3
				0.75: 8.0 / 3, // rank 3, same bucket
				1:    10,      // 2·16/3 = 10.67 clamped to max 10
				0.99: 8.0 / 3, // ⌊3.96⌋ = 3
				0.2:  1,       // ⌊0.8⌋ = 0: the (0.5, 1] estimate clamped to min
			},
			cdf: map[float64]float64{
				0.9: 0,       // below min
				1:   0.2,     // (0.5, 1] clamped to [1, 1]: one value
				1.5: 1.5 / 5, // 1 + half of (1, 2]
				3:   3.0 / 5, // 2 + (3−2)/(4−2)·2
				5:   4.0 / 5, // between buckets
				9:   4.5 / 5, // 4 + (9−8)/(10−8) of (8, 16] clamped to [8, 10]
				10:  1,       // max
				-1:  0,       // far below
				1e9: 1,       // far above
			},
			breaks: []float64{1, 2, 4, 8, 10},
		},
		{
			// Schema 1 (b = √2), estimates 2u/(1+√2) = 2(√2−1)u. −3 is in
			// negative bucket 4 (2^1.5, 4]; −1 and 0.75 in bucket 0
			// (2^−0.5, 1]; 2 in bucket 2 (√2, 2]. Ranks ⌊q·5⌋.
			name: "schema 1 mixed signs", schema: 1, xs: []float64{0.75, -3, 0, 2, -1, 0},
			count: 6, sum: -1.25, mean: -1.25 / 6, min: -3, max: 2,
			quantiles: map[float64]float64{
				0:   -3,                  // −4·0.828 = −3.31 clamped to min −3
				0.2: -2 * (sqrt2 - 1),    // rank 1: −(1·2(√2−1))
				0.4: 0,                   // rank 2: zero bucket
				0.6: 0,                   // rank 3
				0.8: 2 * (sqrt2 - 1),     // rank 4: 1·2(√2−1)
				1:   2 * 2 * (sqrt2 - 1), // rank 5: 2·2(√2−1) = 1.657 < max 2
			},
			cdf: map[float64]float64{
				-2:   1.0 / 6,                         // after [−3, −2^1.5]
				0:    3.0 / 6,                         // 2 + half of the zero bucket's 2
				0.5:  4.0 / 6,                         // between zero and (2^−0.5, 1]
				1.5:  (5 + (1.5-sqrt2)/(2-sqrt2)) / 6, // 5 + fraction of (√2, 2]
				-1:   1.0 / 6,                         // −1 is the low end of [−1, −2^−0.5]: no weight yet
				-0.8: (1 + (-0.8+1)/(1-1/sqrt2)) / 6,  // inside [−1, −2^−0.5]
			},
			breaks: []float64{-3, -2 * sqrt2, -1, -1 / sqrt2, -DefaultZeroThreshold, DefaultZeroThreshold, 1 / sqrt2, 1, sqrt2, 2},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newLH(t, tc.schema, DefaultZeroThreshold)
			addLH(t, h, tc.xs...)
			if h.Count() != tc.count || h.Sum() != tc.sum || h.Mean() != tc.mean || h.Min() != tc.min || h.Max() != tc.max {
				t.Errorf("count %v sum %v mean %v min %v max %v", h.Count(), h.Sum(), h.Mean(), h.Min(), h.Max())
			}
			for q, want := range tc.quantiles {
				if got := h.Quantile(q); math.Abs(got-want) > 1e-14*math.Max(1, math.Abs(want)) {
					t.Errorf("Quantile(%v) = %v, want %v", q, got, want)
				}
			}
			for x, want := range tc.cdf {
				if got := h.CDF(x); math.Abs(got-want) > 1e-14 {
					t.Errorf("CDF(%v) = %v, want %v", x, got, want)
				}
			}
			got := h.AppendBreakpoints(nil)
			if len(got) != len(tc.breaks) {
				t.Fatalf("breakpoints %v, want %v", got, tc.breaks)
			}
			for i := range got {
				if math.Abs(got[i]-tc.breaks[i]) > 1e-15*math.Abs(tc.breaks[i]) {
					t.Fatalf("breakpoints %v, want %v", got, tc.breaks)
				}
			}
		})
	}
}

func TestLogHistogramEmptyAndInvalid(t *testing.T) {
	h := NewDefaultLogHistogram()
	if h.Count() != 0 || h.Sum() != 0 || !math.IsNaN(h.Mean()) || !math.IsNaN(h.Min()) || !math.IsNaN(h.Max()) ||
		!math.IsNaN(h.Quantile(0.5)) || h.CDF(1) != 0 || len(h.AppendBreakpoints(nil)) != 0 {
		t.Fatal("empty histogram metrics wrong")
	}
	if err := h.Add(math.NaN()); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Add(NaN) err = %v", err)
	}
	if h.Count() != 0 {
		t.Fatal("NaN was recorded")
	}
	addLH(t, h, 1)
	for _, q := range []float64{-0.1, 1.1, math.NaN()} {
		if !math.IsNaN(h.Quantile(q)) {
			t.Errorf("Quantile(%v) not NaN", q)
		}
	}
	if !math.IsNaN(h.CDF(math.NaN())) {
		t.Error("CDF(NaN) not NaN")
	}
	if got := h.AppendBreakpoints([]float64{-5}); !slices.Equal(got, []float64{-5, 1}) {
		t.Errorf("AppendBreakpoints with prefix = %v", got)
	}
}

func TestLogHistogramConstructors(t *testing.T) {
	if h := NewDefaultLogHistogram(); h.Schema() != 6 || h.ZeroThreshold() != DefaultZeroThreshold || h.RelativeError() > DefaultRelativeError {
		t.Fatalf("default: schema %d zt %v α %v", h.Schema(), h.ZeroThreshold(), h.RelativeError())
	}
	if s, _ := SchemaForRelativeError(DefaultRelativeError); s != DefaultLogHistogramSchema {
		t.Fatalf("DefaultLogHistogramSchema %d != SchemaForRelativeError(1%%) %d", DefaultLogHistogramSchema, s)
	}
	for _, s := range []int32{-5, 9, -53} {
		if _, err := NewLogHistogram(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("NewLogHistogram(%d) err = %v", s, err)
		}
	}
	for _, zt := range []float64{-1, math.NaN(), math.Inf(1)} {
		if _, err := NewLogHistogramWithZeroThreshold(0, zt); !errors.Is(err, ErrInvalid) {
			t.Errorf("zero threshold %v err = %v", zt, err)
		}
	}
	h := newLH(t, 0, math.Copysign(0, -1))
	if math.Signbit(h.ZeroThreshold()) {
		t.Error("-0 zero threshold kept its sign")
	}
}

func TestLogHistogramExtremes(t *testing.T) {
	h := newLH(t, 3, 0)
	addLH(t, h, math.Inf(1), math.Inf(-1), math.MaxFloat64, math.SmallestNonzeroFloat64, 0, math.Copysign(0, -1))
	n := h.Native()
	// Schema 3: +Inf in bucket 1024·8+1, MaxFloat64 in 1024·8, 2^−1074 in −1074·8.
	if !slices.Equal(n.PositiveSpans, []Span{{-8592, 1}, {8192 + 8592 - 1, 2}}) || n.ZeroCount != 2 ||
		!slices.Equal(n.NegativeSpans, []Span{{8193, 1}}) {
		t.Fatalf("native %+v", n)
	}
	if !math.IsInf(h.Min(), -1) || !math.IsInf(h.Max(), 1) || !math.IsNaN(h.Sum()) {
		t.Fatalf("min %v max %v sum %v", h.Min(), h.Max(), h.Sum())
	}
	if h.Quantile(0) != math.Inf(-1) || h.Quantile(1) != math.Inf(1) || h.Quantile(0.5) != 0 {
		t.Fatalf("quantiles %v %v %v", h.Quantile(0), h.Quantile(0.5), h.Quantile(1))
	}
	// 2·MaxFloat64 would overflow; the estimate must stay finite.
	m := newLH(t, 0, 0)
	addLH(t, m, math.MaxFloat64, 1)
	if q := m.Quantile(1); math.IsInf(q, 0) || q <= 0 {
		t.Fatalf("Quantile(1) = %v", q)
	}
	// Zeros of either sign are the same observation.
	a, b := newLH(t, 0, 0), newLH(t, 0, 0)
	addLH(t, a, 0)
	addLH(t, b, math.Copysign(0, -1))
	if !bytes.Equal(encLH(a), encLH(b)) {
		t.Fatal("-0 and +0 encode differently")
	}
	// Opposite infinities make the sum NaN with one canonical bit pattern.
	c := newLH(t, 0, 0)
	addLH(t, c, math.Inf(-1), math.Inf(1))
	d := newLH(t, 0, 0)
	addLH(t, d, math.Inf(1), math.Inf(-1))
	if !bytes.Equal(encLH(c), encLH(d)) {
		t.Fatal("NaN sums encode differently")
	}
}

func TestLogHistogramQuantileRelativeError(t *testing.T) {
	gens := map[string]func(r *rand.Rand) float64{
		"lognormal": func(r *rand.Rand) float64 { return math.Exp(r.NormFloat64() * 3) },
		"uniform":   func(r *rand.Rand) float64 { return r.Float64() * 1000 },
		"mixed": func(r *rand.Rand) float64 {
			switch r.IntN(5) {
			case 0:
				return 0
			case 1, 2:
				return -math.Exp(r.NormFloat64() * 5)
			}
			return math.Exp(r.NormFloat64())
		},
	}
	for name, gen := range gens {
		for _, s := range []int32{DefaultLogHistogramSchema, -1, 0, 3, 8} {
			t.Run(fmt.Sprintf("%s/schema=%d", name, s), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(7, uint64(s+10)))
				h := newLH(t, s, DefaultZeroThreshold)
				xs := make([]float64, 5000)
				for i := range xs {
					xs[i] = gen(rng)
				}
				addLH(t, h, xs...)
				slices.Sort(xs)
				alpha := h.RelativeError()
				if s == DefaultLogHistogramSchema && alpha > DefaultRelativeError {
					t.Fatalf("default schema's α %v exceeds 1%%", alpha)
				}
				for i := 0; i <= 1000; i++ {
					q := float64(i) / 1000
					want, got := orderStat(xs, q), h.Quantile(q)
					// The table bounds are within 4 ulps of b^i, so
					// allow a hair above α.
					if math.Abs(got-want) > alpha*math.Abs(want)*(1+1e-9) {
						t.Fatalf("Quantile(%v) = %v, exact %v: relative error %v > α %v", q, got, want, math.Abs(got-want)/math.Abs(want), alpha)
					}
				}
				if h.Quantile(0) < xs[0] || h.Quantile(1) > xs[len(xs)-1] {
					t.Fatalf("extreme quantiles %v %v outside [min, max] = [%v, %v]", h.Quantile(0), h.Quantile(1), xs[0], xs[len(xs)-1])
				}
			})
		}
	}
}

func TestLogHistogramCDFRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	for _, s := range []int32{-2, 0, 4, 6} {
		h := newLH(t, s, DefaultZeroThreshold)
		xs := make([]float64, 2000)
		for i := range xs {
			xs[i] = math.Exp(rng.NormFloat64()*2) * float64(1-2*rng.IntN(2))
			if rng.IntN(20) == 0 {
				xs[i] = 0
			}
		}
		addLH(t, h, xs...)
		slices.Sort(xs)
		prev := 0.0
		for i := range 3000 {
			x := math.Exp(rng.NormFloat64()*2.5) * float64(1-2*rng.IntN(2))
			if i%3 == 0 {
				x = xs[rng.IntN(len(xs))] // at observations too
			}
			got := h.CDF(x)
			// The estimate lies between the exact CDF at the ends of
			// x's bucket.
			sign := 1
			if x < 0 {
				sign = -1
			}
			var lo, hi float64
			if math.Abs(x) <= h.ZeroThreshold() {
				lo, hi = regionOf(0, 0, s, h.ZeroThreshold())
			} else {
				lo, hi = regionOf(sign, bucketIndex(math.Abs(x), s), s, h.ZeroThreshold())
			}
			// Just below lo: the region excludes its lower bound for
			// positive buckets.
			if flo, fhi := empiricalCDF(xs, math.Nextafter(lo, math.Inf(-1))), empiricalCDF(xs, hi); got < flo-1e-12 || got > fhi+1e-12 {
				t.Fatalf("schema %d: CDF(%v) = %v outside exact [%v, %v] over its bucket [%v, %v]", s, x, got, flo, fhi, lo, hi)
			}
		}
		// Exact at bucket bounds, and monotone over all breakpoints.
		exact := 0
		for _, b := range h.AppendBreakpoints(nil) {
			got := h.CDF(b)
			if got < prev {
				t.Fatalf("CDF not monotone at %v", b)
			}
			prev = got
			// At the upper bound of a positive bucket every bucket lies
			// entirely on one side, so the estimate is exact there.
			if b > h.ZeroThreshold() && b < h.Max() && bucketBound(bucketIndex(b, s), s) == b {
				exact++
				if want := empiricalCDF(xs, b); math.Abs(got-want) > 1e-12 {
					t.Fatalf("schema %d: CDF at bound %v = %v, exact %v", s, b, got, want)
				}
			}
		}
		if exact < 5 {
			t.Fatalf("schema %d: only %d bucket bounds checked", s, exact)
		}
	}
}

func TestLogHistogramCDFLinearBetweenBreakpoints(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 11))
	h := newLH(t, 2, DefaultZeroThreshold)
	for range 300 {
		addLH(t, h, math.Exp(rng.NormFloat64())*float64(1-2*rng.IntN(2)))
	}
	addLH(t, h, 0, 0)
	bp := h.AppendBreakpoints(nil)
	for i := 1; i < len(bp); i++ {
		if !(bp[i] > bp[i-1]) {
			t.Fatalf("breakpoints not increasing at %d: %v %v", i, bp[i-1], bp[i])
		}
		a, b := bp[i-1], bp[i]
		left := h.CDF(math.Nextafter(b, a)) // the limit from the left at b
		fa := h.CDF(a)
		for _, f := range []float64{0.25, 0.5, 0.75} {
			x := a + f*(b-a)
			want := fa + f*(left-fa)
			if got := h.CDF(x); math.Abs(got-want) > 1e-9 {
				t.Fatalf("CDF(%v) = %v, linear interpolation gives %v on [%v, %v]", x, got, want, a, b)
			}
		}
	}
	if h.CDF(bp[0]-1) != 0 || h.CDF(bp[len(bp)-1]) != 1 {
		t.Fatal("CDF not 0 before the first and 1 at the last breakpoint")
	}
}

// --- merge properties ------------------------------------------------------

type lhParams struct {
	schema int32
	zt     float64
}

// randLH builds a state of random parameters (or the given ones) from
// dyadic values.
func randLH(t testing.TB, rng *rand.Rand, p *lhParams, n int) (*LogHistogram, []float64) {
	t.Helper()
	if p == nil {
		p = &lhParams{
			schema: int32(rng.IntN(11)) - 2,
			zt:     []float64{0, DefaultZeroThreshold, 0.25, 0.3}[rng.IntN(4)],
		}
	}
	h := newLH(t, p.schema, p.zt)
	xs := dyadic(rng, n)
	addLH(t, h, xs...)
	return h, xs
}

func TestLogHistogramMergeProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 13))
	same := &lhParams{schema: 5, zt: DefaultZeroThreshold}
	for k := range 300 {
		var p *lhParams
		if k%2 == 0 {
			p = same
		}
		a, xa := randLH(t, rng, p, rng.IntN(60))
		b, xb := randLH(t, rng, p, rng.IntN(60))
		c, _ := randLH(t, rng, p, rng.IntN(60))
		if k%7 == 0 {
			b.Reset() // empty states take part too
		}
		encB := encLH(b)

		ab := mergedLH(t, a, b)
		if !bytes.Equal(encLH(b), encB) {
			t.Fatalf("case %d: Merge mutated its argument", k)
		}
		if ba := mergedLH(t, b, a); !bytes.Equal(encLH(ab), encLH(ba)) {
			t.Fatalf("case %d: not commutative", k)
		}
		left := mergedLH(t, ab, c)
		right := mergedLH(t, a, mergedLH(t, b, c))
		if !bytes.Equal(encLH(left), encLH(right)) {
			t.Fatalf("case %d: not associative\n (ab)c %x\n a(bc) %x", k, encLH(left), encLH(right))
		}

		// DecodeAndMerge is Merge.
		d := cloneLH(t, a)
		if err := d.DecodeAndMerge(encB); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(encLH(d), encLH(ab)) {
			t.Fatalf("case %d: DecodeAndMerge differs from Merge", k)
		}

		// With equal parameters, merging is adding all observations.
		if p != nil {
			all := newLH(t, p.schema, p.zt)
			addLH(t, all, xa...)
			if k%7 != 0 {
				addLH(t, all, xb...)
			}
			if !bytes.Equal(encLH(all), encLH(ab)) {
				t.Fatalf("case %d: merge differs from adding all observations", k)
			}
		}

		// Self-merge doubles.
		self := cloneLH(t, a)
		self.Merge(self)
		if !bytes.Equal(encLH(self), encLH(mergedLH(t, a, cloneLH(t, a)))) {
			t.Fatalf("case %d: self merge differs", k)
		}
	}
}

// TestLogHistogramMergeAcrossSchemas checks that merging states of different
// schemas and (bucket-bound) zero thresholds equals building the state at the
// coarser schema and wider threshold directly, whichever side is coarser.
func TestLogHistogramMergeAcrossSchemas(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 15))
	zts := []float64{0, DefaultZeroThreshold, 0.25}
	for k := range 300 {
		pa := lhParams{int32(rng.IntN(13)) - 4, zts[rng.IntN(3)]}
		pb := lhParams{int32(rng.IntN(13)) - 4, zts[rng.IntN(3)]}
		if pa.zt == 0.25 || pb.zt == 0.25 {
			// 0.25 = 2^−2 is a bound only for schemas ≥ −1.
			pa.schema, pb.schema = max(pa.schema, -1), max(pb.schema, -1)
		}
		a, xa := randLH(t, rng, &pa, 1+rng.IntN(80))
		b, xb := randLH(t, rng, &pb, 1+rng.IntN(80))
		want := newLH(t, min(pa.schema, pb.schema), max(pa.zt, pb.zt))
		addLH(t, want, xa...)
		addLH(t, want, xb...)
		if got := mergedLH(t, a, b); !bytes.Equal(encLH(got), encLH(want)) {
			t.Fatalf("case %d: %+v ⊕ %+v:\n got  %+v\n want %+v", k, pa, pb, got.Native(), want.Native())
		}
		d := cloneLH(t, b)
		if err := d.DecodeAndMerge(encLH(a)); err != nil || !bytes.Equal(encLH(d), encLH(want)) {
			t.Fatalf("case %d: DecodeAndMerge across schemas differs (%v)", k, err)
		}
	}
}

func TestLogHistogramOffGridZeroThreshold(t *testing.T) {
	// Schema 0, threshold 0.3: bucket −1 is (0.25, 0.5] and straddles it,
	// so it holds (0.3, 0.5].
	a := newLH(t, 0, 0.3)
	addLH(t, a, 0.3, 0.4, 0.5, -0.45)
	if n := a.Native(); n.ZeroCount != 1 || !slices.Equal(n.PositiveSpans, []Span{{-1, 1}}) {
		t.Fatalf("native %+v", n)
	}
	if lo, hi := a.region(1, -1); lo != 0.3 || hi != 0.5 {
		t.Fatalf("straddling bucket region [%v, %v]", lo, hi)
	}
	// Merging with different parameters widens 0.3 to the bound 0.5 and
	// folds the bucket into the zero bucket.
	b := newLH(t, 0, 0)
	addLH(t, b, 3)
	ab := mergedLH(t, a, b)
	if ab.ZeroThreshold() != 0.5 || ab.Native().ZeroCount != 4 {
		t.Fatalf("merged zt %v zero count %d", ab.ZeroThreshold(), ab.Native().ZeroCount)
	}
	// Equal parameters keep the threshold and the straddling bucket.
	aa := mergedLH(t, a, a)
	if aa.ZeroThreshold() != 0.3 || aa.Native().ZeroCount != 2 {
		t.Fatalf("self merge zt %v zero count %d", aa.ZeroThreshold(), aa.Native().ZeroCount)
	}
}

func TestLogHistogramZeroThresholdFolding(t *testing.T) {
	// Schema 0. a has threshold 0 and holds 0.1 (bucket −3, (0.0625,
	// 0.125]), 0.2 (bucket −2, (0.125, 0.25]) and 3 (bucket 2). b has
	// threshold 0.25, a bound, so the merge keeps it and folds buckets −3
	// and −2 into the zero bucket: zero count 1 (b's) + 2.
	a := newLH(t, 0, 0)
	addLH(t, a, 0.1, 0.2, 3)
	b := newLH(t, 0, 0.25)
	addLH(t, b, 0.25)
	for _, m := range []*LogHistogram{mergedLH(t, a, b), mergedLH(t, b, a)} {
		n := m.Native()
		if m.ZeroThreshold() != 0.25 || n.ZeroCount != 3 || !slices.Equal(n.PositiveSpans, []Span{{2, 1}}) || m.Min() != 0.1 {
			t.Fatalf("zt %v native %+v min %v", m.ZeroThreshold(), n, m.Min())
		}
	}
}

func TestLogHistogramEmptyIsMergeIdentity(t *testing.T) {
	x := newLH(t, 7, 0)
	addLH(t, x, 1, -2, 3.5)
	var zero LogHistogram
	zero.Merge(x)
	if !bytes.Equal(encLH(&zero), encLH(x)) {
		t.Fatal("merge into the zero value does not adopt the state")
	}
	e := NewDefaultLogHistogram()
	y := mergedLH(t, x, e)
	if !bytes.Equal(encLH(y), encLH(x)) {
		t.Fatal("merging an empty state changed the receiver")
	}
	var z LogHistogram
	if err := z.DecodeAndMerge(encLH(x)); err != nil || !bytes.Equal(encLH(&z), encLH(x)) {
		t.Fatalf("DecodeAndMerge into the zero value: %v", err)
	}
	z.Merge(nil)
	if !bytes.Equal(encLH(&z), encLH(x)) {
		t.Fatal("Merge(nil) changed the receiver")
	}
}

// --- encoding ---------------------------------------------------------------

func TestLogHistogramEncodingRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(16, 17))
	for k := range 200 {
		h, _ := randLH(t, rng, nil, rng.IntN(100))
		enc := encLH(h)
		if enc[0] != byte(FormatLogHistogram) || h.Format() != FormatLogHistogram {
			t.Fatal("format id")
		}
		var d LogHistogram
		if err := d.UnmarshalBinary(enc); err != nil {
			t.Fatalf("case %d: %v", k, err)
		}
		if !bytes.Equal(encLH(&d), enc) || d.Schema() != h.Schema() || d.ZeroThreshold() != h.ZeroThreshold() {
			t.Fatalf("case %d: round trip differs", k)
		}
		// UnmarshalBinary replaces, whatever the receiver held.
		r, _ := randLH(t, rng, nil, 30)
		if err := r.UnmarshalBinary(enc); err != nil || !bytes.Equal(encLH(r), enc) {
			t.Fatalf("case %d: UnmarshalBinary did not replace (%v)", k, err)
		}
		// AppendBinary appends.
		if got := h.AppendBinary([]byte{9}); !bytes.Equal(got[1:], enc) || got[0] != 9 {
			t.Fatal("AppendBinary does not append")
		}
	}
}

func TestLogHistogramEncodingLayout(t *testing.T) {
	// Schema 0, default threshold: 1 → bucket 0, 3 and 4 → bucket 2,
	// −1 → negative bucket 0, 0 → zero bucket.
	h := newLH(t, 0, DefaultZeroThreshold)
	addLH(t, h, 1, 3, 4, -1, 0)
	var want []byte
	want = append(want, byte(FormatLogHistogram), 0) // id, schema 0 (zig-zag)
	want = appendFloat64(want, DefaultZeroThreshold)
	want = append(want, 1, 0)                // zero count 1, NaN count 0
	want = appendFloat64(want, 7)            // sum
	want = append(want, 2, 0, 1, 1, 1, 1, 2) // 2 spans: start 0 (zig-zag 0), len 1, count 1; gap 1, len 1, count 2
	want = append(want, 1, 0, 1, 1)          // 1 span: start 0, len 1, count 1
	want = appendFloat64(want, -1)           // min
	want = appendFloat64(want, 4)            // max
	if got := encLH(h); !bytes.Equal(got, want) {
		t.Fatalf("encoding\n got  %x\n want %x", got, want)
	}
	// The empty state has no min and max.
	e := newLH(t, -3, 0)
	want = append([]byte{byte(FormatLogHistogram), 5}, appendFloat64(nil, 0)...)
	want = append(want, 0, 0)
	want = appendFloat64(want, 0)
	want = append(want, 0, 0)
	if got := encLH(e); !bytes.Equal(got, want) {
		t.Fatalf("empty encoding\n got  %x\n want %x", got, want)
	}
}

// corruptLH returns invalid encodings built from a valid layout.
func corruptLH() map[string][]byte {
	build := func(schema int64, zt float64, zero, nan uint64, sum float64, sections []byte, minmax ...float64) []byte {
		b := []byte{byte(FormatLogHistogram)}
		b = appendVarint(b, schema)
		b = appendFloat64(b, zt)
		b = appendUvarint(b, zero)
		b = appendUvarint(b, nan)
		b = appendFloat64(b, sum)
		b = append(b, sections...)
		for _, f := range minmax {
			b = appendFloat64(b, f)
		}
		return b
	}
	one := []byte{1, 0, 1, 1, 0} // positive bucket 0 with count 1; no negatives
	zt := DefaultZeroThreshold
	return map[string][]byte{
		"empty input":           nil,
		"wrong format":          {byte(FormatTDigest)},
		"schema 9":              build(9, zt, 0, 0, 0, []byte{0, 0}),
		"schema -5":             build(-5, zt, 0, 0, 0, []byte{0, 0}),
		"NaN zero threshold":    build(0, math.NaN(), 0, 0, 0, []byte{0, 0}),
		"negative threshold":    build(0, -1, 0, 0, 0, []byte{0, 0}),
		"-0 threshold":          build(0, math.Copysign(0, -1), 0, 0, 0, []byte{0, 0}),
		"infinite threshold":    build(0, math.Inf(1), 0, 0, 0, []byte{0, 0}),
		"zero count bucket":     build(0, zt, 0, 0, 1, []byte{1, 0, 1, 0, 0}, 1, 1),
		"empty span":            build(0, zt, 0, 0, 1, []byte{1, 0, 0, 0}),
		"zero gap":              build(0, zt, 0, 0, 2, []byte{2, 0, 1, 1, 0, 1, 1, 0}, 1, 1),
		"index above infinity":  build(0, zt, 0, 0, 1, []byte{1, 0x84, 0x10, 1, 1, 0}, 1, 1), // zig-zag 1026
		"index in zero bucket":  build(0, zt, 0, 0, 1, []byte{1, 0xff, 0x01, 1, 1, 0}, 1, 1), // −128: bound 2^−128 = zt
		"huge span count":       build(0, zt, 0, 0, 1, []byte{0xff, 0xff, 0x03}),
		"huge length":           build(0, zt, 0, 0, 1, []byte{1, 0, 0xff, 0xff, 0x03}),
		"gap overflow":          build(0, zt, 0, 0, 2, []byte{2, 0, 1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1, 1, 0}, 1, 1),
		"truncated min max":     build(0, zt, 0, 0, 1, one, 1),
		"missing min max":       build(0, zt, 0, 0, 1, one),
		"trailing bytes":        append(build(0, zt, 0, 0, 1, one, 1, 1), 0),
		"empty with sum":        build(0, zt, 0, 0, 1, []byte{0, 0}),
		"empty with -0 sum":     build(0, zt, 0, 0, math.Copysign(0, -1), []byte{0, 0}),
		"NaN count, finite sum": build(0, zt, 0, 1, 1, []byte{0, 0}),
		"non-canonical NaN sum": build(0, zt, 0, 1, math.Float64frombits(0x7ff8000000000002), []byte{0, 0}),
		"min outside bucket":    build(0, zt, 0, 0, 1, one, 2, 1),
		"max outside bucket":    build(0, zt, 0, 0, 1, one, 1, 0.4),
		"NaN min":               build(0, zt, 0, 0, 1, one, math.NaN(), 1),
		"min above max":         build(0, zt, 0, 0, 1, []byte{1, 0, 1, 2, 0}, 0.75, 0.7),
		"-0 min":                build(0, 0, 1, 0, 0, []byte{0, 0}, math.Copysign(0, -1), 0),
		"truncated long count":  build(0, zt, 0, 0, 1, []byte{1, 0, 1, 0x80}),
		"count overflow":        build(0, zt, math.MaxUint64, 0, 1, one, 0, 1),
		"NaN count overflow":    build(0, zt, 1, math.MaxUint64, math.NaN(), []byte{0, 0}, 0, 0),
	}
}

func TestLogHistogramDecodeCorrupt(t *testing.T) {
	rng := rand.New(rand.NewPCG(18, 19))
	h, _ := randLH(t, rng, &lhParams{4, DefaultZeroThreshold}, 50)
	valid := encLH(h)
	cases := corruptLH()
	for n := range len(valid) {
		cases[fmt.Sprintf("truncated to %d", n)] = valid[:n]
	}
	for name, src := range cases {
		t.Run(name, func(t *testing.T) {
			for _, recv := range []*LogHistogram{cloneLH(t, h), NewDefaultLogHistogram()} {
				before := encLH(recv)
				err := recv.DecodeAndMerge(src)
				if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrFormat) {
					t.Fatalf("DecodeAndMerge err = %v, want ErrCorrupt or ErrFormat", err)
				}
				if !bytes.Equal(before, encLH(recv)) {
					t.Fatal("DecodeAndMerge changed the receiver on error")
				}
				if err := recv.UnmarshalBinary(src); err == nil {
					t.Fatal("UnmarshalBinary accepted corrupt input")
				}
				if !bytes.Equal(before, encLH(recv)) {
					t.Fatal("UnmarshalBinary changed the receiver on error")
				}
			}
		})
	}
	if _, err := FormatOf(valid); err != nil {
		t.Fatal(err)
	}
}

// --- reads, allocations, memory ---------------------------------------------

func TestLogHistogramReadsDoNotMutate(t *testing.T) {
	rng := rand.New(rand.NewPCG(20, 21))
	h, _ := randLH(t, rng, &lhParams{6, DefaultZeroThreshold}, 500)
	read := func() {
		_ = h.Count() + h.Sum() + h.Mean() + h.Min() + h.Max() + h.RelativeError()
		for _, q := range []float64{0, 0.1, 0.5, 0.99, 1} {
			h.Quantile(q)
			h.CDF(q * 1000)
		}
		h.AppendBreakpoints(nil)
		h.AppendBinary(nil)
		h.Native()
		h.NativeFloat()
		h.MemSize()
		_ = h.NaNCount() + uint64(h.Schema())
		_ = h.ZeroThreshold()
		h.Format()
	}
	checkReadOnly(t, h, read)
}

func TestLogHistogramZeroAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(22, 23))
	xs := make([]float64, 1024)
	for i := range xs {
		xs[i] = math.Exp(rng.NormFloat64()*2) * float64(1-2*rng.IntN(2))
	}
	h := NewDefaultLogHistogram()
	addLH(t, h, xs...)
	i := 0
	if a := testing.AllocsPerRun(1000, func() {
		_ = h.Add(xs[i%len(xs)])
		i++
	}); a != 0 {
		t.Errorf("Add allocates %v per call", a)
	}
	src := NewDefaultLogHistogram()
	addLH(t, src, xs[:500]...)
	if a := testing.AllocsPerRun(100, func() { h.Merge(src) }); a != 0 {
		t.Errorf("Merge allocates %v per call", a)
	}
	fine := newLH(t, 8, DefaultZeroThreshold)
	addLH(t, fine, xs[:500]...)
	if a := testing.AllocsPerRun(100, func() { h.Merge(fine) }); a != 0 {
		t.Errorf("Merge from a finer schema allocates %v per call", a)
	}
	enc := encLH(src)
	if a := testing.AllocsPerRun(100, func() { _ = h.DecodeAndMerge(enc) }); a != 0 {
		t.Errorf("DecodeAndMerge allocates %v per call", a)
	}
}

func TestLogHistogramResetAndMemSize(t *testing.T) {
	h := newLH(t, 4, 0)
	empty := h.MemSize()
	addLH(t, h, 1, 1000, -0.001)
	grown := h.MemSize()
	if grown <= empty {
		t.Fatalf("MemSize %d did not grow from %d", grown, empty)
	}
	h.Reset()
	if h.MemSize() != grown || h.Count() != 0 || h.Schema() != 4 || h.ZeroThreshold() != 0 {
		t.Fatal("Reset lost memory or parameters, or kept data")
	}
	if !bytes.Equal(encLH(h), encLH(newLH(t, 4, 0))) {
		t.Fatal("reset state differs from a new one")
	}
	// Re-used memory holds no stale counts after sliding to a new range.
	addLH(t, h, 1e6, 2e6)
	want := newLH(t, 4, 0)
	addLH(t, want, 1e6, 2e6)
	if !bytes.Equal(encLH(h), encLH(want)) {
		t.Fatal("state after reuse differs")
	}
}

// --- fuzzing ----------------------------------------------------------------

func FuzzDecodeLogHistogram(f *testing.F) {
	rng := rand.New(rand.NewPCG(24, 25))
	for range 8 {
		h, _ := randLH(f, rng, nil, rng.IntN(40))
		f.Add(encLH(h))
	}
	for _, c := range corruptLH() {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		s := decodeRoundTrip(t, src, func() Sketch { return &LogHistogram{} })
		if s == nil {
			return
		}
		h := s.(*LogHistogram)
		h2 := &LogHistogram{}
		if err := h2.UnmarshalBinary(encLH(h)); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		// Reads and merges of any decodable state are safe.
		h.Quantile(0.5)
		h.CDF(1)
		h.AppendBreakpoints(nil)
		h2.Merge(h)
		if err := h2.DecodeAndMerge(src); err != nil {
			t.Fatalf("DecodeAndMerge of decodable input: %v", err)
		}
	})
}

// --- benchmarks ---------------------------------------------------------------

// benchState fills a state of the schema with values spread over the given
// number of consecutive buckets.
func benchState(b *testing.B, schema int32, buckets int, seed uint64) *LogHistogram {
	h := newLH(b, schema, DefaultZeroThreshold)
	rng := rand.New(rand.NewPCG(seed, 1))
	base := math.Exp2(math.Exp2(float64(-schema)))
	for i := range buckets {
		addLH(b, h, math.Pow(base, float64(i)+0.5))
	}
	for range 4 * buckets {
		addLH(b, h, math.Pow(base, float64(rng.IntN(buckets))+0.5))
	}
	return h
}

func BenchmarkLogHistogram(b *testing.B) {
	for _, s := range []int32{0, 6, 8} {
		b.Run(fmt.Sprintf("op=add/schema=%d", s), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(26, 27))
			xs := make([]float64, 4096)
			for i := range xs {
				xs[i] = math.Exp(rng.NormFloat64() * 2)
			}
			h := newLH(b, s, DefaultZeroThreshold)
			addLH(b, h, xs...)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				_ = h.Add(xs[i&4095])
				i++
			}
			// After the loop: b.Loop's timer reset drops reported metrics.
			b.ReportMetric(float64(len(encLH(h))), "B/state")
		})
	}
	for _, nb := range []int{64, 512, 4096} {
		b.Run(fmt.Sprintf("op=merge/schema=6/buckets=%d", nb), func(b *testing.B) {
			dst, src := benchState(b, 6, nb, 1), benchState(b, 6, nb, 2)
			enc := encLH(src)
			b.SetBytes(int64(len(enc)))
			b.ReportAllocs()
			for b.Loop() {
				dst.Merge(src)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(nb), "ns/bucket")
			b.ReportMetric(float64(len(enc)), "B/state")
		})
	}
	b.Run("op=merge/schema=8to6/buckets=4096", func(b *testing.B) {
		dst, src := benchState(b, 6, 1024, 1), benchState(b, 8, 4096, 2)
		enc := encLH(src)
		b.SetBytes(int64(len(enc)))
		b.ReportAllocs()
		for b.Loop() {
			dst.Merge(src)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/4096, "ns/bucket")
		b.ReportMetric(float64(len(enc)), "B/state")
	})
	for _, nb := range []int{64, 512, 4096} {
		b.Run(fmt.Sprintf("op=decode_and_merge/schema=6/buckets=%d", nb), func(b *testing.B) {
			dst, src := benchState(b, 6, nb, 1), benchState(b, 6, nb, 2)
			enc := encLH(src)
			b.SetBytes(int64(len(enc)))
			b.ReportAllocs()
			for b.Loop() {
				if err := dst.DecodeAndMerge(enc); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(nb), "ns/bucket")
			b.ReportMetric(float64(len(enc)), "B/state")
		})
	}
}

// TestLogHistogramAddObservation checks that AddObservation is exactly Add,
// for histograms of the observation's schema and threshold and of others.
func TestLogHistogramAddObservation(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	special := []float64{0, math.Copysign(0, -1), 1, -1, 1e-300, -1e-300, math.SmallestNonzeroFloat64,
		math.MaxFloat64, -math.MaxFloat64, math.Inf(1), math.Inf(-1), 0.5, 2, 1e-128}
	type cfg struct {
		schema int32
		zt     float64
	}
	cfgs := []cfg{{8, 0}, {3, 0}, {0, 1e-3}, {-4, 0}, {8, 1e-128}}
	for _, from := range cfgs {
		src := newLH(t, from.schema, from.zt)
		for _, to := range cfgs {
			want, got := newLH(t, to.schema, to.zt), newLH(t, to.schema, to.zt)
			xs := append([]float64(nil), special...)
			for range 2000 {
				xs = append(xs, (rng.Float64()-0.3)*math.Pow(10, float64(rng.IntN(40)-20)))
			}
			for _, x := range xs {
				o, err := src.Observation(x)
				if err != nil {
					t.Fatal(err)
				}
				addLH(t, want, x)
				got.AddObservation(o)
			}
			if !bytes.Equal(encLH(want), encLH(got)) {
				t.Fatalf("observations placed in %+v added to %+v differ from Add", from, to)
			}
		}
	}
	if _, err := newLH(t, 8, 0).Observation(math.NaN()); !errors.Is(err, ErrInvalid) {
		t.Fatalf("NaN: %v", err)
	}
	// The zero value is the observation 0.
	want, got := NewDefaultLogHistogram(), NewDefaultLogHistogram()
	addLH(t, want, 0)
	got.AddObservation(LogObservation{})
	if !bytes.Equal(encLH(want), encLH(got)) {
		t.Fatal("zero LogObservation is not 0")
	}
}
