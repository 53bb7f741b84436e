package wal

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

const benchRecordSize = 64

func benchRecords(n int) [][]byte {
	rng := rand.New(rand.NewPCG(5, 5))
	recs := make([][]byte, n)
	for i := range recs {
		recs[i] = make([]byte, benchRecordSize)
		for j := range recs[i] {
			recs[i][j] = byte(rng.Uint32())
		}
	}
	return recs
}

// BenchmarkWAL measures Log per policy and batch size (one writer, and
// several concurrent writers sharing fsyncs) and Replay. Records are 64
// bytes; MB/s counts payload bytes.
func BenchmarkWAL(b *testing.B) {
	for _, policy := range []SyncPolicy{SyncAlways, SyncInterval, SyncNever} {
		for _, batch := range []int{1, 100, 1000} {
			b.Run(fmt.Sprintf("op=log/sync=%v/batch=%d", policy, batch), func(b *testing.B) {
				benchLog(b, policy, batch, 1)
			})
		}
	}
	for _, writers := range []int{4, 16} {
		for _, batch := range []int{1, 100} {
			b.Run(fmt.Sprintf("op=log/sync=always/batch=%d/writers=%d", batch, writers), func(b *testing.B) {
				benchLog(b, SyncAlways, batch, writers)
			})
		}
	}
	b.Run("op=replay/batch=1000", benchReplay)
}

// benchLog: each iteration is one Log of batch records by each of writers
// goroutines.
func benchLog(b *testing.B, policy SyncPolicy, batch, writers int) {
	w := openT(b, b.TempDir(), Options{Sync: policy})
	recs := benchRecords(batch)
	b.SetBytes(int64(batch * writers * benchRecordSize))
	b.ReportAllocs()
	base := w.Stats().Fsyncs
	iters := 0
	var wg sync.WaitGroup
	for b.Loop() {
		if writers == 1 {
			if err := w.Log(recs...); err != nil {
				b.Fatal(err)
			}
		} else {
			for range writers {
				wg.Go(func() {
					if err := w.Log(recs...); err != nil {
						b.Error(err)
					}
				})
			}
			wg.Wait()
		}
		iters++
	}
	b.ReportMetric(float64(iters*batch*writers)/b.Elapsed().Seconds(), "records/s")
	s := w.Stats()
	b.ReportMetric(float64(s.Fsyncs-base)/float64(iters*writers), "fsyncs/log")
	if s.Fsyncs > base {
		b.ReportMetric(float64(s.FsyncDuration.Microseconds())/float64(s.Fsyncs), "µs/fsync")
	}
	b.StopTimer()
	closeT(b, w)
}

func benchReplay(b *testing.B) {
	const total = 200_000
	w := openT(b, b.TempDir(), Options{Sync: SyncNever})
	recs := benchRecords(1000)
	for range total / len(recs) {
		logT(b, w, recs...)
	}
	b.SetBytes(total * benchRecordSize)
	b.ReportAllocs()
	iters := 0
	for b.Loop() {
		n := 0
		if err := w.Replay(0, func([]byte) error { n++; return nil }); err != nil || n != total {
			b.Fatalf("replayed %d records: %v", n, err)
		}
		iters++
	}
	b.ReportMetric(float64(iters*total)/b.Elapsed().Seconds(), "records/s")
	b.StopTimer()
	closeT(b, w)
}
