// Package query evaluates evalstore's PromQL-style language over the tsdb
// read interface (series.Querier, opened through a Queryable).
//
// The engine (New, Engine.Instant, Engine.Range) type checks the parser's
// AST with Prometheus's rules and error texts, then evaluates it exactly as
// Prometheus 3 does on float series: every expression is evaluated over the
// query's step grid to a matrix (an instant query is a one-step grid),
// selectors stream points from storage window by window, and subqueries run
// on their own grid. The value model carries a fourth kind of sample, a
// merged sketch state (SketchValue), built by merging a sketch series'
// buckets over a window (mergeWindow) and finished into a float by a
// registered sketch metric (RegisterSketchMetric).
//
// Errors are *Error with an ErrorType the HTTP layer maps to Prometheus's
// errorType; limits (MaxSeries, MaxSamples, MaxBuckets, MaxResultPoints)
// are checked while loading and evaluating. docs/parts/engine-design.md
// describes the design; the compatibility test runs every construct through
// Prometheus's own engine.
package query
