package block

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"evalstore/sketch"
	"evalstore/tsdb/series"
)

func confState(t testing.TB, pairs ...[2]int) []byte {
	t.Helper()
	c := sketch.NewConfusion()
	for _, p := range pairs {
		c.Add(p[0], p[1])
	}
	return c.AppendBinary(nil)
}

func TestMergeSeriesSetsTable(t *testing.T) {
	tp, fn, fp := [2]int{1, 1}, [2]int{1, 0}, [2]int{0, 1}
	sk := func(name string, bs ...bucket) *memSeries {
		return &memSeries{meta: series.Meta{Labels: lbls(name), Kind: series.KindSketch, Format: sketch.FormatConfusion}, buckets: bs}
	}
	fl := func(name string, ss ...sample) *memSeries {
		return &memSeries{meta: series.Meta{Labels: lbls(name), Kind: series.KindFloat}, samples: ss}
	}
	stale := math.Float64frombits(0x7ff0000000000002)
	cases := []struct {
		name string
		sets [][]*memSeries
		want []*memSeries
	}{
		{name: "no sets"},
		{name: "one empty set", sets: [][]*memSeries{nil}},
		{
			name: "disjoint series interleave by labels",
			sets: [][]*memSeries{{sk("a", bucket{0, minute, confState(t, tp)}), sk("c", bucket{0, minute, confState(t, fn)})}, {sk("b", bucket{0, minute, confState(t, fp)})}},
			want: []*memSeries{sk("a", bucket{0, minute, confState(t, tp)}), sk("b", bucket{0, minute, confState(t, fp)}), sk("c", bucket{0, minute, confState(t, fn)})},
		},
		{
			name: "equal buckets merge, others interleave",
			sets: [][]*memSeries{
				{sk("a", bucket{0, minute, confState(t, tp)}, bucket{2 * minute, minute, confState(t, fn)})},
				{sk("a", bucket{0, minute, confState(t, fp, tp)}, bucket{minute, minute, confState(t, fp)})},
				{sk("a", bucket{2 * minute, minute, confState(t, tp)})},
			},
			want: []*memSeries{sk("a",
				bucket{0, minute, confState(t, tp, tp, fp)},
				bucket{minute, minute, confState(t, fp)},
				bucket{2 * minute, minute, confState(t, fn, tp)})},
		},
		{
			name: "different widths at one start: widest reported",
			sets: [][]*memSeries{{sk("a", bucket{0, minute, confState(t, tp)})}, {sk("a", bucket{0, hour, confState(t, fn)})}},
			want: []*memSeries{sk("a", bucket{0, hour, confState(t, tp, fn)})},
		},
		{
			name: "float dedup keeps the first set's sample",
			sets: [][]*memSeries{
				{fl("f", sample{1, 10}, sample{3, stale}, sample{5, 50})},
				{fl("f", sample{1, -1}, sample{2, 20}, sample{3, -3}, sample{6, 60})},
			},
			want: []*memSeries{fl("f", sample{1, 10}, sample{2, 20}, sample{3, stale}, sample{5, 50}, sample{6, 60})},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var sets []series.SeriesSet
			for _, s := range c.sets {
				sets = append(sets, newMemSet(s))
			}
			equalSeries(t, collect(t, MergeSeriesSets(sets...)), c.want)
		})
	}
}

func TestMergeSeriesSetsKindMismatch(t *testing.T) {
	a := &memSeries{meta: series.Meta{Labels: lbls("a"), Kind: series.KindFloat}, samples: []sample{{1, 1}}}
	b := &memSeries{meta: series.Meta{Labels: lbls("a"), Kind: series.KindSketch, Format: sketch.FormatConfusion}, buckets: []bucket{{0, minute, confState(t, [2]int{1, 1})}}}
	m := MergeSeriesSets(newMemSet([]*memSeries{a}), newMemSet([]*memSeries{b}))
	if m.Next() || m.Err() == nil {
		t.Fatal("no error for a series that is float in one set and sketch in another")
	}
	c := &memSeries{meta: series.Meta{Labels: lbls("a"), Kind: series.KindSketch, Format: sketch.FormatConfusion}, buckets: []bucket{{0, minute, sketch.NewMoments().AppendBinary(nil)}}}
	m = MergeSeriesSets(newMemSet([]*memSeries{b}), newMemSet([]*memSeries{c}))
	if !m.Next() {
		t.Fatal(m.Err())
	}
	it := m.At().Buckets(nil)
	if it.Next() || it.Err() == nil {
		t.Fatal("no error merging states of different formats")
	}
}

// TestMergeSeriesSetsRandom splits raw observations of each series over
// several sets at random and checks the merge against buckets built from
// all observations; float samples are split with overlaps and checked
// against first-set-wins.
func TestMergeSeriesSetsRandom(t *testing.T) {
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 99))
		k := 2 + r.IntN(4)
		parts := make([][]*memSeries, k)
		var want []*memSeries
		for i := range 3 + r.IntN(10) {
			f := exactFormats[r.IntN(len(exactFormats))]
			ls := lbls("m", "i", fmt.Sprint(i))
			var all []obs
			per := make([][]obs, k)
			for range r.IntN(200) {
				o := randObs(r, r.Int64N(3*hour)-hour)
				all = append(all, o)
				j := r.IntN(k)
				per[j] = append(per[j], o)
			}
			if len(all) == 0 {
				continue
			}
			for j := range k {
				if len(per[j]) > 0 {
					parts[j] = append(parts[j], &memSeries{meta: series.Meta{Labels: ls, Kind: series.KindSketch, Format: f}, buckets: oracle(t, f, per[j], minute)})
				}
			}
			want = append(want, &memSeries{meta: series.Meta{Labels: ls, Kind: series.KindSketch, Format: f}, buckets: oracle(t, f, all, minute)})
		}
		for i := range 1 + r.IntN(4) {
			ls := lbls("float", "i", fmt.Sprint(i))
			first := map[int64]float64{}
			for j := range k {
				var ss []sample
				for tt := int64(0); tt < 300; tt++ {
					if r.IntN(3) == 0 {
						v := float64(j*1000) + float64(tt)
						ss = append(ss, sample{tt, v})
						if _, ok := first[tt]; !ok {
							first[tt] = v
						}
					}
				}
				parts[j] = append(parts[j], &memSeries{meta: series.Meta{Labels: ls, Kind: series.KindFloat}, samples: ss})
			}
			w := &memSeries{meta: series.Meta{Labels: ls, Kind: series.KindFloat}}
			for tt := int64(0); tt < 300; tt++ {
				if v, ok := first[tt]; ok {
					w.samples = append(w.samples, sample{tt, v})
				}
			}
			want = append(want, w)
		}
		sets := make([]series.SeriesSet, k)
		for j := range k {
			sets[j] = newMemSet(parts[j])
		}
		equalSeries(t, dropEmpty(collect(t, MergeSeriesSets(sets...))), dropEmpty(sortSeries(want)))
	}
}

func TestMergeSampleSeek(t *testing.T) {
	a := &memSeries{meta: series.Meta{Labels: lbls("f"), Kind: series.KindFloat}, samples: []sample{{1, 1}, {4, 4}, {9, 9}}}
	b := &memSeries{meta: series.Meta{Labels: lbls("f"), Kind: series.KindFloat}, samples: []sample{{2, 2}, {4, 40}, {7, 7}}}
	m := MergeSeriesSets(newMemSet([]*memSeries{a}), newMemSet([]*memSeries{b}))
	if !m.Next() {
		t.Fatal(m.Err())
	}
	it := m.At().Samples(nil)
	var got []string
	for _, s := range []int64{3, 3, 5, 8, 10} {
		if it.Seek(s) == chunkenc.ValNone {
			got = append(got, "none")
			continue
		}
		tt, v := it.At()
		got = append(got, fmt.Sprintf("%d:%v", tt, v))
	}
	if want := "4:4 4:4 7:7 9:9 none"; strings.Join(got, " ") != want {
		t.Fatalf("seeks: %v, want %s", got, want)
	}
	if it.Next() != chunkenc.ValNone {
		t.Fatal("Next after the end")
	}
}

// TestMergeSeriesSetsSingleSourceAllocs checks that series found in one
// input pass through without allocating, whatever their number.
func TestMergeSeriesSetsSingleSourceAllocs(t *testing.T) {
	var a, b []*memSeries
	for i := range 200 {
		s := &memSeries{meta: series.Meta{Labels: lbls("m", "i", fmt.Sprintf("%03d", i)), Kind: series.KindSketch, Format: sketch.FormatConfusion},
			buckets: []bucket{{0, minute, confState(t, [2]int{1, 1})}, {minute, minute, confState(t, [2]int{0, 1})}}}
		if i%2 == 0 {
			a = append(a, s)
		} else {
			b = append(b, s)
		}
	}
	sa, sb := newMemSet(a), newMemSet(b)
	var it series.BucketIterator = &memBuckets{}
	n := 0
	allocs := testing.AllocsPerRun(20, func() {
		sa.i, sb.i = -1, -1
		m := MergeSeriesSets(sa, sb)
		for m.Next() {
			it = m.At().Buckets(it)
			for it.Next() {
				n++
			}
		}
	})
	// Only MergeSeriesSets' own setup allocates (its struct and scratch
	// slices), a constant independent of the number of series.
	if allocs > 4 {
		t.Fatalf("%v allocations per pass over 200 series", allocs)
	}
	if n == 0 {
		t.Fatal("no buckets")
	}
	if m := MergeSeriesSets(sa); m != series.SeriesSet(sa) {
		t.Fatal("a single set is not returned as is")
	}
}
