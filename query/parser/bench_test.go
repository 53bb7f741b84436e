package parser

import "testing"

const longExpr = `sum by (job, instance) (rate(http_requests_total{status=~"5..",job!="test"}[5m] offset 1m)) / on (job, instance) group_left (team) sum by (job, instance) (rate(http_requests_total[5m])) > bool 0.05 and on (job) (histogram_quantile(0.99, sum by (le, job) (rate(http_request_duration_seconds_bucket{job="api"}[5m]))) > 0.5) or max_over_time(deriv(rate(x[5m])[30m:1m])[1h:5m]) * -1 ^ 2 unless absent(up{job="api"} @ end())`

func benchParse(b *testing.B, in string) {
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := Parse(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseSelector(b *testing.B)     { benchParse(b, `up{job="api"}`) }
func BenchmarkParseBriefExample(b *testing.B) { benchParse(b, briefExample) }
func BenchmarkParseLong(b *testing.B)         { benchParse(b, longExpr) }

// Prometheus's own parser on the same pure-PromQL inputs, for scale.
func benchProm(b *testing.B, in string) {
	pp := promParser()
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := pp.ParseExpr(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPrometheusParseSelector(b *testing.B) { benchProm(b, `up{job="api"}`) }
func BenchmarkPrometheusParseLong(b *testing.B)     { benchProm(b, longExpr) }
