package block

import (
	"math/rand/v2"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"

	"evalstore/tsdb/internal/histtest"
	"evalstore/tsdb/series"
)

func histSeries(name string, hs []histtest.Sample) *memSeries {
	return &memSeries{meta: series.Meta{Labels: lbls(name), Kind: series.KindHistogram}, hists: hs}
}

func writtenByTime(hs []histtest.Sample) map[int64]*histogram.FloatHistogram {
	m := make(map[int64]*histogram.FloatHistogram, len(hs))
	for _, s := range hs {
		m[s.T] = s.H
	}
	return m
}

// Histogram samples round-trip through Write and through Compact, also at
// a coarser resolution (downsampling keeps samples as they are), and the
// counter reset hints read back never lie: explicit CounterReset hints
// survive where the data alone would not show the reset.
func TestHistogramWriteCompact(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	var all []*memSeries
	for k := range histtest.NumKinds {
		all = append(all, histSeries("h"+string(rune('a'+k)), histtest.Series(r, k, 700, 0, 15_000)))
	}
	dir := t.TempDir()
	b := writeBlock(t, dir, minute, all)
	if err := b.Verify(); err != nil {
		t.Fatal(err)
	}
	want := sortSeries(all)
	got := queryAll(t, b, b.Meta().MinT, b.Meta().MaxT)
	equalSeries(t, got, want)
	explicit := 0
	for i, s := range got {
		if d := histtest.HintsHonest(s.hists, writtenByTime(want[i].hists)); d != "" {
			t.Fatalf("%s: %s", s.meta.Labels, d)
		}
		for j, h := range s.hists {
			if want[i].hists[j].H.CounterResetHint == histogram.CounterReset {
				if h.H.CounterResetHint != histogram.CounterReset {
					t.Fatalf("%s: explicit counter reset at %d reads %v", s.meta.Labels, h.T, h.H.CounterResetHint)
				}
				explicit++
			}
		}
	}
	if explicit == 0 {
		t.Fatal("no explicit counter reset written")
	}

	// Split each series over two overlapping blocks (the overlap written
	// twice, with the later block's copy differing so that dedup is seen),
	// then compact at the base and at a coarser resolution.
	var early, late []*memSeries
	var wantMerged []*memSeries
	for _, s := range want {
		n := len(s.hists)
		a, c := slices2(s.hists[:n*2/3]), slices2(s.hists[n/3:])
		for j := range c[:n*2/3-n/3] {
			h := c[j].H.Copy()
			h.Sum++
			c[j].H = h
		}
		early = append(early, histSeries(s.meta.Labels.Get("__name__"), a))
		late = append(late, histSeries(s.meta.Labels.Get("__name__"), c))
		wantMerged = append(wantMerged, s) // the first block given to Compact wins ties
	}
	dir2 := t.TempDir()
	be, bl := writeBlock(t, dir2, minute, early), writeBlock(t, dir2, minute, late)
	for _, res := range []int64{minute, hour} {
		m, err := Compact(dir2, []*Block{be, bl}, res, 0, day)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Open(dirOf(dir2, m), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Verify(); err != nil {
			t.Fatal(err)
		}
		got := queryAll(t, c, 0, day)
		equalSeries(t, got, wantMerged)
		for i, s := range got {
			if d := histtest.HintsHonest(s.hists, writtenByTime(wantMerged[i].hists)); d != "" {
				t.Fatalf("res %d: %s: %s", res, s.meta.Labels, d)
			}
		}
		if m.Version != FormatVersionHistograms || m.Stats.NumSamples != uint64(700*histtest.NumKinds) {
			t.Fatalf("meta %+v", m)
		}
		_ = c.Close()
	}
}

func slices2(in []histtest.Sample) []histtest.Sample { return append([]histtest.Sample(nil), in...) }

// Merging sources that interleave downgrades hints that were relative to a
// sample of the same source to UnknownCounterReset, as Prometheus's chain
// iterator does; consecutive samples of one source keep NotCounterReset.
func TestMergeHistogramHints(t *testing.T) {
	mk := func(ts ...int64) []histtest.Sample {
		var out []histtest.Sample
		for i, t := range ts {
			out = append(out, histtest.Sample{T: t, H: &histogram.FloatHistogram{Count: float64(i + 1), Sum: 1, ZeroCount: float64(i + 1)}})
		}
		return out
	}
	dir := t.TempDir()
	a := writeBlock(t, dir, minute, []*memSeries{histSeries("h", mk(10, 20, 30, 50, 60))})
	b := writeBlock(t, dir, minute, []*memSeries{histSeries("h", mk(40))})
	got := collect(t, MergeSeriesSets(selectAll(t, a), selectAll(t, b)))
	want := []histogram.CounterResetHint{histogram.UnknownCounterReset, histogram.NotCounterReset, histogram.NotCounterReset,
		histogram.UnknownCounterReset, histogram.UnknownCounterReset, histogram.NotCounterReset}
	if len(got) != 1 || len(got[0].hists) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i, s := range got[0].hists {
		if s.H.CounterResetHint != want[i] {
			t.Fatalf("sample %d at %d: hint %v, want %v", i, s.T, s.H.CounterResetHint, want[i])
		}
	}
}

func selectAll(t *testing.T, b *Block) series.SeriesSet {
	q, err := b.Querier(b.Meta().MinT, b.Meta().MaxT)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q.Select(t.Context(), hintsAll(b))
}
