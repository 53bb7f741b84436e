package tsdb

import (
	"context"
	"crypto/rand"
	"encoding/gob"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"evalstore/sketch"
	"evalstore/tsdb/block"
	"evalstore/tsdb/internal/histtest"
	"evalstore/tsdb/series"
	"evalstore/tsdb/wal"
)

// testStart is the fake clock's time: all test writes are around it.
var testStart = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

const minute = int64(60_000)

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *fakeClock { return &fakeClock{now: testStart} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// testOptions uses the file-backed test block store, a fixed clock and
// SyncNever (fsync cost is not under test; crash tests use kill -9, which
// SyncNever survives).
func testOptions(clock *fakeClock) Options {
	return Options{
		Now:    clock.Now,
		WAL:    wal.Options{Sync: wal.SyncNever, SegmentSize: 1 << 20},
		blocks: testBlockStore(),
	}
}

func openTestDB(t testing.TB, dir string, opts Options) *DB {
	t.Helper()
	db, err := Open(dir, opts)
	// The crash tests fork writer processes in parallel with other tests;
	// between fork and exec a child holds a copy of every descriptor,
	// including another test's LOCK file, whose flock then outlives that
	// test's Close for a moment.
	for i := 0; i < 100 && errors.Is(err, ErrLocked); i++ {
		time.Sleep(10 * time.Millisecond)
		db, err = Open(dir, opts)
	}
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return db
}

// fileBlocks is a minimal on-disk block store for tests: one gob file per
// block directory, written atomically like a real block.
type fileBlocks struct{}

type fileBlockSeries struct {
	Labels  []labels.Label
	Kind    series.Kind
	Format  sketch.Format
	Buckets []fileBucket
	Floats  [][2]int64 // t, value bits
	Hists   []histtest.Sample
}

type fileBucket struct {
	T, W  int64
	State []byte
}

type fileBlockData struct {
	MinT, MaxT int64
	Resolution int64
	Level      int
	Sources    []string
	Series     []fileBlockSeries
}

func (f fileBlocks) write(parent string, resolution int64, set series.SeriesSet) (string, error) {
	return f.writeLevel(parent, resolution, set, 1, nil)
}

// compact merges the inputs' series (block.MergeSeriesSets) and re-keys
// buckets to resolution, merging states that land on the same start.
func (f fileBlocks) compact(parent string, inputs []blockHandle, resolution, mint, maxt int64) (string, error) {
	var sets []series.SeriesSet
	level := 0
	var sources []string
	for _, h := range inputs {
		m := h.meta()
		level = max(level, m.level)
		sources = append(sources, m.sources...)
		q, err := h.querier(mint, maxt)
		if err != nil {
			return "", err
		}
		defer q.Close()
		sets = append(sets, q.Select(context.Background(), series.Hints{Mint: mint, Maxt: maxt}))
	}
	slices.Sort(sources)
	return f.writeLevel(parent, resolution, &rekeySet{SeriesSet: block.MergeSeriesSets(sets...), res: resolution}, level+1, slices.Compact(sources))
}

type rekeySet struct {
	series.SeriesSet
	res int64
}

func (s *rekeySet) At() series.Series { return rekeySeries{s.SeriesSet.At(), s.res} }

type rekeySeries struct {
	series.Series
	res int64
}

func (s rekeySeries) Buckets(series.BucketIterator) series.BucketIterator {
	it := s.Series.Buckets(nil)
	out := &listBuckets{i: -1}
	var cur sketch.Sketch
	flush := func() {
		if cur != nil {
			out.b[len(out.b)-1].State = cur.AppendBinary(nil)
			cur = nil
		}
	}
	for it.Next() {
		t, _, st := it.At()
		k := bucketStart(t, s.res)
		if n := len(out.b); n > 0 && out.b[n-1].T == k {
			if cur == nil {
				cur, _ = sketch.New(s.Meta().Format)
				if err := cur.UnmarshalBinary(out.b[n-1].State); err != nil {
					panic(err)
				}
			}
			if err := cur.DecodeAndMerge(st); err != nil {
				panic(err)
			}
			continue
		}
		flush()
		out.b = append(out.b, fileBucket{T: k, W: s.res, State: slices.Clone(st)})
	}
	flush()
	return out
}

func (fileBlocks) writeLevel(parent string, resolution int64, set series.SeriesSet, level int, sources []string) (string, error) {
	d := fileBlockData{MinT: math.MaxInt64, MaxT: math.MinInt64, Resolution: resolution, Level: level, Sources: sources}
	var bit series.BucketIterator
	var sit chunkenc.Iterator
	for set.Next() {
		s := set.At()
		m := s.Meta()
		fs := fileBlockSeries{Kind: m.Kind, Format: m.Format}
		m.Labels.Range(func(l labels.Label) { fs.Labels = append(fs.Labels, l) })
		bit = s.Buckets(bit)
		for bit.Next() {
			t, w, st := bit.At()
			fs.Buckets = append(fs.Buckets, fileBucket{T: t, W: w, State: slices.Clone(st)})
			d.MinT, d.MaxT = min(d.MinT, t), max(d.MaxT, t)
		}
		if err := bit.Err(); err != nil {
			return "", err
		}
		sit = s.Samples(sit)
		for vt := sit.Next(); vt != chunkenc.ValNone; vt = sit.Next() {
			t := sit.AtT()
			if vt == chunkenc.ValFloatHistogram {
				_, h := sit.AtFloatHistogram(nil)
				fs.Hists = append(fs.Hists, histtest.Sample{T: t, H: h.Copy()})
			} else {
				_, v := sit.At()
				fs.Floats = append(fs.Floats, [2]int64{t, int64(math.Float64bits(v))})
			}
			d.MinT, d.MaxT = min(d.MinT, t), max(d.MaxT, t)
		}
		d.Series = append(d.Series, fs)
	}
	if err := set.Err(); err != nil {
		return "", err
	}
	if len(d.Series) == 0 {
		return "", nil
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	id := hex.EncodeToString(rnd[:])
	if level == 1 {
		d.Sources = []string{id}
	}
	tmp := filepath.Join(parent, id+".tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", err
	}
	f, err := os.Create(filepath.Join(tmp, "data"))
	if err != nil {
		return "", err
	}
	if err := gob.NewEncoder(f).Encode(&d); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	if err := syncDir(tmp); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, filepath.Join(parent, id)); err != nil {
		return "", err
	}
	return id, syncDir(parent)
}

func (fileBlocks) open(dir string) (blockHandle, error) {
	f, err := os.Open(filepath.Join(dir, "data"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var d fileBlockData
	if err := gob.NewDecoder(f).Decode(&d); err != nil {
		return nil, fmt.Errorf("block %s: %w", dir, err)
	}
	fi, _ := f.Stat()
	return &fileBlock{dir: dir, d: d, sz: fi.Size()}, nil
}

type fileBlock struct {
	dir string
	d   fileBlockData
	sz  int64
}

func (b *fileBlock) meta() blockMeta {
	var n uint64
	for _, s := range b.d.Series {
		n += uint64(len(s.Buckets))
	}
	return blockMeta{id: filepath.Base(b.dir), dir: b.dir, mint: b.d.MinT, maxt: b.d.MaxT, resolution: b.d.Resolution,
		level: b.d.Level, sources: b.d.Sources, buckets: n}
}
func (b *fileBlock) size() int64   { return b.sz }
func (b *fileBlock) verify() error { return nil }
func (b *fileBlock) close() error  { return nil }
func (b *fileBlock) querier(mint, maxt int64) (series.Querier, error) {
	return &fileQuerier{b: b, mint: mint, maxt: maxt}, nil
}

type fileQuerier struct {
	b          *fileBlock
	mint, maxt int64
}

func matches(lset labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(lset.Get(m.Name)) {
			return false
		}
	}
	return true
}

func (q *fileQuerier) Select(_ context.Context, h series.Hints, ms ...*labels.Matcher) series.SeriesSet {
	h.Mint, h.Maxt = max(h.Mint, q.mint), min(h.Maxt, q.maxt)
	var out []series.Series
	for _, s := range q.b.d.Series {
		lset := labels.New(s.Labels...)
		if !matches(lset, ms) {
			continue
		}
		ls := &listSeries{meta: series.Meta{Labels: lset, Kind: s.Kind, Format: s.Format}}
		for _, b := range s.Buckets {
			if b.T >= h.Mint && b.T <= h.Maxt {
				ls.buckets = append(ls.buckets, b)
			}
		}
		for _, f := range s.Floats {
			if f[0] >= h.Mint && f[0] <= h.Maxt {
				ls.floats = append(ls.floats, f)
			}
		}
		for _, x := range s.Hists {
			if x.T >= h.Mint && x.T <= h.Maxt {
				ls.hists = append(ls.hists, x)
			}
		}
		if len(ls.buckets)+len(ls.floats)+len(ls.hists) > 0 {
			out = append(out, ls)
		}
	}
	return &listSet{list: out, i: -1}
}

func (q *fileQuerier) LabelNames(_ context.Context, ms ...*labels.Matcher) ([]string, error) {
	var names []string
	for _, s := range q.b.d.Series {
		if lset := labels.New(s.Labels...); matches(lset, ms) {
			lset.Range(func(l labels.Label) { names = append(names, l.Name) })
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

func (q *fileQuerier) LabelValues(_ context.Context, name string, ms ...*labels.Matcher) ([]string, error) {
	var vals []string
	for _, s := range q.b.d.Series {
		if lset := labels.New(s.Labels...); matches(lset, ms) && lset.Get(name) != "" {
			vals = append(vals, lset.Get(name))
		}
	}
	slices.Sort(vals)
	return slices.Compact(vals), nil
}

func (q *fileQuerier) Close() error { return nil }

type listSet struct {
	list []series.Series
	i    int
}

func (s *listSet) Next() bool        { s.i++; return s.i < len(s.list) }
func (s *listSet) At() series.Series { return s.list[s.i] }
func (s *listSet) Err() error        { return nil }

type listSeries struct {
	meta    series.Meta
	buckets []fileBucket
	floats  [][2]int64
	hists   []histtest.Sample
}

func (s *listSeries) Meta() series.Meta { return s.meta }
func (s *listSeries) Buckets(series.BucketIterator) series.BucketIterator {
	return &listBuckets{b: s.buckets, i: -1}
}
func (s *listSeries) Samples(chunkenc.Iterator) chunkenc.Iterator {
	if s.meta.Kind == series.KindHistogram {
		it := &listHists{h: s.hists, i: -1}
		it.seekVia.it = it
		return it
	}
	c := chunkenc.NewXORChunk()
	app, _ := c.Appender()
	for _, f := range s.floats {
		app.Append(0, f[0], math.Float64frombits(uint64(f[1])))
	}
	return c.Iterator(nil)
}

// listHists iterates histogram samples held in memory.
type listHists struct {
	seekVia[int64]
	h []histtest.Sample
	i int
}

func (it *listHists) Next() chunkenc.ValueType {
	if it.i+1 >= len(it.h) {
		it.i = len(it.h)
		return chunkenc.ValNone
	}
	it.i++
	return chunkenc.ValFloatHistogram
}

func (it *listHists) seek(t int64) chunkenc.ValueType {
	for it.i < 0 || (it.i < len(it.h) && it.h[it.i].T < t) {
		it.i++
	}
	if it.i >= len(it.h) {
		return chunkenc.ValNone
	}
	return chunkenc.ValFloatHistogram
}

func (it *listHists) At() (int64, float64) { return it.h[it.i].T, 0 }
func (it *listHists) AtHistogram(*histogram.Histogram) (int64, *histogram.Histogram) {
	return it.h[it.i].T, nil
}
func (it *listHists) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	if fh == nil {
		return it.h[it.i].T, it.h[it.i].H.Copy()
	}
	it.h[it.i].H.CopyTo(fh)
	return it.h[it.i].T, fh
}
func (it *listHists) AtT() int64  { return it.h[it.i].T }
func (it *listHists) AtST() int64 { return 0 }
func (it *listHists) Err() error  { return nil }

type listBuckets struct {
	b []fileBucket
	i int
}

func (it *listBuckets) Next() bool { it.i++; return it.i < len(it.b) }
func (it *listBuckets) At() (int64, int64, []byte) {
	return it.b[it.i].T, it.b[it.i].W, it.b[it.i].State
}
func (it *listBuckets) Err() error { return nil }

// ---- reading helpers ----

type bucketKey struct {
	series string
	t      int64
}

// readSketches returns every bucket state of series matching ms in
// [mint, maxt], keyed by series string and bucket start.
func readSketches(t testing.TB, db *DB, mint, maxt int64, ms ...*labels.Matcher) map[bucketKey]string {
	t.Helper()
	q, err := db.Querier(mint, maxt)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if len(ms) == 0 {
		ms = []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")}
	}
	out := map[bucketKey]string{}
	set := q.Select(context.Background(), series.Hints{Mint: mint, Maxt: maxt}, ms...)
	var it series.BucketIterator
	var prev labels.Labels
	for set.Next() {
		s := set.At()
		if prev.Len() > 0 && labels.Compare(prev, s.Meta().Labels) >= 0 {
			t.Fatalf("series not sorted or repeated: %s after %s", s.Meta().Labels, prev)
		}
		prev = s.Meta().Labels.Copy()
		it = s.Buckets(it)
		lastT := int64(math.MinInt64)
		for it.Next() {
			bt, _, st := it.At()
			if bt <= lastT {
				t.Fatalf("series %s: bucket %d after %d", prev, bt, lastT)
			}
			lastT = bt
			out[bucketKey{prev.String(), bt}] = string(st)
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

type floatPt struct {
	T    int64
	Bits uint64
}

func readFloats(t testing.TB, db *DB, mint, maxt int64) map[string][]floatPt {
	t.Helper()
	q, err := db.Querier(mint, maxt)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	out := map[string][]floatPt{}
	set := q.Select(context.Background(), series.Hints{Mint: mint, Maxt: maxt}, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	var it chunkenc.Iterator
	for set.Next() {
		s := set.At()
		if s.Meta().Kind != series.KindFloat {
			continue
		}
		it = s.Samples(it)
		k := s.Meta().Labels.String()
		for it.Next() != chunkenc.ValNone {
			ts, v := it.At()
			out[k] = append(out[k], floatPt{ts, math.Float64bits(v)})
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// readHists returns every histogram sample in [mint, maxt] by series
// string, checking each series' samples are in time order.
func readHists(t testing.TB, db *DB, mint, maxt int64) map[string][]histtest.Sample {
	t.Helper()
	return readHistsRes(t, db, mint, maxt, 0)
}

// readHistsRes is readHists with hints resolution res.
func readHistsRes(t testing.TB, db *DB, mint, maxt, res int64) map[string][]histtest.Sample {
	t.Helper()
	q, err := db.Querier(mint, maxt)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	out := map[string][]histtest.Sample{}
	set := q.Select(context.Background(), series.Hints{Mint: mint, Maxt: maxt, Resolution: res}, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	var it chunkenc.Iterator
	for set.Next() {
		s := set.At()
		if s.Meta().Kind != series.KindHistogram {
			continue
		}
		if s.Buckets(nil).Next() {
			t.Fatalf("histogram series %s has buckets", s.Meta().Labels)
		}
		it = s.Samples(it)
		k := s.Meta().Labels.String()
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			if vt != chunkenc.ValFloatHistogram {
				t.Fatalf("%s: value type %v", k, vt)
			}
			ts, h := it.AtFloatHistogram(&histogram.FloatHistogram{})
			if ts != it.AtT() || (len(out[k]) > 0 && ts <= out[k][len(out[k])-1].T) {
				t.Fatalf("%s: sample at %d (AtT %d) after %v", k, ts, it.AtT(), out[k])
			}
			out[k] = append(out[k], histtest.Sample{T: ts, H: h})
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func encConfusion(c *sketch.Confusion) string { return string(c.AppendBinary(nil)) }
