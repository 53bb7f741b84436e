package main

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"evalstore/ingest/ingesttest"
)

// BenchmarkPredictionsHTTP posts NDJSON batches of 1,000 predictions (the
// ingest benchmarks' workload: 20 features, 3 slices) to a real server
// process over HTTP, with its default durability (the tsdb WAL and the join
// WAL fsynced before each 200), from senders concurrent clients. Client and
// server share the machine's cores, as a benchmark client on the same host
// does.
func BenchmarkPredictionsHTTP(b *testing.B) {
	for _, senders := range []int{1, 2} {
		b.Run(fmt.Sprintf("senders=%d", senders), func(b *testing.B) {
			dir := b.TempDir()
			defs := filepath.Join(dir, "definitions.yaml")
			if err := os.WriteFile(defs, []byte(ingesttest.Definitions), 0o644); err != nil {
				b.Fatal(err)
			}
			s := start(b, filepath.Join(dir, "data"), "-definitions", defs, "-pprof")
			if p := os.Getenv("EVALSTORE_BENCH_PROFILE"); p != "" {
				go func() {
					resp, err := http.Get(s.url + "/debug/pprof/profile?seconds=4")
					if err != nil {
						return
					}
					defer resp.Body.Close()
					f, _ := os.Create(p + fmt.Sprint(senders))
					io.Copy(f, resp.Body)
					f.Close()
				}()
			}
			rng := rand.New(rand.NewPCG(1, 2))
			ts := time.Now().Add(-10 * time.Minute).Unix()
			bodies := make([][]byte, 64)
			for i := range bodies {
				var buf bytes.Buffer
				ingesttest.WriteBatch(&buf, rng, "", 1000, ts)
				bodies[i] = buf.Bytes()
			}
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
			// body is request i's body (i ≥ 0; the warm-up is i = −1): fresh
			// ids in every request, so each prediction becomes a pending join
			// entry, as in production.
			body := func(i int64) []byte {
				return bytes.ReplaceAll(bodies[(i+1)%int64(len(bodies))], []byte(`"id":"`), []byte(`"id":"r`+strconv.FormatInt(i+1, 10)+`-`))
			}
			post := func(body []byte) error {
				resp, err := client.Post(s.url+"/api/v1/predictions", "application/x-ndjson", bytes.NewReader(body))
				if err != nil {
					return err
				}
				msg, err := io.ReadAll(resp.Body)
				if cerr := resp.Body.Close(); err == nil {
					err = cerr
				}
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("%s: %s", resp.Status, msg)
				}
				return err
			}
			if err := post(body(-1)); err != nil { // warm up: connections, series creation
				b.Fatal(err)
			}
			var next atomic.Int64
			var failed atomic.Pointer[error]
			b.ResetTimer()
			var wg sync.WaitGroup
			for range senders {
				wg.Go(func() {
					// A sender builds its next body while the current one is in
					// flight, as a real sender's batching runs ahead of its
					// requests: the server's time is what is measured.
					ready := make(chan []byte, 1)
					prepare := func() {
						if i := next.Add(1) - 1; i < int64(b.N) {
							ready <- body(i)
						} else {
							close(ready)
						}
					}
					go prepare()
					for cur := range ready {
						go prepare()
						if err := post(cur); err != nil {
							// The prepare in flight cannot block: ready has room.
							failed.CompareAndSwap(nil, &err)
							return
						}
					}
				})
			}
			wg.Wait()
			if err := failed.Load(); err != nil {
				b.Fatal(*err)
			}
			b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "predictions/s")
		})
	}
}
