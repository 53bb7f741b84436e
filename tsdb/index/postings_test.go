package index

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

// cursor is the reference model of a Postings over a sorted slice.
type cursor struct {
	list []SeriesRef
	i    int
}

func (c *cursor) next() bool {
	if c.i < len(c.list) {
		c.i++
	}
	return c.i < len(c.list)
}

func (c *cursor) seek(v SeriesRef) bool {
	if c.i < 0 {
		c.i = 0
	}
	for c.i < len(c.list) && c.list[c.i] < v {
		c.i++
	}
	return c.i < len(c.list)
}

func randSet(r *rand.Rand, n, max int) []SeriesRef {
	set := map[SeriesRef]struct{}{}
	for range n {
		set[SeriesRef(r.IntN(max))] = struct{}{}
	}
	out := make([]SeriesRef, 0, len(set))
	for v := range set {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

func intersectOracle(sets ...[]SeriesRef) []SeriesRef {
	var out []SeriesRef
	for _, v := range sets[0] {
		in := true
		for _, s := range sets[1:] {
			if _, ok := slices.BinarySearch(s, v); !ok {
				in = false
			}
		}
		if in {
			out = append(out, v)
		}
	}
	return out
}

func unionOracle(sets ...[]SeriesRef) []SeriesRef {
	var out []SeriesRef
	for _, s := range sets {
		out = append(out, s...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func withoutOracle(a, b []SeriesRef) []SeriesRef {
	var out []SeriesRef
	for _, v := range a {
		if _, ok := slices.BinarySearch(b, v); !ok {
			out = append(out, v)
		}
	}
	return out
}

func lists(sets [][]SeriesRef) []Postings {
	ps := make([]Postings, len(sets))
	for i, s := range sets {
		ps[i] = NewListPostings(s)
	}
	return ps
}

// checkOps drives p and the model of want with the same random mix of Next
// and Seek calls and compares every answer.
func checkOps(t *testing.T, r *rand.Rand, name string, p Postings, want []SeriesRef, max int) {
	t.Helper()
	c := &cursor{list: want, i: -1}
	for step := 0; step < 4*len(want)+10; step++ {
		var got, exp bool
		op := "Next"
		if r.IntN(3) == 0 {
			v := SeriesRef(r.IntN(max + 2))
			if c.i >= 0 && c.i < len(want) && r.IntN(2) == 0 {
				v = want[c.i] - SeriesRef(r.IntN(3)) // seek backwards or onto the current one
				if v > want[c.i] {
					v = 0
				}
			}
			op = "Seek"
			got, exp = p.Seek(v), c.seek(v)
		} else {
			got, exp = p.Next(), c.next()
		}
		if got != exp {
			t.Fatalf("%s step %d %s: got %v, want %v (want list %v)", name, step, op, got, exp, want)
		}
		if got && p.At() != want[c.i] {
			t.Fatalf("%s step %d %s: At %d, want %d", name, step, op, p.At(), want[c.i])
		}
		if !exp {
			if p.Next() || p.Seek(0) {
				t.Fatalf("%s: exhausted iterator moved", name)
			}
			break
		}
	}
	if err := p.Err(); err != nil {
		t.Fatalf("%s: Err %v", name, err)
	}
}

func TestPostingsCombinators(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := range 400 {
		k := 1 + r.IntN(5)
		max := 1 + r.IntN(200)
		sets := make([][]SeriesRef, k)
		for i := range sets {
			sets[i] = randSet(r, r.IntN(max+1), max)
		}
		checkOps(t, r, "list", NewListPostings(sets[0]), sets[0], max)
		checkOps(t, r, "intersect", Intersect(lists(sets)...), intersectOracle(sets...), max)
		checkOps(t, r, "merge", Merge(lists(sets)...), unionOracle(sets...), max)
		if k >= 2 {
			checkOps(t, r, "without", Without(NewListPostings(sets[0]), NewListPostings(sets[1])), withoutOracle(sets[0], sets[1]), max)
			// Nested: (a ∩ b) − (c ∪ d), the shape Select builds.
			half := k / 2
			want := withoutOracle(intersectOracle(sets[:half]...), unionOracle(sets[half:]...))
			got := Without(Intersect(lists(sets[:half])...), Merge(lists(sets[half:])...))
			checkOps(t, r, "nested", got, want, max)
		}
		if iter%50 == 0 {
			all, err := ExpandPostings(Merge(lists(sets)...))
			if err != nil || !slices.Equal(all, unionOracle(sets...)) {
				t.Fatalf("ExpandPostings = %v, %v", all, err)
			}
		}
	}
}

func TestPostingsSeekSemantics(t *testing.T) {
	list := []SeriesRef{2, 4, 6, 8}
	for name, mk := range map[string]func() Postings{
		"list": func() Postings { return NewListPostings(list) },
		"intersect": func() Postings {
			return Intersect(NewListPostings(list), NewListPostings([]SeriesRef{1, 2, 4, 6, 8, 9}))
		},
		"merge": func() Postings { return Merge(NewListPostings([]SeriesRef{2, 6}), NewListPostings([]SeriesRef{4, 8})) },
		"without": func() Postings {
			return Without(NewListPostings([]SeriesRef{1, 2, 3, 4, 6, 8}), NewListPostings([]SeriesRef{1, 3}))
		},
		"range": func() Postings { return Without(&rangePostings{n: 9}, NewListPostings([]SeriesRef{0, 1, 3, 5, 7})) },
	} {
		p := mk()
		// Seek before Next positions on the first value >= v, including 0.
		if !p.Seek(0) || p.At() != 2 {
			t.Fatalf("%s: Seek(0) before Next: At %d", name, p.At())
		}
		// Seeking to a smaller or equal value does not move.
		if !p.Seek(1) || p.At() != 2 || !p.Seek(2) || p.At() != 2 {
			t.Fatalf("%s: backward Seek moved to %d", name, p.At())
		}
		if !p.Seek(5) || p.At() != 6 {
			t.Fatalf("%s: Seek(5): At %d", name, p.At())
		}
		if !p.Next() || p.At() != 8 {
			t.Fatalf("%s: Next after Seek: At %d", name, p.At())
		}
		if p.Seek(9) || p.Next() || p.Seek(0) {
			t.Fatalf("%s: iterator not exhausted", name)
		}
		if p.Err() != nil {
			t.Fatalf("%s: Err %v", name, p.Err())
		}
	}
	if p := Intersect(); p.Next() {
		t.Fatal("empty Intersect has values")
	}
	if p := Merge(); p.Next() {
		t.Fatal("empty Merge has values")
	}
	if p := NewListPostings(nil); p.Next() || p.Seek(0) {
		t.Fatal("empty list has values")
	}
}

func TestPostingsErrors(t *testing.T) {
	boom := errors.New("boom")
	l := func() Postings { return NewListPostings([]SeriesRef{1, 2, 3}) }
	for name, p := range map[string]Postings{
		"intersect":    Intersect(l(), ErrPostings(boom)),
		"merge":        Merge(l(), ErrPostings(boom)),
		"without-full": Without(ErrPostings(boom), l()),
		"without-drop": Without(l(), ErrPostings(boom)),
	} {
		for p.Next() {
		}
		if !errors.Is(p.Err(), boom) {
			t.Errorf("%s: Err = %v, want boom", name, p.Err())
		}
	}
}

func TestPostingsAllocs(t *testing.T) {
	a := make([]SeriesRef, 1000)
	b := make([]SeriesRef, 500)
	for i := range a {
		a[i] = SeriesRef(i)
	}
	for i := range b {
		b[i] = SeriesRef(2 * i)
	}
	allocs := testing.AllocsPerRun(100, func() {
		p := Without(Intersect(NewListPostings(a), NewListPostings(b)), Merge(NewListPostings(b[:10]), NewListPostings(b[20:30])))
		for p.Next() {
		}
	})
	// Iteration itself allocates nothing; building the tree allocates a
	// handful of small objects, independent of the list lengths.
	if allocs > 12 {
		t.Errorf("%v allocations per combined iteration, want <= 12", allocs)
	}
}
