// Package query evaluates evalstore's PromQL-style language over the tsdb
// read interface (series.Querier, opened through a Queryable).
//
// The engine (New, Engine.Instant, Engine.Range) type checks the parser's
// AST with Prometheus's rules and error texts, then evaluates it exactly as
// Prometheus 3 does on float series: every expression is evaluated over the
// query's step grid to a matrix (an instant query is a one-step grid),
// selectors stream points from storage window by window, and subqueries run
// on their own grid.
//
// Native histograms (histograms.go) are values of their own, as in
// Prometheus 3: a Sample holds a float or a histogram (H), a Series floats
// and Histograms; where the sketch language takes a window a histogram
// series is read as the LogHistogram of its increase (histogramSketches).
//
// Sketch metrics (sketchq.go) plug into that grid: a selector named after a
// registered metric, accuracy{model="b"}[7d], reads the series families
// behind it (evalstore_confusion...), merges every bucket of the window per
// series (mergeWindow, sketchSelector), merges series that share their
// labels once the family name and the defaulted source are dropped, and
// finishes the states into an instant vector. sum by (...) over such a
// selector pools states before finishing; offline(expr) reads the latest
// offline run per (model, version, dataset, slice). sketchfuncs.go holds the
// functions over states: quantile_sketch, mean_sketch, stddev_sketch,
// count_sketch, the drift distances (psi js ks wasserstein hellinger chi2),
// ttest/ztest and their companions, and importance_weighted. Options.Definitions
// supplies positive classes, class order, importances and drift references.
//
// Errors are *Error with an ErrorType the HTTP layer maps to Prometheus's
// errorType; limits (MaxSeries, MaxSamples, MaxBuckets, MaxResultPoints)
// are checked while loading and evaluating. docs/query-language.md ("Query engine: design") and
// docs/query-language.md ("Sketch metrics") describe the design; the compatibility
// test runs every float construct through Prometheus's own engine.
package query
