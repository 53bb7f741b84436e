package sketch

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"unsafe"
)

func catEnc(c *Categorical) []byte { return c.AppendBinary(nil) }

func catClone(t testing.TB, c *Categorical) *Categorical {
	t.Helper()
	var d Categorical
	if err := d.UnmarshalBinary(catEnc(c)); err != nil {
		t.Fatalf("clone: %v", err)
	}
	return &d
}

// catFromCounts builds a state by adding counts in sorted key order.
func catFromCounts(capacity int, counts map[string]uint64) *Categorical {
	c := NewCategorical(capacity)
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		c.AddN(k, counts[k])
	}
	return c
}

// catZipfStream draws n keys "k<i>" with Zipf-distributed i in [0, imax].
func catZipfStream(seed uint64, n int, s float64, imax uint64) []string {
	rng := rand.New(rand.NewPCG(seed, 7))
	z := rand.NewZipf(rng, s, 1, imax)
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("k%d", z.Uint64())
	}
	return out
}

func catOracle(streams ...[]string) (map[string]uint64, uint64) {
	m := map[string]uint64{}
	var total uint64
	for _, s := range streams {
		for _, k := range s {
			m[k]++
			total++
		}
	}
	return m, total
}

// catCheckGuarantee checks the Misra-Gries guarantee and the invariants of
// c against the exact counts of the raw stream.
func catCheckGuarantee(t *testing.T, c *Categorical, truth map[string]uint64, total uint64) {
	t.Helper()
	if c.Total() != total {
		t.Fatalf("Total = %d, want %d", c.Total(), total)
	}
	b := c.ErrorBound()
	for k, want := range truth {
		got := c.Count(k)
		if got > want || got+b < want {
			t.Fatalf("Count(%q) = %d, true %d, bound %d: outside [true-bound, true]", k, got, want, b)
		}
	}
	var sum uint64
	for _, k := range c.AppendKeys(nil) {
		if truth[k] == 0 {
			t.Fatalf("tracked key %q never observed", k)
		}
		sum += c.Count(k)
	}
	if c.Other() != total-sum {
		t.Fatalf("Other = %d, want Total - sum of counts = %d", c.Other(), total-sum)
	}
	if c.Len() > c.Capacity() {
		t.Fatalf("Len %d > Capacity %d", c.Len(), c.Capacity())
	}
	if b > c.Other()/uint64(c.Capacity()+1) {
		t.Fatalf("bound %d > Other %d / (capacity %d + 1)", b, c.Other(), c.Capacity())
	}
	if c.Exact() != (b == 0) || (b == 0) != (c.Other() == 0) {
		t.Fatalf("Exact %v, bound %d, other %d disagree", c.Exact(), b, c.Other())
	}
}

func TestCategoricalExact(t *testing.T) {
	tests := []struct {
		name   string
		adds   []string
		addN   map[string]uint64
		counts map[string]uint64
		total  uint64
	}{
		{"empty", nil, nil, map[string]uint64{}, 0},
		{"single", []string{"cat"}, nil, map[string]uint64{"cat": 1}, 1},
		// a: 3 Adds; b: 1 Add + AddN 4 = 5; "" is a key like any other.
		{"mixed", []string{"a", "b", "a", "", "a"}, map[string]uint64{"b": 4, "c": 0},
			map[string]uint64{"a": 3, "b": 5, "": 1}, 9},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := NewCategorical(8)
			for _, k := range tc.adds {
				c.Add(k)
			}
			for k, n := range tc.addN {
				c.AddN(k, n)
			}
			if !c.Exact() || c.Other() != 0 || c.ErrorBound() != 0 {
				t.Errorf("Exact %v Other %d Bound %d, want exact", c.Exact(), c.Other(), c.ErrorBound())
			}
			if c.Total() != tc.total || c.Len() != len(tc.counts) {
				t.Errorf("Total %d Len %d, want %d %d", c.Total(), c.Len(), tc.total, len(tc.counts))
			}
			var want []string
			for k, n := range tc.counts {
				want = append(want, k)
				if got := c.Count(k); got != n {
					t.Errorf("Count(%q) = %d, want %d", k, got, n)
				}
			}
			slices.Sort(want)
			if got := c.AppendKeys([]string{"keep"}); !slices.Equal(got, append([]string{"keep"}, want...)) {
				t.Errorf("AppendKeys = %q, want keep + %q", got, want)
			}
			if c.Count("absent") != 0 {
				t.Errorf("Count(absent) != 0")
			}
		})
	}
}

func TestCategoricalSummaryHandComputed(t *testing.T) {
	t.Run("add", func(t *testing.T) {
		c := NewCategorical(2)
		for _, k := range []string{"a", "a", "a", "b", "b"} {
			c.Add(k)
		}
		// Full with a:3 b:2. c arrives (n=1): d = min(1, 3, 2) = 1, so
		// a:2 b:1, c is dropped; other = 3*1, bound = 1.
		c.Add("c")
		if c.Count("a") != 2 || c.Count("b") != 1 || c.Count("c") != 0 || c.Other() != 3 || c.ErrorBound() != 1 {
			t.Fatalf("after c: a=%d b=%d c=%d other=%d bound=%d", c.Count("a"), c.Count("b"), c.Count("c"), c.Other(), c.ErrorBound())
		}
		// d arrives with n=5: d = min(5, 2, 1) = 1, so a:1, b is dropped,
		// d enters with 4; other = 3 + 3*1 = 6, bound = 2, total = 11.
		c.AddN("d", 5)
		if c.Count("a") != 1 || c.Count("b") != 0 || c.Count("d") != 4 || c.Other() != 6 || c.ErrorBound() != 2 || c.Total() != 11 {
			t.Fatalf("after d: a=%d b=%d d=%d other=%d bound=%d total=%d", c.Count("a"), c.Count("b"), c.Count("d"), c.Other(), c.ErrorBound(), c.Total())
		}
		if c.Exact() {
			t.Fatal("Exact after summarising")
		}
		catCheckGuarantee(t, c, map[string]uint64{"a": 3, "b": 2, "c": 1, "d": 5}, 11)
	})
	t.Run("merge", func(t *testing.T) {
		a := catFromCounts(2, map[string]uint64{"a": 5, "b": 3})
		b := catFromCounts(2, map[string]uint64{"b": 1, "c": 4})
		// Sum a:5 b:4 c:4; the 3rd largest is 4, taken off all: a:1,
		// b and c dropped; other = 4+4+4 = 12, bound = 4.
		a.Merge(b)
		if a.Count("a") != 1 || a.Len() != 1 || a.Other() != 12 || a.ErrorBound() != 4 || a.Total() != 13 {
			t.Fatalf("a=%d len=%d other=%d bound=%d total=%d", a.Count("a"), a.Len(), a.Other(), a.ErrorBound(), a.Total())
		}
		catCheckGuarantee(t, a, map[string]uint64{"a": 5, "b": 4, "c": 4}, 13)
	})
	t.Run("capacity min", func(t *testing.T) {
		a := catFromCounts(8, map[string]uint64{"a": 5, "b": 3, "c": 1})
		b := NewCategorical(2)
		// Merging into capacity 2: a:5 b:3 c:1, 3rd largest 1: a:4 b:2,
		// other 3, bound 1.
		a.Merge(b)
		if a.Capacity() != 2 || a.Count("a") != 4 || a.Count("b") != 2 || a.Other() != 3 || a.ErrorBound() != 1 {
			t.Fatalf("cap=%d a=%d b=%d other=%d bound=%d", a.Capacity(), a.Count("a"), a.Count("b"), a.Other(), a.ErrorBound())
		}
	})
}

// catMergeRandomTree merges clones of states pairwise in a random order.
func catMergeRandomTree(t *testing.T, states []*Categorical, rng *rand.Rand, viaBytes bool) *Categorical {
	work := make([]*Categorical, len(states))
	for i, s := range states {
		work[i] = catClone(t, s)
	}
	for len(work) > 1 {
		i, j := rng.IntN(len(work)), rng.IntN(len(work)-1)
		if j >= i {
			j++
		}
		if viaBytes {
			if err := work[i].DecodeAndMerge(catEnc(work[j])); err != nil {
				t.Fatal(err)
			}
		} else {
			work[i].Merge(work[j])
		}
		work = slices.Delete(work, j, j+1)
	}
	return work[0]
}

func TestCategoricalErrorGuarantee(t *testing.T) {
	for _, tc := range []struct {
		seed     uint64
		capacity int
		s        float64
		imax     uint64
	}{
		{1, 16, 1.1, 2000},
		{2, 64, 1.5, 10000},
		{3, 8, 2.0, 500},
		{4, 100, 1.05, 300},
	} {
		t.Run(fmt.Sprintf("seed=%d/k=%d", tc.seed, tc.capacity), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(tc.seed, 99))
			var streams [][]string
			var states []*Categorical
			for i := range 12 {
				s := catZipfStream(tc.seed*100+uint64(i), 300+rng.IntN(700), tc.s, tc.imax)
				c := NewCategorical(tc.capacity)
				for _, k := range s {
					c.Add(k)
				}
				m, n := catOracle(s)
				catCheckGuarantee(t, c, m, n)
				streams = append(streams, s)
				states = append(states, c)
			}
			truth, total := catOracle(streams...)
			for order := range 20 {
				got := catMergeRandomTree(t, states, rng, order%2 == 1)
				if got.Exact() {
					t.Fatal("the case does not exercise the summary")
				}
				catCheckGuarantee(t, got, truth, total)
			}
			// One state fed the whole stream obeys the same bound.
			one := NewCategorical(tc.capacity)
			for _, s := range streams {
				for _, k := range s {
					one.Add(k)
				}
			}
			catCheckGuarantee(t, one, truth, total)
		})
	}
}

func TestCategoricalMergeExactProperties(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 5))
		var parts [3]*Categorical
		var streams [3][]string
		for i := range parts {
			parts[i] = NewCategorical(64)
			for range rng.IntN(40) {
				k := fmt.Sprintf("v%d", rng.IntN(50))
				n := uint64(1 + rng.IntN(5))
				parts[i].AddN(k, n)
				for range n {
					streams[i] = append(streams[i], k)
				}
			}
		}
		a, b, c := parts[0], parts[1], parts[2]
		merge := func(x, y *Categorical) *Categorical { z := catClone(t, x); z.Merge(y); return z }
		left := merge(merge(a, b), c)
		right := merge(a, merge(b, c))
		if !bytes.Equal(catEnc(left), catEnc(right)) {
			t.Fatalf("seed %d: (a+b)+c != a+(b+c)", seed)
		}
		if !bytes.Equal(catEnc(merge(a, b)), catEnc(merge(b, a))) {
			t.Fatalf("seed %d: a+b != b+a", seed)
		}
		all := NewCategorical(64)
		for _, s := range streams {
			for _, k := range s {
				all.Add(k)
			}
		}
		if !bytes.Equal(catEnc(left), catEnc(all)) {
			t.Fatalf("seed %d: merged != all observations added to one state", seed)
		}
		truth, total := catOracle(streams[:]...)
		catCheckGuarantee(t, left, truth, total)
		if !left.Exact() {
			t.Fatalf("seed %d: union of %d keys fits capacity 64 but state is summarised", seed, len(truth))
		}
		self := catClone(t, a)
		self.Merge(self)
		if !bytes.Equal(catEnc(self), catEnc(merge(a, a))) {
			t.Fatalf("seed %d: self merge differs from merging a copy", seed)
		}
	}
}

func TestCategoricalMergeSummarisedCommutes(t *testing.T) {
	// The reduction depends only on the multiset of summed counters, so
	// a+b == b+a holds exactly even past capacity.
	for seed := uint64(1); seed <= 10; seed++ {
		a, b := NewCategorical(10), NewCategorical(10)
		for _, k := range catZipfStream(seed, 500, 1.2, 200) {
			a.Add(k)
		}
		for _, k := range catZipfStream(seed+1000, 700, 1.3, 200) {
			b.Add(k)
		}
		ab, ba := catClone(t, a), catClone(t, b)
		ab.Merge(b)
		ba.Merge(a)
		if !bytes.Equal(catEnc(ab), catEnc(ba)) {
			t.Fatalf("seed %d: a+b != b+a", seed)
		}
		viaBytes := catClone(t, a)
		if err := viaBytes.DecodeAndMerge(catEnc(b)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(catEnc(ab), catEnc(viaBytes)) {
			t.Fatalf("seed %d: DecodeAndMerge != Merge", seed)
		}
	}
}

func TestCategoricalRoundTrip(t *testing.T) {
	summarised := NewCategorical(4)
	for _, k := range catZipfStream(9, 400, 1.2, 50) {
		summarised.Add(k)
	}
	var zero Categorical
	states := map[string]*Categorical{
		"zero value": &zero,
		"empty":      NewCategorical(3),
		"exact":      catFromCounts(0, map[string]uint64{"": 2, "z": 1, "b\xff": 1 << 40, "é": 7}),
		"summarised": summarised,
	}
	for name, s := range states {
		t.Run(name, func(t *testing.T) {
			enc := catEnc(s)
			if enc[0] != byte(FormatCategorical) || s.Format() != FormatCategorical {
				t.Fatalf("format byte %x", enc[0])
			}
			// Decode into a state holding other data: it is replaced.
			d := catFromCounts(2, map[string]uint64{"junk": 3, "more": 1, "x": 1})
			if err := d.UnmarshalBinary(enc); err != nil {
				t.Fatal(err)
			}
			if got := catEnc(d); !bytes.Equal(got, enc) {
				t.Fatalf("re-encoding differs:\n%x\n%x", got, enc)
			}
			if d.Total() != s.Total() || d.Capacity() != s.Capacity() || d.ErrorBound() != s.ErrorBound() {
				t.Fatalf("decoded total/capacity/bound differ")
			}
			// Merging into an empty state of the same capacity is a copy.
			e := NewCategorical(s.Capacity())
			if err := e.DecodeAndMerge(enc); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(catEnc(e), enc) {
				t.Fatalf("DecodeAndMerge into empty differs")
			}
		})
	}
	if !bytes.Equal(catEnc(&zero), catEnc(NewCategorical(DefaultCategoricalCapacity))) {
		t.Error("zero value and NewCategorical(default) encode differently")
	}
}

func TestCategoricalDecodeAndMergeMatchesMerge(t *testing.T) {
	for seed := uint64(1); seed <= 10; seed++ {
		a, b := NewCategorical(32), NewCategorical(32)
		for _, k := range catZipfStream(seed, 200, 1.5, 40) {
			a.Add(k)
		}
		for _, k := range catZipfStream(seed+50, 300, 1.5, 40) {
			b.Add(k)
		}
		want := catClone(t, a)
		want.Merge(b)
		got := catClone(t, a)
		if err := got.DecodeAndMerge(catEnc(b)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(catEnc(got), catEnc(want)) {
			t.Fatalf("seed %d: DecodeAndMerge != Merge", seed)
		}
	}
}

// catRawEnc writes an encoding field by field, to build invalid inputs.
func catRawEnc(capacity, bound, other uint64, entries ...any) []byte {
	b := []byte{byte(FormatCategorical)}
	b = appendUvarint(b, capacity)
	b = appendUvarint(b, bound)
	b = appendUvarint(b, other)
	b = appendUvarint(b, uint64(len(entries)/2))
	for i := 0; i < len(entries); i += 2 {
		k := entries[i].(string)
		b = appendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = appendUvarint(b, entries[i+1].(uint64))
	}
	return b
}

func TestCategoricalCorruptInputs(t *testing.T) {
	valid := catRawEnc(4, 1, 5, "a", uint64(3), "b", uint64(1))
	var v Categorical
	if err := v.UnmarshalBinary(valid); err != nil {
		t.Fatalf("hand-built valid encoding refused: %v", err)
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrCorrupt},
		{"wrong format", append([]byte{byte(FormatTDigest)}, valid[1:]...), ErrFormat},
		{"capacity 0", catRawEnc(0, 0, 0), ErrCorrupt},
		{"capacity too large", catRawEnc(MaxCategoricalCapacity+1, 0, 0), ErrCorrupt},
		{"more keys than capacity", catRawEnc(1, 0, 0, "a", uint64(1), "b", uint64(1)), ErrCorrupt},
		{"zero count", catRawEnc(4, 0, 0, "a", uint64(0)), ErrCorrupt},
		{"unsorted keys", catRawEnc(4, 0, 0, "b", uint64(1), "a", uint64(1)), ErrCorrupt},
		{"duplicate keys", catRawEnc(4, 0, 0, "a", uint64(1), "a", uint64(1)), ErrCorrupt},
		{"bound without other", catRawEnc(4, 1, 0, "a", uint64(1)), ErrCorrupt},
		{"other without bound", catRawEnc(4, 0, 3, "a", uint64(1)), ErrCorrupt},
		// (capacity+1)*bound = 5*2 = 10 > other 9.
		{"bound too large", catRawEnc(4, 2, 9, "a", uint64(1)), ErrCorrupt},
		{"huge key count", append(catRawEnc(4, 0, 0)[:4], 0xff, 0xff, 0x03), ErrCorrupt},
		{"key past end", append(catRawEnc(4, 0, 0)[:4], 1, 200, 'a'), ErrCorrupt},
		{"trailing byte", append(slices.Clone(valid), 0), ErrCorrupt},
	}
	for n := 0; n < len(valid); n++ {
		tests = append(tests, struct {
			name string
			in   []byte
			want error
		}{fmt.Sprintf("truncated to %d", n), valid[:n], ErrCorrupt})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recv := catFromCounts(4, map[string]uint64{"a": 2, "x": 9})
			before := catEnc(recv)
			if err := recv.DecodeAndMerge(tc.in); !errors.Is(err, tc.want) {
				t.Fatalf("DecodeAndMerge err = %v, want %v", err, tc.want)
			}
			if err := recv.UnmarshalBinary(tc.in); !errors.Is(err, tc.want) {
				t.Fatalf("UnmarshalBinary err = %v, want %v", err, tc.want)
			}
			if !bytes.Equal(catEnc(recv), before) {
				t.Fatal("receiver changed by a failed decode")
			}
		})
	}
}

func TestCategoricalCapacity(t *testing.T) {
	for _, tc := range []struct{ in, want int }{
		{-5, DefaultCategoricalCapacity}, {0, DefaultCategoricalCapacity}, {1, 1},
		{77, 77}, {MaxCategoricalCapacity + 1, MaxCategoricalCapacity},
	} {
		if got := NewCategorical(tc.in).Capacity(); got != tc.want {
			t.Errorf("NewCategorical(%d).Capacity() = %d, want %d", tc.in, got, tc.want)
		}
	}
	var zero Categorical
	zero.Add("a")
	if zero.Capacity() != DefaultCategoricalCapacity || zero.Count("a") != 1 {
		t.Errorf("zero value unusable")
	}
	// Merging keeps the smaller capacity whichever side it is on.
	big, small := NewCategorical(100), NewCategorical(3)
	big.Merge(small)
	small2, big2 := NewCategorical(3), NewCategorical(100)
	small2.Merge(big2)
	if big.Capacity() != 3 || small2.Capacity() != 3 {
		t.Errorf("capacities after merge %d %d, want 3 3", big.Capacity(), small2.Capacity())
	}
	big3 := NewCategorical(100)
	if err := big3.DecodeAndMerge(catEnc(NewCategorical(5))); err != nil || big3.Capacity() != 5 {
		t.Errorf("DecodeAndMerge capacity %d, err %v; want 5", big3.Capacity(), err)
	}
	big.Merge(nil) // a nil state is empty
	if big.Total() != 0 {
		t.Errorf("Merge(nil) changed the state")
	}
}

func TestCategoricalReset(t *testing.T) {
	c := NewCategorical(4)
	for _, k := range catZipfStream(3, 300, 1.1, 100) {
		c.Add(k)
	}
	c.Reset()
	if !bytes.Equal(catEnc(c), catEnc(NewCategorical(4))) {
		t.Fatalf("Reset state encodes as %x", catEnc(c))
	}
	if cap(c.keys) == 0 || cap(c.counts) == 0 {
		t.Error("Reset dropped the slices' memory")
	}
	c.Add("a")
	if c.Count("a") != 1 || c.Total() != 1 || !c.Exact() {
		t.Error("state unusable after Reset")
	}
}

func TestCategoricalMemSize(t *testing.T) {
	c := NewCategorical(1000)
	empty := c.MemSize()
	if empty <= 0 {
		t.Fatalf("MemSize of empty = %d", empty)
	}
	for i := range 500 {
		c.Add(fmt.Sprintf("key-%04d", i))
	}
	// 500 keys hold at least their 8 key bytes, a 16-byte header and an
	// 8-byte count each.
	if got := c.MemSize(); got < empty+500*(8+16+8) {
		t.Fatalf("MemSize with 500 keys = %d, want >= %d", got, empty+500*32)
	}
}

func TestCategoricalSaturation(t *testing.T) {
	c := NewCategorical(2)
	c.AddN("a", math.MaxUint64-1)
	c.AddN("b", 5) // only 1 fits
	if c.Total() != math.MaxUint64 || c.Count("b") != 1 {
		t.Fatalf("total %d b %d", c.Total(), c.Count("b"))
	}
	c.Add("c")
	if c.Total() != math.MaxUint64 || c.Len() != 2 {
		t.Fatalf("add past saturation changed the state")
	}
	d := catClone(t, c)
	d.Merge(c)
	if d.Total() != math.MaxUint64 || d.Count("a") != math.MaxUint64 {
		t.Fatalf("saturated merge: total %d a %d", d.Total(), d.Count("a"))
	}
	e := catClone(t, d)
	if !bytes.Equal(catEnc(e), catEnc(d)) {
		t.Fatal("saturated state does not round-trip")
	}
}

func TestCategoricalAllocs(t *testing.T) {
	keys := make([]string, 64)
	for i := range keys {
		keys[i] = fmt.Sprintf("class-%d", i)
	}
	full := NewCategorical(len(keys))
	other := NewCategorical(len(keys))
	for _, k := range keys {
		full.AddN(k, 1000)
		other.Add(k)
	}
	enc := catEnc(other)
	i := 0
	tests := []struct {
		name string
		f    func()
	}{
		{"add existing", func() { full.Add(keys[i%len(keys)]); i++ }},
		{"addN dropped new key", func() { full.AddN("never-tracked", 1) }},
		{"merge existing keys", func() { full.Merge(other) }},
		{"decode_and_merge existing keys", func() {
			if err := full.DecodeAndMerge(enc); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(200, tc.f); n != 0 {
				t.Errorf("%v allocs per run, want 0", n)
			}
		})
	}
	// A summarised merge reuses the selection buffer once it has grown.
	a, b := NewCategorical(8), NewCategorical(8)
	for _, k := range catZipfStream(1, 200, 1.3, 30) {
		a.Add(k)
	}
	for _, k := range catZipfStream(2, 200, 1.3, 30) {
		b.Add(k)
	}
	a.Merge(b)
	t.Logf("summarised merge: %v allocs per run", testing.AllocsPerRun(50, func() { a.Merge(b) }))
}

func TestCategoricalReadsDoNotMutate(t *testing.T) {
	c := NewCategorical(8)
	for _, k := range catZipfStream(4, 500, 1.2, 40) {
		c.Add(k)
	}
	ref := catFromCounts(8, map[string]uint64{"k1": 5, "k2": 3, "zz": 1})
	read := func() {
		_ = c.Count("k1") + c.Count("nope") + c.Other() + c.Total() + c.ErrorBound()
		_, _ = c.Exact(), c.Len()
		_, _ = c.Capacity(), c.MemSize()
		_ = c.AppendKeys(nil)
		_ = c.AppendBinary(nil)
		_ = c.Format()
		for d := PSI; d <= ChiSquared; d++ {
			if _, err := CategoricalDistance(d, c, ref, DistanceOptions{}); err != nil {
				t.Error(err)
			}
			if _, err := CategoricalDistance(d, ref, c, DistanceOptions{}); err != nil {
				t.Error(err)
			}
		}
	}
	checkReadOnly(t, c, read)
}

func TestNthLargest(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for trial := range 300 {
		n := 1 + rng.IntN(200)
		a := make([]uint64, n)
		spread := uint64(1 + rng.IntN(10))
		if trial%3 == 0 {
			spread = 1000000
		}
		for i := range a {
			a[i] = rng.Uint64N(spread)
		}
		sorted := slices.Clone(a)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i] > sorted[j] })
		pos := rng.IntN(n)
		for _, budget := range []int{0, 1, 3, -1} {
			b := slices.Clone(a)
			var got uint64
			if budget < 0 {
				got = nthLargest(b, pos)
			} else {
				got = nthLargestBudget(b, pos, budget)
			}
			if got != sorted[pos] {
				t.Fatalf("trial %d budget %d: nthLargest(%v, %d) = %d, want %d", trial, budget, a, pos, got, sorted[pos])
			}
		}
	}
}

func FuzzDecodeCategorical(f *testing.F) {
	f.Add(catEnc(NewCategorical(3)))
	f.Add(catEnc(catFromCounts(4, map[string]uint64{"a": 3, "": 1, "bc": 1 << 33})))
	s := NewCategorical(3)
	for _, k := range catZipfStream(5, 100, 1.2, 20) {
		s.Add(k)
	}
	f.Add(catEnc(s))
	f.Add(catRawEnc(4, 1, 5, "a", uint64(3), "b", uint64(1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := decodeRoundTrip(t, data, func() Sketch { return &Categorical{} })
		if s == nil {
			return
		}
		c := s.(*Categorical)
		if c.Len() > c.Capacity() {
			t.Fatalf("Len %d > Capacity %d", c.Len(), c.Capacity())
		}
		// Merging it into a populated state must keep that state valid.
		m := catFromCounts(2, map[string]uint64{"a": 2, "zz": 1})
		if err := m.DecodeAndMerge(data); err != nil {
			t.Fatalf("DecodeAndMerge refused what UnmarshalBinary took: %v", err)
		}
		var back Categorical
		if err := back.UnmarshalBinary(catEnc(m)); err != nil {
			t.Fatalf("merged state does not round-trip: %v", err)
		}
	})
}

func BenchmarkCategorical(b *testing.B) {
	const k = 1024
	keys := make([]string, k)
	for i := range keys {
		keys[i] = fmt.Sprintf("feature-value-%04d", i)
	}
	exact := func(seed uint64) *Categorical {
		rng := rand.New(rand.NewPCG(seed, 1))
		c := NewCategorical(k)
		for _, key := range keys {
			c.AddN(key, 1+rng.Uint64N(1000))
		}
		return c
	}
	summarised := func(seed uint64) *Categorical {
		c := NewCategorical(k)
		for _, key := range catZipfStream(seed, 200000, 1.1, 100000) {
			c.Add(key)
		}
		return c
	}
	const nStates = 16
	kinds := []struct {
		name string
		mk   func(uint64) *Categorical
	}{{"exact", exact}, {"summarised", summarised}}
	b.Run(fmt.Sprintf("op=add/k=%d", k), func(b *testing.B) {
		c := exact(1)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			c.Add(keys[i&(k-1)])
			i++
		}
		// After the loop: b.Loop's first call resets the reported metrics.
		b.ReportMetric(float64(len(catEnc(c))), "B/state")
	})
	b.Run(fmt.Sprintf("op=add_stream/zipf=1.1/domain=100000/k=%d", k), func(b *testing.B) {
		// Mostly new keys once full: the Misra-Gries path, amortised.
		stream := catZipfStream(7, 1<<16, 1.1, 100000)
		c := NewCategorical(k)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			c.Add(stream[i&(1<<16-1)])
			i++
		}
		b.ReportMetric(float64(len(catEnc(c))), "B/state")
	})
	for _, kind := range kinds {
		states := make([]*Categorical, nStates)
		encs := make([][]byte, nStates)
		size := 0
		for i := range states {
			states[i] = kind.mk(uint64(i + 1))
			encs[i] = catEnc(states[i])
			size += len(encs[i])
		}
		size /= nStates
		b.Run(fmt.Sprintf("op=merge/state=%s/k=%d", kind.name, k), func(b *testing.B) {
			acc := kind.mk(100)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			i := 0
			for b.Loop() {
				acc.Merge(states[i%nStates])
				i++
			}
			b.ReportMetric(float64(size), "B/state")
		})
		b.Run(fmt.Sprintf("op=decode_and_merge/state=%s/k=%d", kind.name, k), func(b *testing.B) {
			acc := kind.mk(100)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			i := 0
			for b.Loop() {
				if err := acc.DecodeAndMerge(encs[i%nStates]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(size), "B/state")
		})
	}
}

func TestCategoricalGoldenEncoding(t *testing.T) {
	// The example in docs/format.md: format, capacity 4, bound 0, other 0,
	// 2 keys, "a" count 3, "b" count 1. Keys added out of order.
	c := NewCategorical(4)
	c.Add("b")
	c.AddN("a", 3)
	want := []byte{0x07, 0x04, 0x00, 0x00, 0x02, 0x01, 'a', 0x03, 0x01, 'b', 0x01}
	if got := catEnc(c); !bytes.Equal(got, want) {
		t.Fatalf("encoding %x, want %x", got, want)
	}
}

func TestCategoricalCopiesNewKeys(t *testing.T) {
	body := strings.Repeat("request body ", 100)
	key := body[8:12] // "body", pointing into the large string
	c := NewCategorical(4)
	c.Add(key)
	got := c.AppendKeys(nil)
	if len(got) != 1 || got[0] != "body" {
		t.Fatalf("keys %q", got)
	}
	if unsafe.StringData(got[0]) == unsafe.StringData(key) {
		t.Fatal("the state keeps the caller's backing array alive")
	}
}
