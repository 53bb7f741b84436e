package parser

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

const briefExample = `accuracy<model="b",slice="eu">[7d] - offline(accuracy<model="b">)`

// validCases: input and canonical String() ("" means the input is already
// canonical).
var validCases = []struct{ in, want string }{
	// the brief's example and angle brackets
	{briefExample, `accuracy{model="b",slice="eu"}[1w] - offline(accuracy{model="b"})`},
	{`accuracy<model="a">`, `accuracy{model="a"}`},
	{`accuracy<model="a",>`, `accuracy{model="a"}`},
	{`accuracy< model = "a" , slice != "eu" >`, `accuracy{model="a",slice!="eu"}`},
	{`accuracy<model=~"a|b">`, `accuracy{model=~"a|b"}`},
	{`accuracy<model!~"a.*">`, `accuracy{model!~"a.*"}`},
	{`<model="a">`, `{model="a"}`},
	{`<__name__="accuracy", model="a">`, `{__name__="accuracy",model="a"}`},
	{`accuracy<"my.label"="x">`, `accuracy{"my.label"="x"}`},
	{`accuracy<model='a'>`, `accuracy{model="a"}`},
	{"accuracy<model=`a`>", `accuracy{model="a"}`},
	{`accuracy<model="a">[7d]`, `accuracy{model="a"}[1w]`},
	{`accuracy<model="a">[30m:1m]`, `accuracy{model="a"}[30m:1m]`},
	{`accuracy<model="a"> offset 1d`, `accuracy{model="a"} offset 1d`},
	{`accuracy<model="a">[1h] @ end() offset 5m`, `accuracy{model="a"}[1h] @ end() offset 5m`},
	{`sum by (slice) (accuracy<model="a">[7d])`, `sum by (slice) (accuracy{model="a"}[1w])`},
	{`offline(accuracy<model="b">)`, `offline(accuracy{model="b"})`},
	{`accuracy<model="a"> - accuracy<model="b">`, `accuracy{model="a"} - accuracy{model="b"}`},
	{`accuracy<model="a"> > 0.9`, `accuracy{model="a"} > 0.9`},
	{`accuracy<model="a">>0.9`, `accuracy{model="a"} > 0.9`},
	{`accuracy<model="a"> < accuracy<model="b">`, `accuracy{model="a"} < accuracy{model="b"}`},
	{`x < <model="a">`, `x < {model="a"}`},
	{`(<model="a">)`, `({model="a"})`},
	{`-accuracy<model="a">`, `-accuracy{model="a"}`},
	{`psi(feature_dist<model="m",feature="age">[1h], offline(feature_dist<model="m",feature="age">))`,
		`psi(feature_dist{feature="age",model="m"}[1h], offline(feature_dist{feature="age",model="m"}))`},
	{`ttest(revenue<model="a">[1h], revenue<model="b">[1h])`, `ttest(revenue{model="a"}[1h], revenue{model="b"}[1h])`},
	{`quantile_sketch(0.99, latency<model="a">[5m])`, `quantile_sketch(0.99, latency{model="a"}[5m])`},
	{`sum by (feature) (importance<model="m"> * psi(f<model="m">[1h], offline(f<model="m">))) / sum(importance<model="m">)`,
		`sum by (feature) (importance{model="m"} * psi(f{model="m"}[1h], offline(f{model="m"}))) / sum(importance{model="m"})`},
	// the < ambiguity: comparisons stay comparisons
	{`a < b`, ``}, {`a<b`, `a < b`}, {`a < -1`, ``}, {`a<-1`, `a < -1`}, {`a<b>c`, `a < b > c`},
	{`a <b> c`, `a < b > c`}, {`a<b>1`, `a < b > 1`}, {`a < b > c`, ``}, {`a<b != c`, `a < b != c`},
	{`a<b==c`, `a < b == c`}, {`a < (b)`, ``}, {`a<sum(b)`, `a < sum(b)`}, {`a<b{c="d"}`, `a < b{c="d"}`},
	{`a<b<c`, `a < b < c`}, {`a < bool b`, ``}, {`up<5m`, `up < 5m`}, {`a<b[5m:]`, `a < b[5m:]`},
	// sketch typing is the engine's: these are syntax-valid
	{`sum(x[5m])`, ``}, {`-x[5m]`, ``}, {`x[5m][1h:5m]`, ``}, {`"a" + 1`, ``}, {`1 > 2`, ``},
	{`x[5m] + y[5m]`, ``}, {`rate()`, ``}, {`RATE(x[5m])`, ``}, {`foo()`, ``}, {`f(1, "a", x, y[5m])`, ``},
	{`offline(x offset 1h)`, ``}, {`1[5m:]`, ``},
	// numbers
	{`1`, ``}, {`-1`, ``}, {`+1`, `1`}, {`1.5`, ``}, {`.5`, `0.5`}, {`5.`, `5`}, {`1e3`, `1000`},
	{`1E-3`, `0.001`}, {`0x1f`, `31`}, {`0XfF`, `255`}, {`1_000_000`, `1000000`}, {`Inf`, `+Inf`},
	{`-inf`, `-Inf`}, {`NaN`, ``}, {`nAn`, `NaN`}, {`- -1`, `1`}, {`-(1)`, ``}, {`5m`, ``}, {`-5m`, ``},
	{`90s`, `1m30s`}, {`1h30m`, ``}, {`2w`, ``}, {`14d`, `2w`}, {`1y`, ``}, {`365d`, `1y`}, {`1000ms`, `1s`},
	// strings
	{`"a"`, ``}, {`'a'`, `"a"`}, {"`a\\b`", `"a\\b"`}, {`"\n"`, ``}, {`'it\'s'`, `"it's"`},
	{`"\u00e9"`, `"é"`}, {`"\x41"`, `"A"`}, {`""`, ``},
	// selectors
	{`up`, ``}, {`up{}`, `up`}, {`up{job="a"}`, ``}, {`up{job="a",}`, `up{job="a"}`},
	{`up{job="a",instance="b"}`, `up{instance="b",job="a"}`}, {`up{instance="b",job="a"}`, `up{instance="b",job="a"}`},
	{`up{job="a", instance="b"}`, `up{instance="b",job="a"}`}, {`{job="a"}`, ``}, {`{__name__="up"}`, ``},
	{`{"up"}`, `{__name__="up"}`}, {`{"my.metric", job="a"}`, `{__name__="my.metric",job="a"}`},
	{`{"my.label"="x"}`, ``}, {`up{"job"="a"}`, `up{job="a"}`}, {`foo:bar:baz`, ``}, {`sum`, ``}, {`by`, ``},
	{`offset`, ``}, {`and`, ``}, {`up{by="a", on="b", offset="c"}`, `up{by="a",offset="c",on="b"}`},
	{"up # comment", `up`}, {"# c\nup # d\n", `up`},
	// ranges and modifiers
	{`up[5m]`, ``}, {`up[300]`, `up[5m]`}, {`up[1.5]`, `up[1s500ms]`}, {`up[1h30m]`, ``}, {`up[30m:1m]`, ``},
	{`up[30m:]`, ``}, {`up[30m:60]`, `up[30m:1m]`}, {`up offset 5m`, ``}, {`up offset -5m`, ``},
	{`up offset +5m`, `up offset 5m`}, {`up offset 0s`, `up`}, {`up @ 1609746000`, `up @ 1609746000.000`},
	{`up @ 1.5`, `up @ 1.500`}, {`up @ -1`, `up @ -1.000`}, {`up @ 1m`, `up @ 60.000`},
	{`up @ start()`, ``}, {`up @ end()`, ``}, {`up offset 5m @ end()`, `up @ end() offset 5m`},
	{`up[5m] offset 1h @ 100`, `up[5m] @ 100.000 offset 1h`}, {`up[5m:] @ start() offset 1m`, ``},
	{`up offset 5m[10m:]`, ``}, {`rate(up[5m])[1h:]`, ``},
	// operators and precedence
	{`1 + 2 * 3`, ``}, {`(1 + 2) * 3`, ``}, {`2 ^ 3 ^ 2`, ``}, {`-a ^ b`, ``}, {`-a * b`, ``},
	{`a - b - c`, ``}, {`a or b and c`, ``}, {`a and b or c`, ``}, {`a unless b`, ``}, {`a atan2 b`, ``},
	{`a AND b`, `a and b`}, {`a == bool b`, ``}, {`a>bool b`, `a > bool b`}, {`a + on(b) c`, `a + on (b) c`},
	{`a + ON(b) GROUP_LEFT(c) d`, `a + on (b) group_left (c) d`}, {`a + ignoring(b) group_right c`, `a + ignoring (b) group_right () c`},
	{`a + ignoring() b`, `a + b`}, {`a + on() b`, `a + on () b`}, {`a and on(x) b`, `a and on (x) b`},
	// aggregations
	{`sum(up)`, ``}, {`sum by (job) (up)`, ``}, {`sum(up) by (job)`, `sum by (job) (up)`},
	{`sum without (job) (up)`, ``}, {`sum by () (up)`, `sum(up)`}, {`sum without () (up)`, ``},
	{`SUM BY (job) (up)`, `sum by (job) (up)`}, {`topk(3, up)`, ``}, {`quantile(0.9, up)`, ``},
	{`count_values("v", up)`, ``}, {`limitk(2, up)`, ``}, {`limit_ratio(0.1, up)`, ``}, {`group(up)`, ``},
	{`stddev(up)`, ``}, {`stdvar(up)`, ``}, {`sum by ("a.b") (up)`, ``}, {`sum by (job,) (up)`, `sum by (job) (up)`},
	// functions, parens, whitespace
	{`time()`, ``}, {`rate(up[5m])`, ``}, {`histogram_quantile(0.9, sum by (le) (rate(x[5m])))`, ``},
	{`((up))`, ``}, {"sum(\n\trate(x[5m])\n)\n", `sum(rate(x[5m]))`}, {"  up  ", `up`},
}

func TestParseValid(t *testing.T) {
	if len(validCases) < 150 {
		t.Errorf("only %d valid cases", len(validCases))
	}
	for _, tc := range validCases {
		e, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		want := tc.want
		if want == "" {
			want = tc.in
		}
		if got := e.String(); got != want {
			t.Errorf("Parse(%q).String() = %q, want %q", tc.in, got, want)
		}
	}
}

// TestRoundTrip: String() parses back to an equal AST for every valid input.
func TestRoundTrip(t *testing.T) {
	var inputs []string
	for _, tc := range validCases {
		inputs = append(inputs, tc.in)
	}
	for _, tc := range astCases {
		inputs = append(inputs, tc.in)
	}
	inputs = append(inputs, promqlCorpus...)
	for _, in := range inputs {
		e, err := Parse(in)
		if err != nil {
			t.Errorf("Parse(%q): %v", in, err)
			continue
		}
		s := e.String()
		e2, err := Parse(s)
		if err != nil {
			t.Errorf("reparse of %q (from %q): %v", s, in, err)
			continue
		}
		if !sameTree(e, e2) {
			t.Errorf("round trip of %q changed the tree:\n %s\n %s", in, tree(e), tree(e2))
		}
		if s2 := e2.String(); s2 != s {
			t.Errorf("String not stable for %q: %q then %q", in, s, s2)
		}
	}
}

var astCases = []struct{ in, tree string }{
	{briefExample, `(- (matrix sel:accuracy{model="b",slice="eu"}<> 1w) (call:offline sel:accuracy{model="b"}<>))`},
	{`a < b`, `(< sel:a sel:b)`},
	{`a<b>c`, `(> (< sel:a sel:b) sel:c)`},
	{`a < -1`, `(< sel:a -1)`},
	{`a<b="x">`, `sel:a{b="x"}<>`},
	{`a<b="x">[5m] > 1`, `(> (matrix sel:a{b="x"}<> 5m) 1)`},
	{`a<b="x"> < c<d="y">`, `(< sel:a{b="x"}<> sel:c{d="y"}<>)`},
	{`<b="x">`, `sel:{b="x"}<>`},
	{`1 + 2 * 3`, `(+ 1 (* 2 3))`},
	{`1 * 2 + 3`, `(+ (* 1 2) 3)`},
	{`2 ^ 3 ^ 2`, `(^ 2 (^ 3 2))`},
	{`a - b - c`, `(- (- sel:a sel:b) sel:c)`},
	{`a / b * c % d`, `(% (* (/ sel:a sel:b) sel:c) sel:d)`},
	{`a atan2 b * c`, `(* (atan2 sel:a sel:b) sel:c)`},
	{`-a ^ b`, `(unary- (^ sel:a sel:b))`},
	{`-a * b`, `(* (unary- sel:a) sel:b)`},
	{`2 ^ -a ^ b`, `(^ 2 (unary- (^ sel:a sel:b)))`},
	{`-1 ^ 2`, `(unary- (^ 1 2))`},
	{`- -a`, `(unary- (unary- sel:a))`},
	{`+a`, `(unary+ sel:a)`},
	{`-1`, `-1`},
	{`-5m`, `dur:-5m`},
	{`a or b and c unless d`, `(or sel:a (unless (and sel:b sel:c) sel:d))`},
	{`a == b + c`, `(== sel:a (+ sel:b sel:c))`},
	{`a and b == c`, `(and sel:a (== sel:b sel:c))`},
	{`a > bool on(x) group_left(y) b`, `(> bool on(x) group_left(y) sel:a sel:b)`},
	{`a + ignoring(x) group_right b`, `(+ ignoring(x) group_right() sel:a sel:b)`},
	{`sum by (a) (x)`, `(sum by(a) sel:x)`},
	{`sum(x) without (a, b)`, `(sum without(a,b) sel:x)`},
	{`topk(3, x)`, `(topk 3 sel:x)`},
	{`count_values("v", x) by (z)`, `(count_values by(z) "v" sel:x)`},
	{`rate(x[5m])`, `(call:rate (matrix sel:x 5m))`},
	{`x[30m:1m] offset 5m`, `(subquery sel:x 30m 1m offset 5m)`},
	{`x[30m:] @ end()`, `(subquery sel:x 30m 0s @2())`},
	{`-x[5m:]`, `(unary- (subquery sel:x 5m 0s))`},
	{`(a + b) * c`, `(* (paren (+ sel:a sel:b)) sel:c)`},
	{`sum(a) + sum(b) / 2`, `(+ (sum sel:a) (/ (sum sel:b) 2))`},
	{`x offset 5m`, `sel:x offset 5m`},
	{`sum`, `sel:sum`},
	{`up > 5m`, `(> sel:up dur:5m)`},
}

func TestParseAST(t *testing.T) {
	for _, tc := range astCases {
		e, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got := tree(e); got != tc.tree {
			t.Errorf("Parse(%q)\n got %s\nwant %s", tc.in, got, tc.tree)
		}
	}
}

func TestBriefExample(t *testing.T) {
	e, err := Parse(briefExample)
	if err != nil {
		t.Fatal(err)
	}
	b, ok := e.(*BinaryExpr)
	if !ok || b.Op != "-" {
		t.Fatalf("want a subtraction, got %T %s", e, e)
	}
	m, ok := b.LHS.(*MatrixSelector)
	if !ok || m.Range != 7*24*time.Hour {
		t.Fatalf("LHS: want a 7d range selector, got %s", tree(b.LHS))
	}
	vs := m.VectorSelector
	if vs.Name != "accuracy" || !vs.Angle || len(vs.LabelMatchers) != 3 {
		t.Fatalf("LHS selector: %+v", vs)
	}
	want := []string{`__name__="accuracy"`, `model="b"`, `slice="eu"`}
	for i, m := range vs.LabelMatchers {
		if m.String() != want[i] {
			t.Errorf("matcher %d = %s, want %s", i, m, want[i])
		}
	}
	c, ok := b.RHS.(*Call)
	if !ok || c.Func != "offline" || len(c.Args) != 1 {
		t.Fatalf("RHS: want offline(...), got %s", tree(b.RHS))
	}
	arg, ok := c.Args[0].(*VectorSelector)
	if !ok || arg.Name != "accuracy" || len(arg.LabelMatchers) != 2 || arg.LabelMatchers[1].Value != "b" {
		t.Fatalf("offline argument: %s", tree(c.Args[0]))
	}
	wantPos := map[string]PositionRange{
		"lhs": {0, 34}, "lhs-sel": {0, 30}, "rhs": {37, 65}, "arg": {45, 64}, "all": {0, 65},
	}
	got := map[string]PositionRange{
		"lhs": m.Pos, "lhs-sel": vs.Pos, "rhs": c.Pos, "arg": arg.Pos, "all": b.Pos,
	}
	for k, w := range wantPos {
		if got[k] != w {
			t.Errorf("position of %s = %v, want %v", k, got[k], w)
		}
	}
}

func TestPositions(t *testing.T) {
	cases := []struct {
		in   string
		want []PositionRange // preorder
	}{
		{`sum by (a) (rate(x{y="z"}[5m] offset 1m))`, []PositionRange{{0, 41}, {12, 40}, {17, 39}, {17, 25}}},
		{`-1 + -a`, []PositionRange{{0, 7}, {0, 2}, {5, 7}, {6, 7}}},
		{"a\n  + b # c", []PositionRange{{0, 7}, {0, 1}, {6, 7}}},
		{`x[5m:1m] @ 1`, []PositionRange{{0, 12}, {0, 1}}},
		{`(a)`, []PositionRange{{0, 3}, {1, 2}}},
	}
	for _, tc := range cases {
		e, err := Parse(tc.in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.in, err)
		}
		var got []PositionRange
		Inspect(e, func(n Node, _ []Node) bool {
			got = append(got, n.PositionRange())
			return true
		})
		if len(got) != len(tc.want) {
			t.Errorf("%q: positions %v, want %v", tc.in, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%q: positions %v, want %v", tc.in, got, tc.want)
				break
			}
		}
	}
}

// invalidCases: input and the exact error text (line:column: message).
var invalidCases = []struct{ in, want string }{
	{``, `1:1: empty query — expected an expression such as up or sum(rate(x[5m]))`},
	{`# just a comment`, `1:1: empty query — expected an expression such as up or sum(rate(x[5m]))`},
	// unclosed and stray brackets
	{`(up`, `1:4: unexpected end of input — "(" opened at 1:1 is not closed`},
	{`sum(rate(x[5m])`, `1:16: unexpected end of input — "(" opened at 1:4 is not closed`},
	{`up[5m`, `1:6: unexpected end of input — "[" opened at 1:3 is not closed`},
	{`up{job="a"`, `1:11: unexpected end of input — "{" opened at 1:3 is not closed`},
	{`up)`, `1:3: unexpected ")" — there is no "(" to close`},
	{`up{job="a"]`, `1:11: unexpected "]" — expected "}" to close the "{" at 1:3`},
	{`sum(up]`, `1:7: unexpected "]" — expected ")" to close the "(" at 1:4`},
	{"sum(\n  rate(x[5m]\n", `3:1: unexpected end of input — "(" opened at 2:7 is not closed`},
	// angle brackets
	{`accuracy<model="b"`, `1:19: unexpected end of input — expected "," or ">"`},
	{`accuracy<model="b",slice="eu"[7d]`, `1:30: unexpected "[" — expected "," or ">"`},
	{`accuracy<model=>`, `1:16: unexpected ">" — expected a quoted string such as "a"`},
	{`accuracy<model=1>`, `1:16: unexpected number 1 — expected a quoted string such as "a"`},
	{`accuracy<model="b",,>`, `1:20: unexpected "," — expected a label matcher such as model="a"`},
	{`<model="a"`, `1:11: unexpected end of input — expected "," or ">"`},
	{`a < b="x"`, `1:10: unexpected end of input — expected "," or ">"`},
	{`accuracy<model=~"(">`, `1:17: invalid regular expression "(" in matcher: error parsing regexp: missing closing ): ` + "`(`"},
	// unclosed strings and escapes
	{`"abc`, `1:1: unterminated quoted string — add the closing "`},
	{`up{job='a}`, `1:8: unterminated quoted string — add the closing '`},
	{"`raw", "1:1: unterminated quoted string — add the closing `"},
	{"\"a\nb\"", `1:1: unterminated quoted string — add the closing "`},
	{`"a\qb"`, `1:3: unknown or invalid escape sequence "\\q" in string (Go escapes: \n \t \\ \" \' \xFF \u00e9 ...)`},
	{`up{job="\z"}`, `1:9: unknown or invalid escape sequence "\\z" in string (Go escapes: \n \t \\ \" \' \xFF \u00e9 ...)`},
	{`"\xZZ"`, `1:2: unknown or invalid escape sequence "\\x" in string (Go escapes: \n \t \\ \" \' \xFF \u00e9 ...)`},
	// missing operands and operators
	{`up +`, `1:5: unexpected end of input — expected an expression after "+"`},
	{`up * * 2`, `1:6: unexpected "*" — expected an expression after "*"`},
	{`* up`, `1:1: unexpected "*" — expected an expression such as up or sum(rate(x[5m]))`},
	{`up and`, `1:7: unexpected end of input — expected an expression after "and"`},
	{`up == bool`, `1:11: unexpected end of input — expected an expression after "bool"`},
	{`up up`, `1:4: unexpected "up" — expected an operator or the end of the expression`},
	{`1 2`, `1:3: unexpected number 2 — expected an operator or the end of the expression`},
	{`sum(up, )`, `1:9: unexpected ")" — expected an expression`},
	{`rate(x[5m],)`, `1:12: unexpected ")" — expected an expression`},
	{`(up 1)`, `1:5: unexpected number 1 — expected an operator or ")"`},
	{`f(up 1)`, `1:6: unexpected number 1 — expected an operator, "," or ")"`},
	{`up $ 1`, `1:4: unexpected character '$'`},
	// selectors and matchers
	{`{}`, `1:1: a selector needs a metric name or at least one matcher that does not match the empty string, such as {job="api"}`},
	{`{job=""}`, `1:1: a selector needs a metric name or at least one matcher that does not match the empty string, such as {job="api"}`},
	{`{job=~".*"}`, `1:1: a selector needs a metric name or at least one matcher that does not match the empty string, such as {job="api"}`},
	{`up{,}`, `1:4: unexpected "," — expected a label matcher such as model="a"`},
	{`up{job}`, `1:4: label "job" needs a matcher operator and a value, such as job="a"`},
	{`up{job=1}`, `1:8: unexpected number 1 — expected a quoted string such as "a"`},
	{`up{job="a" x="b"}`, `1:12: unexpected "x" — expected "," or "}"`},
	{`up{a:b="x"}`, `1:4: invalid label name "a:b" — label names are letters, digits and _ (quote other names: "a:b")`},
	{`up{job=~"a(b"}`, `1:9: invalid regular expression "a(b" in matcher: error parsing regexp: missing closing ): ` + "`a(b`"},
	{"up{\n  job=~\"[\"\n}", `2:8: invalid regular expression "[" in matcher: error parsing regexp: missing closing ]: ` + "`[`"},
	{`up{__name__="x"}`, `1:4: metric name must not be set twice ("up" already selects the name)`},
	{`on`, `1:1: unexpected "on" — expected an expression such as up or sum(rate(x[5m]))`},
	{`a + group_left b`, `1:5: group_left must follow on(...) or ignoring(...), such as a * on(job) group_left(team) b`},
	// durations, ranges, modifiers
	{`up[]`, `1:4: unexpected "]" — expected a duration such as 5m`},
	{`up[-5m]`, `1:4: unexpected "-" — expected a duration such as 5m`},
	{`up[0s]`, `1:4: range must be greater than 0, such as [5m]`},
	{`up[5m:0s]`, `1:7: subquery step must be greater than 0, or left out ([5m:]) for the default`},
	{`up[5mm]`, `1:4: bad duration "5mm" — units must be in the order y w d h m s ms, each at most once, such as 1h30m`},
	{`up[30m1h]`, `1:4: bad duration "30m1h" — units must be in the order y w d h m s ms, each at most once, such as 1h30m`},
	{`up[1.5h]`, `1:4: bad number or duration syntax "1.5h"`},
	{`up[5min]`, `1:4: bad number or duration syntax "5min"`},
	{`up[5m:1m:1m]`, `1:9: unexpected ":" — expected "]"`},
	{`up[5m`, `1:6: unexpected end of input — "[" opened at 1:3 is not closed`},
	{`up offset`, `1:10: unexpected end of input — expected a duration such as 5m`},
	{`up offset 5m offset 1m`, `1:14: offset may not be set multiple times`},
	{`up @`, `1:5: unexpected end of input — expected a Unix timestamp in seconds, start() or end()`},
	{`up @ foo`, `1:6: unexpected "foo" — expected a Unix timestamp in seconds, start() or end()`},
	{`up @ 1 @ 2`, `1:8: @ modifier may not be set multiple times`},
	{`up @ Inf`, `1:4: timestamp out of bounds for @ modifier: +Inf`},
	{`up offset 5m [5m]`, `1:14: no offset modifiers allowed before a range: write m[5m] offset ...`},
	{`up @ 1 [5m]`, `1:8: no @ modifiers allowed before a range: write m[5m] @ ...`},
	{`sum(up) offset 5m`, `1:9: offset modifier must follow a selector, a range selector or a subquery`},
	{`(up)[5m]`, `1:5: a range [5m] is only allowed after a selector such as m{...}; for an expression use a subquery [5m:]`},
	{`up[5m][5m]`, `1:7: a range [5m] is only allowed after a selector such as m{...}; for an expression use a subquery [5m:]`},
	// numbers
	{`0x`, `1:1: bad number syntax "0x"`},
	{`1.5.5`, `1:1: bad number or duration syntax "1.5.5"`},
	{`0xffffffffffffffffff`, `1:1: hexadecimal number 0xffffffffffffffffff is out of range`},
	// binary modifiers
	{`a + bool b`, `1:5: bool modifier can only be used on comparison operators (== != < <= > >=), not on "+"`},
	{`a and bool b`, `1:7: bool modifier can only be used on comparison operators (== != < <= > >=), not on "and"`},
	{`a + group_left(x) b`, `1:5: group_left must follow on(...) or ignoring(...), such as a * on(job) group_left(team) b`},
	{`a * bool group_right b`, `1:10: group_right must follow on(...) or ignoring(...), such as a * on(job) group_right(team) b`},
	{`a + on b`, `1:8: unexpected "b" — expected a list of label names in parentheses such as (job)`},
	{`a + on(b) group_left`, `1:21: unexpected end of input — expected a list of label names such as (job), or the right-hand expression`},
	{`a + on(b)`, `1:10: unexpected end of input — expected the right-hand expression`},
	{`a and on(x) group_left b`, `1:13: no grouping (group_left) allowed for "and": set operators are always many-to-many`},
	{`a / on(x) group_left(x) b`, `1:11: label "x" must not occur in on(...) and group_left(...) at once`},
	{`a + on(x,,) b`, `1:10: unexpected "," — expected a label name`},
	// aggregations
	{`sum()`, `1:1: no arguments for aggregation sum: expected sum(expr)`},
	{`sum(a, b)`, `1:1: wrong number of arguments for aggregation sum: expected 1 (sum(expr)), got 2`},
	{`topk(x)`, `1:1: wrong number of arguments for aggregation topk: expected 2 (topk(k, expr)), got 1`},
	{`quantile(0.5, x, y)`, `1:1: wrong number of arguments for aggregation quantile: expected 2 (quantile(φ, expr)), got 3`},
	{`sum by (a) (x) by (b)`, `1:16: sum has a grouping clause both before and after its arguments; keep one`},
	{`sum by job (x)`, `1:8: unexpected "job" — expected a list of label names in parentheses such as (job)`},
	{`sum by (a)`, `1:11: unexpected end of input — expected the aggregation's arguments in parentheses, such as (x)`},
	{`rate(x[5m]) by (job)`, `1:13: by (...) is only allowed on aggregations such as sum; "rate" is a function`},
}

func TestParseInvalid(t *testing.T) {
	if len(invalidCases) < 50 {
		t.Errorf("only %d invalid cases", len(invalidCases))
	}
	for _, tc := range invalidCases {
		e, err := Parse(tc.in)
		if err == nil {
			t.Errorf("Parse(%q) = %s, want error %q", tc.in, e, tc.want)
			continue
		}
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("Parse(%q): error %T is not a *ParseError", tc.in, err)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("Parse(%q)\n got error %s\nwant error %s", tc.in, err, tc.want)
		}
		if pe.Pos.Start > len(tc.in) || pe.Pos.End > len(tc.in) || pe.Pos.Start > pe.Pos.End {
			t.Errorf("Parse(%q): bad error range %v", tc.in, pe.Pos)
		}
		for _, bad := range []string{"gExpr", "gUnary", "gPrimary", "participle", "<ident>", "Ident", "Punct", "struct"} {
			if strings.Contains(err.Error(), bad) {
				t.Errorf("Parse(%q): error %q leaks grammar internals (%s)", tc.in, err, bad)
			}
		}
	}
}

func TestParseDuration(t *testing.T) {
	good := map[string]time.Duration{
		"0": 0, "0s": 0, "5m": 5 * time.Minute, "1h30m": 90 * time.Minute, "500ms": 500 * time.Millisecond,
		"1y": 365 * 24 * time.Hour, "2w": 14 * 24 * time.Hour, "1d": 24 * time.Hour, "1y2w3d4h5m6s7ms": 365*24*time.Hour + 14*24*time.Hour + 3*24*time.Hour + 4*time.Hour + 5*time.Minute + 6*time.Second + 7*time.Millisecond,
		"90s": 90 * time.Second,
	}
	for in, want := range good {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "5", "m", "5mm", "1m1h", "1h1h", "-5m", "1.5h", "5 m", "1x", "99999999999999y"} {
		if d, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want error", in, d)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	cases := map[time.Duration]string{
		0: "0s", time.Millisecond: "1ms", 90 * time.Second: "1m30s", 7 * 24 * time.Hour: "1w",
		8 * 24 * time.Hour: "8d", 365 * 24 * time.Hour: "1y", 366 * 24 * time.Hour: "366d",
		-5 * time.Minute: "-5m", time.Hour + time.Millisecond: "1h1ms",
	}
	for d, want := range cases {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestParseMatchers(t *testing.T) {
	ms, err := ParseMatchers(`accuracy<model="a", slice=~"eu|us">`)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`__name__="accuracy"`, `model="a"`, `slice=~"eu|us"`}
	if len(ms) != len(want) {
		t.Fatalf("got %v", ms)
	}
	for i := range ms {
		if ms[i].String() != want[i] {
			t.Errorf("matcher %d = %s, want %s", i, ms[i], want[i])
		}
	}
	if !ms[2].Matches("eu") || ms[2].Matches("xeu") {
		t.Error("regex matchers must be anchored")
	}
	if ms[0].Type != labels.MatchEqual || ms[0].Name != MetricNameLabel {
		t.Errorf("name matcher %v", ms[0])
	}
	for _, bad := range []string{`up[5m]`, `sum(up)`, `1`, `up offset 5m`, `{}`, `up{`} {
		if _, err := ParseMatchers(bad); err == nil {
			t.Errorf("ParseMatchers(%q) succeeded", bad)
		}
	}
	if _, err := ParseMatchers(`up[5m]`); err == nil || err.Error() != `1:1: expected a series selector such as up{job="api"}, got a range selector` {
		t.Errorf("ParseMatchers(up[5m]) error = %v", err)
	}
}

func TestInspect(t *testing.T) {
	e, err := Parse(`sum(rate(a[5m])) / on(x) group_left b + offline(c<m="1">)`)
	if err != nil {
		t.Fatal(err)
	}
	var sels []string
	var depthOfC int
	Inspect(e, func(n Node, path []Node) bool {
		if vs, ok := n.(*VectorSelector); ok {
			sels = append(sels, vs.Name)
			if vs.Name == "c" {
				depthOfC = len(path)
			}
		}
		_, isAgg := n.(*AggregateExpr)
		return !isAgg // skip inside aggregations
	})
	if strings.Join(sels, ",") != "b,c" || depthOfC != 2 {
		t.Errorf("selectors %v, depth of c %d", sels, depthOfC)
	}
}

func TestNumbers(t *testing.T) {
	cases := map[string]float64{`1_000`: 1000, `0x10`: 16, `1e-2`: 0.01, `-Inf`: math.Inf(-1), `1m`: 60, `-1h`: -3600}
	for in, want := range cases {
		e, err := Parse(in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		if n, ok := e.(*NumberLiteral); !ok || n.Val != want {
			t.Errorf("Parse(%q) = %s, want %v", in, tree(e), want)
		}
	}
	e, _ := Parse(`NaN`)
	if n := e.(*NumberLiteral); !math.IsNaN(n.Val) {
		t.Errorf("NaN = %v", n.Val)
	}
}

func TestStrings(t *testing.T) {
	cases := map[string]string{`"a\"b"`: `a"b`, `'a\'b'`: `a'b`, "`a\\nb`": `a\nb`, `"\u00e9\x41\n"`: "éA\n", `'"'`: `"`}
	for in, want := range cases {
		e, err := Parse(in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		if s, ok := e.(*StringLiteral); !ok || s.Val != want {
			t.Errorf("Parse(%q) = %s, want %q", in, tree(e), want)
		}
	}
}

func TestNestingLimit(t *testing.T) {
	deep := strings.Repeat("(", MaxNesting+1) + "1" + strings.Repeat(")", MaxNesting+1)
	if _, err := Parse(deep); err == nil || !strings.Contains(err.Error(), "nested more than") {
		t.Errorf("deep nesting: %v", err)
	}
	ok := strings.Repeat("(", MaxNesting) + "1" + strings.Repeat(")", MaxNesting)
	if _, err := Parse(ok); err != nil {
		t.Errorf("nesting at the limit: %v", err)
	}
}

func TestConcurrentParse(t *testing.T) {
	done := make(chan string, 8)
	for i := 0; i < 8; i++ {
		go func() {
			var bad string
			for _, in := range promqlCorpus {
				e, err := Parse(in)
				if err != nil {
					bad = in
					break
				}
				_ = e.String()
			}
			done <- bad
		}()
	}
	for i := 0; i < 8; i++ {
		if bad := <-done; bad != "" {
			t.Errorf("concurrent Parse(%q) failed", bad)
		}
	}
}
