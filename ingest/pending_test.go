package ingest

import (
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"evalstore/definitions"
	"evalstore/tsdb/wal"
)

// testEntry is an entry with every field set from seed, of one of the
// shapes the join store holds (labels of each kind, multiclass scores,
// observed measures, zero to three slices).
func testEntry(rng *rand.Rand) *entry {
	lists := [][]string{nil, {"all"}, {"all", "eu"}, {"all", "eu", "mobile"}}
	e := &entry{
		t:         rng.Int64N(1e12) - 5e11,
		version:   fmt.Sprintf("v%d", rng.IntN(4)),
		slices:    slices.Clone(lists[rng.IntN(len(lists))]),
		task:      taskCode(rng.IntN(4)),
		predClass: int32(rng.IntN(5)) - 1,
		hasScore:  rng.IntN(2) == 0,
		score:     rng.Float64(),
		pred:      rng.NormFloat64(),
		labelAt:   rng.Int64N(1e12),
	}
	switch rng.IntN(5) {
	case 0:
		e.label = definitions.StringValue(fmt.Sprintf("class-%d", rng.IntN(3)))
	case 1:
		e.label = definitions.NumberValue(rng.NormFloat64())
	case 2:
		e.label = definitions.BoolValue(rng.IntN(2) == 0)
	case 3:
		e.label = definitions.NumberValue(math.Copysign(0, -1))
	}
	e.hasLabel = !e.label.IsNull()
	if rng.IntN(4) == 0 {
		e.scores = []ClassScore{{"x", rng.Float64()}, {"y", rng.Float64()}}
	}
	for range rng.IntN(3) {
		e.measures = append(e.measures, fmt.Sprintf("m%d", rng.IntN(9)))
	}
	return e
}

// sameEntry compares entries field by field (a label's number by its bits).
func sameEntry(a, b *entry) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := *a, *b
	if x.label.Kind() != y.label.Kind() || x.label.Str() != y.label.Str() || x.label.Bool() != y.label.Bool() ||
		math.Float64bits(x.label.Num()) != math.Float64bits(y.label.Num()) {
		return false
	}
	x.label, y.label = definitions.Value{}, definitions.Value{}
	if len(x.slices) == 0 && len(y.slices) == 0 {
		x.slices, y.slices = nil, nil
	}
	if len(x.measures) == 0 && len(y.measures) == 0 {
		x.measures, y.measures = nil, nil
	}
	return reflect.DeepEqual(x, y)
}

// checkPending compares m with the oracle: length, every oracle key's
// entry, absent keys, and each's keys and entries.
func checkPending(t *testing.T, m *pendingMap, oracle map[string]*entry, absent []string) {
	t.Helper()
	if m.len() != len(oracle) {
		t.Fatalf("len %d, oracle %d", m.len(), len(oracle))
	}
	for k, want := range oracle {
		if got := m.get(k); !sameEntry(got, want) {
			t.Fatalf("get(%q) = %+v, want %+v", k, got, want)
		}
		if !m.has(k) {
			t.Fatalf("has(%q) = false", k)
		}
	}
	for _, k := range absent {
		if _, ok := oracle[k]; !ok && (m.has(k) || m.get(k) != nil) {
			t.Fatalf("%q present, oracle has not", k)
		}
	}
	seen := map[string]bool{}
	m.each(func(k string, e *entry) {
		if seen[k] {
			t.Fatalf("each: %q twice", k)
		}
		seen[k] = true
		if !sameEntry(e, oracle[k]) {
			t.Fatalf("each: %q = %+v, want %+v", k, e, oracle[k])
		}
	})
	if len(seen) != len(oracle) {
		t.Fatalf("each: %d keys, oracle %d", len(seen), len(oracle))
	}
}

func TestPendingMapOps(t *testing.T) {
	e1 := &entry{t: 1, version: "v1", slices: []string{"all"}, predClass: 1, hasScore: true, score: 0.25}
	e2 := &entry{t: 2, version: "v2", slices: []string{"all", "eu"}, predClass: -1, task: taskRegression, pred: 3.5,
		hasLabel: true, label: definitions.NumberValue(4), labelAt: 9, measures: []string{"latency"}}
	e3 := &entry{t: 3, version: "v1", task: taskMulticlass, scores: []ClassScore{{"a", 0.5}, {"b", 0.5}},
		hasLabel: true, label: definitions.StringValue("a")}
	// Slice lists that would be equal if names were only concatenated.
	e4 := &entry{t: 4, slices: []string{"a\x00b"}}
	e5 := &entry{t: 5, slices: []string{"a", "b"}}
	type op struct {
		do  string // put, del
		key string
		e   *entry
	}
	cases := []struct {
		name string
		mask uint64 // 0: all keys collide
		ops  []op
		want map[string]*entry
	}{
		{"empty", ^uint64(0), nil, map[string]*entry{}},
		{"put get", ^uint64(0), []op{{"put", "m\x00a", e1}, {"put", "m\x00b", e2}}, map[string]*entry{"m\x00a": e1, "m\x00b": e2}},
		{"replace", ^uint64(0), []op{{"put", "m\x00a", e1}, {"put", "m\x00a", e3}}, map[string]*entry{"m\x00a": e3}},
		{"delete", ^uint64(0), []op{{"put", "m\x00a", e1}, {"put", "m\x00b", e2}, {"del", "m\x00a", nil}}, map[string]*entry{"m\x00b": e2}},
		{"delete absent", ^uint64(0), []op{{"put", "m\x00a", e1}, {"del", "m\x00z", nil}}, map[string]*entry{"m\x00a": e1}},
		{"slot reused", ^uint64(0), []op{{"put", "m\x00a", e1}, {"del", "m\x00a", nil}, {"put", "m\x00c", e3}}, map[string]*entry{"m\x00c": e3}},
		{"collisions", 0, []op{{"put", "m\x00a", e1}, {"put", "m\x00b", e2}, {"put", "m\x00c", e3}}, map[string]*entry{"m\x00a": e1, "m\x00b": e2, "m\x00c": e3}},
		{"collisions delete head", 0, []op{{"put", "m\x00a", e1}, {"put", "m\x00b", e2}, {"put", "m\x00c", e3}, {"del", "m\x00c", nil}},
			map[string]*entry{"m\x00a": e1, "m\x00b": e2}},
		{"collisions delete middle", 0, []op{{"put", "m\x00a", e1}, {"put", "m\x00b", e2}, {"put", "m\x00c", e3}, {"del", "m\x00b", nil}},
			map[string]*entry{"m\x00a": e1, "m\x00c": e3}},
		{"collisions delete tail", 0, []op{{"put", "m\x00a", e1}, {"put", "m\x00b", e2}, {"put", "m\x00c", e3}, {"del", "m\x00a", nil}},
			map[string]*entry{"m\x00b": e2, "m\x00c": e3}},
		{"prefix keys", 0, []op{{"put", "m\x00a", e1}, {"put", "m\x00ab", e2}, {"put", "m\x00", e3}}, map[string]*entry{"m\x00a": e1, "m\x00ab": e2, "m\x00": e3}},
		{"empty key", ^uint64(0), []op{{"put", "", e1}}, map[string]*entry{"": e1}},
		{"slice lists", ^uint64(0), []op{{"put", "m\x00a", e4}, {"put", "m\x00b", e5}}, map[string]*entry{"m\x00a": e4, "m\x00b": e5}},
		{"long key", ^uint64(0), []op{{"put", strings.Repeat("k", 3*pendingKeyChunk/2), e1}, {"put", "m\x00b", e2}},
			map[string]*entry{strings.Repeat("k", 3*pendingKeyChunk/2): e1, "m\x00b": e2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newPendingMap()
			m.mask = c.mask
			var absent []string
			for _, o := range c.ops {
				switch o.do {
				case "put":
					m.put(o.key, o.e)
				case "del":
					m.del(o.key)
					absent = append(absent, o.key)
				}
			}
			checkPending(t, m, c.want, append(absent, "m\x00zz", "x"))
		})
	}
}

// TestPendingMapRandom runs random puts, replacements, deletions and
// expiries against a Go map, with colliding and with full hashes, and a
// low compaction threshold so that the key arena is rewritten many times.
func TestPendingMapRandom(t *testing.T) {
	for _, c := range []struct {
		name string
		mask uint64
		keys int
	}{{"full hash", ^uint64(0), 3000}, {"16 hashes", 15, 600}, {"one hash", 0, 80}} {
		for seed := uint64(1); seed <= 3; seed++ {
			t.Run(fmt.Sprintf("%s/seed%d", c.name, seed), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, 7))
				m := newPendingMap()
				m.mask, m.compactAt = c.mask, 256
				oracle := map[string]*entry{}
				key := func() string {
					// Lengths vary so that keys share prefixes.
					return fmt.Sprintf("model\x00%d%s", rng.IntN(c.keys), strings.Repeat("-", rng.IntN(3)))
				}
				var absent []string
				for i := range 20 * c.keys {
					switch r := rng.IntN(100); {
					case r < 55:
						k, e := key(), testEntry(rng)
						m.put(k, e)
						oracle[k] = e
					case r < 90:
						k := key()
						_, had := oracle[k]
						if got := m.del(k); got != had {
							t.Fatalf("op %d: del(%q) = %v, oracle %v", i, k, got, had)
						}
						delete(oracle, k)
						absent = append(absent, k)
					case r < 99:
						k := key()
						if got := m.get(k); !sameEntry(got, oracle[k]) {
							t.Fatalf("op %d: get(%q) = %+v, want %+v", i, k, got, oracle[k])
						}
					default:
						cut := rng.Int64N(1e12) - 5e11
						gone := map[string]bool{}
						m.expire(cut, func(k string) { gone[k] = true })
						for k, e := range oracle {
							if want := e.t < cut; gone[k] != want {
								t.Fatalf("op %d: expire(%d): %q gone %v, want %v", i, cut, k, gone[k], want)
							}
							if gone[k] {
								delete(oracle, k)
								absent = append(absent, k)
							}
						}
						if len(gone) != 0 && m.len() != len(oracle) {
							t.Fatalf("op %d: expire removed keys the oracle does not have", i)
						}
					}
				}
				checkPending(t, m, oracle, absent)
			})
		}
	}
}

// TestPendingMapPersistence writes pending entries of every shape through a
// snapshot and through the join WAL (a batch record replayed at open) and
// checks that a reopened store holds exactly the oracle's entries.
func TestPendingMapPersistence(t *testing.T) {
	for _, viaSnapshot := range []bool{true, false} {
		t.Run(fmt.Sprintf("snapshot=%v", viaSnapshot), func(t *testing.T) {
			dir := t.TempDir()
			opts := wal.Options{Sync: wal.SyncNever}
			resolve := func() (uint64, bool, error) { return 1 << 62, true, nil }
			log := slog.New(slog.DiscardHandler)
			s, err := openJoinStore(dir, opts, resolve, log)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(11, 12))
			oracle := map[string]*entry{}
			tx := s.begin(100)
			for i := range 500 {
				k, e := fmt.Sprintf("m%d\x00id-%d", i%3, i), testEntry(rng)
				oracle[k] = e
				tx.putEntry(k, e)
			}
			s.seq++
			if err := s.w.Log(tx.encode(nil, s.seq, 0)); err != nil {
				t.Fatal(err)
			}
			tx.apply()
			checkPending(t, s.pending, oracle, nil)
			if viaSnapshot {
				if err := s.snapshot(); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.w.Close(); err != nil {
				t.Fatal(err)
			}
			s2, err := openJoinStore(dir, opts, resolve, log)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := s2.w.Close(); err != nil {
					t.Error(err)
				}
			}()
			checkPending(t, s2.pending, oracle, []string{"m0\x00id-1"})
		})
	}
}
