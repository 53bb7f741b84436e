package ingest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"evalstore/definitions"
)

// Join-store record encoding (see docs/ingest.md). Every record
// starts with a type byte; integers are varints, strings are uvarint length +
// bytes, floats are 8 bytes little endian.
const (
	recBatch byte = 1 // seq, committed-through, then ops until the end
	recAbort byte = 3 // from, to: batches with seq in [from, to] never committed

	opPutEntry byte = 1
	opPutHeld  byte = 2
	opDelHeld  byte = 3
	opClass    byte = 4
	opFeature  byte = 5
	opSnapshot byte = 6 // snapshot header: seq, nextSegment
)

var errShort = errors.New("ingest: join record truncated")

type enc struct{ b []byte }

func (e *enc) byte(v byte)      { e.b = append(e.b, v) }
func (e *enc) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) str(s string)     { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *enc) f64(f float64)    { e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(f)) }
func (e *enc) value(v definitions.Value) {
	e.byte(byte(v.Kind()))
	switch v.Kind() {
	case definitions.KindString:
		e.str(v.Str())
	case definitions.KindNumber:
		e.f64(v.Num())
	case definitions.KindBool:
		if v.Bool() {
			e.byte(1)
		} else {
			e.byte(0)
		}
	}
}

type dec struct {
	b   []byte
	err error
}

func (d *dec) byte() byte {
	if d.err != nil || len(d.b) < 1 {
		d.err = errShort
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *dec) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) str() string {
	n := d.uvarint()
	if d.err != nil || uint64(len(d.b)) < n {
		d.err = errShort
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *dec) f64() float64 {
	if d.err != nil || len(d.b) < 8 {
		d.err = errShort
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

func (d *dec) value() definitions.Value {
	switch k := definitions.Kind(d.byte()); k {
	case definitions.KindNull:
		return definitions.Value{}
	case definitions.KindString:
		return definitions.StringValue(d.str())
	case definitions.KindNumber:
		return definitions.NumberValue(d.f64())
	case definitions.KindBool:
		return definitions.BoolValue(d.byte() == 1)
	default:
		if d.err == nil {
			d.err = fmt.Errorf("ingest: join record: bad value kind %d", k)
		}
		return definitions.Value{}
	}
}

func encodeEntry(e *enc, key string, p *entry) {
	e.byte(opPutEntry)
	e.str(key)
	e.varint(p.t)
	e.str(p.version)
	e.uvarint(uint64(len(p.slices)))
	for _, s := range p.slices {
		e.str(s)
	}
	e.byte(byte(p.task))
	e.varint(int64(p.predClass))
	var flags byte
	if p.hasScore {
		flags |= 1
	}
	if p.hasLabel {
		flags |= 2
	}
	e.byte(flags)
	e.f64(p.score)
	e.f64(p.pred)
	e.uvarint(uint64(len(p.scores)))
	for _, cs := range p.scores {
		e.str(cs.Class)
		e.f64(cs.Score)
	}
	e.value(p.label)
	e.varint(p.labelAt)
	e.uvarint(uint64(len(p.measures)))
	for _, m := range p.measures {
		e.str(m)
	}
}

func decodeEntry(d *dec) (string, *entry) {
	key := d.str()
	p := &entry{}
	p.t = d.varint()
	p.version = d.str()
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err = errShort
		return "", nil
	}
	p.slices = make([]string, n)
	for i := range p.slices {
		p.slices[i] = d.str()
	}
	p.task = taskCode(d.byte())
	p.predClass = int32(d.varint())
	flags := d.byte()
	p.hasScore, p.hasLabel = flags&1 != 0, flags&2 != 0
	p.score = d.f64()
	p.pred = d.f64()
	n = d.uvarint()
	if n > uint64(len(d.b)) {
		d.err = errShort
		return "", nil
	}
	if n > 0 {
		p.scores = make([]ClassScore, n)
		for i := range p.scores {
			p.scores[i].Class = d.str()
			p.scores[i].Score = d.f64()
		}
	}
	p.label = d.value()
	p.labelAt = d.varint()
	n = d.uvarint()
	if n > uint64(len(d.b)) {
		d.err = errShort
		return "", nil
	}
	for i := uint64(0); i < n; i++ {
		p.measures = append(p.measures, d.str())
	}
	return key, p
}

func encodeHeld(e *enc, key string, h *held) {
	e.byte(opPutHeld)
	e.str(key)
	e.value(h.label)
	var flags byte
	if h.hasLabel {
		flags |= 1
	}
	if h.hasTime {
		flags |= 2
	}
	e.byte(flags)
	e.varint(h.labelAt)
	e.varint(h.arrived)
	e.uvarint(uint64(len(h.measures)))
	for _, m := range h.measures {
		e.str(m.Name)
		e.f64(m.Value)
	}
}

func decodeHeld(d *dec) (string, *held) {
	key := d.str()
	h := &held{}
	h.label = d.value()
	flags := d.byte()
	h.hasLabel, h.hasTime = flags&1 != 0, flags&2 != 0
	h.labelAt = d.varint()
	h.arrived = d.varint()
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err = errShort
		return "", nil
	}
	for i := uint64(0); i < n; i++ {
		h.measures = append(h.measures, Measure{Name: d.str(), Value: d.f64()})
	}
	return key, h
}
