package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

func post(t *testing.T, url, contentType, body string) (int, string) {
	t.Helper()
	resp, err := httpClient.Post(url, contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := resp.Body.Close(); err != nil {
			t.Error(err)
		}
	}()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestIngestEndToEnd posts predictions and delayed feedback to a real
// server and asks for accuracy the way the brief does; the expected value is
// counted from the records the test sent.
func TestIngestEndToEnd(t *testing.T) {
	s := start(t, t.TempDir())
	now := time.Now().Truncate(time.Second)
	ts := float64(now.Add(-20*time.Minute).UnixMilli()) / 1000
	predicted := func(i int) string { return fmt.Sprint(i % 2) }
	var preds bytes.Buffer
	for i := range 10 {
		fmt.Fprintf(&preds, `{"model":"b","version":"v1","id":"p%d","timestamp":%v,"features":{"x":%d},"prediction":"%s","score":%v}`+"\n",
			i, ts, i, predicted(i), 0.2+0.6*float64(i%2))
	}
	if code, body := post(t, s.url+"/api/v1/predictions", "application/x-ndjson", preds.String()); code/100 != 2 {
		t.Fatalf("predictions: %d %s", code, body)
	}
	// Labels arrive later: p0..p5 right, p6 and p7 wrong, p8 and p9 never.
	var fb []map[string]any
	correct, labelled := 0, 0
	for i := range 8 {
		label := predicted(i)
		if i >= 6 {
			label = predicted(i + 1)
		} else {
			correct++
		}
		labelled++
		fb = append(fb, map[string]any{"model": "b", "id": fmt.Sprintf("p%d", i), "label": label})
	}
	body, err := json.Marshal(fb)
	if err != nil {
		t.Fatal(err)
	}
	if code, resp := post(t, s.url+"/api/v1/feedback", "application/json", string(body)); code/100 != 2 {
		t.Fatalf("feedback: %d %s", code, resp)
	}
	want := float64(correct) / float64(labelled)

	api := client(t, s.url, "")
	v, _, _, err := api.Query(t.Context(), `accuracy<model="b",slice="all">[1h]`, now)
	if err != nil {
		t.Fatal(err)
	}
	vec, ok := v.(model.Vector)
	if !ok || len(vec) != 1 || float64(vec[0].Value) != want {
		t.Fatalf("accuracy = %v, want one sample of %v", v, want)
	}

	// A batch with one bad record is refused whole and names the record.
	bad := `[{"model":"b","version":"v1","id":"q1","timestamp":` + fmt.Sprint(ts) + `,"prediction":"1","score":0.9},` +
		`{"model":"b","version":"v1","id":"q2","timestamp":"yesterday","prediction":"1","score":0.9}]`
	code, resp := post(t, s.url+"/api/v1/predictions", "application/json", bad)
	if code != http.StatusBadRequest || !strings.Contains(resp, "timestamp") {
		t.Fatalf("bad batch: %d %s", code, resp)
	}
	v, _, _, err = api.Query(t.Context(), `count<model="b",slice="all">[1h]`, now)
	if err != nil {
		t.Fatal(err)
	}
	if vec := v.(model.Vector); len(vec) != 1 || vec[0].Value != 10 {
		t.Fatalf("count after a refused batch = %v, want 10", v)
	}
}
