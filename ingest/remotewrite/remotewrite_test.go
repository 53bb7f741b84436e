package remotewrite

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"evalstore/sketch"
)

// --- request builders (Prometheus's own types and helpers, real snappy) ---

func v1Body(t testing.TB, req *prompb.WriteRequest) []byte {
	t.Helper()
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, raw)
}

type v2Series struct {
	lset    labels.Labels
	samples []writev2.Sample
	hists   []writev2.Histogram
	help    string
}

func v2Request(series ...v2Series) *writev2.Request {
	st := writev2.NewSymbolTable()
	req := &writev2.Request{}
	for _, s := range series {
		ts := writev2.TimeSeries{
			LabelsRefs: st.SymbolizeLabels(s.lset, nil),
			Samples:    s.samples,
			Histograms: s.hists,
			Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: st.Symbolize(s.help)},
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	req.Symbols = st.Symbols()
	return req
}

func v2Body(t testing.TB, req *writev2.Request) []byte {
	t.Helper()
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, raw)
}

func v1Series(lset labels.Labels, samples ...prompb.Sample) prompb.TimeSeries {
	return prompb.TimeSeries{Labels: prompb.FromLabels(lset, nil), Samples: samples}
}

func write(t testing.TB, r *Receiver, ct string, body []byte) (Written, error) {
	t.Helper()
	return r.Write(context.Background(), ct, "snappy", bytes.NewReader(body))
}

// randomNative returns a Prometheus integer native histogram built from
// random observations through LogHistogram (Prometheus's bucket math).
func randomNative(rng *rand.Rand, schema int32, n int) *histogram.Histogram {
	lh, _ := sketch.NewLogHistogram(schema)
	for range n {
		x := math.Exp(rng.NormFloat64() * 3)
		if rng.IntN(5) == 0 {
			x = -x
		}
		if rng.IntN(20) == 0 {
			x = 0
		}
		_ = lh.Add(x)
	}
	return promHistogram(lh.Native())
}

// promHistogram converts the sketch form to Prometheus's.
func promHistogram(nh sketch.NativeHistogram) *histogram.Histogram {
	h := &histogram.Histogram{
		Schema: nh.Schema, ZeroThreshold: nh.ZeroThreshold, ZeroCount: nh.ZeroCount, Count: nh.Count, Sum: nh.Sum,
		PositiveBuckets: nh.PositiveDeltas, NegativeBuckets: nh.NegativeDeltas,
	}
	for _, sp := range nh.PositiveSpans {
		h.PositiveSpans = append(h.PositiveSpans, histogram.Span{Offset: sp.Offset, Length: sp.Length})
	}
	for _, sp := range nh.NegativeSpans {
		h.NegativeSpans = append(h.NegativeSpans, histogram.Span{Offset: sp.Offset, Length: sp.Length})
	}
	return h
}

// --- tests ---

func TestV1FloatsAndStaleness(t *testing.T) {
	s := newFakeStore()
	r := NewReceiver(s.appender, Options{})
	a := labels.FromStrings("__name__", "http_requests_total", "code", "200", "job", "api")
	b := labels.FromStrings("__name__", "up", "job", "api")
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		v1Series(a, prompb.Sample{Timestamp: 1000, Value: 1}, prompb.Sample{Timestamp: 2000, Value: 3}),
		v1Series(b, prompb.Sample{Timestamp: 1000, Value: 1}, prompb.Sample{Timestamp: 2000, Value: math.Float64frombits(value.StaleNaN)}),
	}}
	w, err := write(t, r, "application/x-protobuf", v1Body(t, req))
	if err != nil || StatusCode(err) != http.StatusNoContent {
		t.Fatalf("err %v", err)
	}
	if w != (Written{Version: V1, Samples: 4}) {
		t.Fatalf("written %+v", w)
	}
	if got := s.floats[a.String()]; !reflect.DeepEqual(got, []fakeFloat{{1000, 1}, {2000, 3}}) {
		t.Fatalf("a: %v", got)
	}
	got := s.floats[b.String()]
	if len(got) != 2 || !value.IsStaleNaN(got[1].V) || math.Float64bits(got[1].V) != value.StaleNaN {
		t.Fatalf("staleness marker not kept bit for bit: %v", got)
	}
	h := http.Header{}
	w.SetHeaders(h)
	if len(h) != 0 {
		t.Fatalf("1.0 response got headers %v", h)
	}
}

func TestV1EmptyLabelValueIsAbsent(t *testing.T) {
	s := newFakeStore()
	r := NewReceiver(s.appender, Options{})
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "m"}, {Name: "a", Value: ""}, {Name: "b", Value: "x"}},
		Samples: []prompb.Sample{{Timestamp: 1, Value: 2}},
	}}}
	if _, err := write(t, r, "", v1Body(t, req)); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.floats[labels.FromStrings("__name__", "m", "b", "x").String()]; !ok {
		t.Fatalf("stored %v", s.floats)
	}
}

func TestV2FloatsHistogramsHeaders(t *testing.T) {
	s := newFakeStore()
	r := NewReceiver(s.appender, Options{})
	rng := rand.New(rand.NewPCG(1, 2))
	h1, h2 := randomNative(rng, 3, 500), randomNative(rng, 3, 700)
	hs := labels.FromStrings("__name__", "latency_seconds", "job", "api")
	req := v2Request(
		v2Series{lset: labels.FromStrings("__name__", "x", "a", "1"), samples: []writev2.Sample{{Value: 1, Timestamp: 10}, {Value: 2, Timestamp: 20, StartTimestamp: 5}}, help: "x help"},
		v2Series{lset: labels.FromStrings("__name__", "y"), samples: []writev2.Sample{{Value: 7, Timestamp: 10}}},
		v2Series{lset: hs, hists: []writev2.Histogram{writev2.FromIntHistogram(0, 10, h1), writev2.FromFloatHistogram(0, 20, h2.ToFloat(nil))}},
	)
	req.Timeseries[0].Exemplars = []writev2.Exemplar{{LabelsRefs: []uint32{}, Value: 1, Timestamp: 10}}
	w, err := write(t, r, ContentTypeV2, v2Body(t, req))
	if err != nil {
		t.Fatal(err)
	}
	if w != (Written{Version: V2, Samples: 3, Histograms: 2}) {
		t.Fatalf("written %+v", w)
	}
	h := http.Header{}
	w.SetHeaders(h)
	if h.Get(HeaderSamplesWritten) != "3" || h.Get(HeaderHistogramsWritten) != "2" || h.Get(HeaderExemplarsWritten) != "0" {
		t.Fatalf("headers %v", h)
	}
	got := s.hists[hs.String()]
	if len(got) != 2 {
		t.Fatalf("histograms %v", got)
	}
	for i, want := range []*histogram.Histogram{h1, h2} {
		if w := want.ToFloat(nil); !got[i].H.Equals(w) {
			t.Fatalf("histogram %d: stored %v want %v", i, got[i].H, w)
		}
	}
}

// TestNativeHistogramRoundTrip: the stored histogram is exactly the one
// sent, for both versions, integer and float, every exponential schema,
// custom buckets (NHCB) and every reset hint.
func TestNativeHistogramRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var cases []*histogram.Histogram
	for schema := int32(-4); schema <= 8; schema++ {
		cases = append(cases, randomNative(rng, schema, 1+rng.IntN(2000)))
	}
	// Custom buckets: bounds 0.1, 0.5, 1, 5 and +Inf; counts 3, 0, 2, 1, 4.
	cases = append(cases, &histogram.Histogram{Schema: histogram.CustomBucketsSchema, Count: 10, Sum: 31.5,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 1}, {Offset: 1, Length: 3}}, PositiveBuckets: []int64{3, -1, -1, 3},
		CustomValues: []float64{0.1, 0.5, 1, 5}})
	lset := labels.FromStrings("__name__", "h")
	for i, h := range cases {
		for _, float := range []bool{false, true} {
			for _, hint := range []histogram.CounterResetHint{histogram.UnknownCounterReset, histogram.CounterReset, histogram.NotCounterReset, histogram.GaugeType} {
				h.CounterResetHint = hint
				want := h.ToFloat(nil)
				for _, v := range []Version{V1, V2} {
					s := newFakeStore()
					r := NewReceiver(s.appender, Options{})
					var err error
					if v == V1 {
						hp := prompb.FromIntHistogram(1000, h)
						if float {
							hp = prompb.FromFloatHistogram(1000, want)
						}
						_, err = write(t, r, ContentTypeV1, v1Body(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: prompb.FromLabels(lset, nil), Histograms: []prompb.Histogram{hp}}}}))
					} else {
						hp := writev2.FromIntHistogram(0, 1000, h)
						if float {
							hp = writev2.FromFloatHistogram(0, 1000, want)
						}
						_, err = write(t, r, ContentTypeV2, v2Body(t, v2Request(v2Series{lset: lset, hists: []writev2.Histogram{hp}})))
					}
					if err != nil {
						t.Fatalf("case %d (schema %d) float %v v%v: %v", i, h.Schema, float, v, err)
					}
					got := s.hists[lset.String()]
					if len(got) != 1 || !got[0].H.Equals(want) || got[0].H.CounterResetHint != hint {
						t.Fatalf("case %d (schema %d) float %v v%v hint %d: stored %v, want %v", i, h.Schema, float, v, hint, got, want)
					}
				}
			}
		}
	}
}

// TestSchemaAbove8IsReduced: schemas 9..52 are reduced to 8 as Prometheus
// does on ingestion.
func TestSchemaAbove8IsReduced(t *testing.T) {
	h := &histogram.Histogram{Schema: 10, Count: 7, Sum: 10, ZeroThreshold: 0x1p-128,
		PositiveSpans: []histogram.Span{{Offset: 3, Length: 5}}, PositiveBuckets: []int64{1, 0, 1, -1, 1}}
	want := h.ToFloat(nil)
	if err := want.ReduceResolution(8); err != nil {
		t.Fatal(err)
	}
	// Schema-10 buckets 3..7 (counts 1 1 2 1 2) fall into schema-8
	// buckets ceil(i/4): 1 (i = 3, 4) and 2 (i = 5..7), so 2 and 5.
	if want.Schema != 8 || len(want.PositiveBuckets) != 2 || want.PositiveBuckets[0] != 2 || want.PositiveBuckets[1] != 5 {
		t.Fatalf("oracle: %v", want)
	}
	s := newFakeStore()
	r := NewReceiver(s.appender, Options{})
	lset := labels.FromStrings("__name__", "h")
	if _, err := write(t, r, ContentTypeV2, v2Body(t, v2Request(v2Series{lset: lset, hists: []writev2.Histogram{writev2.FromIntHistogram(0, 1, h)}}))); err != nil {
		t.Fatal(err)
	}
	if got := s.hists[lset.String()][0].H; !got.Equals(want) {
		t.Fatalf("stored %v, want %v", got, want)
	}
}

func TestHistogramStaleMarker(t *testing.T) {
	s := newFakeStore()
	r := NewReceiver(s.appender, Options{})
	lset := labels.FromStrings("__name__", "h")
	stale := &histogram.Histogram{Sum: math.Float64frombits(value.StaleNaN)}
	h := randomNative(rand.New(rand.NewPCG(3, 3)), 2, 50)
	req := v2Request(v2Series{lset: lset, hists: []writev2.Histogram{writev2.FromIntHistogram(0, 1, h), writev2.FromIntHistogram(0, 2, stale)}})
	w, err := write(t, r, ContentTypeV2, v2Body(t, req))
	if err != nil || w.Histograms != 2 {
		t.Fatal(w, err)
	}
	got := s.hists[lset.String()]
	if len(got) != 2 || !got[0].H.Equals(h.ToFloat(nil)) || !value.IsStaleNaN(got[1].H.Sum) {
		t.Fatalf("stored %+v", got)
	}
}

// TestIdempotentRetry: applying the same request twice (a retry after a
// lost response) leaves exactly what one application wrote.
func TestIdempotentRetry(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var series []v2Series
	for i := range 20 {
		lset := labels.FromStrings("__name__", "m", "i", string(rune('a'+i)))
		if i%4 == 0 {
			series = append(series, v2Series{lset: lset, hists: []writev2.Histogram{
				writev2.FromIntHistogram(0, 1000, randomNative(rng, 3, 100)), writev2.FromIntHistogram(0, 2000, randomNative(rng, 3, 200))}})
			continue
		}
		series = append(series, v2Series{lset: lset, samples: []writev2.Sample{{Value: rng.Float64(), Timestamp: 1000}, {Value: rng.Float64(), Timestamp: 2000}}})
	}
	body := v2Body(t, v2Request(series...))
	s := newFakeStore()
	r := NewReceiver(s.appender, Options{InvalidAppend: isDataErr})
	w1, err := write(t, r, ContentTypeV2, body)
	if err != nil {
		t.Fatal(err)
	}
	floats, hists := snapshot(s)
	w2, err := write(t, r, ContentTypeV2, body)
	if err != nil {
		t.Fatal(err)
	}
	if w1 != w2 {
		t.Fatalf("written %+v then %+v", w1, w2)
	}
	f2, h2 := snapshot(s)
	if !reflect.DeepEqual(floats, f2) || !reflect.DeepEqual(hists, h2) {
		t.Fatal("retry changed the stored data")
	}
}

// TestRetryWithStrictStorage: against a storage that, like Prometheus's
// in-order head, only compares a same-timestamp write with the newest
// point, a retried request with two samples per series is refused as out
// of order (400, never retried) — still nothing is written twice.
func TestRetryWithStrictStorage(t *testing.T) {
	lset := labels.FromStrings("__name__", "m")
	body := v2Body(t, v2Request(v2Series{lset: lset, samples: []writev2.Sample{{Value: 1, Timestamp: 1}, {Value: 2, Timestamp: 2}}}))
	s := newFakeStore()
	s.strict = true
	r := NewReceiver(s.appender, Options{InvalidAppend: isDataErr})
	if _, err := write(t, r, ContentTypeV2, body); err != nil {
		t.Fatal(err)
	}
	_, err := write(t, r, ContentTypeV2, body)
	if StatusCode(err) != 400 || !errors.Is(err, errOutOfOrder) {
		t.Fatalf("retry: %v", err)
	}
	if got := s.floats[lset.String()]; len(got) != 2 {
		t.Fatalf("stored %v", got)
	}
}

func snapshot(s *fakeStore) (map[string][]fakeFloat, map[string][]fakeHist) {
	f, h := map[string][]fakeFloat{}, map[string][]fakeHist{}
	for k, v := range s.floats {
		f[k] = append([]fakeFloat(nil), v...)
	}
	for k, v := range s.hists {
		h[k] = append([]fakeHist(nil), v...)
	}
	return f, h
}

func isDataErr(err error) bool { return errors.Is(err, errOutOfOrder) || errors.Is(err, errDuplicate) }

// TestStatusCodes covers every outcome: each refused request writes
// nothing and names the problem.
func TestStatusCodes(t *testing.T) {
	good := labels.FromStrings("__name__", "m", "job", "x")
	goodV1 := func() *prompb.WriteRequest {
		return &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{v1Series(good, prompb.Sample{Timestamp: 5, Value: 1})}}
	}
	withSeries := func(ts ...prompb.TimeSeries) []byte {
		req := goodV1()
		req.Timeseries = append(req.Timeseries, ts...)
		return v1Body(t, req)
	}
	v2raw := func(req *writev2.Request) []byte { return v2Body(t, req) }
	goodV2 := func() *writev2.Request {
		return v2Request(v2Series{lset: good, samples: []writev2.Sample{{Value: 1, Timestamp: 5}}})
	}
	mod2 := func(f func(*writev2.Request)) []byte { r := goodV2(); f(r); return v2raw(r) }
	badHist := prompb.FromIntHistogram(5, &histogram.Histogram{Count: 3, Sum: 1, PositiveSpans: []histogram.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []int64{2}})
	nhcb := prompb.FromFloatHistogram(5, &histogram.FloatHistogram{Schema: -53, Count: 1, Sum: 1, PositiveSpans: []histogram.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []float64{1}, CustomValues: []float64{1}})
	nonInt := prompb.FromFloatHistogram(5, &histogram.FloatHistogram{Count: 1.5, Sum: 1, PositiveSpans: []histogram.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []float64{1.5}})
	badNHCB := prompb.FromFloatHistogram(5, &histogram.FloatHistogram{Schema: -53, Count: 1, Sum: 1, PositiveSpans: []histogram.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []float64{1}, CustomValues: []float64{2, 1}})
	negBucket := prompb.FromIntHistogram(5, &histogram.Histogram{Count: 3, Sum: 1, PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{2, -3}})
	spanMismatch := prompb.FromIntHistogram(5, &histogram.Histogram{Count: 3, Sum: 1, PositiveSpans: []histogram.Span{{Offset: 0, Length: 3}}, PositiveBuckets: []int64{2, -1}})
	schema99 := prompb.FromIntHistogram(5, &histogram.Histogram{Schema: 99})
	hl := labels.FromStrings("__name__", "h")

	cases := []struct {
		name     string
		ct, enc  string
		body     []byte
		store    func(*fakeStore)
		opts     Options
		ctx      func() context.Context
		status   int
		kind     error
		contains string
	}{
		{name: "v1 ok", ct: ContentTypeV1, body: v1Body(t, goodV1()), status: 204},
		{name: "v1 ok explicit proto", ct: "application/x-protobuf; proto=prometheus.WriteRequest", body: v1Body(t, goodV1()), status: 204},
		{name: "v2 ok", ct: ContentTypeV2, body: v2raw(goodV2()), status: 204},
		{name: "v2 ok spaced", ct: "Application/X-Protobuf ; proto=io.prometheus.write.v2.Request", body: v2raw(goodV2()), status: 204},
		{name: "415 media type", ct: "application/json", body: v1Body(t, goodV1()), status: 415, kind: ErrUnsupported},
		{name: "415 proto", ct: "application/x-protobuf;proto=io.prometheus.write.v3.Request", body: v1Body(t, goodV1()), status: 415, kind: ErrUnsupported},
		{name: "415 bad param", ct: "application/x-protobuf;proto", body: v1Body(t, goodV1()), status: 415, kind: ErrUnsupported},
		{name: "415 gzip", ct: ContentTypeV1, enc: "gzip", body: v1Body(t, goodV1()), status: 415, kind: ErrUnsupported, contains: "gzip"},
		{name: "415 zstd v2", ct: ContentTypeV2, enc: "zstd", body: v2raw(goodV2()), status: 415, kind: ErrUnsupported},
		{name: "400 not snappy", ct: ContentTypeV1, body: []byte("\xff\xff\xff\xff\xff\xff"), status: 400, kind: ErrInvalid, contains: "snappy"},
		{name: "400 bad proto v1", ct: ContentTypeV1, body: snappy.Encode(nil, []byte{0x0a, 0xff, 0x01}), status: 400, kind: ErrInvalid, contains: "WriteRequest"},
		{name: "400 bad proto v2", ct: ContentTypeV2, body: snappy.Encode(nil, []byte{0x2a, 0x05, 0x0a}), status: 400, kind: ErrInvalid, contains: "v2.Request"},
		{name: "413 body", ct: ContentTypeV1, body: v1Body(t, goodV1()), opts: Options{MaxBodyBytes: 4}, status: 413, kind: ErrTooLarge},
		{name: "413 decoded", ct: ContentTypeV1, body: snappy.Encode(nil, make([]byte, 1000)), opts: Options{MaxDecodedBytes: 100}, status: 413, kind: ErrTooLarge},
		{name: "400 empty label name", ct: ContentTypeV1, body: withSeries(prompb.TimeSeries{Labels: []prompb.Label{{Name: "", Value: "x"}, {Name: "__name__", Value: "m"}}, Samples: []prompb.Sample{{Timestamp: 1}}}), status: 400, kind: ErrInvalid, contains: "empty name"},
		{name: "400 no labels", ct: ContentTypeV1, body: withSeries(prompb.TimeSeries{Samples: []prompb.Sample{{Timestamp: 1}}}), status: 400, kind: ErrInvalid, contains: "no metric name"},
		{name: "400 unsorted", ct: ContentTypeV1, body: withSeries(prompb.TimeSeries{Labels: []prompb.Label{{Name: "b", Value: "x"}, {Name: "a", Value: "y"}, {Name: "__name__", Value: "m"}}, Samples: []prompb.Sample{{Timestamp: 1}}}), status: 400, kind: ErrInvalid, contains: "not sorted"},
		{name: "400 duplicate", ct: ContentTypeV1, body: withSeries(prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "m"}, {Name: "a", Value: "x"}, {Name: "a", Value: "y"}}, Samples: []prompb.Sample{{Timestamp: 1}}}), status: 400, kind: ErrInvalid, contains: "duplicate label name"},
		{name: "400 bad utf8", ct: ContentTypeV1, body: withSeries(prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "m\xff"}}, Samples: []prompb.Sample{{Timestamp: 1}}}), status: 400, kind: ErrInvalid, contains: "UTF-8"},
		{name: "400 bad histogram", ct: ContentTypeV1, body: withSeries(prompb.TimeSeries{Labels: prompb.FromLabels(hl, nil), Histograms: []prompb.Histogram{badHist}}), status: 400, kind: ErrInvalid, contains: "2 observations found in buckets, but the Count field is 3"},
		{name: "204 nhcb", ct: ContentTypeV1, body: withSeries(prompb.TimeSeries{Labels: prompb.FromLabels(hl, nil), Histograms: []prompb.Histogram{nhcb}}), status: 204},
		{name: "400 nhcb bounds", ct: ContentTypeV1, body: withSeries(prompb.TimeSeries{Labels: prompb.FromLabels(hl, nil), Histograms: []prompb.Histogram{badNHCB}}), status: 400, kind: ErrInvalid, contains: "custom"},
		{name: "204 fractional float histogram", ct: ContentTypeV1, body: withSeries(prompb.TimeSeries{Labels: prompb.FromLabels(hl, nil), Histograms: []prompb.Histogram{nonInt}}), status: 204},
		{name: "400 negative bucket", ct: ContentTypeV1, body: withSeries(prompb.TimeSeries{Labels: prompb.FromLabels(hl, nil), Histograms: []prompb.Histogram{negBucket}}), status: 400, kind: ErrInvalid, contains: "negative"},
		{name: "400 spans and buckets", ct: ContentTypeV1, body: withSeries(prompb.TimeSeries{Labels: prompb.FromLabels(hl, nil), Histograms: []prompb.Histogram{spanMismatch}}), status: 400, kind: ErrInvalid, contains: "span"},
		{name: "400 schema", ct: ContentTypeV1, body: withSeries(prompb.TimeSeries{Labels: prompb.FromLabels(hl, nil), Histograms: []prompb.Histogram{schema99}}), status: 400, kind: ErrInvalid, contains: "invalid schema 99"},
		{name: "400 v1 floats and histograms", ct: ContentTypeV1, body: withSeries(prompb.TimeSeries{Labels: prompb.FromLabels(hl, nil), Samples: []prompb.Sample{{Timestamp: 1}}, Histograms: []prompb.Histogram{prompb.FromIntHistogram(1, &histogram.Histogram{})}}), status: 400, kind: ErrInvalid, contains: "both"},
		{name: "400 v2 symbol ref", ct: ContentTypeV2, body: mod2(func(r *writev2.Request) { r.Timeseries[0].LabelsRefs[1] = 99 }), status: 400, kind: ErrInvalid, contains: "outside the"},
		{name: "400 v2 odd refs", ct: ContentTypeV2, body: mod2(func(r *writev2.Request) { r.Timeseries[0].LabelsRefs = r.Timeseries[0].LabelsRefs[:3] }), status: 400, kind: ErrInvalid, contains: "odd number"},
		{name: "400 v2 empty name ref", ct: ContentTypeV2, body: mod2(func(r *writev2.Request) {
			r.Timeseries[0].LabelsRefs = append([]uint32{0, 1}, r.Timeseries[0].LabelsRefs...)
		}), status: 400, kind: ErrInvalid, contains: "empty name"},
		{name: "400 v2 first symbol", ct: ContentTypeV2, body: mod2(func(r *writev2.Request) { r.Symbols[0] = "x" }), status: 400, kind: ErrInvalid, contains: "first symbol"},
		{name: "400 v2 no samples", ct: ContentTypeV2, body: mod2(func(r *writev2.Request) { r.Timeseries[0].Samples = nil }), status: 400, kind: ErrInvalid, contains: "no samples"},
		{name: "400 v2 both", ct: ContentTypeV2, body: mod2(func(r *writev2.Request) {
			r.Timeseries[0].Histograms = []writev2.Histogram{writev2.FromIntHistogram(0, 1, &histogram.Histogram{})}
		}), status: 400, kind: ErrInvalid, contains: "separate TimeSeries"},
		{name: "400 v2 help ref", ct: ContentTypeV2, body: mod2(func(r *writev2.Request) { r.Timeseries[0].Metadata.HelpRef = 1000 }), status: 400, kind: ErrInvalid, contains: "help reference"},
		{name: "400 v2 exemplar ref", ct: ContentTypeV2, body: mod2(func(r *writev2.Request) {
			r.Timeseries[0].Exemplars = []writev2.Exemplar{{LabelsRefs: []uint32{1, 77}}}
		}), status: 400, kind: ErrInvalid, contains: "exemplar[0]"},
		{name: "400 no histogram appender", ct: ContentTypeV2, body: v2raw(v2Request(v2Series{lset: hl, hists: []writev2.Histogram{writev2.FromIntHistogram(0, 1, &histogram.Histogram{})}})), store: func(s *fakeStore) { s.noHist = true }, status: 400, kind: ErrInvalid, contains: "not supported by this storage"},
		{name: "400 storage data error", ct: ContentTypeV1, body: v1Body(t, goodV1()), opts: Options{InvalidAppend: isDataErr}, store: func(s *fakeStore) { s.failAdd = errOutOfOrder }, status: 400, kind: ErrInvalid, contains: "out of order"},
		{name: "500 append", ct: ContentTypeV1, body: v1Body(t, goodV1()), store: func(s *fakeStore) { s.failAdd = errors.New("disk on fire") }, status: 500, kind: ErrStorage, contains: "disk on fire"},
		{name: "500 commit", ct: ContentTypeV2, body: v2raw(goodV2()), store: func(s *fakeStore) { s.failCommit = errors.New("fsync failed") }, status: 500, kind: ErrStorage, contains: "fsync"},
		{name: "503 canceled", ct: ContentTypeV2, body: v2raw(goodV2()), ctx: func() context.Context { c, cancel := context.WithCancel(context.Background()); cancel(); return c }, status: 503, kind: ErrStorage},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newFakeStore()
			if c.store != nil {
				c.store(s)
			}
			r := NewReceiver(s.appender, c.opts)
			ctx := context.Background()
			if c.ctx != nil {
				ctx = c.ctx()
			}
			enc := c.enc
			if enc == "" {
				enc = "snappy"
			}
			w, err := r.Write(ctx, c.ct, enc, bytes.NewReader(c.body))
			if got := StatusCode(err); got != c.status {
				t.Fatalf("status %d want %d (err %v)", got, c.status, err)
			}
			if c.status/100 == 2 {
				if s.empty() {
					t.Fatal("nothing written")
				}
				return
			}
			if !errors.Is(err, c.kind) {
				t.Fatalf("error %v is not %v", err, c.kind)
			}
			if e, ok := errors.AsType[*Error](err); !ok || e.Retryable() != (c.status >= 500) {
				t.Fatalf("error %T retryable wrong", err)
			}
			if !strings.Contains(err.Error(), c.contains) {
				t.Fatalf("error %q does not contain %q", err, c.contains)
			}
			if !s.empty() || s.commits != 0 {
				t.Fatal("a refused request wrote data")
			}
			if c.status != 415 && strings.Contains(c.ct, "v2") && w.Version != V2 {
				t.Fatalf("version %v", w.Version)
			}
			if w.Samples+w.Histograms+w.Exemplars != 0 {
				t.Fatalf("refused request counted %+v", w)
			}
		})
	}
}

// TestProblemsBounded: many bad series give a bounded list plus a count.
func TestProblemsBounded(t *testing.T) {
	req := &prompb.WriteRequest{}
	for range 25 {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Samples: []prompb.Sample{{Timestamp: 1}}})
	}
	_, err := write(t, NewReceiver(newFakeStore().appender, Options{MaxProblems: 3}), ContentTypeV1, v1Body(t, req))
	e, ok := errors.AsType[*Error](err)
	if !ok || len(e.Problems) != 3 || e.Omitted != 22 || e.Problems[2].Series != "timeseries[2]" {
		t.Fatalf("%#v", err)
	}
}

// TestThroughHTTP drives the receiver from Prometheus's remote-write client
// semantics over a real HTTP round trip with a minimal handler, the shape
// the api layer will have.
func TestThroughHTTP(t *testing.T) {
	s := newFakeStore()
	r := NewReceiver(s.appender, Options{})
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		w, err := r.Write(req.Context(), req.Header.Get("Content-Type"), req.Header.Get("Content-Encoding"), req.Body)
		w.SetHeaders(rw.Header())
		if err != nil {
			http.Error(rw, err.Error(), StatusCode(err))
			return
		}
		rw.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	body := v2Body(t, v2Request(v2Series{lset: labels.FromStrings("__name__", "m"), samples: []writev2.Sample{{Value: 1, Timestamp: 1}, {Value: 2, Timestamp: 2}}}))
	req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
	req.Header.Set("Content-Type", ContentTypeV2)
	req.Header.Set("Content-Encoding", "snappy")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || resp.Header.Get(HeaderSamplesWritten) != "2" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
}
