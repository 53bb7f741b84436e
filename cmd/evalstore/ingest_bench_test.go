package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
			bodies := ingesttest.Batches(64, 1000, time.Now().Add(-10*time.Minute).Unix())
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
			// body is request i's body (i ≥ 0; the warm-up is i = −1): fresh
			// ids in every request, so each prediction becomes a pending join
			// entry, as in production.
			body := func(i int64) []byte {
				return ingesttest.FreshIDs(bodies[(i+1)%int64(len(bodies))], "r"+strconv.FormatInt(i+1, 10)+"-")
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
			cpu0, cpuErr := processCPU(s.cmd.Process.Pid)
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
			// The server's own CPU per record: its throughput with the
			// cores to itself, when the senders run elsewhere.
			if cpu1, err := processCPU(s.cmd.Process.Pid); err == nil && cpuErr == nil && cpu1 > cpu0 {
				b.ReportMetric(float64(b.N)*1000/(cpu1-cpu0).Seconds(), "records/server-cpu-s")
				b.ReportMetric((cpu1-cpu0).Seconds()/b.Elapsed().Seconds(), "server-cores")
			}
		})
	}
}

// processCPU is the user + system CPU time process pid has used, from
// /proc/<pid>/stat (fields 14 and 15, in the kernel's fixed USER_HZ = 100
// ticks per second).
func processCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields count from after
	// its closing parenthesis, which is followed by field 3.
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the command", pid, len(f))
	}
	var ticks int64
	for _, x := range f[11:13] { // fields 14 and 15
		n, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}
