package rules

import (
	"bytes"
	"strings"
	"testing"
)

func TestExamplesPass(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Command([]string{"test", "testdata/examples.test.yml"}, &out, &errb); code != 0 {
		t.Fatalf("rules test exit %d:\n%s%s", code, out.String(), errb.String())
	}
	if want := "Unit Testing: testdata/examples.test.yml\n  SUCCESS\n"; !strings.HasPrefix(out.String(), want) {
		t.Fatalf("output %q", out.String())
	}
}

func TestFailingUnitTestReport(t *testing.T) {
	var out, errb bytes.Buffer
	if code := TestCommand([]string{"testdata/failing.test.yml"}, &out, &errb); code != 1 {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
	want := `Unit Testing: testdata/failing.test.yml
  FAILED:
  test "wrong expectations":
    alertname: FeatureDrift, time: 20m,
        exp:[],
        got:[{labels: {alertname="FeatureDrift", feature="age", model="prod", severity="ticket"}, annotations: {summary="Feature age of prod drifted: PSI 0.30"}}]
  test "wrong expectations":
    expr: "feature_drift_psi", time: 5m,
        exp: [{__name__="feature_drift_psi", feature="age", model="prod"} 0.4]
        got: [{__name__="feature_drift_psi", feature="age", model="prod"} 0.3]
`
	if got := out.String(); !strings.HasPrefix(got, want) {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	if code := TestCommand(nil, &out, &errb); code != 2 {
		t.Fatalf("no files: exit %d", code)
	}
	out.Reset()
	if code := TestCommand([]string{"testdata/nope.test.yml"}, &out, &errb); code != 1 || !strings.Contains(out.String(), "no such file") {
		t.Fatalf("missing file: exit %d %q", code, out.String())
	}
}
