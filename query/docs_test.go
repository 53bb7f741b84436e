package query

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fencedBlocks returns the bodies of the fenced blocks of the given info
// string in a markdown file, in order.
func fencedBlocks(t *testing.T, path, info string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	var cur *strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case cur == nil && line == "```"+info:
			cur = &strings.Builder{}
		case cur != nil && line == "```":
			out = append(out, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	return out
}

// TestDocsHistogramExamples runs the native histogram examples of
// docs/query-language.md (a promqltest script) and checks the JSON answers
// shown in docs/api.md.
func TestDocsHistogramExamples(t *testing.T) {
	scripts := fencedBlocks(t, "../docs/query-language.md", "test")
	if len(scripts) == 0 {
		t.Fatal("no test block in docs/query-language.md")
	}
	for i, s := range scripts {
		path := filepath.Join(t.TempDir(), "doc.test")
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Run(fmt.Sprint("block ", i), func(t *testing.T) { runScript(t, path) })
	}

	answers := fencedBlocks(t, "../docs/api.md", "json")
	if len(answers) != 2 {
		t.Fatalf("docs/api.md has %d json blocks, want the 2 native histogram answers", len(answers))
	}
	st := loadText(t, `
load 1m
  lat_seconds{job="api"} {{schema:0 sum:5 count:4 buckets:[1 2 1]}}+{{schema:0 sum:2 count:3 buckets:[1 1 1]}}x10
`)
	e := New(Options{})
	ctx := context.Background()
	inst, err := e.Instant(ctx, st, "lat_seconds", time.Unix(60, 0))
	if err != nil {
		t.Fatal(err)
	}
	rng, err := e.Range(ctx, st, `lat_seconds or label_replace(histogram_count(lat_seconds), "stat", "count", "", "")`, time.Unix(0, 0), time.Unix(60, 0), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range []Value{inst.Value, rng.Value} {
		got, err := json.Marshal(struct {
			ResultType ValueType `json:"resultType"`
			Result     Value     `json:"result"`
		}{v.Type(), v})
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.TrimSpace(answers[i]); string(got) != want {
			t.Errorf("answer %d:\n got %s\nwant %s", i, got, want)
		}
	}
}
