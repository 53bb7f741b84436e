package query

import "testing"

// compatHistogramData holds native histograms of every kind the engine
// treats differently: counters (regular, with resets, with a schema change,
// with a zero bucket and negative buckets), gauges, custom buckets (NHCB),
// staleness, gaps, a series that changes bucket kind, and float series
// next to them for mixed vectors.
const compatHistogramData = `
load 1m
  hist_counter{job="api"} {{schema:0 sum:5 count:4 buckets:[1 2 1]}}+{{schema:0 sum:2 count:3 buckets:[1 1 1]}}x70
  hist_counter{job="app"} {{schema:1 sum:10 count:9 z_bucket:2 z_bucket_w:0.001 buckets:[1 2 0 1 1] n_buckets:[1 1]}}+{{schema:1 sum:3.5 count:5 z_bucket:1 z_bucket_w:0.001 buckets:[1 1 0 1 0] n_buckets:[1 0]}}x70
  hist_reset{job="api"} {{sum:10 count:6 buckets:[2 3 1]}} {{sum:20 count:10 buckets:[3 5 2]}} {{sum:30 count:14 buckets:[4 7 3]}} {{sum:4 count:2 buckets:[1 1]}} {{sum:9 count:5 buckets:[2 2 1]}} {{sum:15 count:8 buckets:[3 3 2]}} {{sum:21 count:11 buckets:[4 4 3]}} {{sum:2 count:1 buckets:[1]}} {{sum:8 count:4 buckets:[2 1 1]}} {{sum:12 count:6 buckets:[3 2 1]}} {{sum:18 count:9 buckets:[4 3 2]}} {{sum:25 count:12 buckets:[5 4 3]}} {{sum:31 count:15 buckets:[6 5 4]}} {{sum:40 count:19 buckets:[7 7 5]}} {{sum:3 count:2 buckets:[1 1]}} {{sum:9 count:5 buckets:[2 2 1]}} {{sum:16 count:8 buckets:[3 3 2]}} {{sum:22 count:11 buckets:[4 4 3]}} {{sum:29 count:14 buckets:[5 5 4]}} {{sum:35 count:17 buckets:[6 6 5]}}
  hist_gauge{job="api"} {{schema:0 sum:3 count:3 buckets:[1 1 1] counter_reset_hint:gauge}} {{schema:0 sum:1 count:2 buckets:[1 1] counter_reset_hint:gauge}} {{schema:0 sum:8 count:5 buckets:[2 2 1] counter_reset_hint:gauge}} {{schema:0 sum:-2 count:4 buckets:[1 1] n_buckets:[1 1] counter_reset_hint:gauge}} {{schema:0 sum:6 count:6 buckets:[3 2 1] counter_reset_hint:gauge}} {{schema:0 sum:6 count:6 buckets:[3 2 1] counter_reset_hint:gauge}} {{schema:0 sum:2 count:1 buckets:[0 1] counter_reset_hint:gauge}} {{schema:0 sum:9 count:7 buckets:[2 4 1] counter_reset_hint:gauge}} {{schema:0 sum:4 count:4 buckets:[1 2 1] counter_reset_hint:gauge}} {{schema:0 sum:5 count:3 buckets:[1 1 1] counter_reset_hint:gauge}}
  hist_nhcb{job="api"} {{schema:-53 sum:5 count:4 custom_values:[0.1 0.5 1] buckets:[1 2 1 0]}}+{{schema:-53 sum:2.5 count:5 custom_values:[0.1 0.5 1] buckets:[1 2 1 1]}}x70
  hist_schema{job="api"} {{schema:2 sum:4 count:4 buckets:[1 1 1 1]}} {{schema:2 sum:8 count:8 buckets:[2 2 2 2]}} {{schema:2 sum:12 count:12 buckets:[3 3 3 3]}} {{schema:1 sum:16 count:16 buckets:[8 8]}} {{schema:1 sum:20 count:20 buckets:[10 10]}} {{schema:0 sum:24 count:24 buckets:[24]}} {{schema:0 sum:28 count:28 buckets:[28]}}
  hist_kind{job="api"} {{schema:0 sum:1 count:1 buckets:[1]}} {{schema:0 sum:2 count:2 buckets:[2]}} {{schema:-53 sum:3 count:3 custom_values:[1] buckets:[3]}} {{schema:-53 sum:4 count:4 custom_values:[1] buckets:[4]}} {{schema:0 sum:5 count:5 buckets:[5]}} {{schema:0 sum:6 count:6 buckets:[6]}}
  hist_stale{job="s"} {{sum:1 count:1 buckets:[1]}} {{sum:2 count:2 buckets:[2]}} stale _ _ {{sum:3 count:3 buckets:[3]}} {{sum:4 count:4 buckets:[4]}} _ _ _ _ _ _ _ _ {{sum:9 count:9 buckets:[9]}} stale
  hist_sparse{job="y"} {{sum:1 count:1 buckets:[1]}} _ _ _ _ _ _ _ _ _ {{sum:9 count:9 buckets:[5 4]}} _ _ {{sum:12 count:12 buckets:[6 6]}} _ _ _ _ _ _ _ {{sum:30 count:30 buckets:[10 20]}}
  hist_nan{job="n"} {{schema:0 sum:NaN count:4 buckets:[1 2 1]}}x20
  flt{job="api"} 0+10x70
  flt{job="app"} 5+1x70
  req_bucket{job="api",le="0.5"} 0+1x70
  req_bucket{job="api",le="1"} 0+3x70
  req_bucket{job="api",le="+Inf"} 0+4x70
load 15s
  hist_jitter{job="j"} {{sum:1 count:1 buckets:[1]}} _ {{sum:3 count:3 buckets:[2 1]}} {{sum:4 count:4 buckets:[2 2]}} _ _ {{sum:9 count:9 buckets:[4 5]}} {{sum:2 count:2 buckets:[1 1]}} {{sum:5 count:5 buckets:[2 3]}} _ _ {{sum:9 count:9 buckets:[4 5]}} {{sum:11 count:11 buckets:[5 6]}}
`

// compatHistogramQueries run native histograms through every construct
// that reads them; each is run instant at several times and as ranges.
var compatHistogramQueries = []string{
	// selectors
	`hist_counter`, `hist_counter offset 5m`, `hist_counter @ 600`, `hist_counter offset -3m`, `hist_stale`, `hist_sparse`,
	`hist_gauge`, `hist_nhcb`, `{__name__=~"hist_counter|flt"}`, `hist_nan`,
	// rate family
	`rate(hist_counter[5m])`, `increase(hist_counter[10m])`, `rate(hist_counter[90s])`, `rate(hist_reset[5m])`,
	`increase(hist_reset[7m])`, `delta(hist_gauge[5m])`, `irate(hist_reset[5m])`, `idelta(hist_gauge[3m])`,
	`irate(hist_counter[3m])`, `rate(hist_nhcb[5m])`, `rate(hist_schema[10m])`, `rate(hist_kind[3m])`, `rate(hist_kind[10m])`,
	`rate(hist_sparse[30m])`, `increase(hist_stale[10m])`, `rate(hist_jitter[1m])`, `increase(hist_jitter[2m])`,
	`irate(hist_jitter[1m])`, `rate(hist_counter[5m] offset 10m)`, `rate(hist_counter[5m] @ 1500)`, `delta(hist_counter[5m])`,
	`rate({__name__=~"hist_counter|flt"}[5m])`, `resets(hist_reset[20m])`, `resets(hist_kind[10m])`, `changes(hist_gauge[10m])`,
	`changes(hist_counter[5m])`, `deriv(hist_counter[5m])`, `predict_linear(hist_counter[5m], 60)`,
	// over_time
	`sum_over_time(hist_gauge[5m])`, `avg_over_time(hist_gauge[5m])`, `avg_over_time(hist_counter[10m])`, `count_over_time(hist_counter[5m])`,
	`last_over_time(hist_counter[5m])`, `last_over_time(hist_stale[5m])`, `first_over_time(hist_gauge[5m])`, `present_over_time(hist_sparse[5m])`,
	`absent_over_time(hist_sparse[5m])`, `min_over_time(hist_gauge[5m])`, `max_over_time(hist_gauge[5m])`, `quantile_over_time(0.5, hist_gauge[5m])`,
	`stddev_over_time(hist_gauge[5m])`, `mad_over_time(hist_gauge[5m])`, `sum_over_time(hist_kind[3m])`, `sum_over_time(hist_nhcb[3m])`,
	`avg_over_time(hist_schema[5m])`,
	// histogram functions
	`histogram_count(hist_counter)`, `histogram_sum(hist_counter)`, `histogram_avg(rate(hist_counter[5m]))`,
	`histogram_stddev(hist_counter)`, `histogram_stdvar(hist_gauge)`, `histogram_stddev(hist_nhcb)`, `histogram_count(flt)`,
	`histogram_quantile(0.5, hist_counter)`, `histogram_quantile(0.9, rate(hist_counter[5m]))`, `histogram_quantile(0.1, hist_gauge)`,
	`histogram_quantile(0.99, hist_nhcb)`, `histogram_quantile(0, hist_counter)`, `histogram_quantile(1, hist_counter)`,
	`histogram_quantile(1.5, hist_counter)`, `histogram_quantile(-1, hist_nhcb)`, `histogram_quantile(NaN, hist_counter)`,
	`histogram_quantile(0.75, hist_nan)`, `histogram_quantile(0.25, hist_nan)`, `histogram_quantile(0.3, hist_gauge)`,
	`histogram_quantile(0.5, {__name__=~"hist_counter|req_bucket"})`, `histogram_quantile(0.8, sum(rate(hist_counter[5m])))`,
	`histogram_fraction(0, 2, hist_counter)`, `histogram_fraction(-1, 1, hist_counter{job="app"})`, `histogram_fraction(0.2, 0.7, hist_nhcb)`,
	`histogram_fraction(0, 0.75, req_bucket)`, `histogram_fraction(1, 0, hist_counter)`, `histogram_fraction(-Inf, 0.3, hist_gauge)`,
	`histogram_fraction(0.5, +Inf, hist_nan)`,
	// aggregations
	`sum(hist_counter)`, `sum by (job) (hist_counter)`, `avg(hist_counter)`, `sum(rate(hist_counter[5m]))`, `count(hist_counter)`,
	`group(hist_counter)`, `min(hist_counter)`, `max({__name__=~"hist_counter|flt"})`, `sum({__name__=~"hist_counter|flt"})`,
	`sum by (job) ({__name__=~"hist_counter|flt"})`, `avg by (job) ({__name__=~"hist_counter|flt"})`, `topk(1, {__name__=~"hist_counter|flt"})`,
	`bottomk(1, {__name__=~"hist_counter|flt"})`, `quantile(0.5, {__name__=~"hist_counter|flt"})`, `stddev({__name__=~"hist_counter|flt"})`,
	`count by (job) ({__name__=~"hist_counter|flt"})`, `limitk(1, hist_counter)`, `sum({__name__=~"hist_counter|hist_nhcb"})`,
	`sum(hist_gauge)`, `avg({__name__=~"hist_gauge|hist_counter"})`, `count_values("v", hist_gauge)`,
	// binary operators
	`hist_counter + hist_counter`, `hist_counter - hist_counter offset 5m`, `hist_counter * 2`, `2 * hist_counter`, `hist_counter / 4`,
	`2 / hist_counter`, `hist_counter + 1`, `hist_counter > 1`, `hist_counter == bool 1`, `hist_counter == hist_counter`,
	`hist_counter != hist_counter offset 1m`, `hist_counter == bool hist_counter offset 1m`, `hist_counter * on(job) flt`,
	`flt * on(job) hist_counter`, `hist_counter / on(job) flt`, `hist_counter + on(job) flt`, `hist_counter > on(job) flt`,
	`hist_counter and flt`, `hist_counter or flt`, `flt or hist_counter`, `hist_counter unless flt{job="app"}`, `-hist_counter`,
	`hist_counter + on(job) hist_nhcb`, `hist_gauge - hist_gauge offset 2m`, `(hist_counter * 2) / 2`,
	// functions of floats drop histograms
	`abs(hist_counter)`, `sort({__name__=~"hist_counter|flt"})`, `clamp(hist_counter, 0, 1)`, `round(hist_counter)`,
	`scalar(hist_counter{job="api"})`, `timestamp(hist_counter)`, `timestamp(hist_stale)`, `label_replace(hist_counter, "x", "$1", "job", "(.*)")`,
	`absent(hist_counter)`, `absent(nonexistent)`, `sort_by_label(hist_counter, "job")`, `vector(1) + on() group_left hist_counter{job="api"} * 0`,
	// subqueries
	`rate(hist_counter[10m:1m])`, `increase(hist_reset[10m:30s])`, `sum_over_time(hist_gauge[5m:1m])`, `last_over_time(hist_counter[10m:2m])`,
	`max_over_time(histogram_count(hist_counter)[10m:1m])`, `rate(sum(hist_counter)[5m:1m])`, `resets(hist_reset[10m:1m])`,
}

var compatHistogramInstantOnly = []string{
	`hist_counter[3m]`, `hist_stale[5m]`, `hist_jitter[1m]`, `hist_counter[5m:2m]`, `{__name__=~"hist_gauge|flt"}[2m]`,
	`rate(hist_counter[5m])[4m:1m]`,
}

// TestPrometheusHistogramCompatibility runs native histogram queries
// through our engine and Prometheus's on the same data.
func TestPrometheusHistogramCompatibility(t *testing.T) {
	runCompat(t, "native histogram compatibility", compatHistogramData, compatHistogramQueries, compatHistogramInstantOnly)
}
