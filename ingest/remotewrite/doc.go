// Package remotewrite decodes Prometheus remote-write 1.0 and 2.0 requests
// and applies each one, all or nothing, to an Appender.
//
// Float samples (staleness markers included) are written with AddFloat.
// Native histogram samples are cumulative, so they are not merged into
// time buckets: each one is converted to a histogram.FloatHistogram and
// stored as the point (series, timestamp) through HistogramAppender, which
// makes a retried request a no-op exactly as it is for floats. The
// "Remote-write" part of docs/ingest.md has the status codes and every
// decision.
package remotewrite
