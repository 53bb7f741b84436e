package query

import (
	"strings"
	"testing"

	promparser "github.com/prometheus/prometheus/promql/parser"
)

// TestTypeErrorsMatchPrometheus checks that queries Prometheus's parser
// rejects for their types are rejected here with the same message and
// column. (Syntax errors, such as a range after a non-selector or a label in
// both on(...) and group_left(...), are the parser's and use its wording.)
func TestTypeErrorsMatchPrometheus(t *testing.T) {
	cases := []string{
		`sum(x[5m])`,
		`rate(x)`,
		`abs(x[5m])`,
		`"a" + 1`,
		`x + "a"`,
		`x[5m] + 1`,
		`1 > 2`,
		`1 and 2`,
		`x and 1`,
		`1 or x`,
		`x + on(a) 1`,
		`-"a"`,
		`-x[5m]`,
		`"a"[5m:]`,
		`x[5m][1m:]`,
		`foo(x)`,
		`abs(x, y)`,
		`abs()`,
		`round(x, 1, 2)`,
		`label_join(x, "a")`,
		`clamp(x, 1)`,
		`time(1)`,
		`histogram_quantile(x, x)`,
		`quantile_over_time(x, x[5m])`,
		`topk(x, y)`,
		`count_values(1, x)`,
		`quantile("a", x)`,
		`vector(x)`,
		`scalar(1)`,
		`label_replace(x, 1, "a", "b", "c")`,
		`sort_by_label(x, 1)`,
		`predict_linear(x[5m], x)`,
		`absent_over_time(x)`,
		`days_in_month(x, x)`,
		`max_over_time(sum(x))`,
		`(x)[5m:1m] offset 1m > 0`,
		`x > bool on(a) "s"`,
	}
	p := promparser.NewParser(promparser.Options{EnableExperimentalFunctions: true})
	for _, q := range cases {
		t.Run(q, func(t *testing.T) {
			_, perr := p.ParseExpr(q)
			if perr == nil {
				t.Fatalf("Prometheus accepts %q", q)
			}
			_, _, err := Check(q)
			if err == nil {
				t.Fatalf("accepted; Prometheus: %v", perr)
			}
			if TypeOf(err) != ErrBadData {
				t.Errorf("error type %s, want bad_data", TypeOf(err))
			}
			want := perr.Error()
			// Prometheus: "1:5: parse error: msg"; ours: "1:5: msg".
			want = strings.Replace(want, "parse error: ", "", 1)
			if err.Error() != want {
				t.Errorf("error\n got %s\nwant %s", err, want)
			}
		})
	}
}
