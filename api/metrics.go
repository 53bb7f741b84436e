package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"evalstore/ingest/remotewrite"
	"evalstore/query"
)

// metrics are the API's own series on /metrics.
type metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	queryDuration *prometheus.HistogramVec
	queryErrors   *prometheus.CounterVec
	rwSamples     *prometheus.CounterVec
	rwRequests    *prometheus.CounterVec
	ingestReqs    *prometheus.CounterVec
	reloads       *prometheus.CounterVec
}

// Latency buckets from 1 ms to about 1 min.
var latencyBuckets = prometheus.ExponentialBuckets(0.001, 2.5, 13)

func newMetrics(reg prometheus.Registerer, a *API) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "evalstore_http_requests_total", Help: "HTTP requests by handler and status code.",
		}, []string{"handler", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "evalstore_http_request_duration_seconds", Help: "HTTP request latency by handler.",
			Buckets: latencyBuckets, NativeHistogramBucketFactor: 1.1,
		}, []string{"handler"}),
		queryDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "evalstore_query_duration_seconds", Help: "Query evaluation latency by type (instant, range).",
			Buckets: latencyBuckets, NativeHistogramBucketFactor: 1.1,
		}, []string{"type"}),
		queryErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "evalstore_query_errors_total", Help: "Failed queries by type and errorType.",
		}, []string{"type", "error_type"}),
		rwSamples: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "evalstore_remote_write_samples_total", Help: "Samples written through remote-write, by kind (float, histogram).",
		}, []string{"kind"}),
		rwRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "evalstore_remote_write_requests_total", Help: "Remote-write requests by protocol version and status code.",
		}, []string{"version", "code"}),
		ingestReqs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "evalstore_ingest_requests_total", Help: "Prediction, feedback and evaluation requests by endpoint and status code.",
		}, []string{"endpoint", "code"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "evalstore_definitions_reloads_total", Help: "Definitions reloads by result (success, failure).",
		}, []string{"result"}),
	}
	for _, k := range []string{"float", "histogram"} {
		m.rwSamples.WithLabelValues(k)
	}
	reg.MustRegister(m.requests, m.duration, m.queryDuration, m.queryErrors, m.rwSamples, m.rwRequests, m.ingestReqs, m.reloads,
		&statsCollector{api: a})
	return m
}

func (a *API) instrument(handler string, h http.Handler) http.Handler {
	return promhttp.InstrumentHandlerCounter(a.metrics.requests.MustCurryWith(prometheus.Labels{"handler": handler}),
		promhttp.InstrumentHandlerDuration(a.metrics.duration.MustCurryWith(prometheus.Labels{"handler": handler}), h))
}

func (m *metrics) observeQuery(typ string, start time.Time, err error) {
	m.queryDuration.WithLabelValues(typ).Observe(time.Since(start).Seconds())
	if err != nil {
		m.queryErrors.WithLabelValues(typ, string(query.TypeOf(err))).Inc()
	}
}

func (m *metrics) remoteWritten(w remotewrite.Written, err error) {
	v := "unknown"
	if w.Version != 0 {
		v = w.Version.String()
	}
	m.rwRequests.WithLabelValues(v, strconv.Itoa(remotewrite.StatusCode(err))).Inc()
	if err == nil {
		m.rwSamples.WithLabelValues("float").Add(float64(w.Samples))
		m.rwSamples.WithLabelValues("histogram").Add(float64(w.Histograms))
	}
}

func (m *metrics) ingest(endpoint string, code int) {
	m.ingestReqs.WithLabelValues(endpoint, strconv.Itoa(code)).Inc()
}

func (m *metrics) reload(err error) {
	if err != nil {
		m.reloads.WithLabelValues("failure").Inc()
		return
	}
	m.reloads.WithLabelValues("success").Inc()
}

// statsCollector exposes the storage's Stats snapshot at scrape time.
type statsCollector struct{ api *API }

func desc(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }

var (
	descSeries        = desc("evalstore_tsdb_series", "Series in the registry.")
	descHeadSeries    = desc("evalstore_tsdb_head_series", "Series with data in the head.")
	descHeadBuckets   = desc("evalstore_tsdb_head_buckets", "Sketch buckets in the head.")
	descHeadSamples   = desc("evalstore_tsdb_head_samples", "Float samples in the head.")
	descHeadBytes     = desc("evalstore_tsdb_head_bytes", "Estimated memory of the head in bytes.")
	descBlocks        = desc("evalstore_tsdb_blocks", "Live blocks on disk.")
	descBlockBytes    = desc("evalstore_tsdb_block_bytes", "Bytes of the live blocks on disk.")
	descCommits       = desc("evalstore_tsdb_commits_total", "Write batches committed.")
	descMerges        = desc("evalstore_tsdb_sketch_merges_total", "Sketch deltas merged into the head.")
	descFloats        = desc("evalstore_tsdb_float_samples_total", "Float samples appended to the head.")
	descHistograms    = desc("evalstore_tsdb_histogram_samples_total", "Native histogram samples appended to the head.")
	descFloatsDropped = desc("evalstore_tsdb_float_samples_dropped_total", "Float and histogram samples dropped at apply (a concurrent commit won the timestamp).")
	descApplyErrors   = desc("evalstore_tsdb_apply_errors_total", "Logged entries that could not be applied.")
	descFlushes       = desc("evalstore_tsdb_flushes_total", "Head flushes to blocks (the storage's compactions of the head).")
	descFlushErrors   = desc("evalstore_tsdb_flush_errors_total", "Failed head flushes.")
	descLastFlush     = desc("evalstore_tsdb_last_flush_duration_seconds", "Duration of the last head flush.")
	descReplayed      = desc("evalstore_tsdb_wal_replayed_records", "WAL records replayed at startup.")
	descWALRecords    = desc("evalstore_tsdb_wal_records_total", "Records written to the WAL.")
	descWALBytes      = desc("evalstore_tsdb_wal_bytes_total", "Bytes written to the WAL.")
	descWALFsyncs     = desc("evalstore_tsdb_wal_fsyncs_total", "WAL segment fsyncs.")
	descWALFsyncSecs  = desc("evalstore_tsdb_wal_fsync_duration_seconds_total", "Time spent in WAL fsyncs.")
	descWALSegments   = desc("evalstore_tsdb_wal_segments", "WAL segment files.")
	descReady         = desc("evalstore_ready", "1 once storage is open and the API serves, else 0.")
	descCompactions   = desc("evalstore_tsdb_compactions_total", "Compaction jobs that merged flush blocks into partitions.")
	descDownsamples   = desc("evalstore_tsdb_downsamples_total", "Jobs that rewrote partitions at a coarser resolution.")
	descRetention     = desc("evalstore_tsdb_retention_deletes_total", "Jobs that deleted partitions past retention.")
	descCompactErrors = desc("evalstore_tsdb_compaction_errors_total", "Failed compaction, downsampling or retention jobs.")
	descLastCompact   = desc("evalstore_tsdb_last_compaction_duration_seconds", "Duration of the last compaction run that ran a job.")
)

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSeries, descHeadSeries, descHeadBuckets, descHeadSamples, descHeadBytes,
		descBlocks, descBlockBytes, descCommits, descMerges, descFloats, descHistograms, descFloatsDropped, descApplyErrors, descFlushes,
		descFlushErrors, descLastFlush, descReplayed, descWALRecords, descWALBytes, descWALFsyncs, descWALFsyncSecs,
		descWALSegments, descReady, descCompactions, descDownsamples, descRetention, descCompactErrors, descLastCompact} {
		ch <- d
	}
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	b := c.api.backend.Load()
	ready := 0.0
	if b != nil {
		ready = 1
	}
	ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, ready)
	if b == nil || b.Stats == nil {
		return
	}
	s := b.Stats()
	g := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	cnt := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	g(descSeries, float64(s.Series))
	g(descHeadSeries, float64(s.HeadSeries))
	g(descHeadBuckets, float64(s.HeadBuckets))
	g(descHeadSamples, float64(s.HeadSamples))
	g(descHeadBytes, float64(s.HeadBytes))
	g(descBlocks, float64(s.Blocks))
	g(descBlockBytes, float64(s.BlockBytes))
	cnt(descCommits, float64(s.Commits))
	cnt(descMerges, float64(s.SketchMerges))
	cnt(descFloats, float64(s.FloatSamples))
	cnt(descHistograms, float64(s.HistogramSamples))
	cnt(descFloatsDropped, float64(s.FloatsDropped))
	cnt(descApplyErrors, float64(s.ApplyErrors))
	cnt(descFlushes, float64(s.Flushes))
	cnt(descFlushErrors, float64(s.FlushErrors))
	g(descLastFlush, s.LastFlushDuration.Seconds())
	g(descReplayed, float64(s.ReplayedRecords))
	cnt(descWALRecords, float64(s.WAL.Records))
	cnt(descWALBytes, float64(s.WAL.Bytes))
	cnt(descWALFsyncs, float64(s.WAL.Fsyncs))
	cnt(descWALFsyncSecs, s.WAL.FsyncDuration.Seconds())
	g(descWALSegments, float64(s.WAL.Segments))
	cnt(descCompactions, float64(s.Compactions))
	cnt(descDownsamples, float64(s.Downsamples))
	cnt(descRetention, float64(s.RetentionDeletes))
	cnt(descCompactErrors, float64(s.CompactionErrors))
	g(descLastCompact, s.LastCompactionDuration.Seconds())
}
