package rules

import (
	"bytes"
	"strings"
	"testing"
)

func TestCheckErrors(t *testing.T) {
	for _, c := range []struct {
		name, file string
		want       []string // each a full line of the output
	}{
		{"bad expression, position in the file",
			"groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: rate(x[5m]) > \n",
			[]string{`F:5:28: group "g", rule 1 "A": expr: 1:14: unexpected end of input — expected an expression after ">"`}},
		{"bad expression in a block scalar",
			"groups:\n  - name: g\n    rules:\n      - record: r\n        expr: |\n          sum(x)\n            + up{job=~\"a(b\"}\n",
			[]string{`F:7:23: group "g", rule 1 "r": expr: 2:13: invalid regular expression "a(b" in matcher: error parsing regexp: missing closing ): ` + "`a(b`"}},
		{"quoted expression, unknown function",
			"groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: \"nosuch(x)\"\n",
			[]string{`F:5:16: group "g", rule 1 "A": expr: 1:1: unknown function with name "nosuch"`}},
		{"range vector result",
			"groups:\n  - name: g\n    rules:\n      - record: r\n        expr: x[5m]\n",
			[]string{`F:5:15: group "g", rule 1 "r": expr: the expression must be an instant vector or a scalar, not a matrix`}},
		{"record and alert",
			"groups:\n  - name: g\n    rules:\n      - alert: A\n        record: r\n        expr: x\n",
			[]string{`F:5:17: group "g", rule 1 "A": only one of 'record' and 'alert' may be set`}},
		{"neither record nor alert, no expr",
			"groups:\n  - name: g\n    rules:\n      - labels: {a: b}\n",
			[]string{`F:4:9: group "g", rule 1: one of 'record' or 'alert' must be set`, `F:4:9: group "g", rule 1: field 'expr' must be set in the rule`}},
		{"for on a recording rule, bad record name",
			"groups:\n  - name: g\n    rules:\n      - record: 'a-b'\n        expr: x\n        for: 5m\n",
			[]string{`F:6:14: group "g", rule 1 "a-b": invalid field 'for' in a recording rule`, `F:4:17: group "g", rule 1 "a-b": invalid recording rule name "a-b": must match [a-zA-Z_:][a-zA-Z0-9_:]*`}},
		{"braces in the record name",
			"groups:\n  - name: g\n    rules:\n      - record: 'a{x=\"1\"}'\n        expr: x\n",
			[]string{`F:4:17: group "g", rule 1 "a{x=\"1\"}": braces in the recording rule name "a{x=\"1\"}": should they be in expr?`}},
		{"annotations on a recording rule",
			"groups:\n  - name: g\n    rules:\n      - record: r\n        expr: x\n        annotations: {a: b}\n",
			[]string{`F:6:22: group "g", rule 1 "r": invalid field 'annotations' in a recording rule`}},
		{"bad template",
			"groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: x\n        annotations:\n          summary: '{{ $labels.job '\n",
			[]string{`F:7:20: group "g", rule 1 "A": annotation "summary": template: __alert_A:1: unclosed action`}},
		{"invalid label name",
			"groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: x\n        labels: {'a-b': c}\n",
			[]string{`F:6:17: group "g", rule 1 "A": invalid label name "a-b"`}},
		{"empty and repeated group names",
			"groups:\n  - name: ''\n    rules: []\n  - name: g\n    rules: []\n  - name: g\n    rules: []\n",
			[]string{`F:2:11: group name must not be empty`, `F:6:11: group "g": group name "g" is repeated in the same file`}},
		{"unknown field",
			"groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: x\n        fro: 5m\n",
			[]string{`F:6:1: field fro not found in a rule`}},
		{"bad duration",
			"groups:\n  - name: g\n    interval: 5 minutes\n    rules: []\n",
			[]string{`F:3:15: interval: unknown unit " minutes" in duration "5 minutes"`}},
		{"not yaml",
			"groups: [\n",
			[]string{`F:1:1: did not find expected node content`}},
		{"top level is not a map",
			"- a\n",
			[]string{`F:1:1: cannot unmarshal !!seq into a rule file (expected groups:)`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := writeRules(t, c.file)
			var out, errb bytes.Buffer
			if code := CheckCommand([]string{p}, &out, &errb); code != 1 {
				t.Fatalf("exit %d, want 1; output:\n%s", code, out.String())
			}
			got := strings.ReplaceAll(out.String(), p, "F")
			for _, w := range c.want {
				found := false
				for _, l := range strings.Split(got, "\n") {
					if l == w {
						found = true
					}
				}
				if !found {
					t.Errorf("output lacks line\n  %s\ngot:\n%s", w, got)
				}
			}
		})
	}
}

func TestCheckSuccessAndUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := CheckCommand([]string{"testdata/examples.rules.yml"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
	if want := "Checking testdata/examples.rules.yml\n  SUCCESS: 8 rules found\n"; !strings.HasPrefix(out.String(), want) {
		t.Fatalf("output %q", out.String())
	}
	if code := CheckCommand(nil, &out, &errb); code != 2 {
		t.Fatalf("no files: exit %d", code)
	}
	if code := Command([]string{"nope"}, &out, &errb); code != 2 {
		t.Fatalf("unknown subcommand: exit %d", code)
	}
	errb.Reset()
	if code := CheckCommand([]string{"testdata/does-not-exist.yml"}, &out, &errb); code != 1 {
		t.Fatalf("missing file: exit %d", code)
	}
}

func TestParseFileValues(t *testing.T) {
	f, err := ParseFile("testdata/examples.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	g := f.Groups[0]
	if g.Name != "model-quality" || g.Interval.Minutes() != 1 || len(g.Rules) != 3 {
		t.Fatalf("group %+v", g)
	}
	r := g.Rules[2]
	if r.Alert != "FeatureDrift" || r.For.Minutes() != 10 || r.KeepFiringFor.Minutes() != 5 || r.Labels["severity"] != "ticket" || r.Line != 31 {
		t.Fatalf("rule %+v", r)
	}
}
