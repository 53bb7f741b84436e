package wal

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func openT(t testing.TB, dir string, o Options) *WAL {
	t.Helper()
	w, err := Open(dir, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return w
}

func closeT(t testing.TB, w *WAL) {
	t.Helper()
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func logT(t testing.TB, w *WAL, recs ...[]byte) {
	t.Helper()
	if err := w.Log(recs...); err != nil {
		t.Fatalf("Log: %v", err)
	}
}

// replayAll returns copies of every record from the first segment on.
func replayAll(t testing.TB, w *WAL) ([][]byte, error) {
	t.Helper()
	first, _, err := w.Segments()
	if err != nil {
		t.Fatalf("Segments: %v", err)
	}
	var got [][]byte
	err = w.Replay(first, func(rec []byte) error {
		got = append(got, bytes.Clone(rec))
		return nil
	})
	return got, err
}

// recordPos is where the Reader found a record.
type recordPos struct {
	seg int
	off int64
	rec []byte
}

func (p recordPos) end() int64 { return p.off + recordHeaderSize + int64(len(p.rec)) }

// readDir reads every record of dir with a tolerant Reader.
func readDir(t testing.TB, dir string) ([]recordPos, error) {
	t.Helper()
	segs, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	from := 0
	if len(segs) > 0 {
		from = segs[0]
	}
	r, err := NewReader(dir, from)
	if err != nil {
		return nil, err
	}
	var got []recordPos
	for r.Next() {
		got = append(got, recordPos{r.Segment(), r.Offset(), bytes.Clone(r.Record())})
	}
	return got, errors.Join(r.Err(), r.Close())
}

func recsOf(ps []recordPos) [][]byte {
	out := make([][]byte, len(ps))
	for i, p := range ps {
		out[i] = p.rec
	}
	return out
}

func randRecords(rng *rand.Rand, n, maxLen int) [][]byte {
	recs := make([][]byte, n)
	for i := range recs {
		r := make([]byte, rng.IntN(maxLen+1))
		for j := range r {
			r[j] = byte(rng.Uint32())
		}
		recs[i] = r
	}
	return recs
}

func equalRecords(t testing.TB, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("record %d: got %x, want %x", i, got[i], want[i])
		}
	}
}

// noSync skips fsync in tests of recovery logic, which need no durability
// and would otherwise wait on a shared disk.
func noSync(*os.File) error { return nil }

// pendingRecords lets tests observe queued group-commit followers.
func (w *WAL) pendingRecords() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pendingRecs
}

func TestRoundTrip(t *testing.T) {
	for _, policy := range []SyncPolicy{SyncAlways, SyncInterval, SyncNever} {
		t.Run("sync="+policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			rng := rand.New(rand.NewPCG(1, uint64(policy)))
			opts := Options{SegmentSize: 1 << 10, Sync: policy, NewTicker: newFakeTicker(nil)}
			w := openT(t, dir, opts)
			var want [][]byte
			for i := range 40 {
				batch := randRecords(rng, 1+rng.IntN(12), 120)
				if i == 20 { // larger than a segment: gets one of its own
					batch = append(batch, bytes.Repeat([]byte{7}, 3000), nil)
				}
				logT(t, w, batch...)
				want = append(want, batch...)
			}
			got, err := replayAll(t, w)
			if err != nil {
				t.Fatal(err)
			}
			equalRecords(t, got, want)
			first, last, _ := w.Segments()
			if first != 0 || last < 5 {
				t.Fatalf("segments %d..%d, want 0..>=5", first, last)
			}
			if s := w.Stats(); s.Records != uint64(len(want)) || s.Logs != 40 || s.Segments != last+1 {
				t.Fatalf("stats %+v", s)
			}
			closeT(t, w)

			pos, err := readDir(t, dir)
			if err != nil {
				t.Fatal(err)
			}
			equalRecords(t, recsOf(pos), want)
			checkSegmentSizes(t, dir, pos, opts.SegmentSize)

			w = openT(t, dir, opts)
			if s := w.Stats(); s.RepairedBytes != 0 {
				t.Fatalf("clean reopen repaired %d bytes", s.RepairedBytes)
			}
			more := randRecords(rng, 5, 50)
			logT(t, w, more...)
			want = append(want, more...)
			got, err = replayAll(t, w)
			if err != nil {
				t.Fatal(err)
			}
			equalRecords(t, got, want)
			closeT(t, w)
		})
	}
}

// checkSegmentSizes: no segment exceeds the limit unless it holds a single
// record, and records never start outside their segment's file.
func checkSegmentSizes(t *testing.T, dir string, pos []recordPos, limit int64) {
	t.Helper()
	count := map[int]int{}
	for _, p := range pos {
		count[p.seg]++
	}
	segs, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range segs {
		fi, err := os.Stat(segmentPath(dir, s))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > limit && count[s] != 1 {
			t.Errorf("segment %d: %d bytes with %d records", s, fi.Size(), count[s])
		}
	}
}

func TestOptionsInvalid(t *testing.T) {
	for _, o := range []Options{
		{SegmentSize: 100},
		{Sync: SyncPolicy(9)},
		{SyncEvery: -time.Second},
	} {
		if _, err := Open(t.TempDir(), o); !errors.Is(err, ErrInvalid) {
			t.Errorf("Open(%+v) = %v, want ErrInvalid", o, err)
		}
	}
}

func TestClosed(t *testing.T) {
	w := openT(t, t.TempDir(), Options{})
	logT(t, w, []byte("a"))
	closeT(t, w)
	checks := map[string]error{
		"Log":            w.Log([]byte("b")),
		"Close":          w.Close(),
		"TruncateBefore": w.TruncateBefore(0),
		"Replay":         w.Replay(0, func([]byte) error { return nil }),
	}
	_, checks["NextSegment"] = w.NextSegment()
	_, _, checks["Segments"] = w.Segments()
	for name, err := range checks {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}

func TestRecordTooLarge(t *testing.T) {
	w := openT(t, t.TempDir(), Options{maxRecordSize: 100})
	err := w.Log([]byte("ok"), make([]byte, 101))
	if !errors.Is(err, ErrRecordTooLarge) {
		t.Fatalf("Log = %v, want ErrRecordTooLarge", err)
	}
	logT(t, w, make([]byte, 100)) // the WAL is not poisoned
	got, err := replayAll(t, w)
	if err != nil {
		t.Fatal(err)
	}
	equalRecords(t, got, [][]byte{make([]byte, 100)}) // nothing of the refused batch
	closeT(t, w)
}

func TestNextSegmentAndTruncate(t *testing.T) {
	dir := t.TempDir()
	w := openT(t, dir, Options{})
	logT(t, w, []byte("a"))
	n, err := w.NextSegment()
	if err != nil || n != 1 {
		t.Fatalf("NextSegment = %d, %v; want 1", n, err)
	}
	if n, err := w.NextSegment(); err != nil || n != 1 {
		t.Fatalf("NextSegment on an empty segment = %d, %v; want 1 again", n, err)
	}
	if f, l, _ := w.Segments(); f != 0 || l != 1 {
		t.Fatalf("Segments = %d, %d; want 0, 1", f, l)
	}
	logT(t, w, []byte("b"))
	if n, err := w.NextSegment(); err != nil || n != 2 {
		t.Fatalf("NextSegment = %d, %v; want 2", n, err)
	}
	logT(t, w, []byte("c"))

	if err := w.TruncateBefore(3); !errors.Is(err, ErrInvalid) {
		t.Fatalf("TruncateBefore(3) = %v, want ErrInvalid (would delete the current segment)", err)
	}
	if err := w.TruncateBefore(2); err != nil {
		t.Fatal(err)
	}
	if err := w.TruncateBefore(1); err != nil {
		t.Fatalf("TruncateBefore below first = %v, want nil", err)
	}
	for _, s := range []int{0, 1} {
		if _, err := os.Stat(segmentPath(dir, s)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("segment %d still there: %v", s, err)
		}
	}
	if err := w.Replay(1, func([]byte) error { return nil }); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Replay(1) = %v, want ErrInvalid", err)
	}
	if err := w.Replay(3, func([]byte) error { t.Error("record past the end"); return nil }); err != nil {
		t.Fatalf("Replay(last+1) = %v", err)
	}
	got, err := replayAll(t, w)
	if err != nil {
		t.Fatal(err)
	}
	equalRecords(t, got, [][]byte{[]byte("c")})
	s := w.Stats()
	if s.Truncations != 1 || s.SegmentsRemoved != 2 || s.FirstSegment != 2 || s.LastSegment != 2 || s.Segments != 1 {
		t.Fatalf("stats %+v", s)
	}
	closeT(t, w)

	w = openT(t, dir, Options{})
	if f, l, _ := w.Segments(); f != 2 || l != 2 {
		t.Fatalf("after reopen Segments = %d, %d; want 2, 2", f, l)
	}
	got, err = replayAll(t, w)
	if err != nil {
		t.Fatal(err)
	}
	equalRecords(t, got, [][]byte{[]byte("c")})
	errStop := errors.New("stop")
	if err := w.Replay(2, func([]byte) error { return errStop }); err != errStop {
		t.Fatalf("Replay returned %v, want the callback's error", err)
	}
	closeT(t, w)
}

type fakeTicker struct {
	c       chan time.Time
	stopped atomic.Bool
}

func (f *fakeTicker) C() <-chan time.Time { return f.c }
func (f *fakeTicker) Stop()               { f.stopped.Store(true) }

// newFakeTicker returns a ticker factory whose ticks never come unless sent
// on *got's channel.
func newFakeTicker(got **fakeTicker) func(time.Duration) Ticker {
	return func(time.Duration) Ticker {
		ft := &fakeTicker{c: make(chan time.Time)}
		if got != nil {
			*got = ft
		}
		return ft
	}
}

func TestSyncInterval(t *testing.T) {
	var ft *fakeTicker
	var clock atomic.Int64
	now := func() time.Time { return time.Unix(0, clock.Add(int64(time.Millisecond))) }
	var period time.Duration
	factory := newFakeTicker(&ft)
	w := openT(t, t.TempDir(), Options{
		Sync:      SyncInterval,
		SyncEvery: time.Hour,
		Now:       now,
		NewTicker: func(d time.Duration) Ticker { period = d; return factory(d) },
	})
	if period != time.Hour {
		t.Fatalf("ticker period %v", period)
	}
	// Two sends: the second is received only after the first tick's fsync
	// finished, since one goroutine receives both.
	tick := func() { ft.c <- time.Time{}; ft.c <- time.Time{} }
	base := w.Stats().Fsyncs

	logT(t, w, []byte("a"))
	logT(t, w, []byte("b"))
	if s := w.Stats(); s.Fsyncs != base {
		t.Fatalf("SyncInterval Log fsynced: %d fsyncs, want %d", s.Fsyncs, base)
	}
	tick()
	if s := w.Stats(); s.Fsyncs != base+1 {
		t.Fatalf("after a tick: %d fsyncs, want %d", s.Fsyncs, base+1)
	}
	tick() // nothing new: no fsync
	if s := w.Stats(); s.Fsyncs != base+1 {
		t.Fatalf("idle tick fsynced: %d fsyncs, want %d", s.Fsyncs, base+1)
	}
	logT(t, w, []byte("c"))
	closeT(t, w) // fsyncs what the loop has not
	if !ft.stopped.Load() {
		t.Error("ticker not stopped")
	}
	s := w.Stats()
	if s.Fsyncs != base+2 {
		t.Fatalf("after Close: %d fsyncs, want %d", s.Fsyncs, base+2)
	}
	// The fake clock advances 1ms per reading, two readings per fsync.
	if s.FsyncDuration != time.Duration(s.Fsyncs)*time.Millisecond {
		t.Fatalf("FsyncDuration %v for %d fsyncs", s.FsyncDuration, s.Fsyncs)
	}
}

// TestSyncIntervalDoesNotBlockLog holds the background fsync and checks
// that Log still returns meanwhile.
func TestSyncIntervalDoesNotBlockLog(t *testing.T) {
	var ft *fakeTicker
	var armed atomic.Bool
	entered, gate := make(chan struct{}), make(chan struct{})
	w := openT(t, t.TempDir(), Options{
		Sync:        SyncInterval,
		SegmentSize: 1 << 10,
		NewTicker:   newFakeTicker(&ft),
		syncFile: func(f *os.File) error {
			if armed.CompareAndSwap(true, false) {
				entered <- struct{}{}
				<-gate
			}
			return f.Sync()
		},
	})
	logT(t, w, []byte("first"))
	armed.Store(true)
	ft.c <- time.Time{}
	<-entered // the loop is now inside fsync; Log, rotating segments, must not wait
	for i := range 30 {
		logT(t, w, bytes.Repeat([]byte{byte(i)}, 100))
	}
	close(gate)
	ft.c <- time.Time{} // returns once the held tick is done
	closeT(t, w)
}

func TestPoisonAfterFsyncError(t *testing.T) {
	dir := t.TempDir()
	injected := errors.New("injected EIO")
	var fail atomic.Bool
	var calls atomic.Int32
	w := openT(t, dir, Options{syncFile: func(f *os.File) error {
		calls.Add(1)
		if fail.Load() {
			return injected
		}
		return f.Sync()
	}})
	logT(t, w, []byte("acked"))
	fail.Store(true)
	err := w.Log([]byte("lost"))
	if !errors.Is(err, injected) {
		t.Fatalf("Log = %v, want the fsync error", err)
	}
	fail.Store(false)
	before := calls.Load()
	if err2 := w.Log([]byte("later")); !errors.Is(err2, injected) {
		t.Fatalf("Log after failure = %v, want the same error", err2)
	}
	if _, err2 := w.NextSegment(); !errors.Is(err2, injected) {
		t.Fatalf("NextSegment after failure = %v", err2)
	}
	if calls.Load() != before {
		t.Fatal("a poisoned WAL retried fsync")
	}
	if err2 := w.Close(); !errors.Is(err2, injected) {
		t.Fatalf("Close = %v, want the fsync error", err2)
	}

	w = openT(t, dir, Options{})
	got, err := replayAll(t, w)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || string(got[0]) != "acked" {
		t.Fatalf("acknowledged record lost: %q", got)
	}
	logT(t, w, []byte("after reopen"))
	closeT(t, w)
}

// TestPoisonDuringRotation fails the fsync of a new segment's header: the
// Log that needed the new segment fails, the WAL is poisoned, and reopening
// recovers every acknowledged record.
func TestPoisonDuringRotation(t *testing.T) {
	dir := t.TempDir()
	injected := errors.New("injected ENOSPC")
	w := openT(t, dir, Options{SegmentSize: 1 << 10, syncFile: func(f *os.File) error {
		if filepath.Base(f.Name()) == segmentName(1) {
			return injected
		}
		return f.Sync()
	}})
	var acked [][]byte
	var err error
	for i := 0; err == nil; i++ {
		rec := bytes.Repeat([]byte{byte(i)}, 100)
		if err = w.Log(rec); err == nil {
			acked = append(acked, rec)
		}
	}
	if !errors.Is(err, injected) || len(acked) == 0 {
		t.Fatalf("Log = %v after %d records, want the injected error", err, len(acked))
	}
	if err := w.Log([]byte("x")); !errors.Is(err, injected) {
		t.Fatalf("Log after failure = %v", err)
	}
	if err := w.Close(); !errors.Is(err, injected) {
		t.Fatalf("Close = %v", err)
	}
	w = openT(t, dir, Options{SegmentSize: 1 << 10})
	got, err := replayAll(t, w)
	if err != nil {
		t.Fatal(err)
	}
	equalRecords(t, got, acked)
	logT(t, w, []byte("after"))
	closeT(t, w)
}

// TestGroupCommit holds the first writer inside fsync until the others have
// queued, then checks they all returned on one shared fsync.
func TestGroupCommit(t *testing.T) {
	const writers = 8
	var armed atomic.Bool
	entered, gate := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	w := openT(t, t.TempDir(), Options{syncFile: func(f *os.File) error {
		if armed.Load() && calls.Add(1) == 1 {
			entered <- struct{}{}
			<-gate
		}
		return f.Sync()
	}})
	armed.Store(true)
	base := w.Stats()

	var wg sync.WaitGroup
	errs := make(chan error, writers)
	wg.Go(func() { errs <- w.Log([]byte("leader")) })
	<-entered
	for i := 1; i < writers; i++ {
		wg.Go(func() { errs <- w.Log(fmt.Appendf(nil, "follower %d", i)) })
	}
	for w.pendingRecords() < writers-1 {
		runtime.Gosched()
	}
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s := w.Stats()
	if got := s.Fsyncs - base.Fsyncs; got != 2 {
		t.Fatalf("%d fsyncs for %d concurrent Logs, want 2 (leader, then all followers together)", got, writers)
	}
	if s.Logs != writers {
		t.Fatalf("Logs = %d", s.Logs)
	}
	got, err := replayAll(t, w)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != writers || string(got[0]) != "leader" {
		t.Fatalf("replayed %q", got)
	}
	closeT(t, w)
}

// TestConcurrentLog runs writers, segment cuts, replays and stats at once
// (meant for -race) and checks every writer's records replay in its order,
// exactly once.
func TestConcurrentLog(t *testing.T) {
	const writers, logs = 8, 40
	dir := t.TempDir()
	w := openT(t, dir, Options{SegmentSize: 4 << 10})
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range logs {
				n := 1 + (g+i)%4
				recs := make([][]byte, n)
				for j := range recs {
					recs[j] = fmt.Appendf(nil, "%d/%d/%d", g, i, j)
				}
				if err := w.Log(recs...); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	var aux sync.WaitGroup
	aux.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			if i%8 == 0 {
				if _, err := w.NextSegment(); err != nil {
					t.Error(err)
				}
			}
			s := w.Stats()
			if err := w.Replay(s.FirstSegment, func([]byte) error { return nil }); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	close(done)
	aux.Wait()

	s := w.Stats()
	if s.Logs != writers*logs {
		t.Fatalf("Logs = %d", s.Logs)
	}
	// Each new segment costs up to two fsyncs of its own (completing the
	// old one, the new header); the rest are group commits.
	if commits := s.Fsyncs - 2*s.SegmentsCreated; commits >= s.Logs {
		t.Errorf("%d commit fsyncs for %d Logs: no group commit", commits, s.Logs)
	}
	t.Logf("%d Logs, %d fsyncs, %d segments created", s.Logs, s.Fsyncs, s.SegmentsCreated)
	closeT(t, w)

	pos, err := readDir(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	next := map[int]string{}
	for g := range writers {
		next[g] = fmt.Sprintf("%d/0/0", g)
	}
	seen := map[int][2]int{}
	for _, p := range pos {
		var g, i, j int
		if _, err := fmt.Sscanf(string(p.rec), "%d/%d/%d", &g, &i, &j); err != nil {
			t.Fatal(err)
		}
		last, ok := seen[g]
		n := 1 + (g+last[0])%4
		wantI, wantJ := 0, 0
		if ok {
			wantI, wantJ = last[0], last[1]+1
			if wantJ == n {
				wantI, wantJ = last[0]+1, 0
			}
		}
		if i != wantI || j != wantJ {
			t.Fatalf("writer %d: record %d/%d after %v", g, i, j, last)
		}
		seen[g] = [2]int{i, j}
	}
	for g := range writers {
		if seen[g][0] != logs-1 {
			t.Fatalf("writer %d: last batch %d, want %d", g, seen[g][0], logs-1)
		}
	}
}

func TestReaderArguments(t *testing.T) {
	dir := t.TempDir()
	r, err := NewReader(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Next() || r.Err() != nil {
		t.Fatal("empty directory yielded a record or an error")
	}
	w := openT(t, dir, Options{})
	closeT(t, w)
	for _, from := range []int{-1, 2} {
		if _, err := NewReader(dir, from); !errors.Is(err, ErrInvalid) {
			t.Errorf("NewReader(from=%d) = %v, want ErrInvalid", from, err)
		}
	}
	if _, err := NewReader(filepath.Join(dir, "missing"), 0); err == nil {
		t.Error("NewReader on a missing directory succeeded")
	}
}

func TestParseSegmentName(t *testing.T) {
	for name, want := range map[string]int{"00000000": 0, "00000042": 42, "123456789": 123456789} {
		if n, ok := parseSegmentName(name); !ok || n != want {
			t.Errorf("parseSegmentName(%q) = %d, %v", name, n, ok)
		}
	}
	for _, name := range []string{"0000000", "0000004a", "000000042", "checkpoint.00000001", "-0000001", "+0000001"} {
		if _, ok := parseSegmentName(name); ok {
			t.Errorf("parseSegmentName(%q) accepted", name)
		}
	}
}
