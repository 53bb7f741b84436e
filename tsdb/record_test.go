package tsdb

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"

	"evalstore/sketch"
	"evalstore/tsdb/internal/histtest"
	"evalstore/tsdb/series"
)

// reencode writes entries back in the record layout.
func reencode(entries []recEntry) []byte {
	out := []byte{recordVersion}
	for _, e := range entries {
		switch e.typ {
		case entrySeries:
			out = appendSeriesEntry(out, e.ref, e.kind, e.format, e.lset, e.hasLast, e.t, e.v)
		case entrySketch:
			out = appendSketchEntry(out, e.ref, e.t, e.delta)
		case entryFloat:
			out = appendFloatEntry(out, e.ref, e.t, e.v)
		case entryHistogram:
			out = appendHistogramEntry(out, e.ref, e.t, e.delta)
		}
	}
	return out
}

func sampleRecord() []byte {
	c := sketch.NewConfusion()
	c.Add(1, 0)
	rec := []byte{recordVersion}
	rec = appendSeriesEntry(rec, 1, series.KindSketch, sketch.FormatConfusion, labels.FromStrings("__name__", "a", "m", "x"), false, 0, 0)
	rec = appendSeriesEntry(rec, 2, series.KindFloat, 0, labels.FromStrings("__name__", "b"), true, -5, value.StaleNaN)
	rec = appendSeriesEntry(rec, 3, series.KindFloat, 0, labels.FromStrings("__name__", "c"), false, 0, 0)
	rec = appendSketchEntry(rec, 1, -60000, c.AppendBinary(nil))
	rec = appendFloatEntry(rec, 2, 1234, math.Float64bits(2.5))
	rec = appendSeriesEntry(rec, 4, series.KindHistogram, 0, labels.FromStrings("__name__", "h"), true, 77, histogramHash(testHist(10)))
	rec = appendHistogramEntry(rec, 4, 1235, appendHistogram(nil, testHist(10)))
	return rec
}

func TestRecordRoundTrip(t *testing.T) {
	rec := sampleRecord()
	var d recordDecoder
	es, err := d.decode(rec)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 7 {
		t.Fatalf("%d entries", len(es))
	}
	if es[5].kind != series.KindHistogram || !es[5].hasLast || es[5].t != 77 || es[5].v != histogramHash(testHist(10)) {
		t.Errorf("histogram series entry: %+v", es[5])
	}
	var hd histDecoder
	if h, err := hd.decode(es[6].delta); err != nil || es[6].t != 1235 || es[6].v != histogramHash(testHist(10)) || !h.Equals(testHist(10)) {
		t.Errorf("histogram entry: %+v: %v %v", es[6], h, err)
	}
	if es[1].lset.Get("__name__") != "b" || !es[1].hasLast || es[1].t != -5 || es[1].v != value.StaleNaN {
		t.Errorf("float series entry: %+v", es[1])
	}
	if es[3].t != -60000 || es[3].ref != 1 {
		t.Errorf("sketch entry: %+v", es[3])
	}
	if es[4].v != math.Float64bits(2.5) || es[4].t != 1234 {
		t.Errorf("float entry: %+v", es[4])
	}
	if got := reencode(es); !bytes.Equal(got, rec) {
		t.Errorf("re-encoding differs")
	}
}

var invalidHist = &histogram.FloatHistogram{Count: -1}

// Histograms encode and decode exactly, including the hint, and the hash
// ignores only what Equals ignores.
func TestHistogramEncoding(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var hd histDecoder
	for k := range histtest.NumKinds {
		for _, s := range histtest.Series(r, k, 300, 0, 1) {
			got, err := hd.decode(appendHistogram(nil, s.H))
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equals(s.H) || got.CounterResetHint != s.H.CounterResetHint {
				t.Fatalf("decoded %v, want %v", got, s.H)
			}
			c := s.H.Copy()
			c.CounterResetHint = histogram.GaugeType
			if histogramHash(c) != histogramHash(s.H) {
				t.Fatal("hash depends on the hint")
			}
			c.Sum++
			if histogramHash(c) == histogramHash(s.H) {
				t.Fatal("hash ignores the sum")
			}
		}
	}
}

func TestRecordCorrupt(t *testing.T) {
	rec := sampleRecord()
	var d recordDecoder
	for n := 0; n < len(rec); n++ {
		es, err := d.decode(rec[:n])
		// A cut exactly between entries is a valid shorter record.
		if err == nil {
			if n == 0 {
				t.Fatal("empty record accepted")
			}
			if !bytes.Equal(reencode(es), rec[:n]) {
				t.Fatalf("prefix %d decodes to something else", n)
			}
			continue
		}
		if !errors.Is(err, ErrCorruptRecord) {
			t.Fatalf("prefix %d: %v", n, err)
		}
	}
	bad := [][]byte{
		{9},                   // version
		{recordVersion, 7, 1}, // entry type
		{recordVersion, 1, 1, byte(series.KindSketch), 0xEE, 0},                                         // unknown sketch format
		{recordVersion, 1, 1, 9, 0, 0},                                                                  // kind
		{recordVersion, 1, 1, byte(series.KindFloat), 0, 0, 2},                                          // has-last flag
		{recordVersion, 1, 1, byte(series.KindFloat), 0, 200, 1},                                        // label count beyond input
		{recordVersion, 2, 1, 0, 50, 1},                                                                 // delta longer than input
		appendHistogramEntry([]byte{recordVersion}, 1, 0, appendHistogram(nil, invalidHist)),            // fails Validate
		appendHistogramEntry([]byte{recordVersion}, 1, 0, append(appendHistogram(nil, testHist(3)), 0)), // trailing byte
		appendHistogramEntry([]byte{recordVersion}, 1, 0, []byte{4}),                                    // flags
	}
	for i, b := range bad {
		if _, err := d.decode(b); !errors.Is(err, ErrCorruptRecord) {
			t.Errorf("case %d: %v", i, err)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(sampleRecord())
	f.Add([]byte{recordVersion})
	f.Add([]byte{recordVersion, entryFloat, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(appendFloatRun([]byte{recordVersion}, []floatSample{{&memSeries{ref: 3}, 10, 1}, {&memSeries{ref: 1}, 5, 2}}))
	f.Add(appendHistogramEntry([]byte{recordVersion}, 1, 5, appendHistogram(nil, &histogram.FloatHistogram{
		Schema: histogram.CustomBucketsSchema, Count: 1, CustomValues: []float64{1}, PositiveSpans: []histogram.Span{{Length: 1}}, PositiveBuckets: []float64{1}})))
	f.Fuzz(func(t *testing.T, b []byte) {
		var d recordDecoder
		es, err := d.decode(b)
		if err != nil {
			if !errors.Is(err, ErrCorruptRecord) {
				t.Fatalf("error does not wrap ErrCorruptRecord: %v", err)
			}
			return
		}
		enc := reencode(es)
		var d2 recordDecoder
		es2, err := d2.decode(enc)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !bytes.Equal(reencode(es2), enc) {
			t.Fatal("re-encoding not stable")
		}
	})
}

func TestBucketStart(t *testing.T) {
	for _, tc := range []struct{ t, want int64 }{
		{0, 0}, {59_999, 0}, {60_000, 60_000}, {-1, -60_000}, {-60_000, -60_000}, {-60_001, -120_000},
	} {
		if got := bucketStart(tc.t, 60_000); got != tc.want {
			t.Errorf("bucketStart(%d) = %d, want %d", tc.t, got, tc.want)
		}
	}
}
