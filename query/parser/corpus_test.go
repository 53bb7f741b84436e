package parser

// promqlCorpus is valid pure PromQL (no angle brackets): Prometheus's own
// parser accepts every entry. It drives the differential test and seeds
// the fuzzer.
var promqlCorpus = []string{
	// numbers
	`1`, `1.5`, `-1`, `+1`, `.5`, `5.`, `1e3`, `1E-3`, `1.5e+10`, `0x1f`, `0X1F`, `1_000`, `1_000.5`,
	`Inf`, `-Inf`, `+inf`, `NaN`, `nan`, `- -1`, `+-1`, `-(1)`, `1e300`, `0.000001`,
	`5m`, `-5m`, `1h30m`, `1y`, `2w`, `1d`, `500ms`, `1m + 1`,
	// strings
	`"double"`, `'single'`, "`raw`", `"a\"b"`, `'it\'s'`, `"it's"`, `'a"b'`, `"\n\t"`, `"\x41"`, `"\u00e9"`,
	`"é"`, "`a\\b`", `""`,
	// selectors
	`up`, `foo:bar`, `foo_bar:baz_total`, `up{}`, `up{job="api"}`, `up{job="api",}`, `up{job!="api"}`,
	`up{job=~"a.*"}`, `up{job!~"a.*"}`, `up{job="api", instance="h:9090"}`, `{job="api"}`,
	`{__name__="up"}`, `{__name__=~"up|down"}`, `{"my.label"="x"}`, `up{"a"="x"}`, `{"metric.name"}`,
	`{"metric.name", a="b"}`, `up{a="b", a="c"}`, `{a=~".+"}`, `{a!="", b=""}`, `up{job='api'}`,
	"up{job=`api`}", `up{job="\\d"}`, `up{by="x"}`, `up{on="x"}`, `up{bool="x"}`, `up{offset="x"}`,
	`sum`, `by`, `without`, `offset`, `start`, `end`, `and`, `AND`, `count_values`, `up{"x.y"=~"z"}`,
	`up # trailing comment`, "# comment\nup",
	// range, offset, @
	`up[5m]`, `up[1h30m]`, `up[300]`, `up[1.5]`, `up[90s]`, `up[1000ms]`, `up[1y]`, `up[2w]`, `up[1d]`,
	`up offset 5m`, `up offset -5m`, `up offset +5m`, `up offset - 5m`, `up offset 1.5`, `up offset 0s`,
	`up[5m] offset 1h`, `up{a="b"}[5m] offset 1w`, `up @ 1609746000`, `up @ 1609746000.5`, `up @ -1`,
	`up @ 1m`, `up @ start()`, `up @ end()`, `up[5m] @ end()`, `up @ 100 offset 5m`, `up offset 5m @ 100`,
	`up[5m] offset 1m @ 2`, `up[5m] @ start() offset 1h`, `up offset 1h30m`,
	// subqueries
	`up[30m:1m]`, `up[30m:]`, `up[5m:30]`, `up{a="b"}[5m:]`, `rate(up[5m])[30m:1m]`, `sum(up)[5m:]`,
	`(up)[5m:]`, `up[1m:1m] @ 1`, `up[5m:1m] offset 10m`, `up offset 5m[5m:]`,
	`max_over_time(rate(x[5m])[1h:5m])`, `max_over_time(x[5m:1m] offset 1m)`, `min_over_time((a + b)[10m:])`,
	`up[5m:1m] @ end() offset 1m`,
	// unary and binary arithmetic, precedence
	`-up`, `+up`, `-up ^ 2`, `-1 ^ 2`, `2 ^ -up ^ 3`, `-up * 2`, `up ^ 2 ^ 3`, `(up ^ 2) ^ 3`,
	`1 + 2 * 3`, `(1 + 2) * 3`, `1 + 2 * 3 ^ 4 ^ 5`, `a + b * c - d / e % f`, `a - b - c`, `a - (b - c)`,
	`a / b / c`, `a atan2 b`, `a * b atan2 c`, `1 - -1`, `up ^ -1`, `up - -up`, `up + +up`,
	`a % b`, `a * -b`, `-(a + b)`, `-a + b`, `- - a`,
	// comparisons
	`up > 0`, `up == bool 1`, `up != 0`, `up >= 1`, `up <= 1`, `up < 1`, `a < b`, `a<b`, `a < -1`,
	`a<b>c`, `a <b> c`, `a == b != c`, `up > bool 0`, `rate(x[5m]) > bool 5`, `a > bool on(x) b`,
	`1 > bool 2`, `up > 5m`, `foo{a="b"}<bar{c="d"}`, `a<b>1`, `up < Inf`,
	// set operators
	`a and b`, `a or b`, `a unless b`, `a or b and c unless d`, `a and on(x) b`, `a unless on(x) b`,
	`a or ignoring(x) b`, `a AND b`, `a Or b`, `a and on() b`, `foo{a="b"} and on () bar`,
	// vector matching
	`a + on(b) c`, `a + on(b) group_left c`, `a + on(b) group_left() c`, `a + on(b) group_left(x) c`,
	`a + on(b) group_right(x, y) c`, `a / ignoring(x) group_left(y) b`, `a + ignoring() c`, `a + on() c`,
	`a + on("x.y") b`, `a * on(a, b,) c`, `a - ignoring(instance) group_right b`,
	`a / on(x) b * c`, `a == bool on(x) group_left(y) b`,
	`sum by (job) (rate(x[5m])) / on(job) group_left sum by (job) (y)`,
	// aggregations
	`sum(up)`, `sum by (job) (up)`, `sum(up) by (job)`, `sum without (job) (up)`, `sum(up) without (job)`,
	`sum by () (up)`, `sum without () (up)`, `sum by (a,) (x)`, `sum by ("a.b") (x)`, `avg(up)`, `min(up)`,
	`max(up)`, `count(up)`, `stddev(up)`, `stdvar(up)`, `group(up)`, `topk(3, up)`, `bottomk(3, up)`,
	`quantile(0.9, up)`, `count_values("v", up)`, `count_values("v", up) by (z)`, `limitk(2, up)`,
	`limit_ratio(0.5, up)`, `SUM(up)`, `Sum By (job) (up)`, `count by (a)(x)`, `sum(up) + 1`,
	`topk(3, sum by (job) (rate(x[5m])))`, `quantile by (job) (0.5, up)`, `stddev without (a) (x)`,
	`sum(sum(sum(up)))`, `sum by (le) (rate(x_bucket[5m]))`, `max by (on) (x)`, `sum by (by) (x)`,
	`topk(-1, up)`, `sum by (x:y) (z)`, `a + on(x:y) b`, `quantile(scalar(x), up)`,
	// functions
	`time()`, `vector(1)`, `scalar(up)`, `rate(x[5m])`, `irate(x[1m])`, `increase(x[1h])`, `delta(x[5m])`,
	`idelta(x[5m])`, `deriv(x[5m])`, `abs(up)`, `ceil(up)`, `floor(up)`, `round(up)`, `round(up, 5)`,
	`clamp(up, 0, 1)`, `clamp_min(up, 0)`, `clamp_max(up, 1)`, `ln(up)`, `log2(up)`, `log10(up)`, `exp(up)`,
	`sqrt(up)`, `sgn(up)`, `timestamp(up)`, `sort(up)`, `sort_desc(up)`, `absent(up)`,
	`absent_over_time(up[5m])`, `changes(up[5m])`, `resets(up[5m])`, `predict_linear(up[1h], 3600)`,
	`histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m])))`, `label_replace(up, "a", "$1", "b", "(.*)")`,
	`label_join(up, "a", ",", "b", "c")`, `avg_over_time(up[5m])`, `sum_over_time(up[5m])`,
	`quantile_over_time(0.9, up[5m])`, `count_over_time(up[5m])`, `last_over_time(up[5m])`,
	`rate(up[5m] offset 1h)`, `rate(up[5m] @ end())`, `days_in_month()`, `hour(up)`, `minute()`,
	// parentheses, whitespace, comments
	`(up)`, `(((up)))`, `((a + b))`, `(a + b) * c`, "sum(\n  rate(x[5m])\n) by (job)", "up\n>\n0",
	"rate(x[5m]) # per second\n* 60", `	up	`, `(1)`, `-(up)`,
	// longer
	`sum by (job, instance) (rate(http_requests_total{status=~"5.."}[5m])) / sum by (job, instance) (rate(http_requests_total[5m])) > 0.05`,
	`histogram_quantile(0.99, sum by (le, job) (rate(http_request_duration_seconds_bucket{job="api"}[5m]))) > bool 0.5`,
	`(1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))) * 100`,
	`max_over_time(deriv(rate(x[5m])[30m:1m])[1h:5m] offset 1d)`,
	`label_replace(sum by (pod) (rate(c[5m])), "p", "$1", "pod", "(.*)-.*") unless on(p) absent(up)`,
	`predict_linear(node_filesystem_free_bytes{job="node"}[6h], 4 * 3600) < 0`,
	`a or on(x) b and c + d * e ^ f ^ g`,
	`count(count by (version) (build_info)) > 1`,
	`topk(5, sort_desc(sum by (route) (rate(requests_total[1h] @ end()))))`,
	`-sum(rate(x[5m] offset -1h)) * -1`,
}

// promqlInvalid is rejected by both Prometheus and evalstore.
var promqlInvalid = []string{
	``, `   `, `# only a comment`, `(`, `)`, `(up`, `up)`, `up[5m`, `up{a="b"`, `up{a="b"}}`, `sum(`,
	`sum(up`, `rate(x[5m]`, `up +`, `+`, `* up`, `up * * up`, `up{}[5m`, `{}`, `{a=""}`, `{a=~".*"}`,
	`up{a=1}`, `up{a}`, `up{a==\"b\"}`, `up{=\"b\"}`, `up{a="b" c="d"}`, `up[]`, `up[5]]`, `up[-5m]`,
	`up[0s]`, `up[5m:0s]`, `up[5mm]`, `up[30m1h]`, `up[1.5h]`, `up offset`, `up offset 5m offset 5m`,
	`up @`, `up @ 1 @ 2`, `up @ Inf`, `up @ NaN`, `up @ foo()`, `up offset 5m[5m]`, `up @ 1 [5m]`,
	`sum(up) offset 5m`, `(up) offset 5m`, `1 offset 5m`, `(up)[5m]`, `up[5m][5m]`, `a + group_left b`,
	`a + on(b) group_left`, `a + on b`, `a and bool b`, `a + bool b`, `a and on(x) group_left b`,
	`sum(up, up)`, `sum()`, `topk(up)`, `quantile(0.9)`, `sum(up,)`, `rate(x[5m],)`, `"a`, `'a`, "`a",
	`"a\qb"`, `"\xZZ"`, `up{a=~"("}`, `up{a!~"[z-a]"}`, `foo{__name__="bar"}`, `on`, `bool`, `ignoring`,
	`group_left`, `atan2`, `up $ 1`, `up ! 1`, `1 2`, `up up`, `00x1`, `0x`, `1.5.5`, `1e`, `5min`,
	`sum by (a) by (b) (x)`, `sum by (a) (x) by (b)`, `foo{a:b="x"}`, `sum by (a (x)`,
	`up{a="b",,}`, `up{,}`, `a + on(x) group_left(x) b`, `a < b="x"`, `up[5m:1m:1m]`, `up[:5m]`,
	`((up)`, `up]`, `{`, `}`, `[5m]`, `offset 5m`, `@ 1`, `rate by (a) (x)`,
}
