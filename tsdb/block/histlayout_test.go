package block

import (
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// TestHistogramChunkBuckets reads the layout of chunks written by
// Prometheus's appender and compares the bucket count with what its own
// iterator decodes; a layout claiming more buckets than the chunk can hold
// is refused before the iterator allocates them.
func TestHistogramChunkBuckets(t *testing.T) {
	cases := []struct {
		name string
		h    *histogram.FloatHistogram
	}{
		{"empty", &histogram.FloatHistogram{Schema: 0}},
		{"positive spans", &histogram.FloatHistogram{Schema: 3, ZeroThreshold: 0.001, ZeroCount: 1, Count: 7, Sum: 3,
			PositiveSpans: []histogram.Span{{Offset: -5, Length: 2}, {Offset: 7, Length: 3}}, PositiveBuckets: []float64{1, 2, 0, 1, 2}}},
		{"both sides, odd zero threshold", &histogram.FloatHistogram{Schema: -2, ZeroThreshold: 0.3, Count: 10, Sum: -1,
			PositiveSpans: []histogram.Span{{Offset: 100, Length: 1}}, PositiveBuckets: []float64{4},
			NegativeSpans: []histogram.Span{{Offset: -3, Length: 40}}, NegativeBuckets: make([]float64, 40)}},
		{"custom buckets", &histogram.FloatHistogram{Schema: histogram.CustomBucketsSchema, Count: 3, Sum: 2,
			PositiveSpans: []histogram.Span{{Offset: 0, Length: 3}}, PositiveBuckets: []float64{1, 1, 1}, CustomValues: []float64{0.5, 1}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			chk := chunkenc.NewFloatHistogramChunk()
			app, err := chk.Appender()
			if err != nil {
				t.Fatal(err)
			}
			if _, _, _, err := app.AppendFloatHistogram(nil, 0, 1000, c.h, false); err != nil {
				t.Fatal(err)
			}
			it := chk.Iterator(nil)
			if it.Next() != chunkenc.ValFloatHistogram {
				t.Fatal("no sample")
			}
			_, fh := it.AtFloatHistogram(nil)
			want := uint64(len(fh.PositiveBuckets) + len(fh.NegativeBuckets))
			got, err := histogramChunkBuckets(chk.Bytes())
			if err != nil || got != want {
				t.Fatalf("layout buckets %d (%v), iterator decodes %d", got, err, want)
			}
			// Truncated just after the header: an error, not a count.
			if _, err := histogramChunkBuckets(chk.Bytes()[:4]); err == nil && want > 0 {
				t.Error("truncated layout read without error")
			}
		})
	}
	// One span claiming 2^56−1 buckets in 16 bytes. Bits after the 3-byte
	// header and the zero-threshold byte: schema 0 ("0"); one positive
	// span ("10" "001"); its length: prefix "11111110" and 56 one bits;
	// its offset 0 ("0"); no negative spans ("0").
	crafted := []byte{0, 1, 0, 0,
		0b0_10_001_11, 0b111110_11, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0b111111_00, 0, 0, 0}
	n, err := histogramChunkBuckets(crafted)
	if err != nil || n != 1<<56-1 {
		t.Fatalf("crafted layout: %d buckets (%v), want 2^56-1", n, err)
	}
	h := chunkHeader{kind: 3, count: 1}
	if _, err := sampleChunk(&h, crafted, false); err == nil {
		t.Fatal("sampleChunk accepted a layout of 2^56-1 buckets in 16 bytes")
	}
}
