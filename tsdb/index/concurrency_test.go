package index

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// TestConcurrentCreateSelectDelete runs writers creating (the same) series,
// a deleter and readers selecting at once; run it with -race. Readers check
// every answer's invariants; at the end the index must equal the oracle.
func TestConcurrentCreateSelectDelete(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	seen := map[string]bool{}
	var pool []labels.Labels
	for len(pool) < 1500 {
		ls := randLabels(r)
		if !seen[ls.String()] {
			seen[ls.String()] = true
			pool = append(pool, ls)
		}
	}
	matchers := matcherPool(t)
	ix := New(WithStripes(8))

	const writers = 4
	refs := make([][]SeriesRef, writers) // refs[w][i]: writer w's ref for pool[i]
	var stop atomic.Bool
	var readers, others sync.WaitGroup
	fail := make(chan string, 16)
	report := func(s string) {
		select {
		case fail <- s:
		default:
		}
	}

	for rd := range 2 {
		readers.Go(func() {
			rr := rand.New(rand.NewPCG(uint64(rd), 99))
			for !stop.Load() {
				ms := randMatchers(rr, matchers)
				p, err := ix.Select(ms...)
				if err != nil {
					report(err.Error())
					return
				}
				prev := SeriesRef(0)
				for p.Next() {
					ref := p.At()
					if ref <= prev {
						report("postings not increasing")
						return
					}
					prev = ref
					if ls, ok := ix.Labels(ref); ok && !matchesAll(ls, ms) {
						report("Select returned " + ls.String() + " for " + fmtMatchers(ms))
						return
					}
				}
				vals, err := ix.LabelValues("model", math.MinInt64, math.MaxInt64, ms...)
				if err != nil || !slices.IsSorted(vals) {
					report("LabelValues not sorted")
					return
				}
				ser, err := ix.Series(0, 1000, ms...)
				if err != nil || !slices.IsSortedFunc(ser, labels.Compare) {
					report("Series not sorted")
					return
				}
			}
		})
	}

	// Phase 1: writers race to create the same series; all must agree.
	for w := range writers {
		others.Go(func() {
			rw := rand.New(rand.NewPCG(uint64(w), 7))
			refs[w] = make([]SeriesRef, len(pool))
			for _, i := range rw.Perm(len(pool)) {
				ref, _, err := ix.GetOrCreate(pool[i])
				if err != nil {
					report(err.Error())
					return
				}
				refs[w][i] = ref
				ix.Touch(ref, int64(rw.IntN(1000)))
			}
		})
	}
	others.Wait()
	for i := range pool {
		for w := 1; w < writers; w++ {
			if refs[w][i] != refs[0][i] {
				t.Fatalf("series %s got refs %d and %d", pool[i], refs[0][i], refs[w][i])
			}
		}
	}
	if ix.NumSeries() != len(pool) {
		t.Fatalf("NumSeries %d, want %d", ix.NumSeries(), len(pool))
	}

	// Phase 2: delete and re-create while readers keep going.
	for w := range writers {
		others.Go(func() {
			rw := rand.New(rand.NewPCG(uint64(w), 8))
			for range 600 {
				i := rw.IntN(len(pool))
				if w == 0 && rw.IntN(2) == 0 {
					ref, _, _ := ix.GetOrCreate(pool[i])
					ix.Delete([]SeriesRef{ref})
					continue
				}
				ref, _, err := ix.GetOrCreate(pool[i])
				if err != nil {
					report(err.Error())
					return
				}
				ix.Touch(ref, int64(rw.IntN(1000)))
			}
		})
	}
	others.Wait()
	stop.Store(true)
	readers.Wait()
	close(fail)
	for msg := range fail {
		t.Fatal(msg)
	}

	// Quiesced: the index must agree with an oracle built from its own
	// series, and every label set must map to exactly one live ref.
	f := &fixture{ix: ix, series: map[SeriesRef]labels.Labels{}}
	all := expand(t)(ix.Select())
	for _, ref := range all {
		ls, ok := ix.Labels(ref)
		if !ok {
			t.Fatalf("ref %d in all-postings has no series", ref)
		}
		f.series[ref] = ls
		if got, created, _ := ix.GetOrCreate(ls); created || got != ref {
			t.Fatalf("GetOrCreate(%s) = %d %v, want %d", ls, got, created, ref)
		}
	}
	if len(all) != ix.NumSeries() {
		t.Fatalf("%d postings, %d series", len(all), ix.NumSeries())
	}
	rr := rand.New(rand.NewPCG(5, 5))
	for range 200 {
		f.checkSelect(t, randMatchers(rr, matchers))
	}
}
