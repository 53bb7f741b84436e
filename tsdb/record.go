package tsdb

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/labels"

	"evalstore/sketch"
	"evalstore/tsdb/series"
)

// WAL record layout (docs/parts/tsdbcore-format.md has the table). A record
// is one commit: a version byte, then entries until the end of the record.
// Series entries come before any sample entry that refers to them.
const (
	recordVersion byte = 1

	entrySeries byte = 1 // ref, kind, format, labels [, last float sample]
	entrySketch byte = 2 // ref, bucket start, delta bytes
	entryFloat  byte = 3 // ref, timestamp, value bits
)

// recEntry is one decoded entry. lset and delta alias decoder-owned memory
// valid until the next decode.
type recEntry struct {
	typ     byte
	ref     uint64
	kind    series.Kind
	format  sketch.Format
	lset    labels.Labels
	hasLast bool  // float series: a newest sample exists
	t       int64 // sample time, or the newest sample's time
	v       uint64
	delta   []byte
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
	if kind == series.KindFloat {
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
	dst = append(dst, entrySketch)
	dst = binary.AppendUvarint(dst, ref)
	dst = binary.AppendVarint(dst, t)
	dst = binary.AppendUvarint(dst, uint64(len(delta)))
	return append(dst, delta...)
}

func appendFloatEntry(dst []byte, ref uint64, t int64, v uint64) []byte {
	dst = append(dst, entryFloat)
	dst = binary.AppendUvarint(dst, ref)
	dst = binary.AppendVarint(dst, t)
	return binary.LittleEndian.AppendUint64(dst, v)
}

// recordDecoder decodes records into a reusable entry slice.
type recordDecoder struct {
	entries []recEntry
	sb      labels.ScratchBuilder
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
// sketch deltas alias rec.
func (d *recordDecoder) decode(rec []byte) ([]recEntry, error) {
	d.entries = d.entries[:0]
	r := recReader{b: rec}
	if v := r.byte("version"); r.err == nil && v != recordVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrCorruptRecord, v, recordVersion)
	}
	for r.err == nil && r.off < len(r.b) {
		e := recEntry{typ: r.byte("entry type")}
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
			case series.KindFloat:
				if e.format != 0 {
					r.fail("float series format")
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
