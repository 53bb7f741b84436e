package query

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"evalstore/sketch"
)

// accuracyStore holds 30 days of confusion buckets of width w for 50
// slices of model m (3 classes, 1-5 predictions per minute, merged into
// the bucket as storage's downsampling does).
func accuracyStore(b *testing.B, w int64) *MemStorage {
	b.Helper()
	r := rand.New(rand.NewPCG(9, 9))
	st := NewMemStorage()
	const days = 30
	for s := range 50 {
		l := labels.FromStrings(metricName, FamilyConfusion, "model", "m", "version", "v1", "slice", fmt.Sprint("s", s), "source", "online")
		bs := make([]MemBucket, 0, days*dayMs/w)
		c := sketch.NewConfusion()
		for t := int64(0); t < days*dayMs; t += w {
			c.Reset()
			for range w / minuteMs {
				for range 1 + r.IntN(5) {
					c.Add(r.IntN(3), r.IntN(3))
				}
			}
			bs = append(bs, MemBucket{T: t, Width: w, State: c.AppendBinary(nil)})
		}
		st.AddBuckets(l, sketch.FormatConfusion, bs...)
	}
	return st
}

// BenchmarkAccuracy30dBySlice is accuracy{model="m"}[30d] over 50 slices,
// one result per slice, instant: from the 1h level (36,000 buckets) and
// from one-minute buckets (2,160,000 buckets).
func BenchmarkAccuracy30dBySlice(b *testing.B) {
	end := time.UnixMilli(30 * dayMs)
	for _, lvl := range []struct {
		name string
		w    int64
	}{{"1h", hourMs}, {"1m", minuteMs}} {
		st := accuracyStore(b, lvl.w)
		e := New(Options{})
		for _, q := range []string{`accuracy{model="m"}[30d]`, `sum by (model) (accuracy{model="m"}[30d])`} {
			b.Run("level="+lvl.name+"/q="+q, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					res, err := e.Instant(context.Background(), st, q, end)
					if err != nil {
						b.Fatal(err)
					}
					if n := len(res.Value.(Vector)); n != 50 && n != 1 {
						b.Fatal(n)
					}
				}
				b.ReportMetric(float64(30*dayMs/lvl.w*50), "buckets/op")
			})
		}
	}
}
