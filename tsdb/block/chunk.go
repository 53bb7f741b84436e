package block

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"evalstore/sketch"
	"evalstore/tsdb/series"
)

// Chunk segment and chunk layout constants; docs/format.md ("Block format") is
// the authoritative description.
const (
	segMagic      uint32 = 0x45534348 // "ESCH"
	segVersion    byte   = 1
	segHeaderSize        = 8
	// maxSegmentSize caps a chunk segment file so offsets fit the low 32
	// bits of a chunk reference.
	maxSegmentSize = 512 << 20

	// A sketch chunk is cut after maxChunkBuckets buckets or once its raw
	// payload reaches maxChunkRaw bytes: small enough that a time-range
	// query decompresses little it does not need, large enough for zstd to
	// find the repetition between neighbouring buckets.
	maxChunkBuckets = 120
	maxChunkRaw     = 60 << 10
	// maxFloatSamples matches Prometheus's 120 samples per XOR chunk; float
	// histogram chunks are cut at the same count (and wherever the
	// histogram appender asks for a new chunk).
	maxFloatSamples = 120
	// maxRawLen bounds the decompressed size a reader accepts, so a
	// corrupt length cannot make it allocate without limit.
	maxRawLen = 64 << 20

	flagZstd byte = 1 << 0
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// zstd encoders and decoders are expensive to build and safe for concurrent
// EncodeAll/DecodeAll, so the package shares one of each.
var (
	zstdEncoder = sync.OnceValues(func() (*zstd.Encoder, error) {
		return zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderCRC(false),
			zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
	})
	zstdDecoder = sync.OnceValues(func() (*zstd.Decoder, error) {
		return zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxRawLen),
			zstd.IgnoreChecksum(true))
	})
)

// chunkHeader is a chunk's decoded header; payload aliases the stored
// (possibly compressed) bytes.
type chunkHeader struct {
	kind    series.Kind
	format  sketch.Format
	flags   byte
	count   int
	mint    int64
	maxt    int64
	width   int64
	rawLen  int
	payload []byte
}

// appendChunk appends one framed chunk: uvarint body length, body, CRC-32C
// of the body. raw is compressed when that shrinks it.
// scratch, when not nil, holds the compressed bytes between calls.
func appendChunk(dst []byte, h chunkHeader, raw []byte, scratch *[]byte) ([]byte, error) {
	stored := raw
	if len(raw) > 64 {
		enc, err := zstdEncoder()
		if err != nil {
			return dst, fmt.Errorf("block: zstd encoder: %w", err)
		}
		var buf []byte
		if scratch != nil {
			buf = (*scratch)[:0]
		}
		c := enc.EncodeAll(raw, buf)
		if scratch != nil {
			*scratch = c
		}
		if len(c) < len(raw) {
			stored = c
			h.flags |= flagZstd
		}
	}
	var hb [3 + 4*binary.MaxVarintLen64]byte
	b := append(hb[:0], byte(h.kind), byte(h.format), h.flags)
	b = binary.AppendUvarint(b, uint64(h.count))
	b = binary.AppendVarint(b, h.mint)
	b = binary.AppendUvarint(b, uint64(h.maxt-h.mint))
	b = binary.AppendUvarint(b, uint64(h.width))
	b = binary.AppendUvarint(b, uint64(len(raw)))
	dst = binary.AppendUvarint(dst, uint64(len(b)+len(stored)))
	start := len(dst)
	dst = append(dst, b...)
	dst = append(dst, stored...)
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli)), nil
}

// parseChunk reads the framed chunk at the start of b, verifying its
// checksum before decoding anything else. It returns the header and the
// chunk's total framed length. Errors are reasons, to be located by the
// caller.
func parseChunk(b []byte) (chunkHeader, int, error) {
	var h chunkHeader
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return h, 0, fmt.Errorf("bad chunk length")
	}
	if n < 3 || n > uint64(len(b)-k) || uint64(len(b)-k)-n < 4 {
		return h, 0, fmt.Errorf("chunk length %d exceeds the %d bytes left", n, len(b)-k)
	}
	body := b[k : k+int(n)]
	total := k + int(n) + 4
	if got, want := crc32.Checksum(body, castagnoli), binary.BigEndian.Uint32(b[k+int(n):]); got != want {
		return h, 0, fmt.Errorf("chunk checksum %#08x, want %#08x", got, want)
	}
	h.kind, h.format, h.flags = series.Kind(body[0]), sketch.Format(body[1]), body[2]
	r := body[3:]
	next := func() uint64 {
		if r == nil {
			return 0
		}
		v, k := binary.Uvarint(r)
		if k <= 0 {
			r = nil
			return 0
		}
		r = r[k:]
		return v
	}
	count := next()
	var mint int64
	if r != nil {
		var k int
		if mint, k = binary.Varint(r); k <= 0 {
			r = nil
		} else {
			r = r[k:]
		}
	}
	span, width, rawLen := next(), next(), next()
	switch {
	case r == nil:
		return h, 0, fmt.Errorf("truncated chunk header")
	case !validKind(h.kind):
		return h, 0, fmt.Errorf("unknown series kind %d", h.kind)
	case h.flags&^flagZstd != 0:
		return h, 0, fmt.Errorf("unknown chunk flags %#02x", h.flags)
	case count == 0 || (h.kind == series.KindSketch && count > rawLen/2) || (h.kind != series.KindSketch && count > math.MaxUint16):
		// A bucket takes at least a length byte and a state byte; XOR and
		// float histogram chunks count their samples in 16 bits.
		return h, 0, fmt.Errorf("bad chunk count %d", count)
	case span > 1<<62 || mint > mint+int64(span):
		return h, 0, fmt.Errorf("bad chunk time span %d", span)
	case rawLen > maxRawLen:
		return h, 0, fmt.Errorf("raw length %d over the limit", rawLen)
	case h.flags&flagZstd == 0 && rawLen != uint64(len(r)):
		return h, 0, fmt.Errorf("raw length %d, stored %d", rawLen, len(r))
	}
	if h.kind == series.KindSketch {
		if width == 0 || width > 1<<62 {
			return h, 0, fmt.Errorf("bad bucket width %d", width)
		}
	} else if width != 0 || h.format != 0 {
		return h, 0, fmt.Errorf("%v chunk with width %d, format %d", h.kind, width, h.format)
	}
	h.count, h.mint, h.maxt, h.width, h.rawLen, h.payload = int(count), mint, mint+int64(span), int64(width), int(rawLen), r
	return h, total, nil
}

// rawPayload returns h's decompressed payload, using buf as scratch.
func (h *chunkHeader) rawPayload(buf []byte) ([]byte, error) {
	if h.flags&flagZstd == 0 {
		return h.payload, nil
	}
	dec, err := zstdDecoder()
	if err != nil {
		return nil, fmt.Errorf("zstd decoder: %w", err)
	}
	if cap(buf) < h.rawLen {
		buf = make([]byte, 0, h.rawLen)
	}
	out, err := dec.DecodeAll(h.payload, buf[:0])
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	if len(out) != h.rawLen {
		return nil, fmt.Errorf("decompressed %d bytes, header says %d", len(out), h.rawLen)
	}
	return out, nil
}

// appendSketchPayload appends the raw payload of a sketch chunk: bucket
// time deltas in units of width (len(ts)-1 of them; the first time is the
// header's mint), then the state lengths, then the states back to back.
func appendSketchPayload(dst []byte, ts []int64, width int64, lens []int, states []byte) []byte {
	for i := 1; i < len(ts); i++ {
		dst = binary.AppendUvarint(dst, uint64((ts[i]-ts[i-1])/width))
	}
	for _, l := range lens {
		dst = binary.AppendUvarint(dst, uint64(l))
	}
	return append(dst, states...)
}

// sketchCursor walks the buckets of one validated sketch chunk payload
// without allocating.
type sketchCursor struct {
	deltas, lens, states []byte
	width                int64
	t                    int64
	left                 int
	first                bool
}

// init validates raw against h completely (times increasing to exactly
// h.maxt, lengths adding up to the bytes present) so that iteration needs no
// checks.
func (c *sketchCursor) init(h *chunkHeader, raw []byte) error {
	r := raw
	t := h.mint
	for i := 1; i < h.count; i++ {
		d, k := binary.Uvarint(r)
		if k <= 0 || d == 0 || d > uint64(h.maxt-t)/uint64(h.width) {
			return fmt.Errorf("bucket %d: bad time delta", i)
		}
		r = r[k:]
		t += int64(d) * h.width
	}
	if t != h.maxt {
		return fmt.Errorf("last bucket at %d, header says %d", t, h.maxt)
	}
	deltasEnd := len(raw) - len(r)
	var sum uint64
	for i := 0; i < h.count; i++ {
		l, k := binary.Uvarint(r)
		if k <= 0 || l == 0 {
			return fmt.Errorf("bucket %d: bad state length", i)
		}
		r = r[k:]
		sum += l
		if sum > uint64(len(raw)) {
			return fmt.Errorf("bucket %d: state lengths exceed the payload", i)
		}
	}
	if sum != uint64(len(r)) {
		return fmt.Errorf("states take %d bytes, %d present", sum, len(r))
	}
	lensEnd := len(raw) - len(r)
	*c = sketchCursor{deltas: raw[:deltasEnd], lens: raw[deltasEnd:lensEnd], states: raw[lensEnd:],
		width: h.width, t: h.mint, left: h.count, first: true}
	return nil
}

// next returns the next bucket; ok is false at the end.
func (c *sketchCursor) next() (t int64, state []byte, ok bool) {
	if c.left == 0 {
		return 0, nil, false
	}
	c.left--
	if c.first {
		c.first = false
	} else {
		d, k := binary.Uvarint(c.deltas)
		c.deltas = c.deltas[k:]
		c.t += int64(d) * c.width
	}
	l, k := binary.Uvarint(c.lens)
	c.lens = c.lens[k:]
	state, c.states = c.states[:l], c.states[l:]
	return c.t, state, true
}

// sampleChunk checks that raw is a chunk of h's sample kind (XOR for
// floats, Prometheus's float histogram encoding for histograms) holding
// h.count samples, and wraps it for reading. A histogram chunk is decoded
// whole when full is set (Verify), since its layout is only read lazily
// otherwise.
func sampleChunk(h *chunkHeader, raw []byte, full bool) (chunkenc.Chunk, error) {
	enc, minLen := chunkenc.EncXOR, 2
	if h.kind == series.KindHistogram {
		enc, minLen = chunkenc.EncFloatHistogram, 3 // count, counter reset header
	}
	if len(raw) < minLen {
		return nil, fmt.Errorf("%v chunk of %d bytes", enc, len(raw))
	}
	if n := int(binary.BigEndian.Uint16(raw)); n != h.count {
		return nil, fmt.Errorf("%v chunk holds %d samples, header says %d", enc, n, h.count)
	}
	if enc == chunkenc.EncFloatHistogram && h.count > 0 {
		// Every bucket takes at least a bit per sample.
		if n, err := histogramChunkBuckets(raw); err != nil || n > 8*uint64(len(raw)) {
			if err == nil {
				err = fmt.Errorf("layout declares %d buckets, more than %d bytes can hold", n, len(raw))
			}
			return nil, fmt.Errorf("%v chunk: %w", enc, err)
		}
	}
	c, err := chunkenc.FromData(enc, raw)
	if err != nil || !full || enc != chunkenc.EncFloatHistogram {
		return c, err
	}
	it := c.Iterator(nil)
	n := 0
	for it.Next() == chunkenc.ValFloatHistogram {
		n++
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("%v chunk: sample %d: %w", enc, n, err)
	}
	if n != h.count {
		return nil, fmt.Errorf("%v chunk decodes to %d samples, header says %d", enc, n, h.count)
	}
	return c, nil
}

// histogramChunkBuckets returns how many buckets the layout at the start of
// a Prometheus float histogram chunk declares (positive and negative
// spans' lengths summed). Prometheus's iterator allocates that many
// buckets before reading any, so a layout claiming billions (a crafted
// chunk whose checksum holds) would exhaust memory; the caller bounds it by
// the chunk's size first. The layout is a bit stream after the 3-byte
// header: the zero threshold (a byte, or 255 and 64 bits), the schema (a
// varbit int), then per side a varbit uint count of spans and per span a
// varbit uint length and a varbit int offset.
func histogramChunkBuckets(raw []byte) (uint64, error) {
	r := bitReader{b: raw, pos: 3 * 8}
	if zt := r.bits(8); zt == 255 {
		r.bits(64)
	}
	r.varbit() // schema
	var total uint64
	for range 2 {
		spans := r.varbit()
		for i := uint64(0); i < spans && !r.short; i++ {
			total += r.varbit() // length
			r.varbit()          // offset
		}
	}
	if r.short {
		return 0, errors.New("histogram chunk layout is truncated")
	}
	return total, nil
}

// bitReader reads a big-endian bit stream; reading past the end sets short
// and yields zeros.
type bitReader struct {
	b     []byte
	pos   uint64 // bit position
	short bool
}

func (r *bitReader) bits(n int) uint64 {
	var v uint64
	for range n {
		if r.pos >= uint64(len(r.b))*8 {
			r.short = true
			return 0
		}
		v = v<<1 | uint64(r.b[r.pos>>3]>>(7-r.pos&7)&1)
		r.pos++
	}
	return v
}

// varbitSizes are the value widths of Prometheus's varbit encoding by the
// number of leading one bits of its prefix (0 ones: the value 0).
var varbitSizes = [9]int{0, 3, 6, 9, 12, 18, 25, 56, 64}

// varbit reads one varbit value and returns its bits as an unsigned number
// (for varbit ints, the caller only skips them).
func (r *bitReader) varbit() uint64 {
	ones := 0
	for ones < 8 && r.bits(1) == 1 {
		ones++
	}
	return r.bits(varbitSizes[ones])
}
