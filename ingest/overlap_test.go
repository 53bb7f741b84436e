package ingest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"evalstore/ingest/ingesttest"
)

// TestCutLines checks the pieces of a body against its raw bytes: they
// concatenate to it, every piece but the last ends a line, none is empty
// unless the body is, and there are at most n (exactly n when the lines are
// short and many).
func TestCutLines(t *testing.T) {
	var many strings.Builder
	for i := range 100 {
		fmt.Fprintf(&many, `{"id":"%03d"}`+"\n", i)
	}
	cases := []struct {
		name  string
		data  string
		n     int
		exact int // pieces expected, 0: any up to n
	}{
		{"empty", "", 8, 1},
		{"one line, no newline", `{"a":1}`, 8, 1},
		{"one line", "{\"a\":1}\n", 8, 1},
		{"two lines", "a\nb\n", 8, 2},
		{"long first line", strings.Repeat("x", 1000) + "\na\nb\nc\n", 4, 0},
		{"long last line", "a\nb\nc\n" + strings.Repeat("x", 1000), 4, 0},
		{"blank lines", "\n\n\na\n\n\nb\n\n", 3, 0},
		{"many short lines", many.String(), 8, 8},
		{"n = 1", many.String(), 1, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pieces := cutLines([]byte(tc.data), tc.n)
			if len(pieces) > tc.n || (tc.exact > 0 && len(pieces) != tc.exact) {
				t.Fatalf("%d pieces, want at most %d (exactly %d)", len(pieces), tc.n, tc.exact)
			}
			var all []byte
			for i, p := range pieces {
				if len(p) == 0 && tc.data != "" {
					t.Errorf("piece %d is empty", i)
				}
				if i < len(pieces)-1 && p[len(p)-1] != '\n' {
					t.Errorf("piece %d does not end a line: %q", i, p)
				}
				all = append(all, p...)
			}
			if string(all) != tc.data {
				t.Errorf("pieces concatenate to %q", all)
			}
		})
	}
}

// TestParallelDecodeErrorsInEveryPiece: with bad records in every piece of
// a large body (and valid bodies), the piecewise two-goroutine decode
// returns exactly the records or errors of one sequential decode.
func TestParallelDecodeErrorsInEveryPiece(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	bad := []string{
		`{"model":"bench","version":"v1","id":"x","timestamp":1,"features":{},"score":2}`,
		`{"model":"bench"`,
		`[1,2]`,
		`{"model":"bench","version":"v1","timestamp":"soon","score":0.5}`,
	}
	cases := []struct {
		name  string
		every int // a bad record every this many lines; 0: none
	}{
		{"valid", 0},
		{"bad every 97 lines", 97},
		{"bad every 251 lines", 251},
		{"one bad in the middle", 550},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.defs = mustDefs(t, ingesttest.Definitions)
			lines := bytes.SplitAfter(parallelBody(rand.New(rand.NewPCG(11, 12)), ""), []byte("\n"))
			var body []byte
			for i, l := range lines {
				if tc.every > 0 && i%tc.every == tc.every-1 {
					body = append(body, bad[i%len(bad)]+"\n"...)
				}
				body = append(body, l...)
			}
			if len(body) < parallelDecodeBytes {
				t.Fatalf("body of %d bytes is decoded sequentially", len(body))
			}
			seqD := e.in.newDecoder(e.in.cfg.Limits)
			defer e.in.putDecoder(seqD)
			want, wantErr := seqD.decodePredictions(body, formatNDJSON)
			parD := e.in.newDecoder(e.in.cfg.Limits)
			defer e.in.putDecoder(parD)
			got, d2, gotErr := e.in.decodePredictions(parD, body, formatNDJSON, e.in.cfg.Limits)
			if d2 == nil {
				t.Fatal("the body was not decoded in pieces")
			}
			defer e.in.putDecoder(d2)
			if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
				t.Fatalf("errors differ:\nsequential %v\npieces     %v", wantErr, gotErr)
			}
			if (tc.every > 0) != (gotErr != nil) {
				t.Fatalf("error %v, with bad records: %v", gotErr, tc.every > 0)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("records differ (%d vs %d)", len(got), len(want))
			}
		})
	}
}

// ingestLines ingests NDJSON prediction lines, which must be accepted.
func ingestLines(e *env, lines []string) {
	e.t.Helper()
	if _, err := e.in.Predictions(context.Background(), ndjson(lines...)); err != nil {
		e.t.Fatal(err)
	}
}

// TestPrecheckStale: a precheck made before the pending map changed is not
// trusted under the lock; one made since is. The oracle is whether the
// batch's keys are in the join store at the time of the check.
func TestPrecheckStale(t *testing.T) {
	batch := func(prefix string) []string {
		var lines []string
		for i := range 300 {
			lines = append(lines, fmt.Sprintf(`{"model":"m","version":"v1","id":"%s%d","timestamp":%d,"score":0.5}`, prefix, i, t0.Unix()))
		}
		return lines
	}
	cases := []struct {
		name string
		// before runs before the precheck of batch "a", between after it
		// and before the decision; want is whether a key of "a" is then
		// pending.
		before, between func(e *env)
		want            bool
	}{
		{"nothing pending", nil, nil, false},
		{"pending before", func(e *env) { ingestLines(e, batch("a")) }, nil, true},
		{"unrelated batch since", nil, func(e *env) { ingestLines(e, batch("b")) }, false},
		{"pending since", nil, func(e *env) { ingestLines(e, batch("a")) }, true},
		{"expired since", func(e *env) { ingestLines(e, batch("a")) }, func(e *env) {
			e.clk.Add(DefaultJoinWindow + time.Hour)
			ingestLines(e, batch("c")) // sweeps
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			if tc.before != nil {
				tc.before(e)
			}
			d := e.in.newDecoder(e.in.cfg.Limits)
			defer e.in.putDecoder(d)
			recs, err := d.decodePredictions([]byte(strings.Join(batch("a"), "\n")), formatNDJSON)
			if err != nil {
				t.Fatal(err)
			}
			c := e.in.precheck(recs)
			c.wait()
			if c.dup || len(c.keys) != len(recs) || c.keys[7] != joinKey("m", "a7") {
				t.Fatalf("keys: dup %v, %d keys, key 7 %q", c.dup, len(c.keys), c.keys[7])
			}
			if tc.between != nil {
				tc.between(e)
			}
			e.in.mu.Lock()
			defer e.in.mu.Unlock()
			if got := c.pendingNow(e.in.store.begin(e.in.cfg.MaxModelClasses)); got != tc.want {
				t.Errorf("pendingNow = %v, want %v", got, tc.want)
			}
			if got := e.in.store.pending.has(joinKey("m", "a0")); got != tc.want {
				t.Errorf("oracle: key pending = %v, want %v", got, tc.want)
			}
		})
	}
}
