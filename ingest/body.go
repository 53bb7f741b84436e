package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/valyala/fastjson"

	"evalstore/definitions"
)

// Body is one request body as an HTTP handler receives it: the handler passes
// the Content-Type and Content-Encoding headers and the body reader, and maps
// the errors (*BatchError 400, *TooLargeError 413, *UnsupportedError 415).
type Body struct {
	ContentType     string
	ContentEncoding string
	Reader          io.Reader
	// ContentLength is the body's length as sent when known
	// (http.Request.ContentLength), else 0 or -1; it only sizes the read
	// buffer (the limits apply to what is read).
	ContentLength int64
}

// Limits bound what one request may hold.
type Limits struct {
	// MaxBodyBytes bounds the body as sent (compressed or not).
	MaxBodyBytes int64
	// MaxDecodedBytes bounds the body after Content-Encoding.
	MaxDecodedBytes int64
	// MaxRecords bounds the records of one batch (or one evaluation run).
	MaxRecords int
}

// Field length limits (bytes).
const (
	maxNameLen  = 256 // model, version, dataset, run, feature, measure, class names
	maxIDLen    = 512
	maxValueLen = 4096 // string feature/attribute/label values
)

type bodyFormat int

const (
	formatJSON bodyFormat = iota
	formatNDJSON
)

// contentFormat maps a Content-Type to a body format.
func contentFormat(ct string) (bodyFormat, error) {
	if strings.TrimSpace(ct) == "" {
		return formatJSON, nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return 0, &UnsupportedError{What: "content type", Value: ct}
	}
	switch mt {
	case "application/json":
		return formatJSON, nil
	case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines":
		return formatNDJSON, nil
	}
	return 0, &UnsupportedError{What: "content type", Value: ct}
}

var errTooLarge = errors.New("too large")

// limitedReader fails with errTooLarge once more than n bytes were read.
type limitedReader struct {
	r io.Reader
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n < 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > l.n+1 {
		p = p[:l.n+1]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	if l.n < 0 {
		return n, errTooLarge
	}
	return n, err
}

// maxPresize caps the read buffer sized from a body's announced length.
const maxPresize = 16 << 20

// freeList keeps up to cap(ch) large, per-request objects for reuse. Unlike
// a sync.Pool it is not emptied by garbage collections, which come every
// few batches under a high ingest rate.
type freeList[T any] struct {
	ch chan T
	mk func() T
}

func newFreeList[T any](n int, mk func() T) *freeList[T] {
	return &freeList[T]{ch: make(chan T, n), mk: mk}
}

func (f *freeList[T]) get() T {
	select {
	case v := <-f.ch:
		return v
	default:
		return f.mk()
	}
}

func (f *freeList[T]) put(v T) {
	select {
	case f.ch <- v:
	default:
	}
}

var bufPool = newFreeList(4, func() *bytes.Buffer { return new(bytes.Buffer) })

// maxPooledBody bounds the capacity of a body buffer kept for reuse.
const maxPooledBody = 16 << 20

func putBuf(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBody {
		bufPool.put(b)
	}
}

// readBody reads and decompresses b within lim. The returned buffer goes
// back to bufPool when the caller is done.
func readBody(b Body, lim Limits) (*bytes.Buffer, bodyFormat, error) {
	f, err := contentFormat(b.ContentType)
	if err != nil {
		return nil, 0, err
	}
	raw := &limitedReader{r: b.Reader, n: lim.MaxBodyBytes}
	var r io.Reader = raw
	enc := strings.ToLower(strings.TrimSpace(b.ContentEncoding))
	switch enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(raw)
		if err != nil {
			if errors.Is(err, errTooLarge) {
				return nil, 0, &TooLargeError{What: "body", Limit: lim.MaxBodyBytes}
			}
			return nil, 0, &BatchError{Errors: []RecordError{{Index: -1, Reason: "invalid gzip body: " + err.Error()}}}
		}
		defer zr.Close()
		r = zr
	case "zstd":
		zr, err := zstd.NewReader(raw, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(lim.MaxDecodedBytes)+1))
		if err != nil {
			return nil, 0, err
		}
		defer zr.Close()
		r = zr
	default:
		return nil, 0, &UnsupportedError{What: "content encoding", Value: b.ContentEncoding}
	}
	buf := bufPool.get()
	buf.Reset()
	if r == raw {
		// Size the buffer once when the length is known (no doubling
		// copies of a large body).
		n := b.ContentLength
		if lr, ok := b.Reader.(interface{ Len() int }); ok && n <= 0 {
			n = int64(lr.Len())
		}
		if n > 0 && n <= min(lim.MaxBodyBytes, maxPresize) {
			buf.Grow(int(n) + bytes.MinRead)
		}
	}
	_, err = buf.ReadFrom(&limitedReader{r: r, n: lim.MaxDecodedBytes})
	if err != nil {
		putBuf(buf)
		switch {
		case raw.n < 0:
			return nil, 0, &TooLargeError{What: "body", Limit: lim.MaxBodyBytes}
		case errors.Is(err, errTooLarge), errors.Is(err, zstd.ErrDecoderSizeExceeded), errors.Is(err, zstd.ErrWindowSizeExceeded):
			return nil, 0, &TooLargeError{What: "decoded body", Limit: lim.MaxDecodedBytes}
		case enc != "" && enc != "identity":
			return nil, 0, &BatchError{Errors: []RecordError{{Index: -1, Reason: "invalid " + enc + " body: " + err.Error()}}}
		}
		return nil, 0, err
	}
	return buf, f, nil
}

// keyChunk is the size of the arenas of join keys: a few large objects are
// cheaper to allocate than one small one per prediction (the join store
// copies the keys it keeps into its own arena, pendingMap).
const keyChunk = 16 << 10

// joinKeyOf returns model\x00id in d's key arena. Bytes of the arena are
// written once, before the string that views them is made, and never again
// (a full chunk is replaced, not reused), so the strings are immutable.
func (d *decoder) joinKeyOf(model string, id []byte) string {
	n := len(model) + 1 + len(id)
	if n > keyChunk/16 {
		return model + "\x00" + string(id)
	}
	if cap(d.keyBuf)-len(d.keyBuf) < n {
		d.keyBuf = make([]byte, 0, keyChunk)
	}
	off := len(d.keyBuf)
	d.keyBuf = append(d.keyBuf, model...)
	d.keyBuf = append(d.keyBuf, 0)
	d.keyBuf = append(d.keyBuf, id...)
	return unsafe.String(&d.keyBuf[off], n)
}

// decoder turns JSON into records, checking every field. It is used by one
// goroutine for one request.
type decoder struct {
	defs       *definitions.Definitions
	minT, maxT int64 // accepted timestamps, Unix ms
	now        int64
	maxFuture  time.Duration
	maxRecords int
	errs       []RecordError
	// idxBase is the index of the first NDJSON record of the data given
	// to forEachRecord (the second half of a body decoded in parallel).
	idxBase  int
	intern   map[string]string
	p        fastjson.Parser
	slab     []KV   // current slab
	slabs    [][]KV // slabs reused across requests
	slabIdx  int
	mslab    []Measure    // slab of prediction measures (not reused)
	recs     []Prediction // record buffer reused across requests
	idBuf    []byte       // a numeric id's text
	keyBuf   []byte       // arena of join keys (see joinKeyOf); never rewritten
	lastName [2]string    // last model and version
	featKeys []string     // positional caches of key strings
	attrKeys []string
	// positional caches of recent string values (features, attributes):
	// categorical values repeat, and a few comparisons beat hashing.
	featVals [][]string
	attrVals [][]string
	// positional cache of declared features of declModel
	declModel *definitions.Model
	declNames []string
	decls     []*definitions.Feature
}

const maxIntern = 1 << 16

// str returns b as a string, sharing one copy of repeated names and values.
func (d *decoder) str(b []byte) string {
	if s, ok := d.intern[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(d.intern) < maxIntern && len(b) <= 64 {
		d.intern[s] = s
	}
	return s
}

func (d *decoder) fail(idx int, field, format string, args ...any) {
	reason := format
	if len(args) > 0 {
		reason = fmt.Sprintf(format, args...)
	}
	d.errs = append(d.errs, RecordError{Index: idx, Field: field, Reason: reason})
}

// forEachRecord calls fn for every record of a JSON array or NDJSON body,
// reporting syntax errors; it stops early for too many records.
func (d *decoder) forEachRecord(data []byte, f bodyFormat, fn func(idx int, v *fastjson.Value)) error {
	if f == formatJSON {
		v, err := d.p.ParseBytes(data)
		if err != nil {
			d.fail(-1, "", "invalid JSON: %v", err)
			return nil
		}
		arr, err := v.Array()
		if err != nil {
			d.fail(-1, "", "body must be a JSON array of records")
			return nil
		}
		if len(arr) > d.maxRecords {
			return &TooLargeError{What: "records", Limit: int64(d.maxRecords)}
		}
		for i, rv := range arr {
			fn(i, rv)
		}
		return nil
	}
	idx := d.idxBase
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if idx >= d.maxRecords {
			return &TooLargeError{What: "records", Limit: int64(d.maxRecords)}
		}
		v, err := d.p.ParseBytes(line)
		if err != nil {
			d.fail(idx, "", "invalid JSON: %v", err)
		} else {
			fn(idx, v)
		}
		idx++
	}
	return nil
}

func typeName(v *fastjson.Value) string {
	switch v.Type() {
	case fastjson.TypeString:
		return "string"
	case fastjson.TypeNumber:
		return "number"
	case fastjson.TypeTrue, fastjson.TypeFalse:
		return "boolean"
	case fastjson.TypeNull:
		return "null"
	case fastjson.TypeArray:
		return "array"
	}
	return "object"
}

// name reads a required non-empty string field.
func (d *decoder) name(idx int, field string, v *fastjson.Value, maxLen int) (string, bool) {
	if v.Type() != fastjson.TypeString {
		d.fail(idx, field, "must be a string, got %s", typeName(v))
		return "", false
	}
	b, _ := v.StringBytes()
	// model and version repeat from record to record: compare with the
	// last value of this field before hashing.
	slot := -1
	switch field {
	case "model":
		slot = 0
	case "version":
		slot = 1
	}
	if slot >= 0 && len(b) > 0 && d.lastName[slot] == string(b) {
		return d.lastName[slot], true
	}
	switch {
	case len(b) == 0:
		d.fail(idx, field, "must not be empty")
		return "", false
	case len(b) > maxLen:
		d.fail(idx, field, "longer than %d bytes", maxLen)
		return "", false
	case !utf8.Valid(b):
		d.fail(idx, field, "not valid UTF-8")
		return "", false
	}
	str := d.str(b)
	if slot >= 0 {
		d.lastName[slot] = str
	}
	return str, true
}

// id reads a string id: checked like a name (at most maxIDLen bytes), but
// never interned (ids are unique): one fresh copy.
func (d *decoder) id(idx int, field string, v *fastjson.Value) (string, bool) {
	b, ok := d.idBytes(idx, field, v)
	return string(b), ok
}

// idBytes is id returning the parser's bytes (valid until the next parse).
func (d *decoder) idBytes(idx int, field string, v *fastjson.Value) ([]byte, bool) {
	if v.Type() != fastjson.TypeString {
		d.fail(idx, field, "must be a string, got %s", typeName(v))
		return nil, false
	}
	b, _ := v.StringBytes()
	switch {
	case len(b) == 0:
		d.fail(idx, field, "must not be empty")
		return nil, false
	case len(b) > maxIDLen:
		d.fail(idx, field, "longer than %d bytes", maxIDLen)
		return nil, false
	case !utf8.Valid(b):
		d.fail(idx, field, "not valid UTF-8")
		return nil, false
	}
	return b, true
}

// number reads a finite number.
func (d *decoder) number(idx int, field string, v *fastjson.Value) (float64, bool) {
	if v.Type() != fastjson.TypeNumber {
		d.fail(idx, field, "must be a number, got %s", typeName(v))
		return 0, false
	}
	f, err := v.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		d.fail(idx, field, "must be a finite number")
		return 0, false
	}
	return f, true
}

// value reads a scalar (string, number, boolean or null).
func (d *decoder) value(idx int, field string, v *fastjson.Value) (definitions.Value, bool) {
	switch v.Type() {
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		if len(b) > maxValueLen {
			d.fail(idx, field, "longer than %d bytes", maxValueLen)
			return definitions.Value{}, false
		}
		if !utf8.Valid(b) {
			d.fail(idx, field, "not valid UTF-8")
			return definitions.Value{}, false
		}
		return definitions.StringValue(d.str(b)), true
	case fastjson.TypeNumber:
		f, ok := d.number(idx, field, v)
		return definitions.NumberValue(f), ok
	case fastjson.TypeTrue:
		return definitions.BoolValue(true), true
	case fastjson.TypeFalse:
		return definitions.BoolValue(false), true
	case fastjson.TypeNull:
		return definitions.Value{}, true
	}
	d.fail(idx, field, "must be a string, number, boolean or null, got %s", typeName(v))
	return definitions.Value{}, false
}

// timestamp reads RFC 3339 text or Unix seconds and checks the accepted range.
func (d *decoder) timestamp(idx int, field string, v *fastjson.Value) (int64, bool) {
	var ms int64
	switch v.Type() {
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		t, err := time.Parse(time.RFC3339Nano, string(b))
		if err != nil {
			d.fail(idx, field, "not an RFC 3339 time or Unix seconds: %q", b)
			return 0, false
		}
		ms = t.UnixMilli()
	case fastjson.TypeNumber:
		f, err := v.Float64()
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
			d.fail(idx, field, "not a valid Unix time in seconds")
			return 0, false
		}
		ms = int64(math.Round(f * 1000))
	default:
		d.fail(idx, field, "must be an RFC 3339 string or Unix seconds, got %s", typeName(v))
		return 0, false
	}
	if ms > d.maxT {
		d.fail(idx, field, "%s is more than %s in the future", time.UnixMilli(ms).UTC().Format(time.RFC3339Nano), d.maxFuture)
		return 0, false
	}
	if ms < d.minT {
		d.fail(idx, field, "%s is older than the retention (oldest accepted %s)", time.UnixMilli(ms).UTC().Format(time.RFC3339Nano), time.UnixMilli(d.minT).UTC().Format(time.RFC3339))
		return 0, false
	}
	return ms, true
}

// maxPosVals bounds the values cached per key position (posStr).
const maxPosVals = 8

// maxPosKeys bounds the key positions with a value cache.
const maxPosKeys = 256

// posStr is str for the string value at key position pos, looking first at
// the recent values seen at that position.
func (d *decoder) posStr(vals *[][]string, pos int, b []byte) string {
	if pos >= maxPosKeys {
		return d.str(b)
	}
	for pos >= len(*vals) {
		*vals = append(*vals, nil)
	}
	c := (*vals)[pos]
	for _, s := range c {
		if s == string(b) {
			return s
		}
	}
	s := d.str(b)
	if len(b) <= 64 {
		if len(c) < maxPosVals {
			(*vals)[pos] = append(c, s)
		} else {
			copy(c, c[1:])
			c[len(c)-1] = s
		}
	}
	return s
}

func (d *decoder) kvs(idx int, field string, v *fastjson.Value, dst []KV, cache *[]string, vals *[][]string) []KV {
	o, err := v.Object()
	if err != nil {
		if v.Type() != fastjson.TypeNull {
			d.fail(idx, field, "must be an object, got %s", typeName(v))
		}
		return dst
	}
	dst = d.kvSlab(o.Len())
	pos := 0
	o.Visit(func(key []byte, fv *fastjson.Value) {
		if len(key) == 0 || len(key) > maxNameLen || !utf8.Valid(key) {
			d.fail(idx, field, "key %q: must be 1 to %d bytes of UTF-8", key, maxNameLen)
			return
		}
		// Records of a batch mostly list the same keys in the same order:
		// reuse the previous record's string at this position.
		var name string
		if pos < len(*cache) && (*cache)[pos] == string(key) {
			name = (*cache)[pos]
		} else {
			name = d.str(key)
			if pos < len(*cache) {
				(*cache)[pos] = name
			} else {
				*cache = append(*cache, name)
			}
		}
		pos++
		var val definitions.Value
		ok := true
		switch fv.Type() {
		case fastjson.TypeNumber:
			f, err := fv.Float64()
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				d.fail(idx, field+"."+name, "must be a finite number")
				ok = false
			}
			val = definitions.NumberValue(f)
		case fastjson.TypeString:
			b, _ := fv.StringBytes()
			if len(b) <= maxValueLen && utf8.Valid(b) {
				val = definitions.StringValue(d.posStr(vals, pos-1, b))
				break
			}
			val, ok = d.value(idx, field+"."+name, fv)
		default:
			val, ok = d.value(idx, field+"."+name, fv)
		}
		if ok {
			dst = append(dst, KV{Name: name, Value: val})
		}
	})
	return dst
}

// kvSlab returns an empty slice with room for n KVs, carved from a shared
// slab (one allocation for many records).
func (d *decoder) kvSlab(n int) []KV {
	if n > 256 {
		return make([]KV, 0, n)
	}
	if len(d.slab)+n > cap(d.slab) {
		d.slabIdx++
		if d.slabIdx < len(d.slabs) {
			d.slab = d.slabs[d.slabIdx][:0]
		} else {
			d.slab = make([]KV, 0, 8192)
			d.slabs = append(d.slabs, d.slab)
		}
	}
	s := d.slab[len(d.slab) : len(d.slab) : len(d.slab)+n]
	d.slab = d.slab[:len(d.slab)+n]
	return s
}

// resetSlabs makes the slabs reusable by the next request: the records of
// the last one are no longer referenced (their strings live elsewhere).
func (d *decoder) resetSlabs() {
	if len(d.slabs) > maxKeptSlabs {
		d.slabs = d.slabs[:maxKeptSlabs]
	}
	d.slab, d.slabIdx = nil, -1
	d.mslab = nil
}

const maxKeptSlabs = 8

// measures reads a measures object; with slab, the slice is carved from a
// per-request slab (prediction records, which live only until routed).
func (d *decoder) measures(idx int, field string, v *fastjson.Value, slab bool) []Measure {
	o, err := v.Object()
	if err != nil {
		if v.Type() != fastjson.TypeNull {
			d.fail(idx, field, "must be an object, got %s", typeName(v))
		}
		return nil
	}
	var dst []Measure
	if n := o.Len(); slab && n > 0 && n <= 64 {
		if len(d.mslab)+n > cap(d.mslab) {
			d.mslab = make([]Measure, 0, 1024)
		}
		dst = d.mslab[len(d.mslab) : len(d.mslab) : len(d.mslab)+n]
		d.mslab = d.mslab[:len(d.mslab)+n]
	}
	o.Visit(func(key []byte, fv *fastjson.Value) {
		if len(key) == 0 || len(key) > maxNameLen || !utf8.Valid(key) {
			d.fail(idx, field, "key %q: must be 1 to %d bytes of UTF-8", key, maxNameLen)
			return
		}
		name := d.str(key)
		if fv.Type() == fastjson.TypeNumber {
			if f, err := fv.Float64(); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
				dst = append(dst, Measure{Name: name, Value: f}) // no field path to build
				return
			}
		}
		if f, ok := d.number(idx, field+"."+name, fv); ok {
			dst = append(dst, Measure{Name: name, Value: f})
		}
	})
	return dst
}

func (d *decoder) probability(idx int, field string, v *fastjson.Value) (float64, bool) {
	f, ok := d.number(idx, field, v)
	if ok && (f < 0 || f > 1) {
		d.fail(idx, field, "must be a probability in [0, 1], got %v", f)
		return 0, false
	}
	return f, ok
}

// evalCtx is set while decoding the records of an offline run.
type evalCtx struct {
	ev *Evaluation
}

const predictionFields = "model, version, id, timestamp, features, prediction, score, scores, label, attributes, measures"

// prediction decodes one prediction record; prefix is "" online and
// "records[i]." in an evaluation.
func (d *decoder) prediction(idx int, prefix string, v *fastjson.Value, p *Prediction, ev *evalCtx) bool {
	nerr := len(d.errs)
	o, err := v.Object()
	if err != nil {
		d.fail(idx, strings.TrimSuffix(prefix, "."), "record must be a JSON object, got %s", typeName(v))
		return false
	}
	var haveModel, haveVersion, haveID, haveTime bool
	var labelV *fastjson.Value
	var idText []byte // valid until the next record is parsed
	o.Visit(func(key []byte, fv *fastjson.Value) {
		switch string(key) {
		case "model":
			p.Model, haveModel = d.name(idx, prefix+"model", fv, maxNameLen)
		case "version":
			p.Version, haveVersion = d.name(idx, prefix+"version", fv, maxNameLen)
		case "id":
			if fv.Type() == fastjson.TypeNumber {
				// Numeric ids are common; keep their JSON text.
				d.idBuf = fv.MarshalTo(d.idBuf[:0])
				idText, haveID = d.idBuf, true
			} else {
				idText, haveID = d.idBytes(idx, prefix+"id", fv)
			}
		case "timestamp":
			p.Time, haveTime = d.timestamp(idx, prefix+"timestamp", fv)
			if !haveTime {
				haveTime = true // reported
			}
		case "features":
			p.Features = d.kvs(idx, prefix+"features", fv, p.Features[:0], &d.featKeys, &d.featVals)
		case "attributes":
			p.Attributes = d.kvs(idx, prefix+"attributes", fv, p.Attributes[:0], &d.attrKeys, &d.attrVals)
		case "prediction":
			p.Prediction, _ = d.value(idx, prefix+"prediction", fv)
		case "score":
			if fv.Type() != fastjson.TypeNull {
				p.Score, p.HasScore = d.probability(idx, prefix+"score", fv)
			}
		case "scores":
			so, err := fv.Object()
			if err != nil {
				if fv.Type() != fastjson.TypeNull {
					d.fail(idx, prefix+"scores", "must be an object of class: probability, got %s", typeName(fv))
				}
				return
			}
			so.Visit(func(k []byte, sv *fastjson.Value) {
				if len(k) == 0 || len(k) > maxNameLen || !utf8.Valid(k) {
					d.fail(idx, prefix+"scores", "class %q: must be 1 to %d bytes of UTF-8", k, maxNameLen)
					return
				}
				c := d.str(k)
				if s, ok := d.probability(idx, prefix+"scores."+c, sv); ok {
					p.Scores = append(p.Scores, ClassScore{Class: c, Score: s})
				}
			})
			if len(p.Scores) == 0 && len(d.errs) == nerr {
				d.fail(idx, prefix+"scores", "must not be empty")
			}
		case "label":
			labelV = fv
		case "measures":
			p.Measures = d.measures(idx, prefix+"measures", fv, true)
		default:
			d.fail(idx, prefix+string(key), "unknown field (expected %s)", predictionFields)
		}
	})
	if haveID {
		if haveModel && ev == nil {
			// The join key model\x00id and the id share one allocation.
			p.key = d.joinKeyOf(p.Model, idText)
			p.ID = p.key[len(p.Model)+1:]
		} else {
			p.ID = string(idText)
		}
	}
	if labelV != nil && labelV.Type() != fastjson.TypeNull {
		if labelV.Type() == fastjson.TypeObject || labelV.Type() == fastjson.TypeArray {
			d.fail(idx, prefix+"label", "must be a string, number or boolean, got %s", typeName(labelV))
		} else {
			p.Label, p.HasLabel = d.value(idx, prefix+"label", labelV)
		}
	}
	if ev == nil {
		if !haveModel && !hasErrField(d.errs[nerr:], prefix+"model") {
			d.fail(idx, prefix+"model", "required")
		}
		if !haveVersion && !hasErrField(d.errs[nerr:], prefix+"version") {
			d.fail(idx, prefix+"version", "required")
		}
		if !haveID && !hasErrField(d.errs[nerr:], prefix+"id") {
			d.fail(idx, prefix+"id", "required")
		}
		if !haveTime {
			d.fail(idx, prefix+"timestamp", "required")
		}
	} else {
		// An offline record belongs to its run: model and version, when
		// given, must be the run's; the run's timestamp is used.
		if haveModel && p.Model != ev.ev.Model {
			d.fail(idx, prefix+"model", "%q is not the run's model %q", p.Model, ev.ev.Model)
		}
		if haveVersion && p.Version != ev.ev.Version {
			d.fail(idx, prefix+"version", "%q is not the run's version %q", p.Version, ev.ev.Version)
		}
		p.Model, p.Version, p.Time = ev.ev.Model, ev.ev.Version, ev.ev.Time
	}
	if len(d.errs) == nerr {
		d.semantics(idx, prefix, p)
	}
	return len(d.errs) == nerr
}

func hasErrField(errs []RecordError, field string) bool {
	for _, e := range errs {
		if e.Field == field {
			return true
		}
	}
	return false
}

// taskOf resolves the task of a record: the declared one, else inferred
// (definitions.InferTask); an undeclared record with a non-numeric
// prediction and no scores is a multiclass classification.
func taskOf(m *definitions.Model, p *Prediction) definitions.Task {
	if m != nil && m.Task != definitions.TaskUnknown {
		return m.Task
	}
	numeric := p.Prediction.Kind() == definitions.KindNumber || (p.Prediction.IsNull() && p.HasLabel && p.Label.Kind() == definitions.KindNumber)
	t := definitions.InferTask(p.HasScore, len(p.Scores) > 0, numeric)
	if t == definitions.TaskUnknown && !p.Prediction.IsNull() {
		t = definitions.TaskMulticlass
	}
	return t
}

// semantics checks a syntactically valid record against its model's task,
// classes and feature types.
func (d *decoder) semantics(idx int, prefix string, p *Prediction) {
	m, _ := d.defs.Model(p.Model)
	task := taskOf(m, p)
	if p.HasScore && len(p.Scores) > 0 {
		d.fail(idx, prefix+"scores", "give score (binary) or scores (multiclass), not both")
		return
	}
	checkClass := func(field string, v definitions.Value) {
		if v.Kind() == definitions.KindNull {
			return
		}
		if m != nil && !m.HasClass(v.String()) {
			d.fail(idx, prefix+field, "%q is not a class of model %q (classes %s)", v.String(), p.Model, strings.Join(m.Classes, ", "))
		}
		if len(v.String()) > maxNameLen {
			d.fail(idx, prefix+field, "class longer than %d bytes", maxNameLen)
		}
	}
	switch task {
	case definitions.TaskBinary:
		if len(p.Scores) > 0 {
			d.fail(idx, prefix+"scores", "model %q is binary: give score, P(positive class)", p.Model)
		}
		if !p.HasScore && p.Prediction.IsNull() {
			d.fail(idx, prefix+"score", "required for a binary model (or a prediction)")
		}
		if m == nil && !p.Prediction.IsNull() && !p.HasScore {
			break
		}
		checkClass("prediction", p.Prediction)
		if p.HasLabel {
			checkClass("label", p.Label)
		}
	case definitions.TaskMulticlass:
		if p.HasScore {
			d.fail(idx, prefix+"score", "model %q is multiclass: give scores{class: probability}", p.Model)
		}
		if len(p.Scores) == 0 && p.Prediction.IsNull() {
			d.fail(idx, prefix+"prediction", "required for a multiclass model (or scores)")
		}
		checkClass("prediction", p.Prediction)
		if p.HasLabel {
			checkClass("label", p.Label)
		}
		for _, cs := range p.Scores {
			if m != nil && !m.HasClass(cs.Class) {
				d.fail(idx, prefix+"scores."+cs.Class, "%q is not a class of model %q", cs.Class, p.Model)
			}
		}
	case definitions.TaskRegression:
		if p.HasScore || len(p.Scores) > 0 {
			d.fail(idx, prefix+"score", "model %q is a regression: no score or scores", p.Model)
		}
		if p.Prediction.Kind() != definitions.KindNumber {
			d.fail(idx, prefix+"prediction", "a regression prediction must be a number, got %s", p.Prediction.Kind())
		}
		if p.HasLabel && p.Label.Kind() != definitions.KindNumber {
			d.fail(idx, prefix+"label", "a regression label must be a number, got %s", p.Label.Kind())
		}
	default:
		d.fail(idx, prefix+"prediction", "required (with score for a binary, scores for a multiclass model)")
	}
	if m != nil {
		if d.declModel != m {
			d.declModel, d.declNames, d.decls = m, d.declNames[:0], d.decls[:0]
		}
		for i := range p.Features {
			f := &p.Features[i]
			var decl *definitions.Feature
			if i < len(d.declNames) && d.declNames[i] == f.Name {
				decl = d.decls[i]
			} else {
				decl, _ = m.Feature(f.Name)
				if i < len(d.declNames) {
					d.declNames[i], d.decls[i] = f.Name, decl
				} else if i == len(d.declNames) {
					d.declNames, d.decls = append(d.declNames, f.Name), append(d.decls, decl)
				}
			}
			if decl == nil || f.Value.IsNull() {
				continue
			}
			switch decl.Type {
			case definitions.Numeric:
				if f.Value.Kind() != definitions.KindNumber {
					d.fail(idx, prefix+"features."+f.Name, "declared numeric, got %s", f.Value.Kind())
				}
			case definitions.Categorical:
				if f.Value.Kind() != definitions.KindString {
					f.Value = definitions.StringValue(d.str([]byte(f.Value.String())))
				}
			}
		}
	}
}

// decodePredictions decodes an online predictions body.
func (d *decoder) decodePredictions(data []byte, f bodyFormat) ([]Prediction, error) {
	n := 16
	if f == formatNDJSON {
		n = bytes.Count(data, []byte{'\n'}) + 1
		n = min(n, d.maxRecords)
	}
	return d.decodePredictionsTo(data, f, d.predBuf(n))
}

// maxPooledRecs bounds the record buffer a pooled decoder keeps.
const maxPooledRecs = 1 << 14

// predBuf returns an empty slice with room for n records, reusing the
// decoder's buffer (the records of its previous request are dead once the
// decoder is back in the pool, like its KV slabs).
func (d *decoder) predBuf(n int) []Prediction {
	if cap(d.recs) >= n {
		return d.recs[:0]
	}
	buf := make([]Prediction, 0, n)
	if n <= maxPooledRecs {
		d.recs = buf
	}
	return buf
}

// decodePredictionsTo is decodePredictions appending to out.
func (d *decoder) decodePredictionsTo(data []byte, f bodyFormat, out []Prediction) ([]Prediction, error) {
	out, err := d.appendPredictions(data, f, out)
	if err != nil {
		return nil, err
	}
	if len(d.errs) > 0 {
		return nil, &BatchError{Errors: d.errs}
	}
	return out, nil
}

// appendPredictions appends the valid records of data to out; their
// errors are added to d.errs.
func (d *decoder) appendPredictions(data []byte, f bodyFormat, out []Prediction) ([]Prediction, error) {
	err := d.forEachRecord(data, f, func(idx int, v *fastjson.Value) {
		out = append(out, Prediction{})
		d.prediction(idx, "", v, &out[len(out)-1], nil)
	})
	return out, err
}

const feedbackFields = "model, id, label, timestamp, measures"

// countRecords counts the records (non-blank lines) of an NDJSON body.
func countRecords(data []byte) int {
	n := 0
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(bytes.TrimSpace(line)) > 0 {
			n++
		}
	}
	return n
}

// decodeFeedback decodes a feedback body.
func (d *decoder) decodeFeedback(data []byte, f bodyFormat) ([]Feedback, error) {
	var out []Feedback
	err := d.forEachRecord(data, f, func(idx int, v *fastjson.Value) {
		o, err := v.Object()
		if err != nil {
			d.fail(idx, "", "record must be a JSON object, got %s", typeName(v))
			return
		}
		var fb Feedback
		var haveModel, haveID bool
		nerr := len(d.errs)
		o.Visit(func(key []byte, fv *fastjson.Value) {
			switch string(key) {
			case "model":
				fb.Model, haveModel = d.name(idx, "model", fv, maxNameLen)
				haveModel = haveModel || hasErrField(d.errs[nerr:], "model")
			case "id":
				if fv.Type() == fastjson.TypeNumber {
					fb.ID, haveID = string(fv.MarshalTo(nil)), true
				} else {
					fb.ID, haveID = d.id(idx, "id", fv)
					haveID = haveID || hasErrField(d.errs[nerr:], "id")
				}
			case "label":
				switch fv.Type() {
				case fastjson.TypeNull:
				case fastjson.TypeObject, fastjson.TypeArray:
					d.fail(idx, "label", "must be a string, number or boolean, got %s", typeName(fv))
				default:
					fb.Label, fb.HasLabel = d.value(idx, "label", fv)
					if fb.HasLabel && len(fb.Label.String()) > maxNameLen {
						d.fail(idx, "label", "class longer than %d bytes", maxNameLen)
					}
				}
			case "timestamp":
				if fv.Type() != fastjson.TypeNull {
					fb.Time, fb.HasTime = d.timestamp(idx, "timestamp", fv)
				}
			case "measures":
				fb.Measures = d.measures(idx, "measures", fv, false)
			default:
				d.fail(idx, string(key), "unknown field (expected %s)", feedbackFields)
			}
		})
		if !haveModel {
			d.fail(idx, "model", "required")
		}
		if !haveID {
			d.fail(idx, "id", "required")
		}
		if len(d.errs) == nerr && !fb.HasLabel && len(fb.Measures) == 0 {
			d.fail(idx, "", "feedback needs a label or measures")
		}
		if len(d.errs) == nerr {
			if m, ok := d.defs.Model(fb.Model); ok && fb.HasLabel {
				switch m.Task {
				case definitions.TaskRegression:
					if fb.Label.Kind() != definitions.KindNumber {
						d.fail(idx, "label", "a regression label must be a number, got %s", fb.Label.Kind())
					}
				default:
					if !m.HasClass(fb.Label.String()) {
						d.fail(idx, "label", "%q is not a class of model %q (classes %s)", fb.Label.String(), fb.Model, strings.Join(m.Classes, ", "))
					}
				}
			}
		}
		out = append(out, fb)
	})
	if err != nil {
		return nil, err
	}
	if len(d.errs) > 0 {
		return nil, &BatchError{Errors: d.errs}
	}
	return out, nil
}

const evaluationFields = "model, version, dataset, run, timestamp, records"

// decodeEvaluation decodes one offline run (a JSON object).
func (d *decoder) decodeEvaluation(data []byte, f bodyFormat) (*Evaluation, error) {
	if f != formatJSON {
		return nil, &UnsupportedError{What: "content type", Value: "an evaluation is one JSON object (application/json)"}
	}
	v, err := d.p.ParseBytes(data)
	if err != nil {
		return nil, &BatchError{Errors: []RecordError{{Index: -1, Reason: "invalid JSON: " + err.Error()}}}
	}
	o, err := v.Object()
	if err != nil {
		return nil, &BatchError{Errors: []RecordError{{Index: -1, Reason: "body must be a JSON object {" + evaluationFields + "}"}}}
	}
	ev := &Evaluation{}
	var have [5]bool
	var recs *fastjson.Value
	o.Visit(func(key []byte, fv *fastjson.Value) {
		switch string(key) {
		case "model":
			ev.Model, have[0] = d.name(-1, "model", fv, maxNameLen)
		case "version":
			ev.Version, have[1] = d.name(-1, "version", fv, maxNameLen)
		case "dataset":
			ev.Dataset, have[2] = d.name(-1, "dataset", fv, maxNameLen)
		case "run":
			if fv.Type() == fastjson.TypeNumber {
				ev.Run, have[3] = string(fv.MarshalTo(nil)), true
			} else {
				ev.Run, have[3] = d.name(-1, "run", fv, maxNameLen)
			}
		case "timestamp":
			ev.Time, have[4] = d.timestamp(-1, "timestamp", fv)
		case "records":
			recs = fv
		default:
			d.fail(-1, string(key), "unknown field (expected %s)", evaluationFields)
		}
	})
	for i, n := range []string{"model", "version", "dataset", "run", "timestamp"} {
		if !have[i] && !hasErrField(d.errs, n) {
			d.fail(-1, n, "required")
		}
	}
	var arr []*fastjson.Value
	if recs == nil {
		d.fail(-1, "records", "required")
	} else if arr, err = recs.Array(); err != nil {
		d.fail(-1, "records", "must be an array of prediction records, got %s", typeName(recs))
	} else if len(arr) == 0 {
		d.fail(-1, "records", "must not be empty")
	} else if len(arr) > d.maxRecords {
		return nil, &TooLargeError{What: "records", Limit: int64(d.maxRecords)}
	}
	if len(d.errs) > 0 {
		return nil, &BatchError{Errors: d.errs}
	}
	ev.Records = make([]Prediction, len(arr))
	ctx := &evalCtx{ev: ev}
	for i, rv := range arr {
		d.prediction(i, "records["+strconv.Itoa(i)+"].", rv, &ev.Records[i], ctx)
	}
	if len(d.errs) > 0 {
		return nil, &BatchError{Errors: d.errs}
	}
	return ev, nil
}
