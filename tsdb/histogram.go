package tsdb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/prometheus/prometheus/model/histogram"
)

// Histogram value layout in WAL entries (docs/format.md): a flags byte (bits
// 0-1: the counter reset hint), the schema (varint), the zero threshold,
// zero count, count and sum (8-byte little-endian floats), the positive and
// negative spans (uvarint count, then varint offset and uvarint length
// each), the positive and negative buckets and the custom bounds (uvarint
// count, then 8-byte floats each).
const histFlagHintMask byte = 3

func appendHistogram(dst []byte, h *histogram.FloatHistogram) []byte {
	dst = append(dst, byte(h.CounterResetHint)&histFlagHintMask)
	dst = binary.AppendVarint(dst, int64(h.Schema))
	for _, f := range []float64{h.ZeroThreshold, h.ZeroCount, h.Count, h.Sum} {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
	}
	for _, sp := range [][]histogram.Span{h.PositiveSpans, h.NegativeSpans} {
		dst = binary.AppendUvarint(dst, uint64(len(sp)))
		for _, s := range sp {
			dst = binary.AppendVarint(dst, int64(s.Offset))
			dst = binary.AppendUvarint(dst, uint64(s.Length))
		}
	}
	for _, fs := range [][]float64{h.PositiveBuckets, h.NegativeBuckets, h.CustomValues} {
		dst = binary.AppendUvarint(dst, uint64(len(fs)))
		for _, f := range fs {
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
		}
	}
	return dst
}

// histDecoder decodes encoded histograms into memory it owns: the slices of
// a decoded histogram are valid until the next decode. Whoever receives the
// histogram may replace its slices (Prometheus's chunk appender does) but
// must not keep them.
type histDecoder struct {
	h      histogram.FloatHistogram
	ps, ns []histogram.Span
	fs     [3][]float64
}

// decode decodes b, which must hold exactly one histogram, and validates it
// (histogram.FloatHistogram.Validate). Errors are reasons, to be wrapped.
func (d *histDecoder) decode(b []byte) (*histogram.FloatHistogram, error) {
	r := recReader{b: b}
	flags := r.byte("histogram flags")
	schema := r.varint("schema")
	var fl [4]float64
	for i := range fl {
		fl[i] = math.Float64frombits(r.uint64("histogram float"))
	}
	if r.err == nil && (flags&^histFlagHintMask != 0 || schema < math.MinInt32 || schema > math.MaxInt32) {
		return nil, errors.New("bad histogram flags or schema")
	}
	spans := func(dst []histogram.Span) []histogram.Span {
		n := r.uvarint("span count")
		if r.err == nil && n > uint64(len(r.b)-r.off)/2 {
			r.fail("span count")
		}
		dst = dst[:0]
		for i := uint64(0); i < n && r.err == nil; i++ {
			off, l := r.varint("span offset"), r.uvarint("span length")
			if r.err == nil && (off < math.MinInt32 || off > math.MaxInt32 || l > math.MaxUint32) {
				r.fail("span")
			}
			dst = append(dst, histogram.Span{Offset: int32(off), Length: uint32(l)})
		}
		return dst
	}
	d.ps, d.ns = spans(d.ps), spans(d.ns)
	for i := range d.fs {
		n := r.uvarint("bucket count")
		if r.err == nil && n > uint64(len(r.b)-r.off)/8 {
			r.fail("bucket count")
		}
		d.fs[i] = d.fs[i][:0]
		for j := uint64(0); j < n && r.err == nil; j++ {
			d.fs[i] = append(d.fs[i], math.Float64frombits(r.uint64("bucket")))
		}
	}
	if r.err == nil && r.off != len(r.b) {
		r.fail("histogram end")
	}
	if r.err != nil {
		return nil, r.err
	}
	d.h = histogram.FloatHistogram{
		CounterResetHint: histogram.CounterResetHint(flags & histFlagHintMask),
		Schema:           int32(schema),
		ZeroThreshold:    fl[0], ZeroCount: fl[1], Count: fl[2], Sum: fl[3],
		PositiveSpans: nilIfEmpty(d.ps), NegativeSpans: nilIfEmpty(d.ns),
		PositiveBuckets: nilIfEmpty(d.fs[0]), NegativeBuckets: nilIfEmpty(d.fs[1]), CustomValues: nilIfEmpty(d.fs[2]),
	}
	if err := d.h.Validate(); err != nil {
		return nil, err
	}
	return &d.h, nil
}

// nilIfEmpty keeps absent fields nil, as Validate wants an exponential
// histogram's CustomValues.
func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

// histogramHash is the newest-sample value a histogram series keeps for its
// order checks (memSeries.lastV, the WAL series entry): a 64-bit hash of
// what histogram.FloatHistogram.Equals compares (not the counter reset
// hint), with each side's non-empty buckets by absolute index so that
// equal histograms hash equally whatever their span layout and empty
// buckets. Two different
// histograms collide with probability about 2^-64; a collision would make a
// conflicting duplicate a silent no-op instead of an error.
func histogramHash(h *histogram.FloatHistogram) uint64 {
	x := uint64(0x9E3779B97F4A7C15)
	mix := func(w uint64) {
		// splitmix64's finalizer over the running state.
		x ^= w
		x = (x ^ x>>30) * 0xBF58476D1CE4E5B9
		x = (x ^ x>>27) * 0x94D049BB133111EB
		x ^= x >> 31
	}
	mix(uint64(int64(h.Schema)))
	for _, f := range []float64{h.ZeroThreshold, h.ZeroCount, h.Count, h.Sum} {
		mix(math.Float64bits(f))
	}
	if histogram.IsCustomBucketsSchema(h.Schema) {
		mix(uint64(len(h.CustomValues)))
		for _, f := range h.CustomValues {
			mix(math.Float64bits(f))
		}
	}
	side := func(sp []histogram.Span, bs []float64) {
		var idx int64
		i := 0
		for n, s := range sp {
			if n == 0 {
				idx = int64(s.Offset)
			} else {
				idx += int64(s.Offset)
			}
			for range s.Length {
				// Empty buckets are skipped: chunk recoding adds them to
				// earlier samples when a later one opens new buckets.
				if i < len(bs) && bs[i] != 0 {
					mix(uint64(idx))
					mix(math.Float64bits(bs[i]))
				}
				idx++
				i++
			}
		}
		mix(0xFFFF_FFFF_FFFF_FFFF) // side separator
	}
	side(h.PositiveSpans, h.PositiveBuckets)
	side(h.NegativeSpans, h.NegativeBuckets)
	return x
}

// histogramError wraps a Validate error for the appender's callers.
func histogramError(lsetStr string, t int64, err error) error {
	return fmt.Errorf("%w: series %s: timestamp %d: %w", ErrInvalidHistogram, lsetStr, t, err)
}
