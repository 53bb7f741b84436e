package query

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/promql"
	promparser "github.com/prometheus/prometheus/promql/parser"
)

const compatData = `
load 1m
  http_requests_total{job="api",instance="0",group="production"} 0+10x70
  http_requests_total{job="api",instance="1",group="production"} 0+20x70
  http_requests_total{job="api",instance="0",group="canary"} 0+30x70
  http_requests_total{job="api",instance="1",group="canary"} 0+40x70
  http_requests_total{job="app",instance="0",group="production"} 0+51x70
  http_requests_total{job="app",instance="1",group="production"} 0+62x70
  http_requests_total{job="app",instance="0",group="canary"} 0+73x70
  http_requests_total{job="app",instance="1",group="canary"} 0+84x70
  counter_reset_total{job="api"} 0 5 10 2 6 12 1 3 9 15 4 8 20 25 3 7 11 0 5 9 14 18 2 6 10 14 18 22 1 5 9 13 17 21 25 29 33 1 2 3 4 5 6 7 8 9 10 11 12 13 0 1 2 3 4 5 6 7 8 9 10
  gauge{job="api",instance="0"} 1 3 -2 5.5 8 4 2.5 -7 7 9 11 -3 2 6 0 1 1 1 4 -5 6 3 2 8 9 10 -1 -2 -3 4 5 6 7 12 13 2 1 0 -4 3 5 7 9 11 2 4 6 8 10 12 14 16 3 1 2 4 8 16 32 64 1
  gauge{job="api",instance="1"} 10 9 8 7 6 5 4 3 2 1 0 -1 -2 -3 -4 -5 -6 -7 -8 -9 -10 -9 -8 -7 -6 -5 -4 -3 -2 -1 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30
  gauge{job="app",instance="0"} 0.5+0.25x70
  special{kind="nan"} 1 NaN 3 NaN 5 6 NaN 8 9 10 11 NaN 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60
  special{kind="inf"} 1 Inf 3 -Inf 5 6 7 8 9 10 Inf 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60
  stale_metric{job="s"} 1 2 3 4 stale _ _ 5 6 7 stale _ _ _ _ _ _ _ 8 9 10 11 12 13 14 15 16 17 18 19 20 stale
  sparse{job="y"} 1 _ _ _ _ _ _ _ _ _ 9 _ _ 12 _ _ _ _ _ _ _ _ _ _ _ _ 30 _ _ _ 40 _ _ _ _ _ _ _ _ _ _ _ _ 50
  req_duration_seconds_bucket{job="api",le="0.1"} 0+1x70
  req_duration_seconds_bucket{job="api",le="0.5"} 0+3x70
  req_duration_seconds_bucket{job="api",le="1"} 0+4x70
  req_duration_seconds_bucket{job="api",le="+Inf"} 0+5x70
  req_duration_seconds_bucket{job="app",le="0.2"} 0+2x70
  req_duration_seconds_bucket{job="app",le="2"} 0+7x70
  req_duration_seconds_bucket{job="app",le="+Inf"} 0+9x70
  node_cpu_seconds_total{instance="a",cpu="0",mode="idle"} 0+1x70
  node_cpu_seconds_total{instance="a",cpu="1",mode="idle"} 0+2x70
  node_cpu_seconds_total{instance="b",cpu="0",mode="idle"} 0+3x70
  node_info{instance="a",owner="alice",team="x"} 1+0x70
  node_info{instance="b",owner="bob",team="y"} 1+0x70
  label_src{src="a-b-c",other="x"} 1+1x70
  label_src{src="d-e",other="y"} 2+2x70
  timestamps_s 0+60x70
  gauge_copy{job="api",instance="0"} 5+1x70
  nan_buckets{le="1"} 1 NaN 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20
  nan_buckets{le="+Inf"} 2 4 NaN 8 10 12 14 16 18 20 22 24 26 28 30 32 34 36 38 40
  non_monotonic{le="1"} 5+1x30
  non_monotonic{le="2"} 4+1x30
  non_monotonic{le="+Inf"} 10+2x30
load 15s
  jitter_total{job="j"} 0 _ 3 4 _ _ 9 10 11 _ _ _ _ 20 21 _ 25 26 27 28 _ _ _ _ _ _ _ _ 40 41 42 0 2 _ 5 _ 9 10 _ _ 12 13 14 15 16 _ _ _ 20 _ 25 _ _ _ _ _ _ _ _ _ _ _ _ _ 40 41 42 43 44 45
  jitter_gauge{job="j"} 1 _ -3 4 _ _ 9 NaN 11 _ _ _ _ 2 21 _ -25 26 Inf 28 _ _ _ _ _ _ _ _ 40 41 -42 0 2 _ 5 _ 9 10 _ _ 12 13 14 15 16 _ _ _ 20 _ 25
`

// compatQueries covers every construct the engine implements. Each is run
// as an instant query at several times and as range queries.
var compatQueries = []string{
	// selectors, offset, @, lookback, staleness
	`http_requests_total`,
	`http_requests_total{job="api"}`,
	`http_requests_total{job=~"a.*",group!="canary"}`,
	`http_requests_total{job!~"api"}`,
	`{__name__=~"http_requests_total|gauge"}`,
	`http_requests_total offset 10m`,
	`http_requests_total offset -5m`,
	`http_requests_total @ 1200`,
	`http_requests_total @ 1200 offset 5m`,
	`http_requests_total @ start()`,
	`http_requests_total @ end()`,
	`stale_metric`,
	`sparse`,
	`sparse offset 3m`,
	`gauge`,
	`special`,
	`http_requests_total{job="none"}`,
	// literals, unary, scalar arithmetic
	`1`, `-2.5`, `1 + 2 * 3`, `2 ^ 3 ^ 2`, `-(1)`, `5 % 3`, `2 atan2 3`, `1 == bool 1`, `3 > bool 4`,
	`-gauge`, `-http_requests_total{job="api"}`, `+gauge`,
	// vector/scalar arithmetic and comparison
	`http_requests_total * 2`, `2 * http_requests_total`, `http_requests_total / 0`, `gauge % 3`, `gauge ^ 2`,
	`gauge atan2 1`, `1 - gauge`, `gauge > 3`, `3 < gauge`, `gauge >= bool 3`, `3 > bool gauge`,
	`gauge == 1`, `gauge != bool 1`, `special > 5`, `special + 1`, `-special`, `time() - timestamps_s`,
	// vector/vector
	`http_requests_total - http_requests_total`,
	`http_requests_total{job="api"} / ignoring(job) http_requests_total{job="app"}`,
	`http_requests_total{group="canary"} - on(job, instance) http_requests_total{group="production"}`,
	`gauge > on(job, instance) gauge`,
	`gauge > bool on(job, instance) gauge offset 1m`,
	`gauge == gauge offset 1m`,
	`node_cpu_seconds_total * on(instance) group_left(owner, team) node_info`,
	`node_info * on(instance) group_right(owner) node_cpu_seconds_total`,
	`node_cpu_seconds_total + ignoring(cpu, mode) group_left node_info`,
	`node_cpu_seconds_total / on(instance) group_left sum by (instance) (node_cpu_seconds_total)`,
	`sum by (job) (http_requests_total) / on(job) group_left sum by (job, group) (http_requests_total)`,
	`http_requests_total and http_requests_total{group="canary"}`,
	`http_requests_total and on(job) gauge{instance="0"}`,
	`http_requests_total or gauge`,
	`http_requests_total{job="api"} or on(instance) http_requests_total{job="app"}`,
	`http_requests_total unless http_requests_total{instance="0"}`,
	`http_requests_total unless on(job) gauge{job="app"}`,
	`(gauge > 2) or (gauge < -2)`,
	`gauge and gauge > 4`,
	`stale_metric or sparse`,
	`vector(1) and on() gauge{job="app"}`,
	// aggregations
	`sum(http_requests_total)`, `sum by (job) (http_requests_total)`, `sum without (instance) (http_requests_total)`,
	`avg by (group) (http_requests_total)`, `min(gauge)`, `max by (job) (gauge)`, `count(http_requests_total)`,
	`count by (job) (gauge)`, `stddev(gauge)`, `stdvar by (job) (gauge)`, `stddev(special)`, `group by (job) (http_requests_total)`,
	`sum(special)`, `avg(special)`, `max(special)`, `min(special)`,
	`topk(3, http_requests_total)`, `bottomk(2, http_requests_total)`, `topk by (job) (1, http_requests_total)`,
	`bottomk without (instance) (1, http_requests_total)`, `topk(scalar(sum(gauge{job="app"})) / 20, http_requests_total)`,
	`quantile(0.5, gauge)`, `quantile by (job) (0.9, http_requests_total)`, `quantile(0.25, special)`,
	`count_values("value", gauge)`, `count_values by (job) ("v", round(gauge))`, `count_values without (instance) ("x", http_requests_total / 10)`,
	`limitk(2, http_requests_total)`, `limit_ratio(0.5, http_requests_total)`, `limit_ratio(-0.5, http_requests_total)`,
	`sum(sum by (job) (http_requests_total))`, `avg without () (gauge)`, `sum by () (gauge)`,
	`max by (job) (rate(http_requests_total[5m]))`,
	// rate family
	`rate(http_requests_total[5m])`, `rate(http_requests_total[1m])`, `rate(http_requests_total[90s])`,
	`irate(http_requests_total[5m])`, `increase(http_requests_total[10m])`, `rate(counter_reset_total[5m])`,
	`increase(counter_reset_total[7m])`, `irate(counter_reset_total[3m])`, `delta(gauge[5m])`, `idelta(gauge[5m])`,
	`rate(http_requests_total[5m] offset 10m)`, `rate(http_requests_total[5m] @ 1500)`, `rate(sparse[30m])`,
	`increase(stale_metric[10m])`, `deriv(gauge[10m])`, `deriv(http_requests_total[5m])`,
	`predict_linear(gauge[10m], 600)`, `predict_linear(http_requests_total[5m], 3600)`, `resets(counter_reset_total[20m])`,
	`changes(gauge[10m])`, `changes(special[10m])`, `rate(special[5m])`, `sum by (job) (rate(http_requests_total[5m]))`,
	// over_time
	`avg_over_time(gauge[10m])`, `min_over_time(gauge[10m])`, `max_over_time(gauge[10m])`, `sum_over_time(gauge[10m])`,
	`count_over_time(gauge[10m])`, `quantile_over_time(0.75, gauge[10m])`, `quantile_over_time(0.5, special[10m])`,
	`stddev_over_time(gauge[10m])`, `stdvar_over_time(gauge[10m])`, `last_over_time(gauge[10m])`, `present_over_time(sparse[5m])`,
	`mad_over_time(gauge[10m])`, `avg_over_time(special[5m])`, `max_over_time(special[5m])`, `min_over_time(special[5m])`,
	`sum_over_time(special[5m])`, `count_over_time(stale_metric[5m])`, `last_over_time(stale_metric[5m])`,
	`absent_over_time(sparse[5m])`, `absent_over_time(nonexistent{job="x"}[5m])`, `absent_over_time(stale_metric[3m])`,
	// histogram_quantile
	`histogram_quantile(0.5, req_duration_seconds_bucket)`, `histogram_quantile(0.9, rate(req_duration_seconds_bucket[5m]))`,
	`histogram_quantile(0.99, sum by (le) (rate(req_duration_seconds_bucket[5m])))`, `histogram_quantile(0, req_duration_seconds_bucket)`,
	`histogram_quantile(1, req_duration_seconds_bucket)`, `histogram_quantile(1.5, req_duration_seconds_bucket)`,
	// math functions
	`abs(gauge)`, `ceil(gauge / 3)`, `floor(gauge / 3)`, `round(gauge / 3)`, `round(gauge, 0.5)`, `round(gauge / 7, 0.1)`,
	`clamp(gauge, -1, 5)`, `clamp(gauge, 5, -1)`, `clamp_min(gauge, 2)`, `clamp_max(gauge, 2)`, `ln(gauge)`, `log2(gauge)`,
	`log10(http_requests_total)`, `exp(gauge / 10)`, `sqrt(gauge)`, `sgn(gauge)`, `sin(gauge)`, `cos(gauge)`, `tan(gauge)`,
	`asin(gauge / 100)`, `acos(gauge / 100)`, `atan(gauge)`, `sinh(gauge / 10)`, `cosh(gauge / 10)`, `tanh(gauge)`,
	`asinh(gauge)`, `acosh(gauge)`, `atanh(gauge / 100)`, `rad(gauge)`, `deg(gauge)`, `pi()`, `abs(special)`,
	// time functions
	`time()`, `timestamp(gauge)`, `timestamp(sparse)`, `timestamp(stale_metric)`, `timestamp(gauge @ 600)`, `timestamp(-gauge)`,
	`vector(time())`, `scalar(gauge{job="app"})`, `scalar(gauge)`, `vector(1) + 1`,
	`day_of_month()`, `day_of_week()`, `day_of_year()`, `hour()`, `minute()`, `month()`, `year()`, `days_in_month()`,
	`minute(timestamps_s)`, `hour(timestamps_s * 100)`, `day_of_week(timestamps_s * 10000)`, `days_in_month(timestamps_s * 100000)`,
	`month(timestamps_s * 100000)`, `year(timestamps_s * 1000000)`, `day_of_year(timestamps_s * 10000)`, `day_of_month(timestamps_s * 10000)`,
	// labels, sort, absent
	`label_replace(label_src, "dst", "$1", "src", "(.*)-.*")`, `label_replace(label_src, "dst", "x$1", "src", "nomatch(.*)")`,
	`label_replace(label_src, "src", "", "src", ".*")`, `label_join(label_src, "joined", ",", "src", "other")`,
	`label_join(label_src, "src", "-", "other")`, `label_replace(rate(http_requests_total[5m]), "__name__", "renamed", "", "")`,
	`sort(gauge)`, `sort_desc(http_requests_total)`, `sort_by_label(http_requests_total, "instance", "job")`,
	`sort_by_label_desc(http_requests_total, "group")`,
	`absent(nonexistent)`, `absent(nonexistent{job="a",instance=~"x"})`, `absent(gauge)`, `absent(sum(nonexistent))`,
	// subqueries
	`rate(http_requests_total[5m:1m])`, `max_over_time(gauge[10m:2m])`, `avg_over_time(rate(http_requests_total[2m])[10m:])`,
	`min_over_time(gauge[7m:90s])`, `sum_over_time(gauge[10m:1m] offset 5m)`, `max_over_time(gauge[10m:1m] @ 1800)`,
	`max_over_time(sum by (job) (gauge)[15m:3m])`, `rate(counter_reset_total[10m:30s])`, `last_over_time(stale_metric[10m:1m])`,
	`deriv(gauge[10m:1m])`, `max_over_time(max_over_time(gauge[5m:1m])[10m:2m])`, `count_over_time(sparse[20m:1m])`,
	`predict_linear(gauge[10m:1m], 60)`, `avg_over_time((gauge > 0)[10m:1m])`,
	// metric-name dropping and duplicate label sets
	`rate({__name__=~"http_requests_total|node_cpu_seconds_total"}[5m])`, `abs({__name__=~"gauge|special"})`,
	`last_over_time({__name__=~"gauge|special"}[5m])`, `{__name__=~"gauge|timestamps_s"} + 1`,
	`sum by (__name__) ({__name__=~"gauge|special"})`,
	// composition
	`sum(rate(http_requests_total[5m])) by (job) / ignoring(job) group_left sum(rate(http_requests_total[5m]))`,
	`topk(2, sum by (job, instance) (rate(http_requests_total[10m])))`,
	`(http_requests_total > 100) * 2 + 1`, `count(gauge > 0) by (job)`, `-sum(-gauge) by (job)`,
	`sum(http_requests_total{job="api"}) - sum(http_requests_total{job="app"})`,
	`max_over_time(deriv(rate(http_requests_total[3m])[5m:1m])[10m:])`,
	`clamp_max(rate(counter_reset_total[5m]), 0.05) * 100`,
	// errors Prometheus raises at evaluation time
	`abs({__name__=~"gauge|gauge_copy"})`, `{__name__=~"gauge|gauge_copy"} * 2`, `rate({__name__=~"gauge|gauge_copy"}[5m])`,
	`http_requests_total + on(job) http_requests_total`, `node_cpu_seconds_total * on(instance) node_info`,
	`gauge * on(job) group_left gauge`, `count_values("", gauge)`, `topk(NaN, gauge)`, `limit_ratio(NaN, gauge)`,
	`label_replace(gauge, "dst", "$1", "instance", "(")`, `label_replace(gauge, "", "x", "instance", ".*")`,
	`label_join(gauge, "job", "", "instance")`, `last_over_time({__name__=~"gauge|gauge_copy"}[5m])`,
	`sum by (job) (gauge) + on(job) group_left(instance) gauge`,
	// more @ and nesting
	`predict_linear(gauge[10m] @ 1200, 60)`, `timestamp(gauge offset 5m)`, `timestamp(timestamp(gauge))`,
	`max_over_time((gauge @ 600)[10m:1m])`, `sum_over_time(rate(http_requests_total[5m] @ 900)[10m:1m] @ 1800)`,
	`quantile(scalar(gauge{job="app"}) / 20, http_requests_total)`, `vector(1) or gauge`, `gauge @ 300 + gauge`,
	`sum(gauge @ 1200) by (job)`, `rate(http_requests_total[5m] @ end())`, `max_over_time(gauge[10m:1m] @ start())`,
	`topk(1, gauge @ 600)`, `count_over_time(gauge[10m:1m] offset -3m)`, `changes(stale_metric[10m])`, `resets(gauge[10m])`,
	// irregular samples: extrapolation thresholds, single samples, gaps
	`rate(jitter_total[1m])`, `rate(jitter_total[2m])`, `increase(jitter_total[5m])`, `irate(jitter_total[1m])`,
	`delta(jitter_gauge[2m])`, `idelta(jitter_gauge[1m])`, `deriv(jitter_gauge[3m])`, `rate(jitter_total[45s])`,
	`predict_linear(jitter_gauge[2m], 120)`, `resets(jitter_total[10m])`, `changes(jitter_gauge[5m])`,
	`avg_over_time(jitter_gauge[2m])`, `stddev_over_time(jitter_gauge[3m])`, `quantile_over_time(0.3, jitter_gauge[5m])`,
	`jitter_total`, `jitter_gauge offset 30s`, `max_over_time(jitter_gauge[1m:15s])`, `rate(jitter_total[2m:20s])`,
	// NaN and odd inputs
	`count_values("v", special)`, `sort(special)`, `sort_desc(special)`, `quantile(NaN, gauge)`, `quantile(-1, gauge)`,
	`quantile(2, gauge)`, `histogram_quantile(0.5, nan_buckets)`, `histogram_quantile(0.9, non_monotonic)`,
	`histogram_quantile(NaN, req_duration_seconds_bucket)`, `topk(2, special)`, `bottomk(2, special)`,
	`label_replace(gauge, "foo", "$1", "instance", "(.*)")`, `label_replace(gauge, "instance", "", "instance", "0")`,
	`node_cpu_seconds_total * on(instance) group_left(nonexistent) node_info`, `round(special, 0)`, `clamp(special, 2, 8)`,
	`limitk(2, sum by (job, group) (http_requests_total))`, `limit_ratio(0.3, rate(http_requests_total[5m]))`,
	`limit_ratio(1, gauge)`, `limitk(0, gauge)`, `topk(0, gauge)`, `topk(-1, gauge)`, `scalar(special)`,
	`absent_over_time(nonexistent{job="a"}[5m:1m])`, `absent_over_time(gauge[5m:1m])`, `sum_over_time(nonexistent[5m:1m])`,
	`absent(label_replace(nonexistent{job="a"}, "x", "y", "", ""))`, `-(-gauge)`, `((gauge))`, `max_over_time((gauge)[5m:1m] offset 1m) > 0`,
	`timestamp(max_over_time(gauge[5m:1m]))`, `absent(nonexistent{job="a"} offset 5m)`, `present_over_time(stale_metric[2m])`,
}

// compatInstantOnly are queries of range-vector or string type, which only
// instant queries accept.
var compatInstantOnly = []string{
	`jitter_total[1m]`, `jitter_gauge[2m:15s]`, `gauge[5m:1m] @ 600`, `(gauge > 3)[4m:2m]`,
	`gauge[5m]`, `gauge[5m] offset 3m`, `gauge[5m] @ 600`, `stale_metric[10m]`, `sparse[30m]`, `gauge[5m:1m]`,
	`rate(http_requests_total[5m])[10m:2m]`, `gauge[10m:3m] offset 1m`, `sum(gauge)[5m:]`, `"a string"`, `http_requests_total{job="none"}[5m]`,
}

// Queries whose sample order matters (sort functions and topk).
func orderMatters(q string) bool { return strings.HasPrefix(q, "sort") }

var compatInstantTimes = []time.Duration{0, 4 * time.Minute, 10 * time.Minute, 17*time.Minute + 30*time.Second, 30 * time.Minute, 47 * time.Minute, 70 * time.Minute, 80 * time.Minute}

type compatRange struct{ start, end, step time.Duration }

var compatRanges = []compatRange{
	{0, 70 * time.Minute, time.Minute},
	{3 * time.Minute, 62 * time.Minute, 7*time.Minute + 30*time.Second},
	{30 * time.Minute, 30 * time.Minute, time.Minute},
}

func TestPrometheusCompatibility(t *testing.T) {
	runCompat(t, "Prometheus compatibility", compatData, compatQueries, compatInstantOnly)
}

// runCompat runs every query of queries (instant at compatInstantTimes and
// over compatRanges) and of instantOnly (instant) through our engine and
// Prometheus's on data, and requires identical results.
func runCompat(t *testing.T, name, data string, queries, instantOnly []string) {
	st := loadText(t, data)
	ours := New(Options{LookbackDelta: 5 * time.Minute, SubqueryStep: time.Minute})
	theirs := promql.NewEngine(promql.EngineOpts{
		MaxSamples:               50_000_000,
		Timeout:                  time.Minute,
		LookbackDelta:            5 * time.Minute,
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
		Parser:                   promparser.NewParser(promparser.Options{EnableExperimentalFunctions: true}),
	})
	pq := promQueryable{st}
	ctx := context.Background()
	pass, total, queriesOK := 0, 0, 0
	for _, q := range queries {
		qOK := true
		check := func(name string, got Result, gerr error, want *promql.Result) {
			total++
			if msg := compare(got, gerr, want, orderMatters(q)); msg != "" {
				qOK = false
				t.Errorf("%s %s: %s", q, name, msg)
				return
			}
			pass++
		}
		for _, at := range compatInstantTimes {
			got, gerr := ours.Instant(ctx, st, q, ms(at))
			pqry, err := theirs.NewInstantQuery(ctx, pq, nil, q, ms(at))
			if err != nil {
				t.Fatalf("prometheus rejects %q: %v", q, err)
			}
			check(fmt.Sprintf("instant@%v", at), got, gerr, pqry.Exec(ctx))
		}
		for _, r := range compatRanges {
			got, gerr := ours.Range(ctx, st, q, ms(r.start), ms(r.end), r.step)
			pqry, err := theirs.NewRangeQuery(ctx, pq, nil, q, ms(r.start), ms(r.end), r.step)
			if err != nil {
				t.Fatalf("prometheus rejects %q: %v", q, err)
			}
			check(fmt.Sprintf("range[%v,%v,%v]", r.start, r.end, r.step), got, gerr, pqry.Exec(ctx))
		}
		if qOK {
			queriesOK++
		}
	}
	for _, q := range instantOnly {
		qOK := true
		for _, at := range compatInstantTimes {
			got, gerr := ours.Instant(ctx, st, q, ms(at))
			pqry, err := theirs.NewInstantQuery(ctx, pq, nil, q, ms(at))
			if err != nil {
				t.Fatalf("prometheus rejects %q: %v", q, err)
			}
			total++
			if msg := compare(got, gerr, pqry.Exec(ctx), false); msg != "" {
				qOK = false
				t.Errorf("%s instant@%v: %s", q, at, msg)
				continue
			}
			pass++
		}
		if qOK {
			queriesOK++
		}
	}
	t.Logf("%s: %d/%d queries identical (%d/%d evaluations: %d instant times, %d ranges each)",
		name, queriesOK, len(queries)+len(instantOnly), pass, total, len(compatInstantTimes), len(compatRanges))
}

type cmpSeries struct {
	metric string
	pts    []FPoint
	hpts   []HPoint
}

func normalize(v any) (string, []cmpSeries) {
	var out []cmpSeries
	switch x := v.(type) {
	case Scalar:
		return "scalar", []cmpSeries{{"", []FPoint{{x.T, x.V}}, nil}}
	case promql.Scalar:
		return "scalar", []cmpSeries{{"", []FPoint{{x.T, x.V}}, nil}}
	case String:
		return "string:" + x.V, nil
	case promql.String:
		return "string:" + x.V, nil
	case Vector:
		for _, s := range x {
			if s.H != nil {
				out = append(out, cmpSeries{s.Metric.String(), nil, []HPoint{{s.T, s.H}}})
				continue
			}
			out = append(out, cmpSeries{s.Metric.String(), []FPoint{{s.T, s.F}}, nil})
		}
		return "vector", out
	case promql.Vector:
		for _, s := range x {
			if s.H != nil {
				out = append(out, cmpSeries{s.Metric.String(), nil, []HPoint{{s.T, s.H}}})
				continue
			}
			out = append(out, cmpSeries{s.Metric.String(), []FPoint{{s.T, s.F}}, nil})
		}
		return "vector", out
	case Matrix:
		for _, s := range x {
			out = append(out, cmpSeries{s.Metric.String(), s.Floats, s.Histograms})
		}
		return "matrix", out
	case promql.Matrix:
		for _, s := range x {
			var pts []FPoint
			for _, p := range s.Floats {
				pts = append(pts, FPoint{p.T, p.F})
			}
			var hpts []HPoint
			for _, p := range s.Histograms {
				hpts = append(hpts, HPoint{p.T, p.H})
			}
			out = append(out, cmpSeries{s.Metric.String(), pts, hpts})
		}
		return "matrix", out
	}
	return fmt.Sprintf("unknown %T", v), nil
}

func compare(got Result, gerr error, want *promql.Result, ordered bool) string {
	if want.Err != nil || gerr != nil {
		switch {
		case want.Err == nil:
			return fmt.Sprintf("we fail (%v), Prometheus does not", gerr)
		case gerr == nil:
			return fmt.Sprintf("Prometheus fails (%v), we do not", want.Err)
		case !strings.Contains(want.Err.Error(), gerr.Error()) && !sameErrorKind(gerr.Error(), want.Err.Error()):
			return fmt.Sprintf("error differs: ours %q, Prometheus %q", gerr, want.Err)
		}
		return ""
	}
	gk, gs := normalize(got.Value)
	wk, ws := normalize(want.Value)
	if gk != wk {
		return fmt.Sprintf("kind %s, Prometheus %s", gk, wk)
	}
	if !ordered {
		for _, s := range [][]cmpSeries{gs, ws} {
			slices.SortFunc(s, func(a, b cmpSeries) int { return strings.Compare(a.metric, b.metric) })
		}
	}
	if len(gs) != len(ws) {
		return fmt.Sprintf("%d series, Prometheus %d:\nours %v\nprom %v", len(gs), len(ws), gs, ws)
	}
	for i := range gs {
		if gs[i].metric != ws[i].metric {
			return fmt.Sprintf("series %d is %s, Prometheus %s", i, gs[i].metric, ws[i].metric)
		}
		if len(gs[i].pts) != len(ws[i].pts) {
			return fmt.Sprintf("%s: %d points, Prometheus %d:\nours %v\nprom %v", gs[i].metric, len(gs[i].pts), len(ws[i].pts), gs[i].pts, ws[i].pts)
		}
		for j := range gs[i].pts {
			g, w := gs[i].pts[j], ws[i].pts[j]
			if g.T != w.T || !floatsEqual(g.F, w.F) {
				return fmt.Sprintf("%s point %d: ours %v, Prometheus %v", gs[i].metric, j, g, w)
			}
		}
		if len(gs[i].hpts) != len(ws[i].hpts) {
			return fmt.Sprintf("%s: %d histograms, Prometheus %d:\nours %v\nprom %v", gs[i].metric, len(gs[i].hpts), len(ws[i].hpts), gs[i].hpts, ws[i].hpts)
		}
		for j := range gs[i].hpts {
			g, w := gs[i].hpts[j], ws[i].hpts[j]
			if g.T != w.T || !histogramsEqual(g.H, w.H) {
				return fmt.Sprintf("%s histogram %d: ours %v %v, Prometheus %v %v", gs[i].metric, j, g.T, g.H, w.T, w.H)
			}
		}
	}
	return ""
}

// histogramsEqual compares what a histogram says about its observations:
// count, sum and every populated bucket (bounds exactly, counts to the
// engine's float tolerance). Span layout, empty buckets and counter reset
// hints may differ.
func histogramsEqual(a, b *histogram.FloatHistogram) bool {
	if !floatsEqual(a.Count, b.Count) || !floatsEqual(a.Sum, b.Sum) || a.UsesCustomBuckets() != b.UsesCustomBuckets() {
		return false
	}
	buckets := func(h *histogram.FloatHistogram) []histogram.Bucket[float64] {
		var out []histogram.Bucket[float64]
		for it := h.AllBucketIterator(); it.Next(); {
			if bk := it.At(); bk.Count != 0 {
				out = append(out, bk)
			}
		}
		return out
	}
	ab, bb := buckets(a), buckets(b)
	if len(ab) != len(bb) {
		return false
	}
	for i := range ab {
		x, y := ab[i], bb[i]
		if x.Lower != y.Lower || x.Upper != y.Upper || x.LowerInclusive != y.LowerInclusive || x.UpperInclusive != y.UpperInclusive || !floatsEqual(x.Count, y.Count) {
			return false
		}
	}
	return true
}

// sameErrorKind accepts two messages that differ only in the label sets
// they name: which duplicate Prometheus reports first depends on its map
// iteration order.
func sameErrorKind(ours, theirs string) bool {
	i, j := strings.IndexByte(ours, '{'), strings.IndexByte(theirs, '{')
	return i > 0 && i == j && ours[:i] == theirs[:j]
}
