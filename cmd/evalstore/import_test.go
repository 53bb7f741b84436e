package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestImport imports predictions, feedback and offline runs from files
// into a real server, and stops at a refused batch with its errors.
func TestImport(t *testing.T) {
	dir := t.TempDir()
	s := start(t, filepath.Join(dir, "data"))
	api := client(t, s.url, "")
	now := time.Now()
	ts := float64(now.Add(-30*time.Minute).UnixMilli()) / 1000
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	imp := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(append([]string{"import", "-url", s.url}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}

	// 2,500 predictions (and blank lines): three batches, a progress bar.
	var preds strings.Builder
	for i := range 2500 {
		fmt.Fprintf(&preds, `{"model":"m","version":"v1","id":"p%d","timestamp":%v,"features":{"x":%d},"score":%v}`+"\n", i, ts, i%7, float64(i%10)/10)
		if i%500 == 0 {
			preds.WriteString("\n")
		}
	}
	code, out, errs := imp(write("preds.ndjson", preds.String()))
	if code != 0 || !strings.Contains(out, "imported 2500 records in 3 batches") || !strings.Contains(errs, "100%") {
		t.Fatalf("predictions: exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
	if got := vec(t, api, `count{model="m",slice="all"}[1h]`, now, "model"); got["m"] != 2500 {
		t.Fatalf("count = %v, want 2500", got)
	}

	// Feedback: the second batch holds a bad record (line 1,203): the
	// first batch stays written, the import stops and names the line.
	var fb strings.Builder
	for i := range 1500 {
		label := fmt.Sprintf("%q", fmt.Sprint(i%2))
		if i == 1202 {
			label = `{"not":"a label"}`
		}
		fmt.Fprintf(&fb, `{"model":"m","id":"p%d","label":%s}`+"\n", i, label)
	}
	code, out, errs = imp("-kind", "feedback", "-q", write("fb.ndjson", fb.String()))
	if code != 1 || !strings.Contains(errs, "line 1203: label") || !strings.Contains(errs, "starting at line 1001") ||
		!strings.Contains(out, "imported 1000 records in 1 batches before the error") {
		t.Fatalf("refused feedback: exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
	if got := vec(t, api, `label_coverage{model="m",slice="all"}[1h]`, now, "model"); got["m"] != 1000.0/2500 {
		t.Fatalf("label coverage = %v, want 0.4 (the first batch only)", got)
	}

	// An offline run from records and flags, in batches of 100.
	var recs strings.Builder
	for i := range 250 {
		fmt.Fprintf(&recs, `{"features":{"x":%d},"score":0.8,"label":"%d"}`+"\n", i%7, i%2)
	}
	code, out, errs = imp("-kind", "evaluation", "-q", "-batch", "100", "-model", "m", "-version", "v1", "-dataset", "main",
		"-run", "r1", "-timestamp", fmt.Sprint(ts), write("run.ndjson", recs.String()))
	if code != 0 || !strings.Contains(out, "imported 250 records in 3 batches") {
		t.Fatalf("evaluation: exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
	// A whole run as one JSON object (spanning lines).
	run := map[string]any{"model": "m", "version": "v1", "dataset": "holdout", "run": "h1", "timestamp": ts, "records": []any{}}
	for i := range 40 {
		run["records"] = append(run["records"].([]any), map[string]any{"features": map[string]any{"x": i}, "score": 0.3, "label": "0"})
	}
	whole, err := json.MarshalIndent(run, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs = imp("-kind", "evaluation", "-q", write("run.json", string(whole)))
	if code != 0 || !strings.Contains(out, "imported 40 records in 1 batches") {
		t.Fatalf("whole run: exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
	got := vec(t, api, `offline(count{model="m",slice="all",dataset=~"main|holdout"})`, now, "dataset")
	if got["main"] != 250 || got["holdout"] != 40 {
		t.Fatalf("offline counts = %v, want main 250, holdout 40", got)
	}

	// Usage errors.
	for _, args := range [][]string{{"-kind", "bogus", "f"}, {}, {"-kind", "evaluation", write("x.ndjson", "{}\n")}} {
		code, _, errs := imp(args...)
		if code == 0 {
			t.Errorf("import %v: exit 0 (%s)", args, errs)
		}
	}
}
