package wal

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"sync"
	"time"
)

// WAL is an open write-ahead log. All methods are safe for concurrent use.
//
// Writers append to an in-memory pending buffer under mu; whichever waiting
// writer finds no I/O in progress takes the "I/O role" (flushing), writes
// everything pending with mu released, fsyncs once for all of it and wakes
// the others. That is group commit: the fsync rate is bounded by the disk,
// not by the number of callers.
type WAL struct {
	dir  string
	opts Options
	tab  *crc32.Table

	truncMu sync.Mutex // serializes TruncateBefore

	mu       sync.Mutex
	cond     sync.Cond // on mu; broadcast when a round ends, on poison and on close
	err      error     // poison: the first write or fsync error
	closed   bool
	flushing bool // some goroutine holds the I/O role

	// Pending, not yet written records. rots are offsets in pending where a
	// new segment starts. spare and spareRots are recycled buffers.
	pending, spare  []byte
	rots, spareRots []int
	pendingRecs     int

	// Logical byte positions in the stream of everything ever appended
	// since Open: appended >= written >= synced.
	appended, written, synced uint64
	// The segment the next record goes to and its size including pending
	// bytes, as Log places records.
	tailSeg  int
	tailSize int64

	// Written under mu by the holder of the I/O role only; file is used
	// without mu by the holder.
	file     *os.File
	firstSeg int
	curSeg   int
	curSize  int64 // bytes written to curSeg

	stats Stats

	stopSync chan struct{} // SyncInterval loop
	syncDone chan struct{}
}

// Stats is a snapshot of the WAL's counters since Open, for metrics.
type Stats struct {
	Records         uint64        // records written
	Bytes           uint64        // bytes written to segments, framing included
	Logs            uint64        // Log calls that returned nil
	Writes          uint64        // write(2) calls
	Fsyncs          uint64        // fsyncs of segment files (data, completed segments, new headers)
	FsyncDuration   time.Duration // total time spent in those fsyncs
	DirSyncs        uint64        // fsyncs of the directory
	SegmentsCreated uint64
	FirstSegment    int
	LastSegment     int
	Segments        int    // segment files in the log
	Truncations     uint64 // TruncateBefore calls that removed segments
	SegmentsRemoved uint64 // by TruncateBefore and Options.Repair
	RepairedBytes   int64  // bytes discarded at Open: a torn tail, or everything after a corruption with Options.Repair
}

// ioCounts collects counters while mu is not held.
type ioCounts struct {
	writes, bytes, fsyncs, dirSyncs, created uint64
	fsyncDur                                 time.Duration
}

func (w *WAL) addCounts(c *ioCounts) {
	w.stats.Writes += c.writes
	w.stats.Bytes += c.bytes
	w.stats.Fsyncs += c.fsyncs
	w.stats.FsyncDuration += c.fsyncDur
	w.stats.DirSyncs += c.dirSyncs
	w.stats.SegmentsCreated += c.created
}

// Open opens the WAL in dir, creating the directory and a first segment if
// needed. It repairs a torn tail in the last segment (reported in
// Stats.RepairedBytes and to Options.Logger), and returns an error wrapping
// ErrCorrupt for damage anywhere else in that segment. Older segments are
// checked by Replay, unless Options.Repair is set: then Open reads every
// segment and truncates the log at the first damage. Everything Open leaves in
// the log has been fsynced, so what Replay returns is durable.
func Open(dir string, opts Options) (*WAL, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("wal: open: %w", err)
	}
	w := &WAL{dir: dir, opts: opts, tab: crcTable()}
	w.cond.L = &w.mu
	if err := w.recover(); err != nil {
		return nil, err
	}
	w.tailSeg, w.tailSize = w.curSeg, w.curSize
	if opts.Sync == SyncInterval {
		w.stopSync, w.syncDone = make(chan struct{}), make(chan struct{})
		go w.syncLoop(opts.NewTicker(opts.SyncEvery))
	}
	return w, nil
}

// Dir returns the WAL's directory.
func (w *WAL) Dir() string { return w.dir }

// Log appends recs as one batch and returns once they are durable under the
// sync policy (see SyncPolicy). A batch's records are contiguous and in order
// in the log; concurrent batches go in one after another in some order. A
// batch may span segments, a record never does. A record may be empty; one
// larger than MaxRecordSize fails the whole batch with ErrRecordTooLarge
// before anything is written. Once a write or fsync has failed, Log returns
// that error forever.
func (w *WAL) Log(recs ...[]byte) error {
	for i, rec := range recs {
		if len(rec) > w.opts.maxRecordSize {
			return fmt.Errorf("wal: log: record %d of %d has %d bytes, limit %d: %w",
				i, len(recs), len(rec), w.opts.maxRecordSize, ErrRecordTooLarge)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	if len(recs) == 0 {
		return nil
	}
	for _, rec := range recs {
		w.appendPending(rec)
	}
	if err := w.await(w.appended); err != nil {
		return err
	}
	w.stats.Logs++
	return nil
}

func (w *WAL) usable() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return ErrClosed
	}
	return nil
}

// appendPending frames rec into the pending buffer, starting a new segment
// first if rec would overflow the current one (records never span segments).
func (w *WAL) appendPending(rec []byte) {
	n := int64(recordHeaderSize + len(rec))
	if w.tailSize+n > w.opts.SegmentSize && w.tailSize > segmentHeaderSize {
		w.rots = append(w.rots, len(w.pending))
		w.tailSeg++
		w.tailSize = segmentHeaderSize
	}
	w.pending = appendRecord(w.pending, rec, w.tab)
	w.tailSize += n
	w.appended += uint64(n)
	w.pendingRecs++
}

// await blocks until the stream is durable up to end under the sync policy,
// taking the I/O role whenever nobody holds it. Called with mu held.
func (w *WAL) await(end uint64) error {
	for {
		done := w.written
		if w.opts.Sync == SyncAlways {
			done = w.synced
		}
		if done >= end {
			return nil
		}
		if w.err != nil {
			return w.err
		}
		if !w.flushing {
			w.flushing = true
			w.round(false)
			continue
		}
		w.cond.Wait()
	}
}

// Buffers above this capacity are dropped after a round instead of kept.
const maxKeptBuffer = 8 << 20

// round writes everything pending, starting new segments where appendPending
// placed boundaries, and fsyncs if the policy (or force) asks for it. Called
// with mu held and the I/O role taken; returns with mu held and the role
// released. Any error poisons the WAL.
func (w *WAL) round(force bool) {
	data, rots, nrecs := w.pending, w.rots, w.pendingRecs
	w.pending, w.rots, w.pendingRecs = w.spare[:0], w.spareRots[:0], 0
	base, synced := w.written, w.synced
	f, seg, size := w.file, w.curSeg, w.curSize
	dirty := synced < base
	syncData := force || w.opts.Sync == SyncAlways
	w.mu.Unlock()

	var c ioCounts
	done := 0 // bytes of data written
	writeTo := func(end int) error {
		if end == done {
			return nil
		}
		n, err := f.Write(data[done:end])
		c.writes++
		c.bytes += uint64(n)
		done += n
		size += int64(n)
		dirty = true
		if err != nil {
			return fmt.Errorf("wal: write segment %s: %w", segmentPath(w.dir, seg), err)
		}
		return nil
	}
	err := func() error {
		for _, r := range rots {
			if err := writeTo(r); err != nil {
				return err
			}
			// A completed segment is fsynced under every policy, so only
			// the last segment can ever have a torn tail.
			if dirty {
				if err := w.fsync(f, seg, &c); err != nil {
					return err
				}
				dirty = false
			}
			synced = base + uint64(done)
			err := f.Close()
			f = nil
			if err != nil {
				return fmt.Errorf("wal: close segment %s: %w", segmentPath(w.dir, seg), err)
			}
			nf, err := w.createSegment(seg+1, &c)
			if err != nil {
				return err
			}
			f, seg, size = nf, seg+1, segmentHeaderSize
		}
		if err := writeTo(len(data)); err != nil {
			return err
		}
		if syncData && dirty {
			if err := w.fsync(f, seg, &c); err != nil {
				return err
			}
			dirty = false
			synced = base + uint64(done)
		}
		return nil
	}()

	w.mu.Lock()
	w.file, w.curSeg, w.curSize = f, seg, size
	w.written = base + uint64(done)
	w.synced = max(w.synced, synced)
	w.addCounts(&c)
	if err != nil {
		w.poison(err)
	} else {
		w.stats.Records += uint64(nrecs)
	}
	if cap(data) <= maxKeptBuffer {
		w.spare = data[:0]
	} else {
		w.spare = nil
	}
	w.spareRots = rots[:0]
	w.flushing = false
	w.cond.Broadcast()
}

// poison records the first I/O error; called with mu held.
func (w *WAL) poison(err error) {
	if w.err == nil {
		w.err = err
		w.opts.Logger.Error("wal: write-ahead log failed; no further writes accepted", "dir", w.dir, "err", err)
	}
	w.cond.Broadcast()
}

func (w *WAL) fsync(f *os.File, seg int, c *ioCounts) error {
	start := w.opts.Now()
	err := w.opts.syncFile(f)
	c.fsyncDur += w.opts.Now().Sub(start)
	c.fsyncs++
	if err != nil {
		return fmt.Errorf("wal: fsync segment %s: %w", segmentPath(w.dir, seg), err)
	}
	return nil
}

func (w *WAL) syncDir(c *ioCounts) error {
	c.dirSyncs++
	return syncDir(w.dir, w.opts.syncFile)
}

// createSegment creates segment n with its header, durably (file and
// directory entry), and returns it open for appending.
func (w *WAL) createSegment(n int, c *ioCounts) (*os.File, error) {
	path := segmentPath(w.dir, n)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("wal: create segment: %w", err)
	}
	h := segmentHeader()
	if _, err := f.Write(h[:]); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("wal: write header of segment %s: %w", path, err)
	}
	if err := w.fsync(f, n, c); err != nil {
		_ = f.Close()
		return nil, err
	}
	if err := w.syncDir(c); err != nil {
		_ = f.Close()
		return nil, err
	}
	c.created++
	return f, nil
}

func (w *WAL) syncLoop(t Ticker) {
	defer close(w.syncDone)
	defer t.Stop()
	for {
		select {
		case <-w.stopSync:
			return
		case <-t.C():
			w.syncTick()
		}
	}
}

// syncTick fsyncs the current segment if anything was written since the last
// fsync (SyncInterval). It does not take the I/O role, so Log callers never
// wait for it: *os.File allows Sync concurrently with Write and Close (the
// descriptor is released when the Sync returns). If a rotation closed the
// file first, the rotation's own fsync made the data durable.
func (w *WAL) syncTick() {
	w.mu.Lock()
	if w.closed || w.err != nil || w.synced >= w.written || w.file == nil {
		w.mu.Unlock()
		return
	}
	f, seg, target := w.file, w.curSeg, w.written
	w.mu.Unlock()
	var c ioCounts
	err := w.fsync(f, seg, &c)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.addCounts(&c)
	switch {
	case err == nil:
		// Data in earlier segments was fsynced when they were completed.
		w.synced = max(w.synced, target)
	case errors.Is(err, os.ErrClosed):
	default:
		w.poison(err)
	}
}

// NextSegment ends the current segment and returns the number n of the
// segment that later records go to: every record whose Log returned before
// the call is in a segment below n, so a checkpoint of segments < n followed
// by TruncateBefore(n) loses nothing. If the current segment holds no
// records yet, it is n and no file is created.
func (w *WAL) NextSegment() (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return 0, err
	}
	if w.tailSize > segmentHeaderSize {
		w.rots = append(w.rots, len(w.pending))
		w.tailSeg++
		w.tailSize = segmentHeaderSize
	}
	n := w.tailSeg
	// Run a round ourselves so the new segment exists on return, even if
	// another round took our boundary meanwhile.
	for w.flushing {
		w.cond.Wait()
	}
	if w.err != nil {
		return 0, w.err
	}
	w.flushing = true
	w.round(false)
	if w.err != nil {
		return 0, w.err
	}
	return n, nil
}

// Segments returns the numbers of the first and last segment of the log.
func (w *WAL) Segments() (first, last int, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, 0, ErrClosed
	}
	return w.firstSeg, w.curSeg, nil
}

// TruncateBefore deletes the segments numbered below seg, oldest first, so
// that a crash part way leaves a contiguous log. seg may be at most the
// current (last) segment, which is never deleted.
func (w *WAL) TruncateBefore(seg int) error {
	w.truncMu.Lock()
	defer w.truncMu.Unlock()
	w.mu.Lock()
	closed, first, last := w.closed, w.firstSeg, w.curSeg
	w.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if seg > last {
		return fmt.Errorf("wal: truncate before segment %d: last segment is %d: %w", seg, last, ErrInvalid)
	}
	if seg <= first {
		return nil
	}
	var c ioCounts
	var err error
	removed := 0
	for n := first; n < seg; n++ {
		if e := os.Remove(segmentPath(w.dir, n)); e != nil && !errors.Is(e, fs.ErrNotExist) {
			err = fmt.Errorf("wal: truncate: %w", e)
			break
		}
		removed++
	}
	if removed > 0 {
		if e := w.syncDir(&c); e != nil && err == nil {
			err = e
		}
	}
	w.mu.Lock()
	w.firstSeg = first + removed
	w.addCounts(&c)
	if removed > 0 {
		w.stats.Truncations++
		w.stats.SegmentsRemoved += uint64(removed)
	}
	w.mu.Unlock()
	w.opts.Logger.Info("wal: truncated", "dir", w.dir, "before", seg, "removed", removed)
	return err
}

// Replay calls fn for every record in segments from..last, in log order. It
// reads what was written when Replay started: at least every record whose
// Log had returned. Damage is reported as a *CorruptionError (wrapping
// ErrCorrupt) after fn has seen every record before it; reopen with
// Options.Repair to cut the log there. An error from fn stops the replay
// and is returned as is. The slice passed to fn is valid only during the
// call. from must lie between the first segment and one past the last.
func (w *WAL) Replay(from int, fn func(rec []byte) error) error {
	w.mu.Lock()
	closed, first, last, limit := w.closed, w.firstSeg, w.curSeg, w.curSize
	w.mu.Unlock()
	if closed {
		return ErrClosed
	}
	segs, err := segmentRange(first, last, from)
	if err != nil {
		return err
	}
	r := newReader(w.dir, segs, limit)
	for r.Next() {
		if err := fn(r.Record()); err != nil {
			_ = r.Close()
			return err
		}
	}
	return errors.Join(r.Err(), r.Close())
}

// Stats returns a snapshot of the counters.
func (w *WAL) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.stats
	s.FirstSegment, s.LastSegment = w.firstSeg, w.curSeg
	s.Segments = w.curSeg - w.firstSeg + 1
	return s
}

// Close writes and fsyncs everything pending, whatever the policy, and
// closes the WAL. It returns the poison error if the WAL failed earlier, and
// ErrClosed if called again.
func (w *WAL) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	w.closed = true
	w.cond.Broadcast()
	w.mu.Unlock()
	if w.stopSync != nil {
		close(w.stopSync)
		<-w.syncDone
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	for w.flushing {
		w.cond.Wait()
	}
	if w.err == nil && w.file != nil {
		w.flushing = true
		w.round(true)
	}
	var errs []error
	if w.err != nil {
		errs = append(errs, w.err)
	}
	if w.file != nil {
		if err := w.file.Close(); err != nil {
			errs = append(errs, fmt.Errorf("wal: close segment %s: %w", segmentPath(w.dir, w.curSeg), err))
		}
		w.file = nil
	}
	return errors.Join(errs...)
}
