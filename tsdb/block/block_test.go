package block

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/VictoriaMetrics/fastcache"
	"github.com/prometheus/prometheus/model/labels"

	"evalstore/sketch"
	"evalstore/tsdb/series"
)

var allFormats = []sketch.Format{sketch.FormatConfusion, sketch.FormatLogHistogram, sketch.FormatScoreHistogram,
	sketch.FormatMoments, sketch.FormatTDigest, sketch.FormatCategorical}

// exactFormats merge exactly (equal to adding all observations into one
// state, byte for byte) for the test's dyadic observations.
var exactFormats = []sketch.Format{sketch.FormatConfusion, sketch.FormatLogHistogram, sketch.FormatScoreHistogram,
	sketch.FormatCategorical}

func TestWriteOpenRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	start := int64(1_700_000_000_000)
	span := 6 * hour
	ss := randomSeries(t, r, allFormats, 24, 6, start, span, minute)
	// A regular, constant series: its XOR chunks are far smaller than
	// their sample count.
	flat := &memSeries{meta: series.Meta{Labels: lbls("flat"), Kind: series.KindFloat}}
	for i := range int64(1000) {
		flat.samples = append(flat.samples, sample{start + i*15_000, 1})
	}
	ss = append(ss, flat)
	dir := t.TempDir()
	b := writeBlock(t, dir, minute, ss)
	want := sortSeries(ss)

	m := b.Meta()
	if m.Version != FormatVersionHistograms || m.Level != 1 || !slices.Equal(m.Sources, []string{m.ID}) || m.Resolution != minute {
		t.Fatalf("meta %+v", m)
	}
	var nb, ns uint64
	mint, maxt := int64(1<<62), int64(-1<<62)
	for _, s := range ss {
		nb += uint64(len(s.buckets))
		ns += uint64(len(s.samples) + len(s.hists))
		for _, x := range s.hists {
			mint, maxt = min(mint, x.T), max(maxt, x.T)
		}
		for _, x := range s.buckets {
			mint, maxt = min(mint, x.t), max(maxt, x.t)
		}
		for _, x := range s.samples {
			mint, maxt = min(mint, x.t), max(maxt, x.t)
		}
	}
	if m.Stats.NumSeries != uint64(len(ss)) || m.Stats.NumBuckets != nb || m.Stats.NumSamples != ns || m.MinT != mint || m.MaxT != maxt {
		t.Fatalf("meta %+v, want %d series %d buckets %d samples [%d, %d]", m, len(ss), nb, ns, mint, maxt)
	}
	if m.Stats.Bytes != b.Size() || b.Size() <= 0 || b.Dir() != dirOf(dir, m) {
		t.Fatalf("size %d, stats %d, dir %s", b.Size(), m.Stats.Bytes, b.Dir())
	}
	if err := b.Verify(); err != nil {
		t.Fatal(err)
	}
	t.Run("all", func(t *testing.T) {
		equalSeries(t, queryAll(t, b, m.MinT, m.MaxT), want)
	})
	t.Run("ranges", func(t *testing.T) {
		for _, rg := range [][2]int64{{start, start}, {start + hour, start + 2*hour}, {start + 7, start + 3*hour + 1}, {start - day, start + 30*minute}, {start + span - minute, start + day}, {start + 2*day, start + 3*day}} {
			equalSeries(t, queryAll(t, b, rg[0], rg[1]), filterRange(want, rg[0], rg[1]))
		}
	})
	t.Run("hints narrow the querier", func(t *testing.T) {
		q, err := b.Querier(start, start+4*hour)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		got := dropEmpty(collect(t, q.Select(context.Background(), series.Hints{Mint: start + 3*hour, Maxt: start + 5*hour})))
		equalSeries(t, got, filterRange(want, start+3*hour, start+4*hour))
	})
	t.Run("matchers", func(t *testing.T) {
		ms := []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "parity", "1"), labels.MustNewMatcher(labels.MatchRegexp, "__name__", "m_.*")}
		var w []*memSeries
		for _, s := range want {
			if s.meta.Labels.Get("parity") == "1" && s.meta.Kind == series.KindSketch {
				w = append(w, s)
			}
		}
		equalSeries(t, queryAll(t, b, m.MinT, m.MaxT, ms...), w)
		equalSeries(t, queryAll(t, b, m.MinT, m.MaxT, labels.MustNewMatcher(labels.MatchEqual, "nope", "x")), nil)
	})
	t.Run("labels", func(t *testing.T) {
		q, _ := b.Querier(m.MinT, m.MaxT)
		defer q.Close()
		names, err := q.LabelNames(context.Background())
		if err != nil || !slices.Equal(names, []string{"__name__", "i", "parity"}) {
			t.Fatalf("names %v %v", names, err)
		}
		vals, err := q.LabelValues(context.Background(), "__name__", labels.MustNewMatcher(labels.MatchEqual, "parity", "0"))
		if err != nil || !slices.Contains(vals, "float") || !slices.Contains(vals, "m_confusion") {
			t.Fatalf("values %v %v", vals, err)
		}
		// A range holding only float samples (sketch buckets start on the
		// minute, samples are anywhere): names come from the chunk ranges.
		q2, _ := b.Querier(start+span+10*day, start+span+11*day)
		defer q2.Close()
		if names, err := q2.LabelNames(context.Background()); err != nil || len(names) != 0 {
			t.Fatalf("names outside the block: %v %v", names, err)
		}
		q3, _ := b.Querier(start+hour, start+hour+1)
		defer q3.Close()
		vals, err = q3.LabelValues(context.Background(), "i")
		var w []string
		for _, s := range filterRange(want, start+hour, start+hour+1) {
			if v := s.meta.Labels.Get("i"); v != "" {
				w = append(w, v)
			}
		}
		slices.Sort(w)
		if err != nil || !slices.Equal(vals, slices.Compact(w)) {
			t.Fatalf("values in a narrow range %v, want %v (%v)", vals, w, err)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		q, _ := b.Querier(m.MinT, m.MaxT)
		defer q.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		ss := q.Select(ctx, hintsAll(b))
		if ss.Next() || !errors.Is(ss.Err(), context.Canceled) {
			t.Fatalf("cancelled select: %v", ss.Err())
		}
	})
	t.Run("cache", func(t *testing.T) {
		b2, err := Open(b.Dir(), Options{Cache: fastcache.New(32 << 20)})
		if err != nil {
			t.Fatal(err)
		}
		defer b2.Close()
		for range 2 {
			equalSeries(t, queryAll(t, b2, m.MinT, m.MaxT), want)
		}
	})
}

func TestWriteCoarserResolutionMatchesOracle(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	start := int64(-3 * hour) // negative times bucket by floor too
	var ss, want []*memSeries
	for i, f := range exactFormats {
		var os []obs
		for tt := start; tt < start+5*hour; tt += minute {
			for range 1 + r.IntN(4) {
				os = append(os, randObs(r, tt+r.Int64N(minute)))
			}
		}
		ls := lbls("m", "f", f.String(), "i", string(rune('a'+i)))
		ss = append(ss, &memSeries{meta: series.Meta{Labels: ls, Kind: series.KindSketch, Format: f}, buckets: oracle(t, f, os, minute)})
		want = append(want, &memSeries{meta: series.Meta{Labels: ls, Kind: series.KindSketch, Format: f}, buckets: oracle(t, f, os, hour)})
	}
	b := writeBlock(t, t.TempDir(), hour, ss)
	got := queryAll(t, b, b.Meta().MinT, b.Meta().MaxT)
	equalSeries(t, got, sortSeries(want))
	if n := len(got[0].buckets); n != 5 {
		t.Fatalf("%d hour buckets, want 5", n)
	}

	t.Run("60 confusion minutes make one hour", func(t *testing.T) {
		var os []obs
		c := sketch.NewConfusion()
		for m := range int64(60) {
			for k := range 10 {
				o := obs{t: m * minute, a: k % 2, p: (k / 2) % 2}
				os = append(os, o)
				c.Add(o.a, o.p)
			}
		}
		s := &memSeries{meta: series.Meta{Labels: lbls("c"), Kind: series.KindSketch, Format: sketch.FormatConfusion}, buckets: oracle(t, sketch.FormatConfusion, os, minute)}
		b := writeBlock(t, t.TempDir(), hour, []*memSeries{s})
		got := queryAll(t, b, 0, hour)
		equalSeries(t, got, []*memSeries{{meta: s.meta, buckets: []bucket{{0, hour, c.AppendBinary(nil)}}}})
	})
}

func TestWriteErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Write(dir, minute, newMemSet(nil)); !errors.Is(err, ErrEmpty) {
		t.Fatalf("empty set: %v", err)
	}
	empty := &memSeries{meta: series.Meta{Labels: lbls("x"), Kind: series.KindFloat}}
	if _, err := Write(dir, minute, newMemSet([]*memSeries{empty})); !errors.Is(err, ErrEmpty) {
		t.Fatalf("set of empty series: %v", err)
	}
	c := sketch.NewConfusion()
	c.Add(1, 1)
	st := c.AppendBinary(nil)
	sk := func(ls labels.Labels, bs ...bucket) *memSeries {
		return &memSeries{meta: series.Meta{Labels: ls, Kind: series.KindSketch, Format: sketch.FormatConfusion}, buckets: bs}
	}
	for name, set := range map[string]series.SeriesSet{
		"unsorted":         &memSet{s: []*memSeries{sk(lbls("b"), bucket{0, minute, st}), sk(lbls("a"), bucket{0, minute, st})}, i: -1},
		"duplicate":        &memSet{s: []*memSeries{sk(lbls("a"), bucket{0, minute, st}), sk(lbls("a"), bucket{0, minute, st})}, i: -1},
		"coarse input":     newMemSet([]*memSeries{sk(lbls("a"), bucket{0, hour, st})}),
		"wrong format":     newMemSet([]*memSeries{sk(lbls("a"), bucket{0, minute, sketch.NewMoments().AppendBinary(nil)})}),
		"buckets unsorted": newMemSet([]*memSeries{sk(lbls("a"), bucket{minute, minute, st}, bucket{0, minute, st})}),
		"samples unsorted": newMemSet([]*memSeries{{meta: series.Meta{Labels: lbls("f"), Kind: series.KindFloat}, samples: []sample{{2, 1}, {2, 1}}}}),
	} {
		if _, err := Write(dir, minute, set); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := Write(dir, 0, newMemSet(nil)); !errors.Is(err, ErrInvalid) {
		t.Errorf("zero resolution: %v", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Fatalf("failed writes left %d entries", len(ents))
	}
}

func TestOpenNotABlock(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrNotBlock) {
		t.Fatalf("no meta: %v", err)
	}
	b := writeBlock(t, dir, minute, randomSeries(t, rand.New(rand.NewPCG(5, 6)), exactFormats, 2, 1, 0, hour, minute))
	tmp := b.Dir() + tmpSuffix
	if err := os.CopyFS(tmp, os.DirFS(b.Dir())); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(tmp, Options{}); !errors.Is(err, ErrNotBlock) {
		t.Fatalf("tmp dir: %v", err)
	}
	if err := os.Remove(filepath.Join(tmp, metaFilename)); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(filepath.Join(dir, "missing"), Options{}); !errors.Is(err, ErrNotBlock) {
		t.Fatalf("missing dir: %v", err)
	}
}

func TestCloseWaitsForQueriers(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	ss := randomSeries(t, r, allFormats, 12, 4, 0, 4*hour, minute)
	dir := t.TempDir()
	m, err := Write(dir, minute, newMemSet(slices.Clone(ss)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(dirOf(dir, m), Options{Cache: fastcache.New(1 << 20)})
	if err != nil {
		t.Fatal(err)
	}
	want := sortSeries(ss)
	var qs []series.Querier
	for range 4 {
		q, err := b.Querier(m.MinT, m.MaxT)
		if err != nil {
			t.Fatal(err)
		}
		qs = append(qs, q)
	}
	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	var wg sync.WaitGroup
	for _, q := range qs {
		wg.Go(func() {
			for range 3 {
				equalSeries(t, collect(t, q.Select(context.Background(), series.Hints{Mint: m.MinT, Maxt: m.MaxT})), want)
			}
			select {
			case err := <-closed:
				t.Errorf("Close returned (%v) while a querier was open", err)
			default:
			}
			_ = q.Close()
			_ = q.Close() // a second close is harmless
		})
	}
	wg.Wait()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if _, err := b.Querier(0, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("querier after close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if ss := qs[0].Select(context.Background(), series.Hints{}); ss.Next() || !errors.Is(ss.Err(), ErrClosed) {
		t.Fatalf("select on a closed querier: %v", ss.Err())
	}
}

func TestWriteFloatIgnoresFormat(t *testing.T) {
	s := &memSeries{meta: series.Meta{Labels: lbls("up"), Kind: series.KindFloat, Format: sketch.FormatConfusion}, samples: []sample{{1, 1}}}
	b := writeBlock(t, t.TempDir(), minute, []*memSeries{s})
	got := queryAll(t, b, 0, 10)
	if len(got) != 1 || got[0].meta.Format != 0 || len(got[0].samples) != 1 {
		t.Fatalf("%+v", got)
	}
}

// TestManySegments writes with a tiny segment limit so that chunks spread
// over many segment files, and reads everything back.
func TestManySegments(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	ss := randomSeries(t, r, allFormats, 12, 4, 0, 4*hour, minute)
	dir := t.TempDir()
	m, err := write(dir, minute, newMemSet(slices.Clone(ss)), 1, nil, 4096)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(dirOf(dir, m), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ents, err := os.ReadDir(filepath.Join(b.Dir(), chunksDirname))
	if err != nil || len(ents) < 5 {
		t.Fatalf("%d segments (%v)", len(ents), err)
	}
	if err := b.Verify(); err != nil {
		t.Fatal(err)
	}
	equalSeries(t, queryAll(t, b, m.MinT, m.MaxT), sortSeries(ss))
	// Removing a middle segment from meta.json's view is caught.
	if err := os.Remove(filepath.Join(b.Dir(), filepath.FromSlash(segmentName(3)))); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(b.Dir(), Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("missing segment: %v", err)
	}
}
