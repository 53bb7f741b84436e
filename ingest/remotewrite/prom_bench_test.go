package remotewrite

import (
	"context"
	"io"
	"log/slog"
	"testing"

	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
)

// promNop is a no-op Prometheus storage: the appendable, appender and
// exemplar appender Prometheus's write handler requires.
type promNop struct{}

func (promNop) AppenderV2(context.Context) storage.AppenderV2 { return promNop{} }
func (promNop) Append(storage.SeriesRef, labels.Labels, int64, int64, float64, *histogram.Histogram, *histogram.FloatHistogram, storage.AOptions) (storage.SeriesRef, error) {
	return 1, nil
}
func (promNop) AppendExemplars(storage.SeriesRef, labels.Labels, []exemplar.Exemplar) (storage.SeriesRef, error) {
	return 1, nil
}
func (promNop) Commit() error   { return nil }
func (promNop) Rollback() error { return nil }

// BenchmarkRemoteWritePrometheus runs Prometheus's own remote-write
// receiver (storage/remote.NewWriteHandler: snappy, proto unmarshal,
// label and histogram conversion, validation, appends) into a no-op
// storage, on the bodies of BenchmarkRemoteWrite.
func BenchmarkRemoteWritePrometheus(b *testing.B) {
	h := remote.NewWriteHandler(slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), promNop{},
		remoteapi.MessageTypes{remoteapi.WriteV1MessageType, remoteapi.WriteV2MessageType}, false, false)
	for _, c := range benchCases(b) {
		b.Run(c.name+"/impl=prometheus", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.body)))
			for b.Loop() {
				serve(b, h, c.ct, c.body)
			}
			b.ReportMetric(float64(c.samples)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}
