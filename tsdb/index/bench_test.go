package index

import (
	"bytes"
	"fmt"
	"math"
	"runtime"
	"sync"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// The benchmark index: 1M series, the shape of evalstore's sketch series
// (10 metrics × 50 models × 5 versions × 20 slices × 20 classes), each
// with data at t=0..1000.
const (
	benchMetrics  = 10
	benchModels   = 50
	benchVersions = 5
	benchSlices   = 20
	benchClasses  = 20
	benchSeries   = benchMetrics * benchModels * benchVersions * benchSlices * benchClasses
)

type benchFixture struct {
	lsets          []labels.Labels
	ix             *Index
	bytesPerSeries float64
	block          []byte
	bi             *BlockIndex
}

// The fixture takes seconds to build, so benchmarks share one per process.
var (
	benchOnce sync.Once
	benchFix  *benchFixture
	benchErr  error
)

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func benchLabelSets() []labels.Labels {
	metrics := []string{"accuracy", "precision", "recall", "f1", "auc", "log_loss", "brier", "count", "positive_rate", "label_coverage"}
	slices := []string{"all", "eu", "us", "apac", "latam", "mobile", "desktop", "tablet", "new_users", "returning",
		"free", "paid", "en", "de", "fr", "es", "ja", "night", "day", "weekend"}
	out := make([]labels.Labels, 0, benchSeries)
	for _, m := range metrics {
		for mo := range benchModels {
			for v := range benchVersions {
				for _, s := range slices {
					for c := range benchClasses {
						out = append(out, labels.FromStrings(
							"__name__", m,
							"class", fmt.Sprint("c", c),
							"model", fmt.Sprint("m", mo),
							"slice", s,
							"source", "online",
							"version", fmt.Sprint("v", v),
						))
					}
				}
			}
		}
	}
	return out
}

// getBenchFixture builds the 1M-series index once per process and measures
// the heap it takes per series (the label sets given to it are allocated
// before the measurement; the index keeps its own copies).
func getBenchFixture(b *testing.B) *benchFixture {
	benchOnce.Do(func() { benchFix, benchErr = buildBenchFixture() })
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	if benchFix.ix.NumSeries() != benchSeries {
		b.Fatalf("fixture has %d series", benchFix.ix.NumSeries())
	}
	return benchFix
}

func buildBenchFixture() (*benchFixture, error) {
	f := &benchFixture{lsets: benchLabelSets()}
	before := heapInUse()
	f.ix = New()
	for _, ls := range f.lsets {
		ref, _, err := f.ix.GetOrCreate(ls)
		if err != nil {
			return nil, err
		}
		f.ix.Touch(ref, 0)
		f.ix.Touch(ref, 1000)
	}
	f.bytesPerSeries = float64(heapInUse()-before) / benchSeries
	var in []BlockSeries
	p, _ := f.ix.Select()
	for p.Next() {
		ls, _ := f.ix.Labels(p.At())
		in = append(in, BlockSeries{Labels: ls, Chunks: []uint64{uint64(p.At()) << 8, uint64(p.At())<<8 | 1}})
	}
	var buf bytes.Buffer
	if err := WriteBlockIndex(&buf, in); err != nil {
		return nil, err
	}
	f.block = buf.Bytes()
	bi, err := OpenBlockIndex(f.block)
	if err != nil {
		return nil, err
	}
	f.bi = bi
	return f, nil
}

// BenchmarkGetOrCreateExisting looks up existing series: "random" strides
// over all 1M (every lookup misses the CPU caches, as for a scrape of many
// targets), "sequential" walks them in creation order.
func BenchmarkGetOrCreateExisting(b *testing.B) {
	f := getBenchFixture(b)
	for _, c := range []struct {
		name   string
		stride int
	}{{"random", 7919}, {"sequential", 1}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, created, _ := f.ix.GetOrCreate(f.lsets[i]); created {
					b.Fatal("created")
				}
				i = (i + c.stride) % benchSeries
			}
			b.ReportMetric(f.bytesPerSeries, "bytes/series")
		})
	}
}

func BenchmarkGetOrCreateExistingParallel(b *testing.B) {
	f := getBenchFixture(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			f.ix.GetOrCreate(f.lsets[i])
			i = (i + 7919) % benchSeries
		}
	})
}

// BenchmarkGetOrCreateNew creates series into a fresh index (a new one
// every 1M series) and reports the memory of the index per series.
func BenchmarkGetOrCreateNew(b *testing.B) {
	f := getBenchFixture(b)
	b.ReportAllocs()
	ix := New()
	i := 0
	for b.Loop() {
		if i == benchSeries {
			ix, i = New(), 0
		}
		ix.GetOrCreate(f.lsets[i])
		i++
	}
	b.ReportMetric(f.bytesPerSeries, "bytes/series")
}

func BenchmarkTouch(b *testing.B) {
	f := getBenchFixture(b)
	b.ReportAllocs()
	ref := SeriesRef(1)
	for b.Loop() {
		f.ix.Touch(ref, 500)
		ref = ref%benchSeries + 1
	}
}

var benchSelectors = []struct {
	name string
	ms   []*labels.Matcher
}{
	{`{__name__="accuracy",model="m1",slice=~"eu|us"}`, []*labels.Matcher{
		labels.MustNewMatcher(labels.MatchEqual, "__name__", "accuracy"),
		labels.MustNewMatcher(labels.MatchEqual, "model", "m1"),
		labels.MustNewMatcher(labels.MatchRegexp, "slice", "eu|us"),
	}},
	{`{__name__="accuracy",model="m1",version="v2",slice="eu",class="c3"}`, []*labels.Matcher{
		labels.MustNewMatcher(labels.MatchEqual, "__name__", "accuracy"),
		labels.MustNewMatcher(labels.MatchEqual, "model", "m1"),
		labels.MustNewMatcher(labels.MatchEqual, "version", "v2"),
		labels.MustNewMatcher(labels.MatchEqual, "slice", "eu"),
		labels.MustNewMatcher(labels.MatchEqual, "class", "c3"),
	}},
	{`{__name__="accuracy",model="m1",slice!="all",version!~"v1|v2"}`, []*labels.Matcher{
		labels.MustNewMatcher(labels.MatchEqual, "__name__", "accuracy"),
		labels.MustNewMatcher(labels.MatchEqual, "model", "m1"),
		labels.MustNewMatcher(labels.MatchNotEqual, "slice", "all"),
		labels.MustNewMatcher(labels.MatchNotRegexp, "version", "v1|v2"),
	}},
	{`{__name__="accuracy",model=~"m1.*"}`, []*labels.Matcher{
		labels.MustNewMatcher(labels.MatchEqual, "__name__", "accuracy"),
		labels.MustNewMatcher(labels.MatchRegexp, "model", "m1.*"),
	}},
	{`{__name__="recall",slice=~".*s"}`, []*labels.Matcher{
		labels.MustNewMatcher(labels.MatchEqual, "__name__", "recall"),
		labels.MustNewMatcher(labels.MatchRegexp, "slice", ".*s"),
	}},
	{`{model="m7",feature=""}`, []*labels.Matcher{
		labels.MustNewMatcher(labels.MatchEqual, "model", "m7"),
		labels.MustNewMatcher(labels.MatchEqual, "feature", ""),
	}},
}

func BenchmarkSelect(b *testing.B) {
	f := getBenchFixture(b)
	for _, s := range benchSelectors {
		b.Run("index/"+s.name, func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				p, err := f.ix.Select(s.ms...)
				if err != nil {
					b.Fatal(err)
				}
				n = 0
				for p.Next() {
					n++
				}
			}
			b.ReportMetric(float64(n), "series")
		})
		b.Run("block/"+s.name, func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				p, err := f.bi.Select(s.ms...)
				if err != nil {
					b.Fatal(err)
				}
				n = 0
				for p.Next() {
					n++
				}
			}
			b.ReportMetric(float64(n), "series")
		})
	}
}

func BenchmarkLabelValues(b *testing.B) {
	f := getBenchFixture(b)
	acc := labels.MustNewMatcher(labels.MatchEqual, "__name__", "accuracy")
	m1 := labels.MustNewMatcher(labels.MatchEqual, "model", "m1")
	cases := []struct {
		name, label string
		ms          []*labels.Matcher
	}{
		{"model", "model", nil},
		{"class", "class", nil},
		{`slice{__name__="accuracy",model="m1"}`, "slice", []*labels.Matcher{acc, m1}},
		{`model{__name__="accuracy"}`, "model", []*labels.Matcher{acc}},
	}
	for _, c := range cases {
		b.Run("index/"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if v, err := f.ix.LabelValues(c.label, math.MinInt64, math.MaxInt64, c.ms...); err != nil || len(v) == 0 {
					b.Fatal(err)
				}
			}
		})
		b.Run("block/"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if v, err := f.bi.LabelValues(c.label, c.ms...); err != nil || len(v) == 0 {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("index/LabelNames", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if n, err := f.ix.LabelNames(0, 10); err != nil || len(n) != 6 {
				b.Fatal(n, err)
			}
		}
	})
}

func BenchmarkSeries(b *testing.B) {
	f := getBenchFixture(b)
	ms := benchSelectors[0].ms
	b.ReportAllocs()
	for b.Loop() {
		if s, err := f.ix.Series(0, 1000, ms...); err != nil || len(s) != 2*benchClasses*benchVersions {
			b.Fatal(len(s), err)
		}
	}
}

func BenchmarkWriteBlockIndex(b *testing.B) {
	f := getBenchFixture(b)
	in := make([]BlockSeries, 100_000)
	for i := range in {
		in[i] = BlockSeries{Labels: f.lsets[i*10], Chunks: []uint64{uint64(i)}}
	}
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := WriteBlockIndex(&buf, in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(buf.Len())/float64(len(in)), "bytes/series")
	b.ReportMetric(float64(len(f.block))/benchSeries, "1M-block-bytes/series")
}

func BenchmarkOpenBlockIndex(b *testing.B) {
	f := getBenchFixture(b)
	b.SetBytes(int64(len(f.block)))
	for b.Loop() {
		if _, err := OpenBlockIndex(f.block); err != nil {
			b.Fatal(err)
		}
	}
}
