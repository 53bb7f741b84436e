package tsdb

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/labels"

	"evalstore/sketch"
	"evalstore/tsdb/series"
)

// WAL record layout (docs/format.md ("TSDB WAL records") has the table). A record
// is one commit: a version byte, then entries until the end of the record.
// Series entries come before any sample entry that refers to them.
const (
	recordVersion byte = 1

	entrySeries    byte = 1 // ref, kind, format, labels [, last float sample or histogram hash]
	entrySketch    byte = 2 // ref, bucket start, delta bytes
	entryFloat     byte = 3 // ref, timestamp, value bits
	entryFloats    byte = 4 // a run of float samples: count, base time, then per sample ref and time deltas, value bits
	entryHistogram byte = 5 // ref, timestamp, histogram length, histogram (histogram.go)
)

// minFloatRunSample is the least number of bytes a sample takes in a float
// run (one-byte ref and time deltas, eight value bytes).
const minFloatRunSample = 10

// recEntry is one decoded entry. lset and delta alias decoder-owned memory
// valid until the next decode.
type recEntry struct {
	typ     byte
	ref     uint64
	kind    series.Kind
	format  sketch.Format
	lset    labels.Labels
	hasLast bool  // float or histogram series: a newest sample exists
	t       int64 // sample time, or the newest sample's time
	v       uint64
	delta   []byte // sketch delta, or encoded histogram (validated)
}

func appendSeriesEntry(dst []byte, ref uint64, kind series.Kind, format sketch.Format, lset labels.Labels, hasLast bool, lastT int64, lastV uint64) []byte {
	dst = append(dst, entrySeries)
	dst = binary.AppendUvarint(dst, ref)
	dst = append(dst, byte(kind), byte(format))
	dst = binary.AppendUvarint(dst, uint64(lset.Len()))
	lset.Range(func(l labels.Label) {
		dst = binary.AppendUvarint(dst, uint64(len(l.Name)))
		dst = append(dst, l.Name...)
		dst = binary.AppendUvarint(dst, uint64(len(l.Value)))
		dst = append(dst, l.Value...)
	})
	if kind.Points() {
		if hasLast {
			dst = append(dst, 1)
			dst = binary.AppendVarint(dst, lastT)
			dst = binary.LittleEndian.AppendUint64(dst, lastV)
		} else {
			dst = append(dst, 0)
		}
	}
	return dst
}

func appendSketchEntry(dst []byte, ref uint64, t int64, delta []byte) []byte {
	return appendBytesEntry(dst, entrySketch, ref, t, delta)
}

// appendBytesEntry appends an entry of type typ: ref, time, then b with its
// length.
func appendBytesEntry(dst []byte, typ byte, ref uint64, t int64, b []byte) []byte {
	dst = append(dst, typ)
	dst = binary.AppendUvarint(dst, ref)
	dst = binary.AppendVarint(dst, t)
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// appendHistogramEntry appends a histogram sample; enc is an encoded
// histogram (appendHistogram).
func appendHistogramEntry(dst []byte, ref uint64, t int64, enc []byte) []byte {
	return appendBytesEntry(dst, entryHistogram, ref, t, enc)
}

func appendFloatEntry(dst []byte, ref uint64, t int64, v uint64) []byte {
	dst = append(dst, entryFloat)
	dst = binary.AppendUvarint(dst, ref)
	dst = binary.AppendVarint(dst, t)
	return binary.LittleEndian.AppendUint64(dst, v)
}

// appendFloatRun encodes fs (not empty) as one float run entry: the samples
// of a commit in order, refs delta-encoded against the previous sample's
// and timestamps against the first's, so a batch of one sample per series
// at one timestamp takes ten bytes a sample. The decoder yields one
// entryFloat entry per sample.
func appendFloatRun(dst []byte, fs []floatSample) []byte {
	dst = append(dst, entryFloats)
	dst = binary.AppendUvarint(dst, uint64(len(fs)))
	t0 := fs[0].t
	dst = binary.AppendVarint(dst, t0)
	var prev uint64
	for i := range fs {
		s := &fs[i]
		ref := uint64(s.ms.ref)
		dst = binary.AppendVarint(dst, int64(ref-prev))
		dst = binary.AppendVarint(dst, s.t-t0)
		dst = binary.LittleEndian.AppendUint64(dst, s.v)
		prev = ref
	}
	return dst
}

// recordDecoder decodes records into a reusable entry slice.
type recordDecoder struct {
	entries []recEntry
	sb      labels.ScratchBuilder
	hd      histDecoder
}

type recReader struct {
	b   []byte
	off int
	err error
}

func (r *recReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated or invalid %s at byte %d", ErrCorruptRecord, what, r.off)
	}
}

func (r *recReader) byte(what string) byte {
	if r.err != nil || r.off >= len(r.b) {
		r.fail(what)
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *recReader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.off += n
	return v
}

func (r *recReader) varint(what string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b[r.off:])
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.off += n
	return v
}

func (r *recReader) uint64(what string) uint64 {
	if r.err != nil || len(r.b)-r.off < 8 {
		r.fail(what)
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b[r.off:])
	r.off += 8
	return v
}

// bytes returns the next length-prefixed byte string, bounded by the input.
func (r *recReader) bytes(what string) []byte {
	n := r.uvarint(what)
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)-r.off) {
		r.fail(what)
		return nil
	}
	b := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return b
}

// decode validates the whole record and returns its entries, or an error
// wrapping ErrCorruptRecord (and no entries). Label strings are copied;
// sketch deltas and encoded histograms alias rec.
func (d *recordDecoder) decode(rec []byte) ([]recEntry, error) {
	d.entries = d.entries[:0]
	r := recReader{b: rec}
	if v := r.byte("version"); r.err == nil && v != recordVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrCorruptRecord, v, recordVersion)
	}
	for r.err == nil && r.off < len(r.b) {
		e := recEntry{typ: r.byte("entry type")}
		if e.typ == entryFloats {
			d.decodeFloatRun(&r)
			continue
		}
		e.ref = r.uvarint("series ref")
		switch e.typ {
		case entrySeries:
			e.kind = series.Kind(r.byte("kind"))
			e.format = sketch.Format(r.byte("format"))
			n := r.uvarint("label count")
			if r.err == nil && n > uint64(len(r.b)-r.off)/2 {
				r.fail("label count")
			}
			d.sb.Reset()
			for i := uint64(0); i < n && r.err == nil; i++ {
				name, value := r.bytes("label name"), r.bytes("label value")
				if r.err == nil && (!utf8.Valid(name) || !utf8.Valid(value) || len(name) == 0) {
					r.err = fmt.Errorf("%w: label %d is empty or not UTF-8", ErrCorruptRecord, i)
				}
				d.sb.Add(string(name), string(value))
			}
			switch e.kind {
			case series.KindSketch:
				if r.err == nil {
					if _, err := sketch.New(e.format); err != nil {
						r.err = fmt.Errorf("%w: series %d: %w", ErrCorruptRecord, e.ref, err)
					}
				}
			case series.KindFloat, series.KindHistogram:
				if e.format != 0 {
					r.fail("sample series format")
				}
				switch r.byte("has last sample") {
				case 0:
				case 1:
					e.hasLast = true
					e.t = r.varint("last timestamp")
					e.v = r.uint64("last value")
				default:
					r.fail("has last sample")
				}
			default:
				r.fail("kind")
			}
			if r.err == nil {
				d.sb.Sort()
				e.lset = d.sb.Labels()
			}
		case entrySketch:
			e.t = r.varint("bucket start")
			e.delta = r.bytes("delta")
		case entryFloat:
			e.t = r.varint("timestamp")
			e.v = r.uint64("value")
		case entryHistogram:
			e.t = r.varint("timestamp")
			e.delta = r.bytes("histogram")
			if r.err == nil {
				h, err := d.hd.decode(e.delta)
				if err != nil {
					r.err = fmt.Errorf("%w: histogram of series %d at %d: %w", ErrCorruptRecord, e.ref, e.t, err)
				} else {
					e.v = histogramHash(h)
				}
			}
		default:
			r.fail("entry type")
		}
		if r.err != nil {
			break
		}
		d.entries = append(d.entries, e)
	}
	if r.err != nil {
		d.entries = d.entries[:0]
		return nil, r.err
	}
	return d.entries, nil
}

// decodeFloatRun decodes a float run entry (after its type byte) into one
// entryFloat entry per sample.
func (d *recordDecoder) decodeFloatRun(r *recReader) {
	n := r.uvarint("float run length")
	if r.err == nil && (n == 0 || n > uint64(len(r.b)-r.off)/minFloatRunSample) {
		r.fail("float run length")
	}
	t0 := r.varint("float run base time")
	var ref uint64
	for i := uint64(0); i < n && r.err == nil; i++ {
		ref += uint64(r.varint("float run ref delta"))
		t := t0 + r.varint("float run time delta")
		v := r.uint64("value")
		if r.err == nil {
			d.entries = append(d.entries, recEntry{typ: entryFloat, ref: ref, t: t, v: v})
		}
	}
}
