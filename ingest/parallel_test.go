package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"sort"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"evalstore/ingest/ingesttest"
	"evalstore/sketch"
)

// parallelBody is a large NDJSON batch of several models and tasks (declared
// binary with slices, undeclared multiclass with inferred features and
// nulls, undeclared regression, inline labels), with blank lines.
func parallelBody(rng *rand.Rand, prefix string, extra ...string) []byte {
	var buf bytes.Buffer
	ingesttest.WriteBatch(&buf, rng, prefix+"b-", 700, t0.Unix())
	for i := 0; i < 400; i++ {
		c := []string{"x", "y", "z"}[rng.IntN(3)]
		s := rng.Float64()
		switch i % 3 {
		case 0:
			fmt.Fprintf(&buf, `{"model":"u-multi","version":"v%d","id":"%sm%d","timestamp":%d,"features":{"f":%.3f,"g":"%s","h":null},"scores":{"x":%.3f,"y":%.3f,"z":%.3f},"label":"%s","measures":{"m":%.2f}}`+"\n",
				i%2, prefix, i, t0.Unix()-int64(i%3)*60, rng.Float64()*100-50, c, s/2, s/3, 1-s/2-s/3, c, rng.NormFloat64())
		case 1:
			fmt.Fprintf(&buf, `{"model":"u-reg","version":"v1","id":"%sr%d","timestamp":%d,"features":{"a":%.4f,"b":"%s"},"prediction":%.3f,"label":%.3f}`+"\n\n",
				prefix, i, t0.Unix(), rng.NormFloat64()*1e3, c, rng.NormFloat64(), rng.NormFloat64())
		default:
			fmt.Fprintf(&buf, `{"model":"bench","version":"v2","id":"%sd%d","timestamp":%d,"features":{"n0":%.4f,"c0":"de"},"score":%.4f,"label":%d,"attributes":{"device":"ios"}}`+"\n",
				prefix, i, t0.Unix(), rng.Float64(), s, rng.IntN(2))
		}
	}
	for _, l := range extra {
		buf.WriteString(l + "\n")
	}
	return buf.Bytes()
}

// storageBytes is every sketch series and bucket of st, encoded.
func storageBytes(st *memStorage) map[string][]byte {
	out := map[string][]byte{}
	for k, bs := range st.sketch {
		for t, s := range bs {
			out[fmt.Sprintf("%s@%d", k, t)] = s.AppendBinary(nil)
		}
	}
	return out
}

// TestParallelDecodeAndRouteIdentical checks that the two-goroutine decode
// and routing of a large batch write exactly (byte for byte) the sketches,
// results and errors of the sequential path (GOMAXPROCS=1).
func TestParallelDecodeAndRouteIdentical(t *testing.T) {
	type outcome struct {
		res   []Result
		errs  []error
		bytes map[string][]byte
	}
	bad := `{"model":"bench","version":"v1","id":"bad","timestamp":1,"features":{},"score":2}`
	run := func(procs int) outcome {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		e := newEnv(t, nil)
		e.defs = mustDefs(t, ingesttest.Definitions)
		rng := rand.New(rand.NewPCG(3, 4))
		var o outcome
		for i := 0; i < 3; i++ {
			res, err := e.in.Predictions(context.Background(), Body{ContentType: "application/x-ndjson", Reader: bytes.NewReader(parallelBody(rng, fmt.Sprint(i)))})
			o.res, o.errs = append(o.res, res), append(o.errs, err)
		}
		// Bad records in both halves: the whole batch is refused.
		body := parallelBody(rng, "e", bad, `{"model":"bench"`)
		body = append([]byte(bad+"\n"), body...)
		res, err := e.in.Predictions(context.Background(), Body{ContentType: "application/x-ndjson", Reader: bytes.NewReader(body)})
		o.res, o.errs = append(o.res, res), append(o.errs, err)
		o.bytes = storageBytes(e.st)
		return o
	}
	seq, par := run(1), run(2)
	if len(seq.bytes) < 100 {
		t.Fatalf("only %d series", len(seq.bytes))
	}
	if !reflect.DeepEqual(seq.res, par.res) {
		t.Errorf("results differ:\nseq %+v\npar %+v", seq.res, par.res)
	}
	for i := range seq.errs {
		if fmt.Sprint(seq.errs[i]) != fmt.Sprint(par.errs[i]) {
			t.Errorf("batch %d: errors differ:\nseq %v\npar %v", i, seq.errs[i], par.errs[i])
		}
	}
	var be *BatchError
	if !errors.As(par.errs[3], &be) || len(be.Errors) != 5 || be.Errors[0].Index != 0 {
		t.Errorf("bad batch: %v", par.errs[3])
	}
	var keys []string
	for k := range seq.bytes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !bytes.Equal(seq.bytes[k], par.bytes[k]) {
			t.Errorf("%s differs", k)
		}
	}
	if len(seq.bytes) != len(par.bytes) {
		t.Errorf("%d series sequentially, %d in parallel", len(seq.bytes), len(par.bytes))
	}
}

// TestParallelDecodeTooManyRecords: the record limit holds across halves.
func TestParallelDecodeTooManyRecords(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	e := newEnv(t, func(c *Config) { c.Limits.MaxRecords = 1099 })
	e.defs = mustDefs(t, ingesttest.Definitions)
	body := parallelBody(rand.New(rand.NewPCG(5, 6)), "")
	_, err := e.in.Predictions(context.Background(), Body{ContentType: "application/x-ndjson", Reader: bytes.NewReader(body)})
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.What != "records" {
		t.Fatalf("got %v", err)
	}
	e2 := newEnv(t, func(c *Config) { c.Limits.MaxRecords = 1100 })
	e2.defs = mustDefs(t, ingesttest.Definitions)
	if res, err := e2.in.Predictions(context.Background(), Body{ContentType: "application/x-ndjson", Reader: bytes.NewReader(body)}); err != nil || res.Records != 1100 {
		t.Fatalf("got %+v, %v", res, err)
	}
}

// TestCategoricalCountsExact checks that counting categorical values per
// batch (and turning direct past the Categorical's capacity) gives exactly
// the state of one Add per record, in every slice, for few values and for
// more distinct values than the capacity.
func TestCategoricalCountsExact(t *testing.T) {
	for _, distinct := range []int{5, 1500} {
		t.Run(fmt.Sprint(distinct), func(t *testing.T) {
			e := newEnv(t, nil)
			e.defs = mustDefs(t, `
slices:
  odd:
    where: k == "odd"
`)
			rng := rand.New(rand.NewPCG(9, uint64(distinct)))
			var buf bytes.Buffer
			want := map[string]*sketch.Categorical{"all": sketch.NewCategorical(0), "odd": sketch.NewCategorical(0)}
			for i := 0; i < 4000; i++ {
				// Skewed: a few heavy values, a long tail.
				v := fmt.Sprintf("v%d", rng.IntN(distinct))
				if rng.IntN(3) == 0 {
					v = fmt.Sprintf("v%d", rng.IntN(3))
				}
				k := []string{"odd", "even"}[i%2]
				fmt.Fprintf(&buf, `{"model":"u","version":"1","id":"%d","timestamp":%d,"features":{"c":"%s","k":"%s"},"score":0.5}`+"\n", i, t0.Unix(), v, k)
				want["all"].Add(v)
				if k == "odd" {
					want["odd"].Add(v)
				}
			}
			if _, err := e.in.Predictions(context.Background(), Body{ContentType: "application/x-ndjson", Reader: &buf}); err != nil {
				t.Fatal(err)
			}
			if exact := want["all"].Exact(); exact != (distinct < sketch.DefaultCategoricalCapacity) {
				t.Fatalf("reference exact = %v: the test does not cover the intended case", exact)
			}
			for slice, w := range want {
				got := e.st.merged(t, FamilyFeature, ls("feature", "c", "slice", slice))
				if !bytes.Equal(got.AppendBinary(nil), w.AppendBinary(nil)) {
					t.Errorf("slice %s: categorical differs from sequential Adds", slice)
				}
			}
		})
	}
}

// TestRecordMatchesAppendTo checks that encoding a batch's groups in two
// goroutines (deltas.record) makes exactly the calls, in the same order,
// of the sequential appendTo.
func TestRecordMatchesAppendTo(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	e := newEnv(t, nil)
	e.defs = mustDefs(t, ingesttest.Definitions)
	d := e.in.newDecoder(e.in.cfg.Limits)
	defer e.in.putDecoder(d)
	recs, err := d.decodePredictions(parallelBody(rand.New(rand.NewPCG(7, 8)), ""), formatNDJSON)
	if err != nil {
		t.Fatal(err)
	}
	pre := e.in.preRoute(d.defs, online, recs)
	pre.wait()
	pre.dl.floats = append(pre.dl.floats, floatSample{commitMarker, 5, 6})
	var seq, par recorder
	if err := pre.dl.appendTo(&seq); err != nil {
		t.Fatal(err)
	}
	if err := pre.dl.record(&par); err != nil {
		t.Fatal(err)
	}
	if len(seq.calls) < 100 {
		t.Fatalf("only %d calls", len(seq.calls))
	}
	if len(seq.calls) != len(par.calls) {
		t.Fatalf("%d calls sequentially, %d in parallel", len(seq.calls), len(par.calls))
	}
	for i := range seq.calls {
		s, p := seq.calls[i], par.calls[i]
		if !labels.Equal(s.lset, p.lset) || s.t != p.t || !bytes.Equal(s.delta, p.delta) || s.float != p.float || math.Float64bits(s.v) != math.Float64bits(p.v) {
			t.Fatalf("call %d: sequential %v@%d, parallel %v@%d", i, s.lset, s.t, p.lset, p.t)
		}
	}
}

// TestParallelHeldFeedbackIdentical checks that held feedback (labels and
// measures) joined by a large pre-routed batch, whose group updates wait
// for the batch's plans (router.touch), writes exactly the sketches of the
// sequential path (GOMAXPROCS=1), and that every held label is applied.
func TestParallelHeldFeedbackIdentical(t *testing.T) {
	run := func(procs int) (map[string][]byte, []Result) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		e := newEnv(t, nil)
		e.defs = mustDefs(t, ingesttest.Definitions)
		rng := rand.New(rand.NewPCG(13, 14))
		var fb bytes.Buffer
		for i := 0; i < 700; i += 3 {
			fmt.Fprintf(&fb, `{"model":"bench","id":"0b-%d","label":%d,"measures":{"latency_ms":%.3f,"revenue":%.2f}}`+"\n", i, rng.IntN(2), rng.Float64()*90, rng.Float64()*10)
		}
		for i := 0; i < 400; i += 3 {
			fmt.Fprintf(&fb, `{"model":"u-multi","id":"0m%d","label":"%s","measures":{"m":%.2f}}`+"\n", i, []string{"x", "y", "z"}[rng.IntN(3)], rng.NormFloat64())
		}
		var res []Result
		r, err := e.in.Feedback(context.Background(), Body{ContentType: "application/x-ndjson", Reader: &fb})
		if err != nil {
			t.Fatal(err)
		}
		res = append(res, r)
		r, err = e.in.Predictions(context.Background(), Body{ContentType: "application/x-ndjson", Reader: bytes.NewReader(parallelBody(rng, "0"))})
		if err != nil {
			t.Fatal(err)
		}
		res = append(res, r)
		return storageBytes(e.st), res
	}
	seq, seqRes := run(1)
	par, parRes := run(2)
	if want := 234 + 134; seqRes[0].Held != want || seqRes[1].Labels < want {
		t.Fatalf("held %d, labels %d: want %d held feedback all applied", seqRes[0].Held, seqRes[1].Labels, want)
	}
	if !reflect.DeepEqual(seqRes, parRes) {
		t.Errorf("results differ:\nseq %+v\npar %+v", seqRes, parRes)
	}
	if len(seq) != len(par) {
		t.Errorf("%d series sequentially, %d in parallel", len(seq), len(par))
	}
	for k, b := range seq {
		if !bytes.Equal(b, par[k]) {
			t.Errorf("%s differs", k)
		}
	}
}
