package block

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"

	"evalstore/sketch"
	"evalstore/tsdb/series"
)

// splitObs draws raw observations for nSeries series over [start,
// start+span) and deals them over k blocks, each covering an overlapping
// random sub-range. It returns the per-block series, all observations per
// series and the observations per block and series.
func splitObs(t testing.TB, r *rand.Rand, nSeries, k int, start, span int64) ([][]*memSeries, []series.Meta, [][]obs, [][][]obs) {
	t.Helper()
	parts := make([][]*memSeries, k)
	metas := make([]series.Meta, nSeries)
	all := make([][]obs, nSeries)
	byBlock := make([][][]obs, k)
	for j := range k {
		byBlock[j] = make([][]obs, nSeries)
	}
	for i := range nSeries {
		f := exactFormats[i%len(exactFormats)]
		metas[i] = series.Meta{Labels: lbls("m", "i", fmt.Sprintf("%02d", i)), Kind: series.KindSketch, Format: f}
		per := make([][]obs, k)
		for range 400 + r.IntN(400) {
			o := randObs(r, start+r.Int64N(span))
			// Block j mostly holds its own time slice, with overlaps.
			j := int((o.t - start) * int64(k) / span)
			if r.IntN(3) == 0 {
				j = r.IntN(k)
			}
			all[i] = append(all[i], o)
			per[j] = append(per[j], o)
		}
		for j := range k {
			byBlock[j][i] = per[j]
			if len(per[j]) > 0 {
				parts[j] = append(parts[j], &memSeries{meta: metas[i], buckets: oracle(t, f, per[j], minute)})
			}
		}
	}
	return parts, metas, all, byBlock
}

func oracleSeries(t testing.TB, metas []series.Meta, all [][]obs, res, mint, maxt int64) []*memSeries {
	var out []*memSeries
	for i, m := range metas {
		var in []obs
		for _, o := range all[i] {
			if bt := bucketStart(o.t, minute); bt >= mint && bt <= maxt {
				in = append(in, o)
			}
		}
		if len(in) > 0 {
			out = append(out, &memSeries{meta: m, buckets: oracle(t, m.Format, in, res)})
		}
	}
	return sortSeries(out)
}

func TestCompact(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	start := int64(1_700_000_000_000) / day * day
	span := 3 * day
	parts, metas, all, byBlock := splitObs(t, r, 8, 3, start, span)
	dir := t.TempDir()
	var blocks []*Block
	for _, p := range parts {
		blocks = append(blocks, writeBlock(t, dir, minute, p))
	}
	var sources []string
	for _, b := range blocks {
		sources = append(sources, b.Meta().ID)
	}
	slices.Sort(sources)
	open := func(m Meta, err error) *Block {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		b, err := Open(dirOf(dir, m), Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	full := func(b *Block) []*memSeries { return queryAll(t, b, b.Meta().MinT, b.Meta().MaxT) }

	t.Run("same resolution", func(t *testing.T) {
		c := open(Compact(dir, blocks, minute, start-day, start+span+day))
		equalSeries(t, full(c), oracleSeries(t, metas, all, minute, start, start+span))
		if m := c.Meta(); m.Level != 2 || !slices.Equal(m.Sources, sources) || m.Resolution != minute {
			t.Fatalf("meta %+v", m)
		}
	})
	t.Run("downsample 1m to 1h to 1d", func(t *testing.T) {
		h := open(Compact(dir, blocks, hour, start, start+span))
		equalSeries(t, withWidth(full(h), hour), oracleSeries(t, metas, all, hour, start, start+span))
		d := open(Compact(dir, []*Block{h}, day, start, start+span))
		equalSeries(t, full(d), oracleSeries(t, metas, all, day, start, start+span))
		if m := d.Meta(); m.Level != 3 || !slices.Equal(m.Sources, sources) || m.Resolution != day || m.Stats.NumBuckets != uint64(3*len(metas)) {
			t.Fatalf("meta %+v", m)
		}
		// Mixed resolutions: a 1m block and an overlapping 1h block that
		// already holds its data, so block 0's observations count twice.
		mixed := open(Compact(dir, []*Block{blocks[0], h}, hour, start, start+span))
		twice := make([][]obs, len(metas))
		for i := range metas {
			twice[i] = append(slices.Clone(all[i]), byBlock[0][i]...)
		}
		equalSeries(t, full(mixed), oracleSeries(t, metas, twice, hour, start, start+span))
		if mixed.Meta().Level != 3 {
			t.Fatalf("mixed level %d", mixed.Meta().Level)
		}
	})
	t.Run("cut", func(t *testing.T) {
		mint, maxt := start+day+17*minute, start+2*day+3*hour-1
		c := open(Compact(dir, blocks, minute, mint, maxt))
		equalSeries(t, full(c), oracleSeries(t, metas, all, minute, mint, maxt))
		if m := c.Meta(); m.MinT < mint || m.MaxT > maxt {
			t.Fatalf("cut block spans [%d, %d], outside [%d, %d]", m.MinT, m.MaxT, mint, maxt)
		}
	})
	t.Run("errors", func(t *testing.T) {
		if _, err := Compact(dir, blocks, 90*1000, start, start+span); !errors.Is(err, ErrInvalid) {
			t.Fatalf("resolution not a multiple: %v", err)
		}
		if _, err := Compact(dir, blocks, minute, start+10*day, start+11*day); !errors.Is(err, ErrEmpty) {
			t.Fatalf("empty range: %v", err)
		}
		if _, err := Compact(dir, nil, minute, start, start+span); !errors.Is(err, ErrEmpty) {
			t.Fatalf("no blocks: %v", err)
		}
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if len(e.Name()) != 32 {
				t.Fatalf("stray entry %s", e.Name())
			}
		}
	})
}

func TestCompactFloatDedup(t *testing.T) {
	dir := t.TempDir()
	ls := lbls("up")
	a := writeBlock(t, dir, minute, []*memSeries{{meta: series.Meta{Labels: ls, Kind: series.KindFloat}, samples: []sample{{0, 1}, {15, 2}, {30, 3}}}})
	b := writeBlock(t, dir, minute, []*memSeries{{meta: series.Meta{Labels: ls, Kind: series.KindFloat}, samples: []sample{{15, -2}, {30, -3}, {45, -4}}}})
	m, err := Compact(dir, []*Block{b, a}, minute, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Open(dirOf(dir, m), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := []*memSeries{{meta: series.Meta{Labels: ls, Kind: series.KindFloat}, samples: []sample{{0, 1}, {15, -2}, {30, -3}, {45, -4}}}}
	equalSeries(t, queryAll(t, c, 0, 100), want)
	if m.Stats.NumSamples != 4 {
		t.Fatalf("%d samples", m.Stats.NumSamples)
	}
}

// TestCompactConfusionCountsExact checks a hand-made case: two blocks with
// the same minute of one series, compacted to an hour.
func TestCompactConfusionCountsExact(t *testing.T) {
	dir := t.TempDir()
	meta := series.Meta{Labels: lbls("acc"), Kind: series.KindSketch, Format: sketch.FormatConfusion}
	a := writeBlock(t, dir, minute, []*memSeries{{meta: meta, buckets: []bucket{{0, minute, confState(t, [2]int{1, 1}, [2]int{0, 0})}, {59 * minute, minute, confState(t, [2]int{1, 0})}}}})
	b := writeBlock(t, dir, minute, []*memSeries{{meta: meta, buckets: []bucket{{0, minute, confState(t, [2]int{1, 1})}, {hour, minute, confState(t, [2]int{0, 1})}}}})
	m, err := Compact(dir, []*Block{a, b}, hour, 0, 2*hour-1)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Open(dirOf(dir, m), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Hour 0: tp twice, tn once, fn once; hour 1: fp once.
	want := []*memSeries{{meta: meta, buckets: []bucket{
		{0, hour, confState(t, [2]int{1, 1}, [2]int{1, 1}, [2]int{0, 0}, [2]int{1, 0})},
		{hour, hour, confState(t, [2]int{0, 1})},
	}}}
	equalSeries(t, queryAll(t, c, 0, 2*hour), want)
}
