package tsdb

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"evalstore/sketch"
	"evalstore/tsdb/manifest"
	"evalstore/tsdb/series"
)

const (
	hourMs = 60 * minute
	dayMs  = 24 * hourMs
)

// mergeInto merges encoded state st into m[k].
func mergeInto(t testing.TB, m map[bucketKey]sketch.Sketch, k bucketKey, st []byte) {
	t.Helper()
	s := m[k]
	if s == nil {
		f, err := sketch.FormatOf(st)
		if err != nil {
			t.Fatal(err)
		}
		if s, err = sketch.New(f); err != nil {
			t.Fatal(err)
		}
		m[k] = s
	}
	if err := s.DecodeAndMerge(st); err != nil {
		t.Fatal(err)
	}
}

func encodeStates(m map[bucketKey]sketch.Sketch) map[bucketKey]string {
	out := make(map[bucketKey]string, len(m))
	for k, s := range m {
		out[k] = string(s.AppendBinary(nil))
	}
	return out
}

// readMerged reads the sketch buckets in [mint, maxt] with hints resolution
// res and merges them per series into buckets of width by (floor of the
// bucket start).
func readMerged(t testing.TB, db *DB, mint, maxt, res, by int64) map[bucketKey]string {
	t.Helper()
	q, err := db.Querier(mint, maxt)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	out := map[bucketKey]sketch.Sketch{}
	set := q.Select(context.Background(), series.Hints{Mint: mint, Maxt: maxt, Resolution: res},
		labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	var it series.BucketIterator
	for set.Next() {
		s := set.At()
		name := s.Meta().Labels.String()
		it = s.Buckets(it)
		for it.Next() {
			bt, _, st := it.At()
			mergeInto(t, out, bucketKey{name, bucketStart(bt, by)}, st)
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	return encodeStates(out)
}

// rekey merges an oracle of 1m buckets into buckets of width by, keeping
// those whose 1m start lies in [mint, maxt].
func rekey(t testing.TB, m map[bucketKey]string, mint, maxt, by int64) map[bucketKey]string {
	out := map[bucketKey]sketch.Sketch{}
	for k, st := range m {
		if k.t >= mint && k.t <= maxt {
			mergeInto(t, out, bucketKey{k.series, bucketStart(k.t, by)}, []byte(st))
		}
	}
	return encodeStates(out)
}

// liveOnDisk checks that blocks/ holds exactly the manifest's live blocks.
func liveOnDisk(t testing.TB, dir string) []string {
	t.Helper()
	m, err := manifest.Load(filepath.Join(dir, blocksDir))
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(filepath.Join(dir, blocksDir))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if e.Name() != manifest.FileName && e.Name() != manifest.TempFileName {
			names = append(names, e.Name())
		}
	}
	if !slices.Equal(names, m.Live()) {
		t.Fatalf("blocks dir %v, manifest live %v", names, m.Live())
	}
	return names
}

func TestOpenCreatesManifestAndDeletesGarbage(t *testing.T) {
	dir := t.TempDir()
	clock := newClock()
	db := openTestDB(t, dir, testOptions(clock))
	if g := db.Stats().ManifestGeneration; g != 1 {
		t.Fatalf("fresh directory: manifest generation %d, want 1", g)
	}
	w := newWorkload(3, 4, 3*1440, 600)
	commitWrites(t, db, w.writes, 100)
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	live := liveOnDisk(t, dir)
	if len(live) != 3 {
		t.Fatalf("flush of 3 days of data: %d blocks, want one per raw partition (3)", len(live))
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Garbage: an unfinished write, a finished block not in the manifest
	// (output of a job that crashed before its edit) and a stray file.
	for _, p := range []string{"0123.tmp", "deadbeefdeadbeef"} {
		if err := os.MkdirAll(filepath.Join(dir, blocksDir, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, blocksDir, "stray"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	db = openTestDB(t, dir, testOptions(clock))
	defer db.Close()
	if g := db.Stats().GarbageBlocks; g != 3 {
		t.Fatalf("GarbageBlocks = %d, want 3", g)
	}
	liveOnDisk(t, dir)
	checkEqual(t, "after reopen", readSketches(t, db, 0, testStart.UnixMilli()), w.expect())
}

func TestOpenRefusesBlocksWithoutManifest(t *testing.T) {
	dir := t.TempDir()
	clock := newClock()
	db := openTestDB(t, dir, testOptions(clock))
	commitWrites(t, db, newWorkload(3, 2, 10, 50).writes, 50)
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, blocksDir, manifest.FileName)); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, testOptions(clock))
	if !errors.Is(err, ErrNoManifest) {
		t.Fatalf("Open without MANIFEST: %v, want ErrNoManifest", err)
	}
	// Nothing was deleted.
	ents, _ := os.ReadDir(filepath.Join(dir, blocksDir))
	if len(ents) != 1 {
		t.Fatalf("blocks dir after refusal: %d entries", len(ents))
	}
}

// TestOpenAdoptsFlushJSON converts a data directory into the layout the
// pre-manifest release wrote (flush.json, a committed block still in
// blocks.staging, an uncommitted one there too) and opens it.
func TestOpenAdoptsFlushJSON(t *testing.T) {
	dir := t.TempDir()
	clock := newClock()
	w := newWorkload(5, 5, 120, 900)
	db := openTestDB(t, dir, testOptions(clock))
	commitWrites(t, db, w.writes[:300], 100)
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	commitWrites(t, db, w.writes[300:600], 100)
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	commitWrites(t, db, w.writes[600:], 100)
	ckpt := db.man.WALCheckpoint()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	live := liveOnDisk(t, dir)
	if len(live) != 2 {
		t.Fatalf("%d blocks", len(live))
	}
	if err := os.Remove(filepath.Join(dir, blocksDir, manifest.FileName)); err != nil {
		t.Fatal(err)
	}
	staging := filepath.Join(dir, stagingDir)
	if err := os.MkdirAll(filepath.Join(staging, "uncommitted"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, blocksDir, live[1]), filepath.Join(staging, live[1])); err != nil {
		t.Fatal(err)
	}
	st := fmt.Sprintf(`{"version":1,"replay_from":%d,"block":%q}`, ckpt+1, live[1])
	if err := os.WriteFile(filepath.Join(dir, flushStateFile), []byte(st), 0o644); err != nil {
		t.Fatal(err)
	}
	db = openTestDB(t, dir, testOptions(clock))
	defer db.Close()
	if got := liveOnDisk(t, dir); !slices.Equal(got, live) {
		t.Fatalf("adopted %v, want %v", got, live)
	}
	for _, p := range []string{flushStateFile, stagingDir} {
		if _, err := os.Stat(filepath.Join(dir, p)); !os.IsNotExist(err) {
			t.Fatalf("%s left after adoption: %v", p, err)
		}
	}
	checkEqual(t, "adopted", readSketches(t, db, 0, testStart.UnixMilli()), w.expect())
}

// compactFixture writes a 30-day workload with three flushes (so each
// partition has several flush blocks) and advances the clock past
// FlushSettle, so a Compact has a full plan: raw days with 1h rollups,
// 1h weeks (older than 7 days) with 1d rollups.
func compactFixture(t testing.TB, dir string, opts Options, clock *fakeClock) (*DB, *workload) {
	return compactFixtureDays(t, dir, opts, clock, 30)
}

func compactFixtureDays(t testing.TB, dir string, opts Options, clock *fakeClock, days int) (*DB, *workload) {
	t.Helper()
	flushes := 3
	if days < 30 {
		flushes = 2
	}
	w := newWorkload(11, 6, days*1440, 1000*flushes)
	db := openTestDB(t, dir, opts)
	for i := 0; i < flushes; i++ {
		commitWrites(t, db, w.writes[i*1000:(i+1)*1000], 250)
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(4 * time.Hour)
	return db, w
}

func checkDays(t testing.TB, what string, db *DB, w *workload) {
	t.Helper()
	lo, hi := testStart.UnixMilli()-31*dayMs, testStart.UnixMilli()
	want := rekey(t, w.expect(), lo, hi, dayMs)
	for _, res := range []int64{0, hourMs, dayMs} {
		checkEqual(t, fmt.Sprintf("%s res=%d", what, res), readMerged(t, db, lo, hi, res, dayMs), want)
	}
}

func TestCompactLayout(t *testing.T) {
	dir := t.TempDir()
	clock := newClock()
	db, w := compactFixture(t, dir, testOptions(clock), clock)
	defer db.Close()
	before := db.Stats()
	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
	st := db.Stats()
	if st.Compactions == 0 || st.ManifestGeneration <= before.ManifestGeneration {
		t.Fatalf("no compaction ran: %+v", st)
	}
	if st.LastCompactionDuration <= 0 {
		t.Fatal("LastCompactionDuration not set")
	}
	checkDays(t, "compacted", db, w)
	// Layout: no flush block left, every block is a partition base or
	// rollup, re-planning at the same time is a no-op.
	db.stateMu.RLock()
	rollups, bases := 0, 0
	for _, b := range db.blocks {
		if b.m.level <= 1 {
			t.Errorf("flush block %s left after compaction", b.m.id)
		}
		if b.rollupOf != "" {
			rollups++
		} else {
			bases++
		}
	}
	db.stateMu.RUnlock()
	if rollups != bases {
		t.Errorf("%d rollups for %d bases", rollups, bases)
	}
	gen := db.Stats().ManifestGeneration
	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
	if g := db.Stats().ManifestGeneration; g != gen {
		t.Fatalf("re-plan applied %d more edits", g-gen)
	}
	waitRemoved(t, db)
	liveOnDisk(t, dir)
}

func waitRemoved(t testing.TB, db *DB) {
	t.Helper()
	for i := 0; db.Stats().BlocksRemoving > 0; i++ {
		if i > 500 {
			t.Fatal("removed blocks not deleted")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCompactCrashSteps fails a compaction job after each of its steps, as
// a crash there would, then either retries in process or reopens: the data
// is exact throughout, and after the next Compact the layout is complete
// and blocks/ holds exactly the live blocks.
func TestCompactCrashSteps(t *testing.T) {
	t.Parallel() // mostly fsync-bound
	type tc struct {
		nth    int // fail at the nth time the step is reached
		reopen bool
	}
	for _, step := range []string{"output-written", "outputs-written", "applied"} {
		for _, c := range []tc{{1, true}, {5, false}} {
			nth, reopen := c.nth, c.reopen
			{
				t.Run(fmt.Sprintf("%s#%d/reopen=%v", step, nth, reopen), func(t *testing.T) {
					dir := t.TempDir()
					clock := newClock()
					opts := testOptions(clock)
					calls := 0
					failing := true
					opts.compactHook = func(s string) error {
						if failing && s == step {
							if calls++; calls == nth {
								return fmt.Errorf("injected crash after %s", s)
							}
						}
						return nil
					}
					// 15 days: raw days with rollups and 1h weeks.
					db, w := compactFixtureDays(t, dir, opts, clock, 15)
					if err := db.Compact(); err == nil {
						t.Fatal("compaction did not fail")
					}
					failing = false
					checkDays(t, "after failed job", db, w)
					if reopen {
						if err := db.Close(); err != nil {
							t.Fatal(err)
						}
						db = openTestDB(t, dir, opts)
						liveOnDisk(t, dir)
						checkDays(t, "after reopen", db, w)
					}
					defer db.Close()
					if err := db.Compact(); err != nil {
						t.Fatal(err)
					}
					checkDays(t, "after next compaction", db, w)
					gen := db.Stats().ManifestGeneration
					if err := db.Compact(); err != nil || db.Stats().ManifestGeneration != gen {
						t.Fatalf("plan did not converge: %v", err)
					}
					if err := db.Close(); err != nil {
						t.Fatal(err)
					}
					db = openTestDB(t, dir, opts)
					liveOnDisk(t, dir)
					checkDays(t, "final reopen", db, w)
				})
			}
		}
	}
}

// TestCompactKeepsPinnedBlocks: a querier opened before a compaction keeps
// reading the removed blocks; they are deleted once it is closed.
func TestCompactKeepsPinnedBlocks(t *testing.T) {
	dir := t.TempDir()
	clock := newClock()
	db, w := compactFixture(t, dir, testOptions(clock), clock)
	defer db.Close()
	lo, hi := testStart.UnixMilli()-31*dayMs, testStart.UnixMilli()
	q, err := db.Querier(lo, hi)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
	if n := db.Stats().BlocksRemoving; n == 0 {
		t.Fatal("no removed block waits for the open querier")
	}
	// The old snapshot still reads everything exactly once.
	got := map[bucketKey]sketch.Sketch{}
	set := q.Select(context.Background(), series.Hints{Mint: lo, Maxt: hi}, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	for set.Next() {
		it := set.At().Buckets(nil)
		for it.Next() {
			bt, _, st := it.At()
			mergeInto(t, got, bucketKey{set.At().Meta().Labels.String(), bucketStart(bt, dayMs)}, st)
		}
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	checkEqual(t, "pinned snapshot", encodeStates(got), rekey(t, w.expect(), lo, hi, dayMs))
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	waitRemoved(t, db)
	liveOnDisk(t, dir)
}

func TestRetentionByAge(t *testing.T) {
	dir := t.TempDir()
	clock := newClock()
	opts := testOptions(clock)
	opts.Retention = 40 * 24 * time.Hour
	db, w := compactFixture(t, dir, opts, clock)
	defer db.Close()
	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
	// 25 days later the first ~15 days of data are past the 40-day cut.
	clock.Advance(25 * 24 * time.Hour)
	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
	st := db.Stats()
	if st.RetentionDeletes == 0 {
		t.Fatalf("no retention delete: %+v", st)
	}
	cut := clock.Now().Add(-opts.Retention).UnixMilli()
	lo, hi := testStart.UnixMilli()-31*dayMs, testStart.UnixMilli()
	// Queries clip at the cut: exactly the data from the cut's bucket on.
	got := readMerged(t, db, lo, hi, 0, dayMs)
	want := rekey(t, w.expect(), bucketStart(cut, minute), hi, dayMs)
	// The cut falls inside a day: compare whole days after it exactly,
	// and check nothing before the cut is returned.
	for k := range got {
		if k.t+dayMs <= cut {
			t.Fatalf("bucket %v before the retention cut %d returned", k, cut)
		}
	}
	for k, v := range want {
		if k.t < cut {
			delete(want, k)
			delete(got, k)
			continue
		}
		if got[k] != v {
			t.Fatalf("day %v differs after retention", k)
		}
	}
	waitRemoved(t, db)
	liveOnDisk(t, dir)
	// Every remaining block has data after the cut's partition start.
	db.stateMu.RLock()
	for _, b := range db.blocks {
		if b.m.maxt < cut-28*dayMs {
			t.Errorf("block %s [%d, %d] wholly expired but live", b.m.id, b.m.mint, b.m.maxt)
		}
	}
	db.stateMu.RUnlock()
}

func TestRetentionBySize(t *testing.T) {
	dir := t.TempDir()
	clock := newClock()
	opts := testOptions(clock)
	db, _ := compactFixture(t, dir, opts, clock)
	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
	total := db.Stats().BlockBytes
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	opts.RetentionBytes = total / 2
	db = openTestDB(t, dir, opts)
	defer db.Close()
	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
	st := db.Stats()
	if st.RetentionDeletes != 1 || st.BlockBytes > opts.RetentionBytes {
		t.Fatalf("size retention: deletes %d, %d bytes > limit %d", st.RetentionDeletes, st.BlockBytes, opts.RetentionBytes)
	}
	// The oldest data went first: what is left is a suffix in time.
	got := readMerged(t, db, 0, math.MaxInt64, 0, dayMs)
	oldest := int64(math.MaxInt64)
	for k := range got {
		oldest = min(oldest, k.t)
	}
	if oldest <= testStart.UnixMilli()-30*dayMs {
		t.Fatalf("oldest day %d kept", oldest)
	}
}

// TestFlushCutsByPartition: a flush of today's data plus late labels of
// 1 and 20 days ago writes one block per owned partition, all in one
// manifest edit.
func TestFlushCutsByPartition(t *testing.T) {
	dir := t.TempDir()
	clock := newClock()
	db := openTestDB(t, dir, testOptions(clock))
	defer db.Close()
	c := sketch.NewConfusion()
	c.Add(1, 0)
	d := c.AppendBinary(nil)
	now := testStart.UnixMilli()
	a := db.Appender()
	for _, ts := range []int64{now - 1, now - 2*minute, now - dayMs - 5, now - 20*dayMs} {
		if err := a.AddSketch(seriesLabels(1), ts, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
	gen := db.Stats().ManifestGeneration
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	if g := db.Stats().ManifestGeneration; g != gen+1 {
		t.Fatalf("flush applied %d edits", g-gen)
	}
	db.stateMu.RLock()
	defer db.stateMu.RUnlock()
	if len(db.blocks) != 3 {
		t.Fatalf("%d flush blocks, want 3", len(db.blocks))
	}
	for _, b := range db.blocks {
		if b.created != now {
			t.Errorf("block %s created %d, want the clock's %d", b.m.id, b.created, now)
		}
		if b.m.mint/dayMs != b.m.maxt/dayMs && b.m.maxt-b.m.mint >= 7*dayMs {
			t.Errorf("block %s spans partitions: [%d, %d]", b.m.id, b.m.mint, b.m.maxt)
		}
	}
}

// TestQueryRollupWithoutBase: a rollup's range starts at its first coarse
// bucket, before its base's first bucket, so a window can overlap the
// rollup but not the base; the rollup must not be read alone there.
func TestQueryRollupWithoutBase(t *testing.T) {
	clock := newClock()
	db := openTestDB(t, t.TempDir(), testOptions(clock))
	defer db.Close()
	c := sketch.NewConfusion()
	c.Add(1, 1)
	day := testStart.UnixMilli() - dayMs // a raw day: base + 1h rollup
	a := db.Appender()
	if err := a.AddSketch(seriesLabels(0), day+10*hourMs+30*minute, c.AppendBinary(nil)); err != nil {
		t.Fatal(err)
	}
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	clock.Advance(4 * time.Hour)
	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
	if n := db.Stats().Blocks; n != 2 {
		t.Fatalf("%d blocks, want base + rollup", n)
	}
	for _, w := range [][2]int64{{10 * hourMs, 10*hourMs + 10*minute}, {10 * hourMs, 10*hourMs + 30*minute}, {9 * hourMs, 11 * hourMs}} {
		want := int64(0)
		if w[1] >= 10*hourMs+30*minute {
			want = 1
		}
		for _, res := range []int64{0, hourMs, dayMs} {
			got := readMerged(t, db, day+w[0], day+w[1], res, dayMs)
			var n int64
			for _, st := range got {
				x := sketch.NewConfusion()
				if err := x.UnmarshalBinary([]byte(st)); err != nil {
					t.Fatal(err)
				}
				n += x.Count()
			}
			if n != want {
				t.Errorf("window %v res %d: count %d, want %d", w, res, n, want)
			}
		}
	}
}
