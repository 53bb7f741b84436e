package remotewrite

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// fuzzWrite sends raw both snappy-encoded and as is: it must never panic,
// and every error must be an *Error with a status of the contract; an
// accepted request must have written exactly what it counted.
func fuzzWrite(t *testing.T, ct string, raw []byte) {
	for _, body := range [][]byte{snappy.Encode(nil, raw), raw} {
		s := newFakeStore()
		r := NewReceiver(s.appender, Options{MaxDecodedBytes: 1 << 20, InvalidAppend: isDataErr})
		w, err := r.Write(context.Background(), ct, "snappy", bytes.NewReader(body))
		if err != nil {
			e, ok := errors.AsType[*Error](err)
			if !ok {
				t.Fatalf("untyped error %T %v", err, err)
			}
			switch e.Status {
			case 400, 413:
			default:
				t.Fatalf("status %d for %v", e.Status, err)
			}
			if !s.empty() {
				t.Fatal("refused request wrote data")
			}
			continue
		}
		var nf, nh int
		for _, p := range s.floats {
			nf += len(p)
		}
		for _, p := range s.hists {
			nh += len(p)
		}
		// Duplicates inside one request are no-ops, so stored <= counted.
		if nf > w.Samples || nh > w.Histograms {
			t.Fatalf("stored %d/%d, counted %+v", nf, nh, w)
		}
	}
}

func fuzzSeeds(f *testing.F) (v1 [][]byte, v2 [][]byte) {
	rng := rand.New(rand.NewPCG(11, 12))
	h := randomNative(rng, 2, 30)
	l := labels.FromStrings("__name__", "m", "a", "b")
	req1 := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: prompb.FromLabels(l, nil), Samples: []prompb.Sample{{Timestamp: 1, Value: 1}, {Timestamp: 2, Value: math.NaN()}}},
		{Labels: prompb.FromLabels(labels.FromStrings("__name__", "h"), nil), Histograms: []prompb.Histogram{prompb.FromIntHistogram(3, h), prompb.FromFloatHistogram(4, h.ToFloat(nil))}},
	}}
	r1, _ := req1.Marshal()
	req2 := v2Request(
		v2Series{lset: l, samples: []writev2.Sample{{Value: 1, Timestamp: 1}}, help: "help"},
		v2Series{lset: labels.FromStrings("__name__", "h"), hists: []writev2.Histogram{writev2.FromIntHistogram(0, 3, h),
			writev2.FromIntHistogram(0, 4, &histogram.Histogram{Schema: 12, Count: 2, Sum: 1, PositiveSpans: []histogram.Span{{Offset: 1, Length: 2}}, PositiveBuckets: []int64{1, 0}})}},
	)
	req2.Timeseries[0].Exemplars = []writev2.Exemplar{{LabelsRefs: []uint32{1, 2}, Value: 1, Timestamp: 1}}
	r2, _ := req2.Marshal()
	return [][]byte{r1, {}, {0x0a, 0x00}}, [][]byte{r2, {}, {0x22, 0x00}}
}

func FuzzRemoteWriteV1(f *testing.F) {
	seeds, _ := fuzzSeeds(f)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw []byte) { fuzzWrite(t, ContentTypeV1, raw) })
}

func FuzzRemoteWriteV2(f *testing.F) {
	_, seeds := fuzzSeeds(f)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw []byte) { fuzzWrite(t, ContentTypeV2, raw) })
}
