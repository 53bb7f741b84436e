package remotewrite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// Appender is the storage's write transaction. The storage engine
// (evalstore/tsdb) satisfies it.
type Appender interface {
	AddSketch(lset labels.Labels, t int64, delta []byte) error
	AddFloat(lset labels.Labels, t int64, v float64) error
	// Commit makes the batch durable (in the WAL) and visible atomically
	// and returns only then.
	Commit() error
	Rollback()
}

// HistogramAppender is implemented by an Appender that stores native
// histogram samples. A native histogram sample is a cumulative (or gauge)
// state, not a delta, so it must not be merged with other samples in a
// time bucket. AddHistogram stores h as the single point (lset, t) with the
// same rules as AddFloat: a series' timestamps strictly increase; the same
// timestamp with an identical histogram is a no-op (so a retried request
// changes nothing); the same timestamp with another histogram is a
// duplicate-sample error. A histogram whose Sum is value.StaleNaN is a
// staleness marker. h is valid (h.Validate() holds, schema at most 8) and
// is reused by the caller after the call: the appender must copy it.
type HistogramAppender interface {
	AddHistogram(lset labels.Labels, t int64, h *histogram.FloatHistogram) error
}

// Version is the remote-write protocol version of a request.
type Version uint8

// Protocol versions.
const (
	V1 Version = 1
	V2 Version = 2
)

func (v Version) String() string {
	switch v {
	case V1:
		return "1.0"
	case V2:
		return "2.0"
	}
	return "unknown"
}

// Content types and response headers of the protocol.
const (
	ContentTypeV1 = "application/x-protobuf"
	ContentTypeV2 = "application/x-protobuf;proto=io.prometheus.write.v2.Request"

	protoV1 = "prometheus.WriteRequest"
	protoV2 = "io.prometheus.write.v2.Request"

	HeaderSamplesWritten    = "X-Prometheus-Remote-Write-Samples-Written"
	HeaderHistogramsWritten = "X-Prometheus-Remote-Write-Histograms-Written"
	HeaderExemplarsWritten  = "X-Prometheus-Remote-Write-Exemplars-Written"
)

// Written counts what a request wrote. Version is set as soon as the
// content type is understood, so a refused 2.0 request still answers with
// zero counts.
type Written struct {
	Version    Version
	Samples    int // float samples, staleness markers included
	Histograms int // native histogram samples, staleness markers included
	Exemplars  int // always 0: exemplars are validated but not stored
}

// SetHeaders sets the 2.0 X-Prometheus-Remote-Write-*-Written headers; it
// does nothing for 1.0 requests, which have none.
func (w Written) SetHeaders(h http.Header) {
	if w.Version != V2 {
		return
	}
	h.Set(HeaderSamplesWritten, strconv.Itoa(w.Samples))
	h.Set(HeaderHistogramsWritten, strconv.Itoa(w.Histograms))
	h.Set(HeaderExemplarsWritten, strconv.Itoa(w.Exemplars))
}

// Options configure a Receiver. Zero values take the defaults.
type Options struct {
	// MaxBodyBytes bounds the compressed body (default 32 MiB).
	MaxBodyBytes int64
	// MaxDecodedBytes bounds the snappy-decoded body (default 32 MiB).
	MaxDecodedBytes int
	// MaxProblems bounds the problems listed in a 400 error (default 10).
	MaxProblems int
	// InvalidAppend reports whether an error from AddFloat/AddHistogram is
	// about the data (out of order, duplicate timestamp, out of retention,
	// series kind mismatch), which makes the request a 400 that the sender
	// must not retry. Other append errors are 500. Wire it to the
	// storage's sentinels; nil treats every append error as a 500.
	InvalidAppend func(error) bool
}

const defaultLimit = 32 << 20

// Receiver decodes remote-write requests and applies them atomically. It is
// safe for concurrent use.
type Receiver struct {
	newAppender func(context.Context) Appender
	opts        Options
	pool        sync.Pool // *decoder
}

// NewReceiver returns a Receiver that opens one Appender per request.
func NewReceiver(newAppender func(ctx context.Context) Appender, opts Options) *Receiver {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = defaultLimit
	}
	if opts.MaxDecodedBytes <= 0 {
		opts.MaxDecodedBytes = defaultLimit
	}
	if opts.MaxProblems <= 0 {
		opts.MaxProblems = 10
	}
	r := &Receiver{newAppender: newAppender, opts: opts}
	r.pool.New = func() any { return &decoder{} }
	return r
}

// ParseContentType returns the protocol version a Content-Type asks for.
// An empty type is 1.0, as Prometheus's receiver assumes; so is
// application/x-protobuf without a proto parameter. Any other media type
// or proto message is ErrUnsupported (415).
func ParseContentType(ct string) (Version, error) {
	ct = strings.TrimSpace(ct)
	if ct == "" {
		return V1, nil
	}
	media, params, _ := strings.Cut(ct, ";")
	if !strings.EqualFold(strings.TrimSpace(media), ContentTypeV1) {
		return 0, unsupported("content type %q: only %s (1.0) and %s (2.0) are accepted", ct, ContentTypeV1, ContentTypeV2)
	}
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return 0, unsupported("content type %q: parameter %q is not key=value", ct, strings.TrimSpace(p))
		}
		if !strings.EqualFold(strings.TrimSpace(k), "proto") {
			continue
		}
		switch strings.Trim(strings.TrimSpace(v), `"`) {
		case protoV1:
			return V1, nil
		case protoV2:
			return V2, nil
		default:
			return 0, unsupported("content type %q: proto message %q is not accepted; only %s and %s are", ct, v, protoV1, protoV2)
		}
	}
	return V1, nil
}

func checkEncoding(enc string) error {
	enc = strings.TrimSpace(enc)
	if enc == "" || strings.EqualFold(enc, "snappy") {
		return nil
	}
	return unsupported("content encoding %q: only snappy (block format) is accepted", enc)
}

// Write decodes one request body and applies it: every sample is valid and
// the batch is committed (durable) before Write returns nil; otherwise
// nothing is written and the error is an *Error whose Status the HTTP
// layer answers with (415, 413, 400, 500 or 503). Written.Version is set
// whenever the content type was understood, also on error.
func (r *Receiver) Write(ctx context.Context, contentType, contentEncoding string, body io.Reader) (Written, error) {
	v, err := ParseContentType(contentType)
	if err != nil {
		return Written{}, err
	}
	w := Written{Version: v}
	if err := checkEncoding(contentEncoding); err != nil {
		return w, err
	}
	d := r.pool.Get().(*decoder)
	defer r.put(d)
	d.reset(r.opts.MaxProblems)
	raw, err := d.decompress(body, r.opts.MaxBodyBytes, r.opts.MaxDecodedBytes)
	if err != nil {
		return w, err
	}
	if v == V1 {
		err = d.decodeV1(raw)
	} else {
		err = d.decodeV2(raw)
	}
	if err != nil {
		return w, err
	}
	if len(d.problems) > 0 {
		e := invalid(nil, "nothing written")
		e.Problems, e.Omitted = append([]Problem(nil), d.problems...), d.omitted
		return w, e
	}
	n, err := r.apply(ctx, d)
	if err != nil {
		return w, err
	}
	w.Samples, w.Histograms = n.Samples, n.Histograms
	return w, nil
}

func (r *Receiver) put(d *decoder) {
	// Do not pin the memory of an unusually large request.
	if cap(d.compressed) > 4<<20 || cap(d.raw) > 16<<20 || len(d.fhs) > 1<<16 {
		return
	}
	r.pool.Put(d)
}

// apply writes a fully validated batch and commits it.
func (r *Receiver) apply(ctx context.Context, d *decoder) (Written, error) {
	var w Written
	if err := ctx.Err(); err != nil {
		return w, storageErr(http.StatusServiceUnavailable, err, "request ended before it was written")
	}
	app := r.newAppender(ctx)
	var ha HistogramAppender
	if len(d.hists) > 0 {
		var ok bool
		if ha, ok = app.(HistogramAppender); !ok {
			app.Rollback()
			return w, invalid(nil, "native histograms are not supported by this storage; nothing written")
		}
	}
	for i := range d.series {
		s := &d.series[i]
		for j, f := range d.floats[s.f0:s.f1] {
			if err := app.AddFloat(s.lset, f.t, f.v); err != nil {
				app.Rollback()
				return w, r.appendErr(err, s.lset, "sample", j, f.t)
			}
		}
		for j, h := range d.hists[s.h0:s.h1] {
			if err := ha.AddHistogram(s.lset, h.t, h.h); err != nil {
				app.Rollback()
				return w, r.appendErr(err, s.lset, "histogram", j, h.t)
			}
		}
	}
	if err := ctx.Err(); err != nil {
		app.Rollback()
		return w, storageErr(http.StatusServiceUnavailable, err, "request ended before commit; nothing written")
	}
	if err := app.Commit(); err != nil {
		return w, storageErr(http.StatusInternalServerError, err, "commit failed; nothing written")
	}
	w.Samples, w.Histograms = len(d.floats), len(d.hists)
	return w, nil
}

func (r *Receiver) appendErr(err error, lset labels.Labels, item string, idx int, t int64) error {
	if r.opts.InvalidAppend != nil && r.opts.InvalidAppend(err) {
		e := invalid(err, "refused by storage; nothing written")
		e.Problems = []Problem{{Series: lset.String(), Item: item, Index: idx, Timestamp: t, Reason: err.Error()}}
		return e
	}
	return storageErr(http.StatusInternalServerError, err, "appending %s[%d] at %d of %s; nothing written", item, idx, t, lset.String())
}

// decoder holds one request's buffers; pooled.
type decoder struct {
	compressed []byte
	raw        []byte
	v1         prompb.WriteRequest
	v2         writev2.Request
	sb         labels.ScratchBuilder

	series []seriesEntry
	floats []floatPoint
	hists  []histPoint
	// fhs are the histograms of d.hists, kept with their buckets' memory
	// between requests.
	fhs []*histogram.FloatHistogram

	maxProblems    int
	problems       []Problem
	omitted        int
	exemplarLabels labels.ScratchBuilder
}

type seriesEntry struct {
	lset           labels.Labels
	f0, f1, h0, h1 int
}

type floatPoint struct {
	t int64
	v float64
}

type histPoint struct {
	t int64
	h *histogram.FloatHistogram
}

func (d *decoder) reset(maxProblems int) {
	d.series = d.series[:0]
	d.floats = d.floats[:0]
	d.hists = d.hists[:0]
	d.problems = d.problems[:0]
	d.omitted = 0
	d.maxProblems = maxProblems
}

func (d *decoder) problem(p Problem) {
	if len(d.problems) < d.maxProblems {
		d.problems = append(d.problems, p)
		return
	}
	d.omitted++
}

func (d *decoder) decompress(body io.Reader, maxBody int64, maxDecoded int) ([]byte, error) {
	buf := d.compressed[:0]
	lr := io.LimitReader(body, maxBody+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			d.compressed = buf
			return nil, invalid(err, "reading body")
		}
	}
	d.compressed = buf
	if int64(len(buf)) > maxBody {
		return nil, tooLarge("body exceeds %d bytes", maxBody)
	}
	n, err := snappy.DecodedLen(buf)
	if err != nil {
		return nil, invalid(err, "snappy block header")
	}
	if n > maxDecoded {
		return nil, tooLarge("decoded body of %d bytes exceeds %d bytes", n, maxDecoded)
	}
	if cap(d.raw) < n {
		d.raw = make([]byte, n)
	}
	raw, err := snappy.Decode(d.raw[:cap(d.raw)], buf)
	if err != nil {
		return nil, invalid(err, "snappy decoding")
	}
	return raw, nil
}

func seriesName(i int) string { return fmt.Sprintf("timeseries[%d]", i) }
