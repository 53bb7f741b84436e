package sketch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// The helpers prefixed "mom" are shared by moments_test.go and
// regression_test.go.

// momClose reports whether got is within tol of want relative to the larger
// of |want| and scale (scale keeps values near zero from demanding an
// impossible relative accuracy). Two NaNs are close.
func momClose(got, want, tol, scale float64) bool {
	if got == want {
		return true
	}
	if math.IsNaN(want) || math.IsNaN(got) {
		return math.IsNaN(want) && math.IsNaN(got)
	}
	return math.Abs(got-want) <= tol*math.Max(math.Abs(want), scale)
}

// momMetric is one named metric compared against its oracle.
type momMetric struct {
	name      string
	got, want float64
	tol       float64 // 0 demands bit-for-bit equality (NaN equals NaN)
	scale     float64
}

func (m momMetric) ok() bool {
	if m.tol == 0 {
		return m.got == m.want || (math.IsNaN(m.got) && math.IsNaN(m.want))
	}
	return momClose(m.got, m.want, m.tol, m.scale)
}

func (m momMetric) String() string {
	return fmt.Sprintf("%s = %.17g, want %.17g (tol %g)", m.name, m.got, m.want, m.tol)
}

func momCheckMetrics(t *testing.T, ms []momMetric) {
	t.Helper()
	for _, m := range ms {
		if !m.ok() {
			t.Error(m)
		}
	}
}

// momMismatch returns the first metric that is not ok, or "".
func momMismatch(ms []momMetric) string {
	for _, m := range ms {
		if !m.ok() {
			return m.String()
		}
	}
	return ""
}

func momEncode(s Sketch) []byte { return s.AppendBinary(nil) }

// momCheckAtomic decodes src into recv with both DecodeAndMerge and
// UnmarshalBinary and checks both fail with want and leave recv unchanged.
func momCheckAtomic(t *testing.T, recv Sketch, src []byte, want error) {
	t.Helper()
	before := momEncode(recv)
	for name, decode := range map[string]func([]byte) error{
		"DecodeAndMerge":  recv.DecodeAndMerge,
		"UnmarshalBinary": recv.UnmarshalBinary,
	} {
		err := decode(src)
		if !errors.Is(err, want) {
			t.Errorf("%s(% x) err = %v, want %v", name, src, err, want)
		}
		if after := momEncode(recv); !bytes.Equal(before, after) {
			t.Errorf("%s(% x) changed the receiver on error", name, src)
		}
	}
}

// momCheckTruncations checks that every strict prefix of a valid encoding,
// and the encoding plus a trailing byte, is refused atomically.
func momCheckTruncations(t *testing.T, recv Sketch, valid []byte) {
	t.Helper()
	for i := range len(valid) {
		momCheckAtomic(t, recv, valid[:i], ErrCorrupt)
	}
	momCheckAtomic(t, recv, append(append([]byte{}, valid...), 0), ErrCorrupt)
}

// momCheckRoundTrip checks decode(encode(s)) re-encodes identically, through
// both UnmarshalBinary (into a dirty receiver) and DecodeAndMerge (into an
// empty one).
func momCheckRoundTrip(t *testing.T, s, dirty, empty Sketch) {
	t.Helper()
	enc := momEncode(s)
	if enc[0] != byte(s.Format()) {
		t.Fatalf("first byte %#x, want format %v", enc[0], s.Format())
	}
	if err := dirty.UnmarshalBinary(enc); err != nil {
		t.Fatalf("UnmarshalBinary(% x): %v", enc, err)
	}
	if got := momEncode(dirty); !bytes.Equal(got, enc) {
		t.Errorf("UnmarshalBinary round trip:\n got % x\nwant % x", got, enc)
	}
	if err := empty.DecodeAndMerge(enc); err != nil {
		t.Fatalf("DecodeAndMerge(% x): %v", enc, err)
	}
	if got := momEncode(empty); !bytes.Equal(got, enc) {
		t.Errorf("DecodeAndMerge into empty:\n got % x\nwant % x", got, enc)
	}
}

// momFuzzRoundTrip is the body of the decode fuzz targets: decoding never
// panics, and whatever decodes re-encodes, decodes and re-encodes stably,
// and merges into an empty state as itself.
func momFuzzRoundTrip(t *testing.T, data []byte, fresh func() Sketch) {
	s := decodeRoundTrip(t, data, fresh)
	if s == nil {
		if err := fresh().DecodeAndMerge(data); err == nil {
			t.Fatal("DecodeAndMerge accepted what UnmarshalBinary refused")
		}
		return
	}
	enc := momEncode(s)
	s3 := fresh()
	if err := s3.DecodeAndMerge(data); err != nil {
		t.Fatalf("DecodeAndMerge refused what UnmarshalBinary accepted: %v", err)
	}
	if enc3 := momEncode(s3); !bytes.Equal(enc, enc3) {
		t.Fatalf("DecodeAndMerge into empty gives % x, want % x", enc3, enc)
	}
}

// momProps drives the merge property tests shared by Moments and
// Regression. fill adds k random observations drawn from rng (dyadic ones,
// multiples of 1/8, when dyadic is set, so that float sums are exact);
// compare returns "" when got matches want: exactly for counts and for sums
// of dyadic values, within 1e-12 relative otherwise.
type momProps[T Sketch] struct {
	fresh   func() T
	fill    func(s T, rng *rand.Rand, k int, dyadic bool)
	merge   func(a, b T)
	compare func(got, want T, dyadic bool) string
}

func (p momProps[T]) random(seed uint64, dyadic bool) T {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	s := p.fresh()
	p.fill(s, rng, rng.IntN(200), dyadic)
	return s
}

func (p momProps[T]) clone(t *testing.T, s T) T {
	t.Helper()
	c := p.fresh()
	if err := c.UnmarshalBinary(momEncode(s)); err != nil {
		t.Fatal(err)
	}
	return c
}

func (p momProps[T]) merged(t *testing.T, xs ...T) T {
	t.Helper()
	out := p.fresh()
	for _, x := range xs {
		p.merge(out, p.clone(t, x))
	}
	return out
}

func (p momProps[T]) checkCommutative(t *testing.T) {
	for seed := range uint64(40) {
		a, b := p.random(2*seed, seed%2 == 0), p.random(2*seed+1, seed%3 == 0)
		ab, ba := p.merged(t, a, b), p.merged(t, b, a)
		// The canonical operand order in combineMoments makes merging
		// exactly commutative, even for values whose sums round.
		if ea, eb := momEncode(ab), momEncode(ba); !bytes.Equal(ea, eb) {
			t.Fatalf("seed %d: a+b = % x, b+a = % x", seed, ea, eb)
		}
	}
}

func (p momProps[T]) checkAssociative(t *testing.T) {
	for seed := range uint64(40) {
		a, b, c := p.random(3*seed, true), p.random(3*seed+1, true), p.random(3*seed+2, true)
		left := p.merged(t, p.merged(t, a, b), c)
		right := p.merged(t, a, p.merged(t, b, c))
		if d := p.compare(left, right, true); d != "" {
			t.Fatalf("seed %d: (a+b)+c != a+(b+c): %s", seed, d)
		}
	}
}

// checkEqualsAdd checks that merging states equals adding all their
// observations to one state; identical seeds replay identical observations.
func (p momProps[T]) checkEqualsAdd(t *testing.T) {
	for seed := range uint64(40) {
		dyadic := seed%2 == 0
		rng := rand.New(rand.NewPCG(seed, 7))
		parts := 1 + rng.IntN(6)
		whole, pooled := p.fresh(), p.fresh()
		for i := range parts {
			k := rng.IntN(100)
			part := p.fresh()
			p.fill(part, rand.New(rand.NewPCG(seed, uint64(i))), k, dyadic)
			p.fill(whole, rand.New(rand.NewPCG(seed, uint64(i))), k, dyadic)
			p.merge(pooled, part)
		}
		if d := p.compare(pooled, whole, dyadic); d != "" {
			t.Fatalf("seed %d (dyadic %v): merged parts != one state: %s", seed, dyadic, d)
		}
	}
}

func (p momProps[T]) checkIdentityAndSelf(t *testing.T) {
	for seed := range uint64(10) {
		a := p.random(seed, seed%2 == 0)
		want := momEncode(a)
		for name, got := range map[string]T{"a+empty": p.merged(t, a, p.fresh()), "empty+a": p.merged(t, p.fresh(), a)} {
			if !bytes.Equal(momEncode(got), want) {
				t.Errorf("seed %d: %s differs from a", seed, name)
			}
		}
		self := p.clone(t, a)
		p.merge(self, self)
		if d := p.compare(self, p.merged(t, a, a), false); d != "" {
			t.Errorf("seed %d: a.Merge(a) differs from a+copy(a): %s", seed, d)
		}
	}
}

// checkDecodeAndMerge checks DecodeAndMerge(enc(b)) into a equals Merge(a, b)
// bit for bit.
func (p momProps[T]) checkDecodeAndMerge(t *testing.T) {
	for seed := range uint64(40) {
		a, b := p.random(2*seed, seed%2 == 0), p.random(2*seed+1, false)
		want := p.merged(t, a, b)
		got := p.clone(t, a)
		if err := got.DecodeAndMerge(momEncode(b)); err != nil {
			t.Fatal(err)
		}
		if g, w := momEncode(got), momEncode(want); !bytes.Equal(g, w) {
			t.Fatalf("seed %d: DecodeAndMerge = % x, Merge = % x", seed, g, w)
		}
	}
}

func (p momProps[T]) run(t *testing.T) {
	t.Run("commutative", p.checkCommutative)
	t.Run("associative", p.checkAssociative)
	t.Run("equals_add", p.checkEqualsAdd)
	t.Run("identity_and_self", p.checkIdentityAndSelf)
	t.Run("decode_and_merge", p.checkDecodeAndMerge)
}

// momBench runs the op=add, op=merge and op=decode_and_merge benchmarks for
// one type. add records observation i; the merged states hold k
// observations each.
func momBench[T Sketch](b *testing.B, fresh func() T, fill func(T, *rand.Rand, int, bool), add func(T, int), merge func(a, o T)) {
	const k = 1000
	src := fresh()
	fill(src, rand.New(rand.NewPCG(1, 2)), k, false)
	enc := momEncode(src)
	b.Run("op=add", func(b *testing.B) {
		s := fresh()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			add(s, i)
			i++
		}
		b.ReportMetric(float64(len(momEncode(s))), "B/state")
	})
	b.Run(fmt.Sprintf("op=merge/n=%d", k), func(b *testing.B) {
		dst := fresh()
		fill(dst, rand.New(rand.NewPCG(3, 4)), k, false)
		b.ReportAllocs()
		b.SetBytes(int64(len(enc)))
		for b.Loop() {
			merge(dst, src)
		}
		b.ReportMetric(float64(len(enc)), "B/state")
	})
	b.Run(fmt.Sprintf("op=decode_and_merge/n=%d", k), func(b *testing.B) {
		dst := fresh()
		fill(dst, rand.New(rand.NewPCG(3, 4)), k, false)
		b.ReportAllocs()
		b.SetBytes(int64(len(enc)))
		for b.Loop() {
			if err := dst.DecodeAndMerge(enc); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(enc)), "B/state")
	})
}

// momCheckNoAllocs checks each operation allocates nothing at steady state.
func momCheckNoAllocs(t *testing.T, ops map[string]func()) {
	t.Helper()
	for name, op := range ops {
		if a := testing.AllocsPerRun(100, op); a != 0 {
			t.Errorf("%s allocates %v times per call, want 0", name, a)
		}
	}
}

// momCheckReset checks MemSize covers the six 8-byte fields and Reset
// returns s to the encoding of empty.
func momCheckReset(t *testing.T, s, empty Sketch) {
	t.Helper()
	if s.MemSize() < 48 {
		t.Errorf("MemSize = %d, want at least the 48 bytes of fields", s.MemSize())
	}
	s.Reset()
	if got, want := momEncode(s), momEncode(empty); !bytes.Equal(got, want) {
		t.Errorf("after Reset: % x, want % x", got, want)
	}
}

// ---- Moments ----

// momentsFill adds k values: multiples of 1/8 in [-1000, 1000] when dyadic,
// otherwise normal values around a random offset, with occasional zeros of
// either sign to exercise the -0 normalisation.
func momentsFill(m *Moments, rng *rand.Rand, k int, dyadic bool) {
	off := float64(rng.IntN(2001)-1000) / 4
	for range k {
		var x float64
		switch {
		case rng.IntN(20) == 0:
			x = math.Copysign(0, float64(rng.IntN(2))-0.5)
		case dyadic:
			x = float64(rng.IntN(16001)-8000) / 8
		default:
			x = off + 50*rng.NormFloat64()
		}
		if err := m.Add(x); err != nil {
			panic(err)
		}
	}
}

// momentsOracle computes the metrics directly from the values: sequential
// sum (the same additions in the same order as Add, hence bit-exact), and a
// two-pass mean and unbiased variance.
type momentsOracle struct {
	n, sum, mean, variance, min, max float64
}

func newMomentsOracle(xs []float64) momentsOracle {
	o := momentsOracle{n: float64(len(xs)), mean: math.NaN(), variance: math.NaN(), min: math.NaN(), max: math.NaN()}
	if len(xs) == 0 {
		return o
	}
	o.min, o.max = xs[0], xs[0]
	for _, x := range xs {
		o.sum += x
		o.min = math.Min(o.min, x)
		o.max = math.Max(o.max, x)
	}
	o.mean = o.sum / o.n
	if len(xs) > 1 {
		var ss float64
		for _, x := range xs {
			ss += (x - o.mean) * (x - o.mean)
		}
		o.variance = ss / (o.n - 1)
	}
	return o
}

func (o momentsOracle) check(t *testing.T, m *Moments, tol float64) {
	t.Helper()
	scale := math.Max(math.Abs(o.min), math.Abs(o.max))
	momCheckMetrics(t, []momMetric{
		{"Count", m.Count(), o.n, 0, 0},
		{"Sum", m.Sum(), o.sum, 0, 0},
		{"Min", m.Min(), o.min, 0, 0},
		{"Max", m.Max(), o.max, 0, 0},
		{"Mean", m.Mean(), o.mean, tol, scale},
		{"Variance", m.Variance(), o.variance, tol, 0},
		{"Stddev", m.Stddev(), math.Sqrt(o.variance), tol, 0},
	})
}

func momentsOf(t testing.TB, xs ...float64) *Moments {
	t.Helper()
	m := NewMoments()
	for _, x := range xs {
		if err := m.Add(x); err != nil {
			t.Fatalf("Add(%v): %v", x, err)
		}
	}
	return m
}

func TestMomentsHandComputed(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name                           string
		xs                             []float64
		n, sum, mean, vr, sd, min, max float64
	}{
		{"empty", nil, 0, 0, nan, nan, nan, nan, nan},
		{"one value", []float64{3.5}, 1, 3.5, 3.5, nan, nan, 3.5, 3.5},
		// Σ = 40, mean 5, Σ(x−5)² = 9+1+1+1+0+0+4+16 = 32, var = 32/7,
		// sd = sqrt(32/7).
		{"textbook", []float64{2, 4, 4, 4, 5, 5, 7, 9}, 8, 40, 5, 4.571428571428571, 2.138089935299395, 2, 9},
		// In twelfths: −18, 3, 48; mean 33/36 = 11/12; deviations −29, −8,
		// 37 twelfths; Σd² = (841+64+1369)/144 = 2274/144; var = 2274/288.
		{"fractions", []float64{-1.5, 0.25, 4}, 3, 2.75, 0.9166666666666666, 7.895833333333333, 2.809952550014561, -1.5, 4},
		// Constant data keeps an exact mean and an exactly zero variance
		// (0.1+0.1+0.1+0.1 rounds to 0.4 in float64).
		{"constant", []float64{0.1, 0.1, 0.1, 0.1}, 4, 0.4, 0.1, 0, 0, 0.1, 0.1},
		{"signed zeros", []float64{math.Copysign(0, -1), 0}, 2, 0, 0, 0, 0, 0, 0},
		// At the value bound nothing overflows: mean = 2e100/3,
		// deviations 1e100/3, 1e100/3, −2e100/3, Σd² = (1+1+4)/9·1e200,
		// var = Σd²/2 = 1e200/3, sd = 1e100/sqrt(3).
		{"at the bound", []float64{1e100, 1e100, 0}, 3, 2e100, 6.666666666666666e99, 3.3333333333333334e199, 5.773502691896257e99, 0, 1e100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := momentsOf(t, tc.xs...)
			momCheckMetrics(t, []momMetric{
				{"Count", m.Count(), tc.n, 0, 0},
				{"Sum", m.Sum(), tc.sum, 1e-15, 0},
				{"Mean", m.Mean(), tc.mean, 1e-15, 0},
				{"Variance", m.Variance(), tc.vr, 1e-15, 0},
				{"Stddev", m.Stddev(), tc.sd, 1e-15, 0},
				{"Min", m.Min(), tc.min, 0, 0},
				{"Max", m.Max(), tc.max, 0, 0},
			})
			if tc.name == "constant" && (m.Mean() != 0.1 || m.Variance() != 0) {
				t.Errorf("constant data: mean %v variance %v, want exactly 0.1 and 0", m.Mean(), m.Variance())
			}
		})
	}
}

func TestMomentsRandomOracle(t *testing.T) {
	for seed := range uint64(30) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 11))
			n := 1 + rng.IntN(400)
			scale := math.Pow(10, float64(rng.IntN(13)-6))
			off := scale * float64(rng.IntN(201)-100)
			xs := make([]float64, n)
			for i := range xs {
				xs[i] = off + scale*rng.NormFloat64()
			}
			// Shuffle-insensitive: build from a random split into parts.
			m := NewMoments()
			for i := 0; i < n; {
				j := min(n, i+1+rng.IntN(50))
				part := momentsOf(t, xs[i:j]...)
				m.Merge(part)
				i = j
			}
			o := newMomentsOracle(xs)
			if n > 1 {
				o.variance = bigTwoPassVariance(xs)
			}
			// The merged sum adds the parts' sums, not the values in
			// order, so it is compared with a tolerance here; exactness
			// of Sum is checked by the sequential state below.
			scaleAbs := math.Max(math.Abs(o.min), math.Abs(o.max))
			momCheckMetrics(t, []momMetric{
				{"merged Count", m.Count(), o.n, 0, 0},
				{"merged Sum", m.Sum(), o.sum, 1e-12, scaleAbs * o.n},
				{"merged Min", m.Min(), o.min, 0, 0},
				{"merged Max", m.Max(), o.max, 0, 0},
				{"merged Mean", m.Mean(), o.mean, 1e-12, scaleAbs},
				{"merged Variance", m.Variance(), o.variance, 1e-12, 0},
			})
			o.check(t, momentsOf(t, xs...), 1e-12)
		})
	}
}

// bigTwoPassVariance is an exact-enough oracle: the two-pass formula in
// 512-bit arithmetic, so its rounding is far below float64's.
func bigTwoPassVariance(xs []float64) float64 {
	const prec = 512
	sum := new(big.Float).SetPrec(prec)
	for _, x := range xs {
		sum.Add(sum, new(big.Float).SetPrec(prec).SetFloat64(x))
	}
	mean := new(big.Float).SetPrec(prec).Quo(sum, new(big.Float).SetPrec(prec).SetInt64(int64(len(xs))))
	ss := new(big.Float).SetPrec(prec)
	d := new(big.Float).SetPrec(prec)
	for _, x := range xs {
		d.Sub(new(big.Float).SetPrec(prec).SetFloat64(x), mean)
		ss.Add(ss, d.Mul(d, d))
	}
	v, _ := ss.Quo(ss, new(big.Float).SetPrec(prec).SetInt64(int64(len(xs)-1))).Float64()
	return v
}

func TestMomentsVarianceLargeOffset(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 1))
	xs := make([]float64, 100_000)
	for i := range xs {
		xs[i] = 1e9 + rng.NormFloat64()
	}
	want := bigTwoPassVariance(xs)
	relErr := func(v float64) float64 { return math.Abs(v-want) / want }

	seq := momentsOf(t, xs...)
	merged := NewMoments()
	for i := 0; i < len(xs); i += 1000 {
		merged.Merge(momentsOf(t, xs[i:i+1000]...))
	}
	for name, m := range map[string]*Moments{"sequential": seq, "merged": merged} {
		e := relErr(m.Variance())
		t.Logf("%s: variance relative error %.3g", name, e)
		if e > 1e-6 {
			t.Errorf("%s: variance %v, oracle %v, relative error %g > 1e-6", name, m.Variance(), want, e)
		}
	}

	// The naive Σx², (Σx)² formula must fail the same bound, or this test
	// would not be showing anything.
	var s, s2 float64
	for _, x := range xs {
		s += x
		s2 += x * x
	}
	n := float64(len(xs))
	e := relErr((s2 - s*s/n) / (n - 1))
	t.Logf("naive Σx² formula: relative error %.3g", e)
	if !(e > 1e-6) {
		t.Errorf("naive variance has relative error %g; the data does not stress stability", e)
	}
}

func TestMomentsAddRejects(t *testing.T) {
	m := momentsOf(t, 1, 2, 3)
	for _, x := range []float64{math.NaN(), math.Inf(1), math.Inf(-1), math.Nextafter(MaxMomentValue, math.Inf(1)), -1e101, math.MaxFloat64} {
		before := momEncode(m)
		if err := m.Add(x); !errors.Is(err, ErrInvalid) {
			t.Errorf("Add(%v) err = %v, want ErrInvalid", x, err)
		}
		if !bytes.Equal(before, momEncode(m)) {
			t.Errorf("Add(%v) changed the state", x)
		}
	}
	for _, x := range []float64{MaxMomentValue, -MaxMomentValue, math.SmallestNonzeroFloat64} {
		if err := m.Add(x); err != nil {
			t.Errorf("Add(%v) = %v", x, err)
		}
	}
	full := NewMoments()
	if err := full.UnmarshalBinary(momentsRaw(math.MaxUint64, 1, 1, 1, 0, 1.8e19)); err != nil {
		t.Fatal(err)
	}
	if err := full.Add(1); !errors.Is(err, ErrInvalid) {
		t.Errorf("Add at the maximum count: err = %v, want ErrInvalid", err)
	}
}

func momentsProps() momProps[*Moments] {
	return momProps[*Moments]{
		fresh: NewMoments,
		fill:  momentsFill,
		merge: func(a, b *Moments) { a.Merge(b) },
		compare: func(got, want *Moments, dyadic bool) string {
			sumTol := 1e-12
			if dyadic {
				sumTol = 0
			}
			scale := math.Max(math.Abs(want.Min()), math.Abs(want.Max()))
			return momMismatch([]momMetric{
				{"Count", got.Count(), want.Count(), 0, 0},
				{"Min", got.Min(), want.Min(), 0, 0},
				{"Max", got.Max(), want.Max(), 0, 0},
				{"Sum", got.Sum(), want.Sum(), sumTol, scale * want.Count()},
				{"Mean", got.Mean(), want.Mean(), 1e-12, scale},
				{"Variance", got.Variance(), want.Variance(), 1e-12, 0},
			})
		},
	}
}

func TestMomentsMergeAssocCommut(t *testing.T) { momentsProps().run(t) }

func TestMomentsRoundTrip(t *testing.T) {
	states := map[string]*Moments{
		"empty":    NewMoments(),
		"one":      momentsOf(t, -2.5),
		"one zero": momentsOf(t, math.Copysign(0, -1)),
		"constant": momentsOf(t, 7, 7, 7),
		"bounds":   momentsOf(t, MaxMomentValue, -MaxMomentValue),
		"random":   momentsProps().random(9, false),
	}
	for name, m := range states {
		t.Run(name, func(t *testing.T) {
			momCheckRoundTrip(t, m, momentsOf(t, 1, 2, 3), NewMoments())
		})
	}
	if got, want := momEncode(momentsOf(t, 1.5)), []byte{0x03, 0x01, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f}; !bytes.Equal(got, want) {
		t.Errorf("encoding of {1.5} = % x, want % x", got, want)
	}
	if got, want := momEncode(NewMoments()), []byte{0x03, 0x00}; !bytes.Equal(got, want) {
		t.Errorf("encoding of empty = % x, want % x", got, want)
	}
}

// momentsRaw builds an encoding by hand: count, then the given float64s.
func momentsRaw(n uint64, fs ...float64) []byte {
	b := appendUvarint([]byte{byte(FormatMoments)}, n)
	for _, f := range fs {
		b = appendFloat64(b, f)
	}
	return b
}

func TestMomentsDecodeCorrupt(t *testing.T) {
	nan, inf, negZero := math.NaN(), math.Inf(1), math.Copysign(0, -1)
	// Fields after a count >= 2: min, max, mean, m2, sum.
	tests := []struct {
		name string
		src  []byte
		want error
	}{
		{"nil", nil, ErrCorrupt},
		{"format only", []byte{byte(FormatMoments)}, ErrCorrupt},
		{"wrong format", []byte{byte(FormatRegression), 0}, ErrFormat},
		{"zero format", []byte{0, 0}, ErrFormat},
		{"overlong count", append([]byte{byte(FormatMoments)}, bytes.Repeat([]byte{0xff}, 11)...), ErrCorrupt},
		{"empty with payload", momentsRaw(0, 1), ErrCorrupt},
		{"one NaN", momentsRaw(1, nan), ErrCorrupt},
		{"one Inf", momentsRaw(1, -inf), ErrCorrupt},
		{"one beyond bound", momentsRaw(1, 2e100), ErrCorrupt},
		{"one negative zero", momentsRaw(1, negZero), ErrCorrupt},
		{"one with five fields", momentsRaw(1, 1, 1, 1, 0, 1), ErrCorrupt},
		{"two with one field", momentsRaw(2, 1), ErrCorrupt},
		{"NaN min", momentsRaw(2, nan, 2, 1.5, 0.5, 3), ErrCorrupt},
		{"Inf max", momentsRaw(2, 1, inf, 1.5, 0.5, 3), ErrCorrupt},
		{"min above max", momentsRaw(2, 3, 2, 2.5, 0.5, 5), ErrCorrupt},
		{"mean below min", momentsRaw(2, 1, 2, 0.5, 0.5, 3), ErrCorrupt},
		{"mean above max", momentsRaw(2, 1, 2, 2.5, 0.5, 3), ErrCorrupt},
		{"NaN mean", momentsRaw(2, 1, 2, nan, 0.5, 3), ErrCorrupt},
		{"negative m2", momentsRaw(2, 1, 2, 1.5, -0.5, 3), ErrCorrupt},
		{"NaN m2", momentsRaw(2, 1, 2, 1.5, nan, 3), ErrCorrupt},
		{"m2 beyond n·range²", momentsRaw(2, 1, 2, 1.5, 2.5, 3), ErrCorrupt},
		{"m2 with constant data", momentsRaw(3, 1, 1, 1, 1e-30, 3), ErrCorrupt},
		{"negative zero m2", momentsRaw(3, 1, 1, 1, negZero, 3), ErrCorrupt},
		{"sum beyond 2·n·max|x|", momentsRaw(2, 1, 2, 1.5, 0.5, 8.5), ErrCorrupt},
		{"Inf sum", momentsRaw(2, 1, 2, 1.5, 0.5, inf), ErrCorrupt},
		{"negative zero min", momentsRaw(2, negZero, 0, 0, 0, 0), ErrCorrupt},
		{"negative zero sum", momentsRaw(2, -1, 1, 0, 2, negZero), ErrCorrupt},
		{"min beyond bound", momentsRaw(2, -2e100, 1, 0, 1, 0), ErrCorrupt},
	}
	recv := momentsOf(t, 4, 8, 15, 16, 23, 42)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { momCheckAtomic(t, recv, tc.src, tc.want) })
	}
	t.Run("truncations", func(t *testing.T) {
		momCheckTruncations(t, recv, momEncode(momentsOf(t, 1, 2, 3)))
		momCheckTruncations(t, recv, momEncode(momentsOf(t, 1)))
	})
	t.Run("count overflow", func(t *testing.T) {
		full := NewMoments()
		if err := full.UnmarshalBinary(momentsRaw(math.MaxUint64, 1, 1, 1, 0, 1.8e19)); err != nil {
			t.Fatal(err)
		}
		momCheckAtomicMerge(t, full, momEncode(momentsOf(t, 1)))
	})
}

// momCheckAtomicMerge checks DecodeAndMerge refuses src with ErrCorrupt and
// leaves recv unchanged (for inputs that only fail against the receiver).
func momCheckAtomicMerge(t *testing.T, recv Sketch, src []byte) {
	t.Helper()
	before := momEncode(recv)
	if err := recv.DecodeAndMerge(src); !errors.Is(err, ErrCorrupt) {
		t.Errorf("DecodeAndMerge err = %v, want ErrCorrupt", err)
	}
	if !bytes.Equal(before, momEncode(recv)) {
		t.Errorf("DecodeAndMerge changed the receiver on error")
	}
}

func TestMomentsReadsDoNotMutate(t *testing.T) {
	a := momentsProps().random(5, false)
	b := momentsOf(t, 1, 2, 3, 4)
	checkReadOnly(t, a, func() {
		_, _, _, _ = a.Count(), a.Sum(), a.Mean(), a.Variance()
		_, _, _ = a.Stddev(), a.Min(), a.Max()
		_, _ = TTest(a, b, 0.95)
		_, _ = TTest(b, a, 0.9)
	})
}

func TestMomentsZeroAllocs(t *testing.T) {
	m := momentsOf(t, 1, 2)
	o := momentsProps().random(3, false)
	enc := momEncode(o)
	buf := make([]byte, 0, 64)
	x := 0.0
	momCheckNoAllocs(t, map[string]func(){
		"Add":            func() { x += 0.5; _ = m.Add(x) },
		"Merge":          func() { m.Merge(o) },
		"DecodeAndMerge": func() { _ = m.DecodeAndMerge(enc) },
		"AppendBinary":   func() { buf = m.AppendBinary(buf[:0]) },
	})
}

func TestMomentsTTestSleep(t *testing.T) {
	// R: t.test(extra ~ group, data = sleep) gives t = -1.8608,
	// df = 17.776, p-value = 0.07939, 95% CI -3.3654832 0.2054832; the
	// group means are 0.75 and 2.33.
	g1 := momentsOf(t, 0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0)
	g2 := momentsOf(t, 1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4)
	r, err := TTest(g1, g2, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	momCheckMetrics(t, []momMetric{
		{"t", r.Statistic, -1.8608, 5e-5 / 1.8608, 0},
		{"df", r.DF, 17.776, 5e-4 / 17.776, 0},
		{"p", r.PValue, 0.07939, 5e-6 / 0.07939, 0},
		{"lower", r.Lower, -3.3654832, 5e-7 / 3.3654832, 0},
		{"upper", r.Upper, 0.2054832, 5e-7 / 0.2054832, 0},
		{"effect", r.Effect, 0.75 - 2.33, 1e-12, 1},
		{"level", r.Level, 0.95, 0, 0},
	})
	for name, pair := range map[string][2]*Moments{
		"one observation": {momentsOf(t, 1), g2},
		"empty":           {g1, NewMoments()},
	} {
		if _, err := TTest(pair[0], pair[1], 0.95); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := TTest(g1, g2, 1); !errors.Is(err, ErrInvalid) {
		t.Errorf("level 1: err = %v, want ErrInvalid", err)
	}
}

func TestMomentsResetAndMemSize(t *testing.T) {
	m := momentsOf(t, 1, 2, 3)
	momCheckReset(t, m, NewMoments())
	if m.Format() != FormatMoments || m.Count() != 0 || !math.IsNaN(m.Mean()) {
		t.Errorf("after Reset: format %v count %v mean %v", m.Format(), m.Count(), m.Mean())
	}
	var zero Moments
	if err := zero.Add(1); err != nil || zero.Mean() != 1 {
		t.Errorf("zero value: Add err %v, mean %v", err, zero.Mean())
	}
}

func FuzzDecodeMoments(f *testing.F) {
	f.Add(momEncode(NewMoments()))
	f.Add(momEncode(momentsOf(f, 1.5)))
	f.Add(momEncode(momentsOf(f, 2, 4, 4, 4, 5, 5, 7, 9)))
	f.Add(momEncode(momentsProps().random(1, false)))
	f.Add(momentsRaw(2, 1, 2, 1.5, 0.5, 3))
	f.Add(binary.AppendUvarint([]byte{byte(FormatMoments)}, math.MaxUint64))
	f.Fuzz(func(t *testing.T, data []byte) {
		momFuzzRoundTrip(t, data, func() Sketch { return NewMoments() })
	})
}

func BenchmarkMoments(b *testing.B) {
	xs := make([]float64, 1024)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range xs {
		xs[i] = 100 + 10*rng.NormFloat64()
	}
	momBench(b, NewMoments, momentsFill,
		func(m *Moments, i int) { _ = m.Add(xs[i&1023]) },
		func(a, o *Moments) { a.Merge(o) })
}

// momExtreme draws values that stress rounding and the decoder's bounds:
// the value limit, subnormals, huge spreads and near-equal neighbours.
func momExtreme(rng *rand.Rand) float64 {
	switch rng.IntN(6) {
	case 0:
		return MaxMomentValue * float64(rng.IntN(3)-1)
	case 1:
		return math.SmallestNonzeroFloat64 * float64(rng.IntN(5)-2)
	case 2:
		return math.Nextafter(1, float64(rng.IntN(3)))
	case 3:
		return rng.NormFloat64() * math.Pow(10, float64(rng.IntN(200)-100))
	case 4:
		return 1e100 - float64(rng.IntN(3))*1e84
	}
	return 0.1 * float64(rng.IntN(3))
}

// TestMomentsExtremeValuesStayDecodable checks that every state Add and
// Merge build from extreme values satisfies the decoder's invariants.
func TestMomentsExtremeValuesStayDecodable(t *testing.T) {
	rng := rand.New(rand.NewPCG(77, 1))
	pool := []*Moments{}
	for range 300 {
		m := NewMoments()
		for range rng.IntN(20) {
			if err := m.Add(momExtreme(rng)); err != nil {
				t.Fatal(err)
			}
		}
		if len(pool) > 0 {
			m.Merge(pool[rng.IntN(len(pool))])
		}
		if err := NewMoments().UnmarshalBinary(momEncode(m)); err != nil {
			t.Fatalf("state % x does not decode: %v", momEncode(m), err)
		}
		if v := m.Variance(); m.Count() >= 2 && !(v >= 0 && !math.IsInf(v, 0)) {
			t.Fatalf("variance %v", v)
		}
		pool = append(pool, m)
	}
}
