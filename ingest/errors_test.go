package ingest

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

const good = `{"model":"churn","version":"v1","id":"ok","timestamp":"2026-03-01T12:00:00Z","score":0.5}`

func TestPredictionErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		line string
		want []RecordError // Index 1 (after one good record)
	}{
		{"bad json", `{"model":`, []RecordError{{1, "", "invalid JSON: cannot parse JSON: cannot parse object: cannot parse object value: cannot parse empty string; unparsed tail: \"\""}}},
		{"not an object", `[1]`, []RecordError{{1, "", "record must be a JSON object, got array"}}},
		{"missing fields", `{"score":0.5}`, []RecordError{{1, "model", "required"}, {1, "version", "required"}, {1, "id", "required"}, {1, "timestamp", "required"}}},
		{"model type", `{"model":3,"version":"v1","id":"x","timestamp":1772366400,"score":0.5}`, []RecordError{{1, "model", "must be a string, got number"}}},
		{"empty version", `{"model":"m","version":"","id":"x","timestamp":1772366400,"score":0.5}`, []RecordError{{1, "version", "must not be empty"}}},
		{"bad timestamp", `{"model":"m","version":"v","id":"x","timestamp":"yesterday","score":0.5}`, []RecordError{{1, "timestamp", `not an RFC 3339 time or Unix seconds: "yesterday"`}}},
		{"timestamp type", `{"model":"m","version":"v","id":"x","timestamp":true,"score":0.5}`, []RecordError{{1, "timestamp", "must be an RFC 3339 string or Unix seconds, got boolean"}}},
		{"future", `{"model":"m","version":"v","id":"x","timestamp":"2026-03-01T12:11:00Z","score":0.5}`, []RecordError{{1, "timestamp", "2026-03-01T12:11:00Z is more than 10m0s in the future"}}},
		{"too old", `{"model":"m","version":"v","id":"x","timestamp":"2020-01-01T00:00:00Z","score":0.5}`, []RecordError{{1, "timestamp", "2020-01-01T00:00:00Z is older than the retention (oldest accepted 2025-01-25T12:00:00Z)"}}},
		{"score range", `{"model":"m","version":"v","id":"x","timestamp":1772366400,"score":1.5}`, []RecordError{{1, "score", "must be a probability in [0, 1], got 1.5"}}},
		{"score type", `{"model":"m","version":"v","id":"x","timestamp":1772366400,"score":"high"}`, []RecordError{{1, "score", "must be a number, got string"}}},
		{"scores entry", `{"model":"m","version":"v","id":"x","timestamp":1772366400,"scores":{"a":0.5,"b":"x"}}`, []RecordError{{1, "scores.b", "must be a number, got string"}}},
		{"score and scores", `{"model":"m","version":"v","id":"x","timestamp":1772366400,"score":0.5,"scores":{"a":0.5}}`, []RecordError{{1, "scores", "give score (binary) or scores (multiclass), not both"}}},
		{"feature object", `{"model":"m","version":"v","id":"x","timestamp":1772366400,"score":0.5,"features":{"a":{"b":1}}}`, []RecordError{{1, "features.a", "must be a string, number, boolean or null, got object"}}},
		{"features type", `{"model":"m","version":"v","id":"x","timestamp":1772366400,"score":0.5,"features":[1]}`, []RecordError{{1, "features", "must be an object, got array"}}},
		{"measure type", `{"model":"m","version":"v","id":"x","timestamp":1772366400,"score":0.5,"measures":{"lat":"fast"}}`, []RecordError{{1, "measures.lat", "must be a number, got string"}}},
		{"unknown field", `{"model":"m","version":"v","id":"x","timestamp":1772366400,"score":0.5,"sccore":1}`, []RecordError{{1, "sccore", "unknown field (expected " + predictionFields + ")"}}},
		{"no prediction", `{"model":"m","version":"v","id":"x","timestamp":1772366400}`, []RecordError{{1, "prediction", "required (with score for a binary, scores for a multiclass model)"}}},
		{"declared numeric", `{"model":"churn","version":"v","id":"x","timestamp":1772366400,"score":0.5,"features":{"tenure":"long"}}`, []RecordError{{1, "features.tenure", "declared numeric, got string"}}},
		{"undeclared class", `{"model":"churn","version":"v","id":"x","timestamp":1772366400,"score":0.5,"label":"maybe"}`, []RecordError{{1, "label", `"maybe" is not a class of model "churn" (classes 0, 1)`}}},
		{"binary with scores", `{"model":"churn","version":"v","id":"x","timestamp":1772366400,"scores":{"1":0.5}}`, []RecordError{{1, "scores", `model "churn" is binary: give score, P(positive class)`}, {1, "score", "required for a binary model (or a prediction)"}, {1, "scores.1", `"1" is not a class of model "churn"`}}[:2]},
		{"regression label", `{"model":"eta","version":"v","id":"x","timestamp":1772366400,"prediction":3,"label":"late"}`, []RecordError{{1, "label", "a regression label must be a number, got string"}}},
		{"regression prediction", `{"model":"eta","version":"v","id":"x","timestamp":1772366400,"prediction":"soon"}`, []RecordError{{1, "prediction", "a regression prediction must be a number, got string"}}},
		{"label object", `{"model":"m","version":"v","id":"x","timestamp":1772366400,"score":0.5,"label":{}}`, []RecordError{{1, "label", "must be a string, number or boolean, got object"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			_, err := e.in.Predictions(context.Background(), ndjson(good, tc.line, good))
			var be *BatchError
			if !errors.As(err, &be) {
				t.Fatalf("want *BatchError, got %v", err)
			}
			if !reflect.DeepEqual(be.Errors, tc.want) {
				t.Fatalf("errors\n got %#v\nwant %#v", be.Errors, tc.want)
			}
			if n := len(e.st.seriesNames()); n != 0 || e.st.commits != 0 {
				t.Fatalf("something was written: %d series, %d commits", n, e.st.commits)
			}
			if s := e.in.Stats(); s.Pending != 0 || s.RejectedBatches != 1 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

func TestEveryBadRecordListed(t *testing.T) {
	e := newEnv(t, nil)
	_, err := e.in.Predictions(context.Background(), jsonBody(`[`+good+`,{"model":"m"},`+good+`,{"model":"m","version":"v","id":"x","timestamp":1772366400,"score":2}]`))
	var be *BatchError
	if !errors.As(err, &be) {
		t.Fatal(err)
	}
	var idx []int
	for _, r := range be.Errors {
		idx = append(idx, r.Index)
	}
	if !reflect.DeepEqual(idx, []int{1, 1, 1, 3}) {
		t.Fatalf("indices %v (%v)", idx, be.Errors)
	}
}

func TestFeedbackAndEvaluationErrors(t *testing.T) {
	e := newEnv(t, nil)
	_, err := e.in.Feedback(context.Background(), ndjson(`{"model":"churn","id":"a","label":1}`, `{"id":"b","label":1}`, `{"model":"churn","id":"c"}`, `{"model":"churn","id":"d","label":"x"}`, `{"model":"churn","id":"e","label":1,"timestamp":"2030-01-01T00:00:00Z"}`))
	var be *BatchError
	if !errors.As(err, &be) {
		t.Fatal(err)
	}
	want := []RecordError{
		{1, "model", "required"},
		{2, "", "feedback needs a label or measures"},
		{3, "label", `"x" is not a class of model "churn" (classes 0, 1)`},
		{4, "timestamp", "2030-01-01T00:00:00Z is more than 10m0s in the future"},
	}
	if !reflect.DeepEqual(be.Errors, want) {
		t.Fatalf("got %#v", be.Errors)
	}
	_, err = e.in.Evaluation(context.Background(), jsonBody(`{"model":"churn","version":"v1","dataset":"main","timestamp":"2026-03-01T11:00:00Z","records":[{"score":0.5,"label":1},{"score":3},{"model":"other","score":0.5}]}`))
	if !errors.As(err, &be) {
		t.Fatal(err)
	}
	want = []RecordError{{-1, "run", "required"}}
	if !reflect.DeepEqual(be.Errors, want) {
		t.Fatalf("got %#v", be.Errors)
	}
	_, err = e.in.Evaluation(context.Background(), jsonBody(`{"model":"churn","version":"v1","dataset":"main","run":7,"timestamp":"2026-03-01T11:00:00Z","records":[{"score":0.5,"label":1},{"score":3},{"model":"other","score":0.5}]}`))
	if !errors.As(err, &be) {
		t.Fatal(err)
	}
	want = []RecordError{{1, "records[1].score", "must be a probability in [0, 1], got 3"}, {2, "records[2].model", `"other" is not the run's model "churn"`}}
	if !reflect.DeepEqual(be.Errors, want) {
		t.Fatalf("got %#v", be.Errors)
	}
	if e.st.commits != 0 {
		t.Fatal("written")
	}
}

// Feedback whose label does not fit its (undeclared) prediction's task is
// found at join time and refuses the whole batch.
func TestFeedbackJoinTimeError(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.in.Predictions(context.Background(), ndjson(`{"model":"u","version":"v","id":"r","timestamp":1772366400,"prediction":3.5}`)); err != nil {
		t.Fatal(err)
	}
	commits := e.st.commits
	_, err := e.in.Feedback(context.Background(), ndjson(`{"model":"u","id":"zz","label":"a"}`, `{"model":"u","id":"r","label":"a"}`))
	var be *BatchError
	if !errors.As(err, &be) || !reflect.DeepEqual(be.Errors, []RecordError{{1, "label", "a regression label must be a number, got string"}}) {
		t.Fatalf("%v", err)
	}
	if e.st.commits != commits || e.in.Stats().HeldNow != 0 {
		t.Fatal("partially written")
	}
}

func gz(s string) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.Bytes()
}

func zst(s string) []byte {
	w, _ := zstd.NewWriter(nil)
	return w.EncodeAll([]byte(s), nil)
}

func TestBodyErrors(t *testing.T) {
	big := strings.Repeat(good+"\n", 100)
	for _, tc := range []struct {
		name string
		body Body
		lim  Limits
		want error
		ok   bool
	}{
		{"gzip", Body{ContentType: "application/x-ndjson", ContentEncoding: "gzip", Reader: bytes.NewReader(gz(good))}, Limits{}, nil, true},
		{"zstd", Body{ContentType: "application/x-ndjson; charset=utf-8", ContentEncoding: "zstd", Reader: bytes.NewReader(zst(good))}, Limits{}, nil, true},
		{"json array", jsonBody("[" + good + "]"), Limits{}, nil, true},
		{"unsupported encoding", Body{ContentType: "application/json", ContentEncoding: "br", Reader: strings.NewReader("[]")}, Limits{}, &UnsupportedError{"content encoding", "br"}, false},
		{"unsupported type", Body{ContentType: "text/csv", Reader: strings.NewReader("a,b")}, Limits{}, &UnsupportedError{"content type", "text/csv"}, false},
		{"body too large", ndjson(big), Limits{MaxBodyBytes: 1000}, &TooLargeError{"body", 1000}, false},
		{"gzip body too large", Body{ContentType: "application/x-ndjson", ContentEncoding: "gzip", Reader: bytes.NewReader(gz(big))}, Limits{MaxBodyBytes: 100}, &TooLargeError{"body", 100}, false},
		{"decoded too large", Body{ContentType: "application/x-ndjson", ContentEncoding: "gzip", Reader: bytes.NewReader(gz(big))}, Limits{MaxDecodedBytes: 1000}, &TooLargeError{"decoded body", 1000}, false},
		{"zstd decoded too large", Body{ContentType: "application/x-ndjson", ContentEncoding: "zstd", Reader: bytes.NewReader(zst(big))}, Limits{MaxDecodedBytes: 1000}, &TooLargeError{"decoded body", 1000}, false},
		{"too many records", ndjson(big), Limits{MaxRecords: 10}, &TooLargeError{"records", 10}, false},
		{"bad gzip", Body{ContentType: "application/x-ndjson", ContentEncoding: "gzip", Reader: strings.NewReader("this is certainly not a gzip stream")}, Limits{}, &BatchError{[]RecordError{{-1, "", "invalid gzip body: gzip: invalid header"}}}, false},
		{"array syntax", jsonBody("[" + good), Limits{}, &BatchError{[]RecordError{{-1, "", "invalid JSON: cannot parse JSON: cannot parse array: unexpected end of array; unparsed tail: \"\""}}}, false},
		{"not an array", jsonBody(good), Limits{}, &BatchError{[]RecordError{{-1, "", "body must be a JSON array of records"}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.Limits = tc.lim })
			res, err := e.in.Predictions(context.Background(), tc.body)
			if tc.ok {
				if err != nil || res.Predictions != 1 {
					t.Fatalf("%v %+v", err, res)
				}
				return
			}
			if !reflect.DeepEqual(err, tc.want) {
				t.Fatalf("got %#v (%v)\nwant %#v", err, err, tc.want)
			}
			if e.st.commits != 0 {
				t.Fatal("written")
			}
		})
	}
}
