package block

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/VictoriaMetrics/fastcache"

	"evalstore/sketch"
	"evalstore/tsdb/index"
	"evalstore/tsdb/series"
)

// Options tune how a Block is read.
type Options struct {
	// Cache, when set, keeps decompressed chunk payloads (keyed by block ID
	// and chunk reference) so repeated reads of hot chunks skip zstd. It
	// may be shared by many blocks.
	Cache *fastcache.Cache
}

// Block is an open, immutable block. Its methods are safe for concurrent
// use.
type Block struct {
	dir   string
	meta  Meta
	opts  Options
	size  int64
	index *index.BlockIndex
	segs  [][]byte // segs[i] is chunk segment i+1
	unmap []func() error
	key   []byte // cache key prefix: block ID

	mu     sync.Mutex
	cond   *sync.Cond
	refs   int
	closed bool
}

// Open opens the block in dir. It reads and validates meta.json (a missing
// one, or a directory named *.tmp, gives ErrNotBlock), checks every file's
// size against it, maps the files, verifies the whole index and each chunk
// segment's header. Chunk checksums are verified when a chunk is read (see
// Verify to check them all now).
func Open(dir string, opts Options) (*Block, error) {
	if strings.HasSuffix(filepath.Base(dir), tmpSuffix) {
		return nil, fmt.Errorf("%w: %s is an unfinished write", ErrNotBlock, dir)
	}
	mf, err := readMeta(dir)
	if err != nil {
		return nil, err
	}
	b := &Block{dir: dir, meta: mf.Meta, opts: opts, key: []byte(mf.ID)}
	b.cond = sync.NewCond(&b.mu)
	if err := b.open(mf.Files); err != nil {
		_ = b.release()
		return nil, err
	}
	return b, nil
}

func (b *Block) open(files []fileInfo) error {
	nseg := 0
	for _, f := range files {
		if f.Name != indexFilename {
			nseg++
		}
	}
	b.segs = make([][]byte, nseg)
	for _, f := range files {
		path := filepath.Join(b.dir, filepath.FromSlash(f.Name))
		st, err := os.Stat(path)
		if errors.Is(err, fs.ErrNotExist) {
			return corruptf(b.dir, f.Name, -1, "file missing")
		}
		if err != nil {
			return fmt.Errorf("block %s: %w", b.dir, err)
		}
		if st.Size() != f.Size {
			return corruptf(b.dir, f.Name, min(st.Size(), f.Size), "size %d, meta.json says %d (truncated or extended)", st.Size(), f.Size)
		}
		b.size += f.Size
		data, unmap, err := mapFile(path)
		if err != nil {
			return fmt.Errorf("block %s: %w", b.dir, err)
		}
		b.unmap = append(b.unmap, unmap)
		if f.Name == indexFilename {
			if b.index, err = index.OpenBlockIndex(data); err != nil {
				return &CorruptError{Dir: b.dir, File: indexFilename, Offset: -1, Err: err}
			}
			continue
		}
		var n int
		if _, err := fmt.Sscanf(f.Name, chunksDirname+"/"+segmentNameFmt, &n); err != nil || n > nseg {
			return corruptf(b.dir, metaFilename, -1, "chunk segments are not numbered 1..%d (%s)", nseg, f.Name)
		}
		if len(data) < segHeaderSize || binary.BigEndian.Uint32(data) != segMagic {
			return corruptf(b.dir, f.Name, 0, "bad segment magic number")
		}
		if data[4] != segVersion || data[5]|data[6]|data[7] != 0 {
			return corruptf(b.dir, f.Name, 4, "unsupported segment version %d", data[4])
		}
		b.segs[n-1] = data
	}
	if uint64(b.index.NumSeries()) != b.meta.Stats.NumSeries {
		return corruptf(b.dir, indexFilename, -1, "%d series, meta.json says %d", b.index.NumSeries(), b.meta.Stats.NumSeries)
	}
	return nil
}

// Meta returns the block's metadata.
func (b *Block) Meta() Meta { return b.meta }

// Dir returns the block's directory.
func (b *Block) Dir() string { return b.dir }

// Size returns the bytes of the block's files.
func (b *Block) Size() int64 { return b.size }

// Close waits until every querier of the block is closed, then unmaps its
// files. Later calls to Querier fail with ErrClosed; a second Close
// returns nil.
func (b *Block) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	for b.refs > 0 {
		b.cond.Wait()
	}
	b.mu.Unlock()
	return b.release()
}

func (b *Block) release() error {
	var errs []error
	for _, u := range b.unmap {
		errs = append(errs, u())
	}
	b.unmap, b.segs, b.index = nil, nil, nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("block %s: %w", b.dir, err)
	}
	return nil
}

func (b *Block) acquire() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("%w: %s", ErrClosed, b.dir)
	}
	b.refs++
	return nil
}

func (b *Block) done() {
	b.mu.Lock()
	b.refs--
	if b.refs == 0 {
		b.cond.Broadcast()
	}
	b.mu.Unlock()
}

// chunkMeta is one chunk of a series as its index entry describes it.
type chunkMeta struct {
	ref        uint64
	mint, maxt int64
}

// seriesChunks decodes the index chunk words of a series: the kind/format
// word, then (ref, zig-zag mint delta, span) per chunk.
func (b *Block) seriesChunks(words []uint64, dst []chunkMeta) (series.Kind, sketch.Format, []chunkMeta, error) {
	bad := func(format string, args ...any) (series.Kind, sketch.Format, []chunkMeta, error) {
		return 0, 0, dst, corruptf(b.dir, indexFilename, -1, format, args...)
	}
	if len(words) < 4 || (len(words)-1)%3 != 0 {
		return bad("series with %d chunk words", len(words))
	}
	kind, f := series.Kind(words[0]>>8), sketch.Format(words[0])
	if words[0]>>16 != 0 || !validKind(kind) || (kind != series.KindSketch) != (f == 0) {
		return bad("series kind/format word %#x", words[0])
	}
	dst = dst[:0]
	var prev int64
	for i := 1; i < len(words); i += 3 {
		d, span := unzigzag(words[i+1]), words[i+2]
		mint := prev + d
		if span > 1<<62 || (d > 0 && mint < prev) || (d < 0 && mint > prev) || mint+int64(span) < mint {
			return bad("chunk %d: bad time range", len(dst))
		}
		c := chunkMeta{ref: words[i], mint: mint, maxt: mint + int64(span)}
		dst = append(dst, c)
		prev = c.maxt
	}
	return kind, f, dst, nil
}

// validKind reports whether a block can hold series of kind k.
func validKind(k series.Kind) bool {
	return k == series.KindSketch || k.Points()
}

// loadChunk reads, checksums and decompresses chunk c of a series of kind
// and format f, checking its header against the index entry. buf is
// scratch for the payload.
func (b *Block) loadChunk(c chunkMeta, kind series.Kind, f sketch.Format, buf []byte) (chunkHeader, []byte, error) {
	seg, off := int(c.ref>>32), int64(c.ref&0xffffffff)
	if seg < 1 || seg > len(b.segs) || off < segHeaderSize || off >= int64(len(b.segs[seg-1])) {
		return chunkHeader{}, buf, corruptf(b.dir, indexFilename, -1, "chunk reference %#x outside the segments", c.ref)
	}
	h, _, err := parseChunk(b.segs[seg-1][off:])
	if err != nil {
		return h, buf, &CorruptError{Dir: b.dir, File: segmentName(seg), Offset: off, Err: err}
	}
	if h.kind != kind || h.format != f || h.mint != c.mint || h.maxt != c.maxt {
		return h, buf, corruptf(b.dir, segmentName(seg), off, "chunk header (%v %v [%d, %d]) disagrees with the index (%v %v [%d, %d])",
			h.kind, h.format, h.mint, h.maxt, kind, f, c.mint, c.maxt)
	}
	raw, err := b.payload(&h, c.ref, buf)
	if err != nil {
		return h, buf, &CorruptError{Dir: b.dir, File: segmentName(seg), Offset: off, Err: err}
	}
	return h, raw, nil
}

// payload returns h's raw payload, from the cache when there is one.
func (b *Block) payload(h *chunkHeader, ref uint64, buf []byte) ([]byte, error) {
	cache := b.opts.Cache
	if h.flags&flagZstd == 0 || cache == nil {
		return h.rawPayload(buf)
	}
	var kb [64]byte
	key := binary.BigEndian.AppendUint64(append(kb[:0], b.key...), ref)
	if v, ok := cache.HasGet(buf[:0], key); ok && len(v) == h.rawLen {
		return v, nil
	}
	raw, err := h.rawPayload(buf)
	if err == nil && len(raw)+len(key) < 64<<10 {
		cache.Set(key, raw)
	}
	return raw, err
}

// Verify reads every chunk of every segment, checking checksums and
// payload structure, so a block can be vetted before it is trusted (for
// example before compaction deletes its sources). The index was verified
// by Open.
func (b *Block) Verify() error {
	if err := b.acquire(); err != nil {
		return err
	}
	defer b.done()
	var buf []byte
	var cur sketchCursor
	for i, data := range b.segs {
		file := segmentName(i + 1)
		for off := segHeaderSize; off < len(data); {
			h, n, err := parseChunk(data[off:])
			if err != nil {
				return &CorruptError{Dir: b.dir, File: file, Offset: int64(off), Err: err}
			}
			raw, err := h.rawPayload(buf)
			if err == nil {
				if h.flags&flagZstd != 0 {
					// An uncompressed payload aliases the read-only
					// mapping: never decode into it.
					buf = raw[:0]
				}
				if h.kind == series.KindSketch {
					err = cur.init(&h, raw)
				} else {
					_, err = sampleChunk(&h, raw, true)
				}
			}
			if err != nil {
				return &CorruptError{Dir: b.dir, File: file, Offset: int64(off), Err: err}
			}
			off += n
		}
	}
	return nil
}
