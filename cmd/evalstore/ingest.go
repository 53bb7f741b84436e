package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"evalstore/api"
	"evalstore/ingest"
	"evalstore/tsdb"
	"evalstore/tsdb/series"
)

func init() { ingesterFactory = openIngester }

// openIngester wires the predictions/feedback/evaluations ingester to the
// storage and the API.
func openIngester(_ context.Context, c IngestConfig) (api.Ingester, func(error) (int, any), io.Closer, error) {
	in, err := ingest.Open(ingest.Config{
		Dir: c.Dir, Storage: tsdbStorage{c.DB}, Definitions: c.Definitions,
		BucketSize: c.BucketSize, Retention: c.Retention, Logger: c.Logger,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	if c.Registerer != nil {
		if err := c.Registerer.Register(ingestCollector{in}); err != nil {
			return nil, nil, nil, errors.Join(fmt.Errorf("register ingest metrics: %w", err), in.Close())
		}
	}
	return ingestAPI{in}, classifyIngest, in, nil
}

// tsdbStorage adapts the DB to ingest.Storage and ingest.CommitReader.
type tsdbStorage struct{ db *tsdb.DB }

func (s tsdbStorage) Appender() ingest.Appender { return s.db.Appender() }

// LastFloat returns the newest durable sample of the float series lset;
// ingest reads its commit marker with it after a crash.
func (s tsdbStorage) LastFloat(lset labels.Labels) (v float64, ok bool, err error) {
	q, err := s.db.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		return 0, false, err
	}
	defer func() {
		if cerr := q.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	ms := make([]*labels.Matcher, 0, lset.Len())
	lset.Range(func(l labels.Label) {
		ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, l.Name, l.Value))
	})
	set := q.Select(context.Background(), series.Hints{}, ms...)
	for set.Next() {
		s := set.At()
		if !labels.Equal(s.Meta().Labels, lset) {
			continue
		}
		it := s.Samples(nil)
		for it.Next() == chunkenc.ValFloat {
			_, v = it.At()
			ok = true
		}
		if err := it.Err(); err != nil {
			return 0, false, err
		}
	}
	return v, ok, set.Err()
}

type ingestAPI struct{ in *ingest.Ingester }

func (a ingestAPI) Predictions(ctx context.Context, ct, ce string, r io.Reader) (any, error) {
	return a.in.Predictions(ctx, ingest.Body{ContentType: ct, ContentEncoding: ce, Reader: r})
}

func (a ingestAPI) Feedback(ctx context.Context, ct, ce string, r io.Reader) (any, error) {
	return a.in.Feedback(ctx, ingest.Body{ContentType: ct, ContentEncoding: ce, Reader: r})
}

func (a ingestAPI) Evaluations(ctx context.Context, ct, ce string, r io.Reader) (any, error) {
	return a.in.Evaluation(ctx, ingest.Body{ContentType: ct, ContentEncoding: ce, Reader: r})
}

// classifyIngest maps ingest errors to HTTP statuses; a refused batch's
// error is also the response data, so the client sees every bad record.
func classifyIngest(err error) (int, any) {
	var be *ingest.BatchError
	var tl *ingest.TooLargeError
	var ue *ingest.UnsupportedError
	switch {
	case errors.As(err, &be):
		return http.StatusBadRequest, be
	case errors.As(err, &tl):
		return http.StatusRequestEntityTooLarge, nil
	case errors.As(err, &ue):
		return http.StatusUnsupportedMediaType, nil
	}
	return http.StatusInternalServerError, nil
}

// ingestCollector exposes the ingester's counters and join backlog.
type ingestCollector struct{ in *ingest.Ingester }

var (
	ingestRecordsDesc = prometheus.NewDesc("evalstore_ingest_records_total",
		"Records accepted by the predictions, feedback and evaluations endpoints.", nil, nil)
	ingestRejectedDesc = prometheus.NewDesc("evalstore_ingest_records_rejected_total",
		"Records refused as invalid.", nil, nil)
	ingestLabelsDesc = prometheus.NewDesc("evalstore_ingest_labels_joined_total",
		"Labels joined to their predictions.", nil, nil)
	ingestCorrectionsDesc = prometheus.NewDesc("evalstore_ingest_label_corrections_total",
		"Labels that replaced an earlier label (old contribution retracted).", nil, nil)
	ingestExpiredDesc = prometheus.NewDesc("evalstore_ingest_join_expired_total",
		"Pending predictions or held feedback dropped at the end of the join window.", nil, nil)
	ingestUnknownDesc = prometheus.NewDesc("evalstore_ingest_feedback_unknown_total",
		"Feedback whose prediction never arrived within the join window.", nil, nil)
	ingestPendingDesc = prometheus.NewDesc("evalstore_ingest_join_pending",
		"Predictions waiting for a label, and feedback waiting for its prediction.", []string{"kind"}, nil)
)

func (c ingestCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{ingestRecordsDesc, ingestRejectedDesc, ingestLabelsDesc,
		ingestCorrectionsDesc, ingestExpiredDesc, ingestUnknownDesc, ingestPendingDesc} {
		ch <- d
	}
}

func (c ingestCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.in.Stats()
	for _, m := range []struct {
		d *prometheus.Desc
		v uint64
	}{{ingestRecordsDesc, s.Records}, {ingestRejectedDesc, s.Rejected}, {ingestLabelsDesc, s.Labels},
		{ingestCorrectionsDesc, s.Corrections}, {ingestExpiredDesc, s.Expired}, {ingestUnknownDesc, s.UnknownFeedback}} {
		ch <- prometheus.MustNewConstMetric(m.d, prometheus.CounterValue, float64(m.v))
	}
	ch <- prometheus.MustNewConstMetric(ingestPendingDesc, prometheus.GaugeValue, float64(s.Pending), "prediction")
	ch <- prometheus.MustNewConstMetric(ingestPendingDesc, prometheus.GaugeValue, float64(s.HeldNow), "feedback")
}
