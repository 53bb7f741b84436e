package index

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// Values are chosen so that prefixes, suffixes, alternations, case and
// newlines all matter; "" values are dropped by the index.
var testValues = []string{"", "a", "b", "ab", "abc", "bar", "baz", "foo", "foobar", "x", "eu", "us", "A", "ü", "a\nb"}

var testNames = []string{"model", "version", "slice", "foo", "job", "class"}

func randLabels(r *rand.Rand) labels.Labels {
	b := labels.NewScratchBuilder(8)
	b.Add(metricName, []string{"accuracy", "recall", "up", "a"}[r.IntN(4)])
	for _, n := range testNames {
		if r.IntN(3) > 0 {
			b.Add(n, testValues[r.IntN(len(testValues))])
		}
	}
	b.Sort()
	return b.Labels().WithoutEmpty()
}

// matcherPool covers every match type, every empty-string case and the
// fast paths (set alternations, prefixes, suffixes, .* and .+).
func matcherPool(t testing.TB) []*labels.Matcher {
	specs := []struct {
		t    labels.MatchType
		n, v string
	}{
		{labels.MatchEqual, "foo", ""},
		{labels.MatchEqual, "foo", "bar"},
		{labels.MatchEqual, "nope", ""},
		{labels.MatchEqual, "nope", "x"},
		{labels.MatchEqual, metricName, "accuracy"},
		{labels.MatchEqual, "", ""},
		{labels.MatchNotEqual, "foo", "x"},
		{labels.MatchNotEqual, "foo", ""},
		{labels.MatchNotEqual, "nope", "x"},
		{labels.MatchNotEqual, "nope", ""},
		{labels.MatchNotEqual, "model", "a"},
		{labels.MatchNotEqual, "", ""},
		{labels.MatchRegexp, "foo", "|bar"},
		{labels.MatchRegexp, "foo", ""},
		{labels.MatchRegexp, "foo", ".*"},
		{labels.MatchRegexp, "foo", ".+"},
		{labels.MatchRegexp, "nope", ".*"},
		{labels.MatchRegexp, "nope", ".+"},
		{labels.MatchRegexp, "slice", "eu|us"},
		{labels.MatchRegexp, "slice", "a|b|c|x|eu|us|foo|bar|baz|ab|abc|zz"},
		{labels.MatchRegexp, "model", "a.*"},
		{labels.MatchRegexp, "model", "foo.+"},
		{labels.MatchRegexp, "model", ".*r"},
		{labels.MatchRegexp, "model", ".*a.*"},
		{labels.MatchRegexp, "model", "(?i)a"},
		{labels.MatchRegexp, "model", "a.b"},
		{labels.MatchRegexp, "model", "a.*|"},
		{labels.MatchRegexp, "version", "[a-c]+"},
		{labels.MatchRegexp, metricName, "acc.*|up"},
		{labels.MatchNotRegexp, "foo", "|bar"},
		{labels.MatchNotRegexp, "foo", ".*"},
		{labels.MatchNotRegexp, "foo", ".+"},
		{labels.MatchNotRegexp, "foo", ""},
		{labels.MatchNotRegexp, "slice", "eu|us"},
		{labels.MatchNotRegexp, "slice", "a|b|c|x|eu|us|foo|bar|baz|ab|abc|zz"},
		{labels.MatchNotRegexp, "model", "a.*"},
		{labels.MatchNotRegexp, "model", ".*r"},
		{labels.MatchNotRegexp, "nope", ".*"},
		{labels.MatchNotRegexp, "job", "b.*|"},
	}
	out := make([]*labels.Matcher, len(specs))
	for i, s := range specs {
		m, err := labels.NewMatcher(s.t, s.n, s.v)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = m
	}
	return out
}

// fixture is an Index plus the oracle's view of it.
type fixture struct {
	ix     *Index
	series map[SeriesRef]labels.Labels
	mint   map[SeriesRef]int64
	maxt   map[SeriesRef]int64

	// Memo of each matcher's verdict per series, in refs order; reset
	// whenever series changes.
	refs  []SeriesRef
	memo  map[*labels.Matcher][]bool
	valid bool
}

func newFixture(t testing.TB, seed uint64, n int, opts ...Option) *fixture {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	f := &fixture{ix: New(opts...), series: map[SeriesRef]labels.Labels{}, mint: map[SeriesRef]int64{}, maxt: map[SeriesRef]int64{}}
	for range n {
		ls := randLabels(r)
		ref, created, err := f.ix.GetOrCreate(ls)
		if err != nil {
			t.Fatal(err)
		}
		if old, ok := f.series[ref]; ok == created || (ok && !labels.Equal(old, ls)) {
			t.Fatalf("GetOrCreate(%s) = %d, created %v; oracle has %s", ls, ref, created, old)
		}
		f.series[ref] = ls
		f.valid = false
		if r.IntN(10) == 0 {
			continue // no data
		}
		for range 1 + r.IntN(3) {
			ts := int64(r.IntN(1000))
			f.ix.Touch(ref, ts)
			if cur, ok := f.mint[ref]; !ok || ts < cur {
				f.mint[ref] = ts
			}
			if cur, ok := f.maxt[ref]; !ok || ts > cur {
				f.maxt[ref] = ts
			}
		}
	}
	return f
}

func (f *fixture) overlaps(ref SeriesRef, mint, maxt int64) bool {
	lo, ok := f.mint[ref]
	return ok && lo <= maxt && f.maxt[ref] >= mint
}

func (f *fixture) delete(refs []SeriesRef) {
	f.valid = false
	f.ix.Delete(refs)
	for _, ref := range refs {
		delete(f.series, ref)
		delete(f.mint, ref)
		delete(f.maxt, ref)
	}
}

// oracle evaluates the matchers on every series' labels directly (each
// matcher once per series, memoised).
func (f *fixture) oracle(ms []*labels.Matcher) []SeriesRef {
	if !f.valid {
		f.refs = f.refs[:0]
		for ref := range f.series {
			f.refs = append(f.refs, ref)
		}
		slices.Sort(f.refs)
		f.memo = map[*labels.Matcher][]bool{}
		f.valid = true
	}
	vecs := make([][]bool, len(ms))
	for i, m := range ms {
		v, ok := f.memo[m]
		if !ok {
			v = make([]bool, len(f.refs))
			for j, ref := range f.refs {
				v[j] = matchesAll(f.series[ref], []*labels.Matcher{m})
			}
			f.memo[m] = v
		}
		vecs[i] = v
	}
	var out []SeriesRef
	for j, ref := range f.refs {
		ok := true
		for _, v := range vecs {
			ok = ok && v[j]
		}
		if ok {
			out = append(out, ref)
		}
	}
	return out
}

func (f *fixture) oracleMeta(mint, maxt int64, ms []*labels.Matcher, name string) (names, values []string, series []labels.Labels) {
	ns, vs := map[string]struct{}{}, map[string]struct{}{}
	for _, ref := range f.oracle(ms) {
		if !f.overlaps(ref, mint, maxt) {
			continue
		}
		ls := f.series[ref]
		series = append(series, ls)
		ls.Range(func(l labels.Label) { ns[l.Name] = struct{}{} })
		if v := ls.Get(name); v != "" {
			vs[v] = struct{}{}
		}
	}
	slices.SortFunc(series, labels.Compare)
	return sortedKeys(ns), sortedKeys(vs), series
}

func randMatchers(r *rand.Rand, pool []*labels.Matcher) []*labels.Matcher {
	ms := make([]*labels.Matcher, r.IntN(5))
	for i := range ms {
		ms[i] = pool[r.IntN(len(pool))]
	}
	return ms
}

func fmtMatchers(ms []*labels.Matcher) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = m.String()
	}
	return "{" + strings.Join(s, ", ") + "}"
}

// expand returns a function that drains Select's result, failing t on
// errors: expand(t)(ix.Select(ms...)).
func expand(t testing.TB) func(Postings, error) []SeriesRef {
	return func(p Postings, err error) []SeriesRef {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		refs, err := ExpandPostings(p)
		if err != nil {
			t.Fatal(err)
		}
		return refs
	}
}

func (f *fixture) checkSelect(t *testing.T, ms []*labels.Matcher) {
	t.Helper()
	got := expand(t)(f.ix.Select(ms...))
	if want := f.oracle(ms); !slices.Equal(got, want) {
		t.Fatalf("Select%s: got %d refs %v, want %d %v", fmtMatchers(ms), len(got), head(got), len(want), head(want))
	}
}

func head[T any](s []T) []T { return s[:min(len(s), 10)] }

func (f *fixture) checkMeta(t *testing.T, mint, maxt int64, ms []*labels.Matcher, name string) {
	t.Helper()
	wn, wv, ws := f.oracleMeta(mint, maxt, ms, name)
	gn, err := f.ix.LabelNames(mint, maxt, ms...)
	if err != nil || !slices.Equal(gn, wn) {
		t.Fatalf("LabelNames(%d, %d, %s) = %q, %v; want %q", mint, maxt, fmtMatchers(ms), gn, err, wn)
	}
	gv, err := f.ix.LabelValues(name, mint, maxt, ms...)
	if err != nil || !slices.Equal(gv, wv) {
		t.Fatalf("LabelValues(%q, %d, %d, %s) = %q, %v; want %q", name, mint, maxt, fmtMatchers(ms), gv, err, wv)
	}
	gs, err := f.ix.Series(mint, maxt, ms...)
	if err != nil || !slices.EqualFunc(gs, ws, labels.Equal) {
		t.Fatalf("Series(%d, %d, %s) = %d series, %v; want %d", mint, maxt, fmtMatchers(ms), len(gs), err, len(ws))
	}
}

func TestSelectMatchesOracle(t *testing.T) {
	pool := matcherPool(t)
	for _, seed := range []uint64{1, 2, 3} {
		f := newFixture(t, seed, 600)
		r := rand.New(rand.NewPCG(seed, 7))
		// Every single matcher, then every pair, then random combinations.
		for _, m := range pool {
			f.checkSelect(t, []*labels.Matcher{m})
		}
		if seed == 1 {
			for _, a := range pool {
				for _, b := range pool {
					f.checkSelect(t, []*labels.Matcher{a, b})
				}
			}
		}
		for range 300 {
			f.checkSelect(t, randMatchers(r, pool))
		}
		// Delete a third of the series and check again.
		var victims []SeriesRef
		for ref := range f.series {
			if r.IntN(3) == 0 {
				victims = append(victims, ref)
			}
		}
		f.delete(victims)
		for range 300 {
			f.checkSelect(t, randMatchers(r, pool))
		}
		if got := f.ix.NumSeries(); got != len(f.series) {
			t.Fatalf("NumSeries %d, want %d", got, len(f.series))
		}
	}
}

// TestSelectEmptyStringCases pins the documented Prometheus cases on a tiny,
// readable index.
func TestSelectEmptyStringCases(t *testing.T) {
	ix := New()
	mk := func(s ...string) SeriesRef {
		ref, _, err := ix.GetOrCreate(labels.FromStrings(s...))
		if err != nil {
			t.Fatal(err)
		}
		return ref
	}
	none := mk("__name__", "m")
	bar := mk("__name__", "m", "foo", "bar")
	x := mk("__name__", "m", "foo", "x")
	for _, c := range []struct {
		t    labels.MatchType
		v    string
		want []SeriesRef
	}{
		{labels.MatchEqual, "", []SeriesRef{none}},
		{labels.MatchEqual, "bar", []SeriesRef{bar}},
		{labels.MatchNotEqual, "", []SeriesRef{bar, x}},
		{labels.MatchNotEqual, "x", []SeriesRef{none, bar}},
		{labels.MatchRegexp, "|bar", []SeriesRef{none, bar}},
		{labels.MatchRegexp, ".*", []SeriesRef{none, bar, x}},
		{labels.MatchRegexp, ".+", []SeriesRef{bar, x}},
		{labels.MatchRegexp, "", []SeriesRef{none}},
		{labels.MatchNotRegexp, "|bar", []SeriesRef{x}},
		{labels.MatchNotRegexp, ".+", []SeriesRef{none}},
		{labels.MatchNotRegexp, ".*", nil},
		{labels.MatchNotRegexp, "b.*", []SeriesRef{none, x}},
	} {
		m := labels.MustNewMatcher(c.t, "foo", c.v)
		if got := expand(t)(ix.Select(m)); !slices.Equal(got, c.want) {
			t.Errorf("Select(%s) = %v, want %v", m, got, c.want)
		}
	}
}

func TestMetadataMatchesOracle(t *testing.T) {
	pool := matcherPool(t)
	f := newFixture(t, 11, 800)
	r := rand.New(rand.NewPCG(11, 12))
	ranges := [][2]int64{{math.MinInt64, math.MaxInt64}, {0, 999}, {100, 200}, {500, 500}, {990, 2000}, {-10, -1}, {300, 100}}
	names := append([]string{metricName, "nope"}, testNames...)
	for i := range 300 {
		rg := ranges[i%len(ranges)]
		ms := randMatchers(r, pool)
		if i%4 == 0 {
			ms = nil // the no-matcher fast paths
		}
		f.checkMeta(t, rg[0], rg[1], ms, names[r.IntN(len(names))])
		if i == 150 {
			var victims []SeriesRef
			for ref := range f.series {
				if r.IntN(4) == 0 {
					victims = append(victims, ref)
				}
			}
			f.delete(victims)
		}
	}
}

func TestGetOrCreate(t *testing.T) {
	ix := New()
	ref, created, err := ix.GetOrCreate(labels.FromStrings("__name__", "up", "job", "a"))
	if err != nil || !created || ref != 1 {
		t.Fatalf("first series: %d %v %v", ref, created, err)
	}
	again, created, err := ix.GetOrCreate(labels.FromStrings("__name__", "up", "job", "a"))
	if err != nil || created || again != ref {
		t.Fatalf("same series: %d %v %v", again, created, err)
	}
	// Empty values are dropped, like Prometheus.
	withEmpty, created, err := ix.GetOrCreate(labels.FromStrings("__name__", "up", "job", "a", "zone", ""))
	if err != nil || created || withEmpty != ref {
		t.Fatalf("empty value not dropped: %d %v %v", withEmpty, created, err)
	}
	// Unsorted input is sorted.
	b := labels.NewScratchBuilder(2)
	b.Add("job", "a")
	b.Add("__name__", "up")
	unsorted, created, err := ix.GetOrCreate(b.Labels())
	if err != nil || created || unsorted != ref {
		t.Fatalf("unsorted: %d %v %v", unsorted, created, err)
	}
	if ls, ok := ix.Labels(ref); !ok || ls.String() != `{__name__="up", job="a"}` {
		t.Fatalf("Labels = %s %v", ls, ok)
	}
	if _, ok := ix.Labels(99); ok {
		t.Fatal("Labels of unknown ref")
	}
	// The index copies the labels: mutating the caller's buffer is harmless.
	buf := []byte("zone")
	b.Reset()
	b.Add("__name__", "up")
	b.Add(string(buf), "b")
	r2, _, _ := ix.GetOrCreate(b.Labels())
	buf[0] = 'X'
	if ls, _ := ix.Labels(r2); ls.Get("zone") != "b" {
		t.Fatal("stored labels changed with the caller's buffer")
	}

	bad := map[string]labels.Labels{
		"no metric name":    labels.FromStrings("job", "a"),
		"empty metric name": labels.FromStrings("__name__", "", "job", "a"),
		"duplicate name":    labels.FromStrings("__name__", "up", "job", "a", "job", "b"),
		"empty name":        labels.FromStrings("__name__", "up", "", "x"),
		"invalid utf8 val":  labels.FromStrings("__name__", "up", "job", "a\xff"),
		"invalid utf8 name": labels.FromStrings("__name__", "up", "j\xffb", "a"),
		"empty":             labels.EmptyLabels(),
	}
	for name, ls := range bad {
		ref, created, err := ix.GetOrCreate(ls)
		if !errors.Is(err, ErrInvalidLabels) || ref != 0 || created {
			t.Errorf("%s: GetOrCreate(%s) = %d, %v, %v; want ErrInvalidLabels", name, ls, ref, created, err)
		}
	}
	if ix.NumSeries() != 2 {
		t.Fatalf("NumSeries %d, want 2", ix.NumSeries())
	}
	if _, err := ix.Select(nil); !errors.Is(err, ErrInvalidMatcher) {
		t.Fatalf("nil matcher: %v", err)
	}
	if _, err := ix.Select(&labels.Matcher{Type: 9, Name: "a"}); !errors.Is(err, ErrInvalidMatcher) {
		t.Fatalf("bad match type: %v", err)
	}
}

func TestTouchAndDelete(t *testing.T) {
	ix := New()
	ref, _, _ := ix.GetOrCreate(labels.FromStrings("__name__", "up"))
	if _, _, hasData, ok := ix.TimeRange(ref); !ok || hasData {
		t.Fatal("new series has data")
	}
	for _, ts := range []int64{50, 10, 90, 20} {
		ix.Touch(ref, ts)
	}
	if lo, hi, hasData, ok := ix.TimeRange(ref); !ok || !hasData || lo != 10 || hi != 90 {
		t.Fatalf("TimeRange = %d %d %v %v", lo, hi, hasData, ok)
	}
	ix.SetTimeRange(ref, 60, 90)
	if lo, _, _, _ := ix.TimeRange(ref); lo != 60 {
		t.Fatalf("SetTimeRange: mint %d", lo)
	}
	if n := ix.Delete([]SeriesRef{ref, ref, 77}); n != 1 {
		t.Fatalf("Delete removed %d", n)
	}
	if ix.Touch(ref, 1) || ix.SetTimeRange(ref, 1, 2) {
		t.Fatal("Touch of deleted series")
	}
	if _, ok := ix.Labels(ref); ok {
		t.Fatal("Labels of deleted series")
	}
	// Re-creating gets a new ref; refs are never reused.
	ref2, created, _ := ix.GetOrCreate(labels.FromStrings("__name__", "up"))
	if !created || ref2 == ref {
		t.Fatalf("re-create: ref %d created %v", ref2, created)
	}
	if got := expand(t)(ix.Select()); !slices.Equal(got, []SeriesRef{ref2}) {
		t.Fatalf("all postings %v", got)
	}

	// Deleting whole pages frees them and keeps the rest readable.
	var refs []SeriesRef
	for i := range 3 * pageSize {
		r, _, err := ix.GetOrCreate(labels.FromStrings("__name__", "m", "i", fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, r)
	}
	if n := ix.Delete(refs[:2*pageSize]); n != 2*pageSize {
		t.Fatalf("deleted %d", n)
	}
	if ix.dir.Load().pages[0] != nil && ix.dir.Load().pages[1] != nil {
		t.Fatal("no page was freed")
	}
	for i, r := range refs {
		ls, ok := ix.Labels(r)
		if ok != (i >= 2*pageSize) || (ok && ls.Get("i") != fmt.Sprint(i)) {
			t.Fatalf("ref %d: %s %v", r, ls, ok)
		}
	}
	vals, _ := ix.LabelValues("i", math.MinInt64, math.MaxInt64, labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"))
	if len(vals) != 0 {
		t.Fatal("untouched series listed")
	}
	if names, _ := ix.LabelNames(math.MinInt64, math.MaxInt64); len(names) != 0 {
		t.Fatalf("LabelNames without data: %q", names)
	}
}

// TestHashCollisions forces every label set to the same hash (and, in a
// second run, to one of three) so that lookups must compare label sets.
func TestHashCollisions(t *testing.T) {
	for name, h := range map[string]func(labels.Labels) uint64{
		"constant": func(labels.Labels) uint64 { return 42 },
		"mod3":     func(ls labels.Labels) uint64 { return ls.Hash() % 3 },
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, 5, 400, withHash(h), WithStripes(4))
			byLabels := map[string]SeriesRef{}
			for ref, ls := range f.series {
				byLabels[ls.String()] = ref
			}
			// Every existing label set resolves to its own ref.
			for ref, ls := range f.series {
				got, created, err := f.ix.GetOrCreate(ls)
				if err != nil || created || got != ref {
					t.Fatalf("GetOrCreate(%s) = %d %v %v, want %d", ls, got, created, err, ref)
				}
			}
			// Delete half, including the map's first entries, then look up
			// and re-create.
			var victims []SeriesRef
			for ref := range f.series {
				if ref%2 == 0 {
					victims = append(victims, ref)
				}
			}
			deleted := map[SeriesRef]labels.Labels{}
			for _, ref := range victims {
				deleted[ref] = f.series[ref]
			}
			f.delete(victims)
			for ref, ls := range f.series {
				if got, created, _ := f.ix.GetOrCreate(ls); created || got != ref {
					t.Fatalf("after delete, GetOrCreate(%s) = %d %v, want %d", ls, got, created, ref)
				}
			}
			for old, ls := range deleted {
				got, created, err := f.ix.GetOrCreate(ls)
				if err != nil || !created || got == old {
					t.Fatalf("re-create %s: %d %v %v", ls, got, created, err)
				}
				f.series[got] = ls
			}
			f.valid = false
			pool := matcherPool(t)
			r := rand.New(rand.NewPCG(3, 4))
			for range 100 {
				f.checkSelect(t, randMatchers(r, pool))
			}
			for i := range f.ix.stripes {
				for _, c := range f.ix.stripes[i].conflicts {
					for _, ms := range c {
						if ms.deleted.Load() {
							t.Fatal("deleted series left in conflicts")
						}
					}
				}
			}
		})
	}
}
