package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"evalstore/ingest/ingesttest"
	"evalstore/tsdb/wal"
)

// benchSync is the join WAL's fsync policy in benchmarks:
// INGEST_BENCH_SYNC=never measures the CPU-bound path.
func benchSync() wal.SyncPolicy {
	if os.Getenv("INGEST_BENCH_SYNC") == "never" {
		return wal.SyncNever
	}
	return wal.SyncAlways
}

func benchEnv(b *testing.B) *env {
	e := newEnv(b, func(c *Config) { c.Sync = benchSync() })
	e.defs = mustDefs(b, ingesttest.Definitions)
	e.st.noDecode = true
	return e
}

// BenchmarkPredictions measures predictions/s through decode → route →
// append → commit (join WAL fsynced) with NDJSON batches of 1,000.
func BenchmarkPredictions(b *testing.B) {
	e := benchEnv(b)
	bodies := ingesttest.Batches(64, 1000, t0.Unix())
	b.ResetTimer()
	cpu0 := cpuTime()
	defer func() { reportCPU(b, cpu0, b.N*1000) }()
	for i := 0; i < b.N; i++ {
		body := ingesttest.FreshIDs(bodies[i%len(bodies)], strconv.Itoa(i)+"-")
		res, err := e.in.Predictions(context.Background(), Body{ContentType: "application/x-ndjson", Reader: bytes.NewReader(body)})
		if err != nil || res.Predictions != 1000 {
			b.Fatal(err, res)
		}
	}
	b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "predictions/s")
	reportWAL(b, e)
}

// BenchmarkPredictionsParallel is BenchmarkPredictions with concurrent
// requests (GOMAXPROCS senders), as an HTTP server sees them.
func BenchmarkPredictionsParallel(b *testing.B) {
	e := benchEnv(b)
	bodies := ingesttest.Batches(64, 1000, t0.Unix())
	var n atomic.Int64
	b.ResetTimer()
	cpu0 := cpuTime()
	defer func() { reportCPU(b, cpu0, b.N*1000) }()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			body := ingesttest.FreshIDs(bodies[i%int64(len(bodies))], strconv.FormatInt(i, 10)+"-")
			res, err := e.in.Predictions(context.Background(), Body{ContentType: "application/x-ndjson", Reader: bytes.NewReader(body)})
			if err != nil || res.Predictions != 1000 {
				b.Fatal(err, res)
			}
		}
	})
	b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "predictions/s")
	reportWAL(b, e)
}

// BenchmarkFeedbackJoin measures feedback joins/s: batches of 1,000 labels
// for pending predictions (first labels).
func BenchmarkFeedbackJoin(b *testing.B) {
	e := benchEnv(b)
	rng := rand.New(rand.NewPCG(1, 2))
	ts := t0.Unix()
	for i := 0; i < b.N; i++ {
		var buf bytes.Buffer
		ingesttest.WriteBatch(&buf, rng, strconv.Itoa(i)+"-", 1000, ts)
		if _, err := e.in.Predictions(context.Background(), Body{ContentType: "application/x-ndjson", Reader: &buf}); err != nil {
			b.Fatal(err)
		}
	}
	fbs := make([][]byte, b.N)
	for i := range fbs {
		var buf bytes.Buffer
		for j := 0; j < 1000; j++ {
			fmt.Fprintf(&buf, `{"model":"bench","id":"%d-%d","label":%d}`+"\n", i, j, rng.IntN(2))
		}
		fbs[i] = buf.Bytes()
	}
	b.ResetTimer()
	cpu0 := cpuTime()
	defer func() { reportCPU(b, cpu0, b.N*1000) }()
	for i := 0; i < b.N; i++ {
		res, err := e.in.Feedback(context.Background(), Body{ContentType: "application/x-ndjson", Reader: bytes.NewReader(fbs[i])})
		if err != nil || res.Labels != 1000 {
			b.Fatal(err, res)
		}
	}
	b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "joins/s")
	reportWAL(b, e)
}

// cpuTime is this process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports records per CPU-second: the throughput the path would
// have with the machine's cores to itself (the wall-clock rate depends on
// what else runs).
func reportCPU(b *testing.B, start time.Duration, records int) {
	if cpu := cpuTime() - start; cpu > 0 {
		b.ReportMetric(float64(records)/cpu.Seconds(), "records/cpu-s")
	}
}

func reportWAL(b *testing.B, e *env) {
	st := e.in.store.w.Stats()
	if st.Fsyncs > 0 {
		b.ReportMetric(float64(st.FsyncDuration.Microseconds())/float64(st.Fsyncs), "µs/fsync")
		b.ReportMetric(float64(st.Fsyncs)/float64(b.N), "fsyncs/op")
	}
}

// TestPendingMemory measures the heap held per pending prediction (binary
// model, 3 slices, 20 features: features are not kept, only what a label
// needs) and logs it for docs/ingest.md.
func TestPendingMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("measures memory")
	}
	e := newEnv(t, nil)
	e.defs = mustDefs(t, ingesttest.Definitions)
	e.st.noDecode = true
	rng := rand.New(rand.NewPCG(1, 2))
	var buf bytes.Buffer
	const n = 50_000
	// Warm up (interned slice names, registries) before measuring.
	ingesttest.WriteBatch(&buf, rng, "warm-", 1000, t0.Unix())
	must(t)(e.in.Predictions(context.Background(), Body{ContentType: "application/x-ndjson", Reader: &buf}))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < n/1000; i++ {
		buf.Reset()
		ingesttest.WriteBatch(&buf, rng, fmt.Sprintf("user-%08d-", i), 1000, t0.Unix())
		must(t)(e.in.Predictions(context.Background(), Body{ContentType: "application/x-ndjson", Reader: &buf}))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%.0f bytes of heap per pending prediction (ids of ~20 bytes)", per)
	if per > 1000 {
		t.Errorf("%.0f bytes per pending prediction", per)
	}
	runtime.KeepAlive(e.in)
}

// BenchmarkDecode compares decoding the benchmark's NDJSON batch with this
// package's decoder (fastjson, full validation) and with encoding/json into
// a struct with maps (no validation), per record.
func BenchmarkDecode(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	var buf bytes.Buffer
	ingesttest.WriteBatch(&buf, rng, "", 1000, t0.Unix())
	data := buf.Bytes()
	defs := mustDefs(b, ingesttest.Definitions)
	b.Run("fastjson", func(b *testing.B) {
		d := &decoder{intern: map[string]string{}, defs: defs, maxT: math.MaxInt64, maxRecords: 1 << 20}
		b.SetBytes(int64(len(data)))
		for i := 0; i < b.N; i++ {
			d.errs = nil
			if _, err := d.decodePredictions(data, formatNDJSON); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("encoding_json", func(b *testing.B) {
		type rec struct {
			Model, Version, ID string
			Timestamp          any
			Features           map[string]any
			Attributes         map[string]any
			Measures           map[string]float64
			Score              *float64
			Prediction         any
			Label              any
		}
		b.SetBytes(int64(len(data)))
		for i := 0; i < b.N; i++ {
			dec := json.NewDecoder(bytes.NewReader(data))
			for {
				var r rec
				if err := dec.Decode(&r); err == io.EOF {
					break
				} else if err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "records/s")
	})
}
