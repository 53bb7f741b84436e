package block

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"evalstore/sketch"
	"evalstore/tsdb/index"
	"evalstore/tsdb/series"
)

// Write writes every series of set into a new block directory parent/<ID>
// and returns its Meta.
//
// set must be sorted by labels with no label set twice. Sketch buckets are
// re-keyed to floor(t/resolution)*resolution and buckets falling on the
// same key are merged, so input finer than resolution is downsampled; every
// input width must divide resolution. Float and native histogram samples
// are written as they are (timestamps strictly increasing per series; a
// histogram's counter reset hint is kept as far as the chunk format carries
// it, see Block.Querier). Series without data are skipped; if nothing is
// left, Write creates nothing and returns ErrEmpty. A block holding
// histogram series is written as FormatVersionHistograms, so that readers
// predating them refuse it by version rather than as corrupt.
//
// The block is built in parent/<ID>.tmp; every file and directory is
// fsynced before the rename to parent/<ID> and the parent is fsynced
// after, so a crash leaves either a complete block or a .tmp directory the
// caller deletes. meta.json is written last.
func Write(parent string, resolution int64, set series.SeriesSet) (Meta, error) {
	return write(parent, resolution, set, defaultLevel, nil, maxSegmentSize)
}

// write is Write with the Level and Sources a compaction sets; nil sources
// means the block is its own source.
// segLimit caps segment files (tests lower it to cover several segments).
func write(parent string, resolution int64, set series.SeriesSet, level int, sources []string, segLimit int64) (Meta, error) {
	if resolution <= 0 {
		return Meta{}, fmt.Errorf("%w: resolution %d", ErrInvalid, resolution)
	}
	id := newID()
	w := &writer{
		parent:     parent,
		tmp:        filepath.Join(parent, id+tmpSuffix),
		resolution: resolution,
		meta:       Meta{ID: id, MinT: math.MaxInt64, MaxT: math.MinInt64, Resolution: resolution, Level: level, Version: FormatVersion},
		scratch:    map[sketch.Format]sketch.Sketch{},
		segLimit:   segLimit,
	}
	if sources == nil {
		sources = []string{id}
	}
	w.meta.Sources = sources
	m, err := w.run(set)
	if err != nil {
		w.abort()
		return Meta{}, err
	}
	return m, nil
}

type writer struct {
	parent, tmp string
	resolution  int64
	meta        Meta
	files       []fileInfo

	seg      *os.File
	bw       *bufio.Writer
	segNum   int
	segOff   int64
	segLimit int64

	series []index.BlockSeries
	chks   []uint64 // current series' index chunk words
	prevT  int64    // maxt of the previous chunk of the current series

	// pending sketch chunk
	ts     []int64
	lens   []int
	states []byte
	format sketch.Format

	frame, raw []byte
	zbuf       []byte // compressed payload scratch
	scratch    map[sketch.Format]sketch.Sketch
	pend       []byte
	chk        chunkenc.Chunk            // the open float or histogram chunk
	fh         *histogram.FloatHistogram // histogram read scratch
}

func (w *writer) abort() {
	if w.seg != nil {
		_ = w.seg.Close()
	}
	_ = os.RemoveAll(w.tmp)
}

func (w *writer) run(set series.SeriesSet) (Meta, error) {
	if err := os.MkdirAll(filepath.Join(w.tmp, chunksDirname), 0o755); err != nil {
		return Meta{}, fmt.Errorf("block: %w", err)
	}
	var prev labels.Labels
	first := true
	for set.Next() {
		s := set.At()
		sm := s.Meta()
		if !first && labels.Compare(prev, sm.Labels) >= 0 {
			return Meta{}, fmt.Errorf("%w: series %s after %s: input not sorted or duplicated", ErrInvalid, sm.Labels, prev)
		}
		first = false
		prev = sm.Labels.Copy()
		if err := w.addSeries(s, sm); err != nil {
			return Meta{}, fmt.Errorf("block: series %s: %w", sm.Labels, err)
		}
	}
	if err := set.Err(); err != nil {
		return Meta{}, fmt.Errorf("block: reading input: %w", err)
	}
	if len(w.series) == 0 {
		return Meta{}, ErrEmpty
	}
	if err := w.closeSegment(); err != nil {
		return Meta{}, err
	}
	if err := w.writeIndex(); err != nil {
		return Meta{}, err
	}
	for _, f := range w.files {
		w.meta.Stats.Bytes += f.Size
	}
	w.meta.Stats.NumSeries = uint64(len(w.series))
	mb, err := json.MarshalIndent(metaFile{Meta: w.meta, Files: w.files}, "", "\t")
	if err != nil {
		return Meta{}, fmt.Errorf("block: meta: %w", err)
	}
	if err := writeFileSync(filepath.Join(w.tmp, metaFilename), mb); err != nil {
		return Meta{}, err
	}
	if err := syncDir(filepath.Join(w.tmp, chunksDirname)); err != nil {
		return Meta{}, err
	}
	if err := syncDir(w.tmp); err != nil {
		return Meta{}, err
	}
	final := filepath.Join(w.parent, w.meta.ID)
	if err := os.Rename(w.tmp, final); err != nil {
		return Meta{}, fmt.Errorf("block: %w", err)
	}
	if err := syncDir(w.parent); err != nil {
		return Meta{}, err
	}
	return w.meta, nil
}

func (w *writer) addSeries(s series.Series, sm series.Meta) error {
	w.chks = w.chks[:0]
	switch sm.Kind {
	case series.KindSketch:
		if err := w.addSketch(s, sm.Format); err != nil {
			return err
		}
	case series.KindFloat, series.KindHistogram:
		if err := w.addSamples(s, sm.Kind); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: unknown series kind %d", ErrInvalid, sm.Kind)
	}
	if len(w.chks) == 0 {
		return nil
	}
	f := sm.Format
	if sm.Kind != series.KindSketch {
		f = 0 // sample series have no sketch format, whatever the input says
	}
	if sm.Kind == series.KindHistogram {
		w.meta.Version = FormatVersionHistograms
	}
	chks := make([]uint64, 0, 1+len(w.chks))
	chks = append(chks, seriesInfo(sm.Kind, f))
	chks = append(chks, w.chks...)
	w.series = append(w.series, index.BlockSeries{Labels: sm.Labels.Copy(), Chunks: chks})
	return nil
}

// floorDiv rounds toward negative infinity, so negative times bucket like
// positive ones.
func floorDiv(t, d int64) int64 {
	q := t / d
	if t%d != 0 && t < 0 {
		q--
	}
	return q
}

func bucketStart(t, res int64) int64 { return floorDiv(t, res) * res }

func (w *writer) addSketch(s series.Series, f sketch.Format) error {
	w.format = f
	var sk sketch.Sketch
	it := s.Buckets(nil)
	var (
		pendT  int64
		have   bool
		merged bool
	)
	flush := func() error {
		if merged {
			w.pend = sk.AppendBinary(w.pend[:0])
		}
		return w.addBucket(pendT, w.pend)
	}
	for it.Next() {
		t, width, state := it.At()
		if width <= 0 || w.resolution%width != 0 {
			return fmt.Errorf("%w: bucket width %d does not divide resolution %d", ErrInvalid, width, w.resolution)
		}
		if len(state) == 0 || sketch.Format(state[0]) != f {
			return fmt.Errorf("%w: bucket at %d is not a %v state", ErrInvalid, t, f)
		}
		key := bucketStart(t, w.resolution)
		if have && key < pendT {
			return fmt.Errorf("%w: bucket at %d out of order", ErrInvalid, t)
		}
		if have && key == pendT {
			if !merged {
				if sk == nil {
					var err error
					if sk, err = w.scratchFor(f); err != nil {
						return err
					}
				}
				if err := sk.UnmarshalBinary(w.pend); err != nil {
					return fmt.Errorf("bucket at %d: %w", pendT, err)
				}
				merged = true
			}
			if err := sk.DecodeAndMerge(state); err != nil {
				return fmt.Errorf("bucket at %d: %w", t, err)
			}
			continue
		}
		if have {
			if err := flush(); err != nil {
				return err
			}
		}
		pendT, have, merged = key, true, false
		w.pend = append(w.pend[:0], state...)
	}
	if err := it.Err(); err != nil {
		return err
	}
	if have {
		if err := flush(); err != nil {
			return err
		}
	}
	return w.cutSketch()
}

func (w *writer) scratchFor(f sketch.Format) (sketch.Sketch, error) {
	if s, ok := w.scratch[f]; ok {
		return s, nil
	}
	s, err := sketch.New(f)
	if err != nil {
		return nil, err
	}
	w.scratch[f] = s
	return s, nil
}

func (w *writer) addBucket(t int64, state []byte) error {
	w.ts = append(w.ts, t)
	w.lens = append(w.lens, len(state))
	w.states = append(w.states, state...)
	w.meta.Stats.NumBuckets++
	if len(w.ts) >= maxChunkBuckets || len(w.states) >= maxChunkRaw {
		return w.cutSketch()
	}
	return nil
}

func (w *writer) cutSketch() error {
	if len(w.ts) == 0 {
		return nil
	}
	w.raw = appendSketchPayload(w.raw[:0], w.ts, w.resolution, w.lens, w.states)
	h := chunkHeader{kind: series.KindSketch, format: w.format, count: len(w.ts),
		mint: w.ts[0], maxt: w.ts[len(w.ts)-1], width: w.resolution}
	w.ts, w.lens, w.states = w.ts[:0], w.lens[:0], w.states[:0]
	return w.writeChunk(h, w.raw)
}

// addSamples writes a float or histogram series' samples as XOR or float
// histogram chunks, cut at maxFloatSamples or where the histogram appender
// starts a new chunk (counter reset, schema or bucket layout change).
func (w *writer) addSamples(s series.Series, kind series.Kind) error {
	want, enc := chunkenc.ValFloat, chunkenc.EncXOR
	if kind == series.KindHistogram {
		want, enc = chunkenc.ValFloatHistogram, chunkenc.EncFloatHistogram
		if w.fh == nil {
			w.fh = &histogram.FloatHistogram{}
		}
	}
	var (
		// prevApp is the appender of the chunk cut for size before the
		// open one, so the histogram appender can tell whether the open
		// chunk starts with a counter reset.
		app, prevApp chunkenc.Appender
		mint, prev   int64
		started      bool
	)
	cut := func() error {
		c := w.chk
		w.chk = nil
		if c == nil || c.NumSamples() == 0 {
			return nil
		}
		return w.writeChunk(chunkHeader{kind: kind, count: c.NumSamples(), mint: mint, maxt: prev}, c.Bytes())
	}
	it := s.Samples(nil)
	for {
		vt := it.Next()
		if vt == chunkenc.ValNone {
			break
		}
		if vt != want {
			return fmt.Errorf("%w: sample of type %v in a %v series", ErrInvalid, vt, kind)
		}
		t := it.AtT()
		if started && t <= prev {
			return fmt.Errorf("%w: sample at %d not after %d", ErrInvalid, t, prev)
		}
		var fh *histogram.FloatHistogram
		if kind == series.KindHistogram {
			// The appender may rewrite the histogram's spans and buckets
			// (it owns them only until the next AtFloatHistogram).
			_, fh = it.AtFloatHistogram(w.fh)
			if fh.CounterResetHint == histogram.CounterReset && w.chk != nil {
				// Prometheus's appender starts a chunk for an explicit
				// reset, but without the reset header after a gauge
				// chunk: a fresh chunk always gets it.
				prevApp = app
				if err := cut(); err != nil {
					return err
				}
			}
		}
		if w.chk == nil {
			c, err := chunkenc.NewEmptyChunk(enc)
			if err != nil {
				return err
			}
			if app, err = c.Appender(); err != nil {
				return err
			}
			w.chk, mint = c, t
		}
		if kind == series.KindFloat {
			_, v := it.At()
			app.Append(0, t, v)
		} else {
			c, recoded, napp, err := app.AppendFloatHistogram(prevApp, 0, t, fh, false)
			if err != nil {
				return fmt.Errorf("histogram at %d: %w", t, err)
			}
			if c != nil && !recoded {
				// A new chunk holding just this sample.
				if err := cut(); err != nil {
					return err
				}
				mint = t
			}
			if c != nil {
				w.chk = c
			}
			app = napp
		}
		prev, started = t, true
		w.meta.Stats.NumSamples++
		if w.chk.NumSamples() >= maxFloatSamples {
			prevApp = app
			if err := cut(); err != nil {
				return err
			}
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	return cut()
}

// writeChunk frames one chunk into the current segment and records its
// index words: the reference (segment << 32 | offset), the zig-zag delta of
// its mint from the previous chunk's maxt (from 0 for the first) and its
// span maxt-mint.
func (w *writer) writeChunk(h chunkHeader, raw []byte) error {
	var err error
	if w.frame, err = appendChunk(w.frame[:0], h, raw, &w.zbuf); err != nil {
		return err
	}
	if w.seg == nil || w.segOff+int64(len(w.frame)) > w.segLimit {
		if err := w.openSegment(); err != nil {
			return err
		}
	}
	if w.segOff+int64(len(w.frame)) > maxSegmentSize {
		return fmt.Errorf("%w: chunk of %d bytes exceeds the segment size", ErrInvalid, len(w.frame))
	}
	ref := uint64(w.segNum)<<32 | uint64(w.segOff)
	if _, err := w.bw.Write(w.frame); err != nil {
		return fmt.Errorf("block: %w", err)
	}
	w.segOff += int64(len(w.frame))
	if len(w.chks) == 0 {
		w.prevT = 0
	}
	w.chks = append(w.chks, ref, zigzag(h.mint-w.prevT), uint64(h.maxt-h.mint))
	w.prevT = h.maxt
	w.meta.MinT = min(w.meta.MinT, h.mint)
	w.meta.MaxT = max(w.meta.MaxT, h.maxt)
	w.meta.Stats.NumChunks++
	return nil
}

func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

func (w *writer) openSegment() error {
	if err := w.closeSegment(); err != nil {
		return err
	}
	w.segNum++
	name := segmentName(w.segNum)
	f, err := os.OpenFile(filepath.Join(w.tmp, filepath.FromSlash(name)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("block: %w", err)
	}
	w.seg, w.bw = f, bufio.NewWriterSize(f, 1<<20)
	var hdr [segHeaderSize]byte
	binary.BigEndian.PutUint32(hdr[:], segMagic)
	hdr[4] = segVersion
	if _, err := w.bw.Write(hdr[:]); err != nil {
		return fmt.Errorf("block: %w", err)
	}
	w.segOff = segHeaderSize
	return nil
}

func (w *writer) closeSegment() error {
	if w.seg == nil {
		return nil
	}
	f := w.seg
	w.seg = nil
	err := w.bw.Flush()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("block: segment %d: %w", w.segNum, err)
	}
	w.files = append(w.files, fileInfo{Name: segmentName(w.segNum), Size: w.segOff})
	return nil
}

func (w *writer) writeIndex() error {
	f, err := os.OpenFile(filepath.Join(w.tmp, indexFilename), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("block: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	err = index.WriteBlockIndex(bw, w.series)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	var size int64
	if err == nil {
		var st os.FileInfo
		if st, err = f.Stat(); err == nil {
			size = st.Size()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("block: index: %w", err)
	}
	w.files = append(w.files, fileInfo{Name: indexFilename, Size: size})
	return nil
}

func writeFileSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("block: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("block: %s: %w", filepath.Base(path), err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("block: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("block: sync %s: %w", dir, err)
	}
	return nil
}
