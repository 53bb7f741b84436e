package tsdb

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"evalstore/sketch"
	"evalstore/tsdb/block"
	"evalstore/tsdb/index"
	"evalstore/tsdb/series"
	"evalstore/tsdb/wal"
)

// Directory layout under the data directory.
const (
	lockFile       = "LOCK"
	walDir         = "wal"
	blocksDir      = "blocks"
	stagingDir     = "blocks.staging"
	flushStateFile = "flush.json"
)

// DB is an open data directory: the head (memtable), its WAL and the
// immutable blocks. All methods are safe for concurrent use.
type DB struct {
	dir      string
	opts     Options
	bucketMs int64
	lock     *os.File
	wal      *wal.WAL
	index    *index.Index
	reg      *registry
	store    blockStore
	log      *slog.Logger

	// commitMu orders commits against the flush swap: a commit holds it
	// shared from reading epoch until its samples are in the head, the
	// swap holds it exclusively, so every record in a WAL segment below
	// the swap's boundary belongs to the frozen head and every later one
	// to the new head.
	commitMu sync.RWMutex
	// epoch counts swaps (and process lives: it starts at 1 on Open); a
	// series' record is written again in each epoch before its samples,
	// so the segments kept after a checkpoint define every ref they use.
	epoch uint64

	// stateMu guards the sources readers see. Flush moves the head from
	// active to frozen and from frozen to a block under it, so a reader
	// sees each piece of data exactly once.
	stateMu   sync.RWMutex
	active    *head
	frozen    *head
	frozenSeg int // WAL boundary of frozen: its data is in segments below
	blocks    []blockHandle

	flushMu sync.Mutex // serialises Flush
	closed  atomic.Bool

	stats struct {
		commits, sketchMerges, floatSamples atomic.Uint64
		floatsDropped, applyErrors          atomic.Uint64
		flushes, flushErrors                atomic.Uint64
		lastFlushNanos                      atomic.Int64
		replayedRecords                     atomic.Uint64
		skippedTmp                          atomic.Uint64
	}
}

// flushState is the commit point of a flush, written atomically: the WAL
// segments below ReplayFrom are covered by blocks and never replayed, and
// Block (if set) is the flush's block, which Open moves from the staging
// directory into blocks/ if a crash interrupted the flush after this file
// was written.
type flushState struct {
	Version    int    `json:"version"`
	ReplayFrom int    `json:"replay_from"`
	Block      string `json:"block,omitempty"`
}

// Open opens (creating if needed) the data directory dir: it takes the
// directory lock, finishes or discards an interrupted flush, opens the
// blocks and replays the WAL into the head.
func Open(dir string, opts Options) (*DB, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, blocksDir), 0o755); err != nil {
		return nil, fmt.Errorf("tsdb: open: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	db := &DB{
		dir:      dir,
		opts:     opts,
		bucketMs: opts.BucketSize.Milliseconds(),
		lock:     lock,
		index:    index.New(),
		reg:      newRegistry(),
		store:    opts.blocks,
		log:      opts.Logger,
		active:   newHead(),
		epoch:    1,
	}
	if db.store == nil {
		db.store = realBlocks{opts: block.Options{Cache: opts.BlockCache}}
	}
	if err := db.open(); err != nil {
		for _, b := range db.blocks {
			_ = b.close()
		}
		if db.wal != nil {
			_ = db.wal.Close()
		}
		_ = lock.Close()
		return nil, err
	}
	return db, nil
}

func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("tsdb: lock %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("tsdb: open %s: %w", dir, ErrLocked)
		}
		return nil, fmt.Errorf("tsdb: lock %s: %w", dir, err)
	}
	return f, nil
}

func (db *DB) open() error {
	st, err := readFlushState(db.dir)
	if err != nil {
		return err
	}
	if err := db.recoverStaging(st); err != nil {
		return err
	}
	if err := db.openBlocks(); err != nil {
		return err
	}
	w, err := wal.Open(filepath.Join(db.dir, walDir), db.opts.WAL)
	if err != nil {
		return fmt.Errorf("tsdb: open: %w", err)
	}
	db.wal = w
	first, last, err := w.Segments()
	if err != nil {
		return err
	}
	// A WAL that was removed or restarted numbering (operator action)
	// may lie below the boundary: then everything in it is new.
	from := st.ReplayFrom
	if from < first || from > last+1 {
		if from > last+1 {
			db.log.Warn("tsdb: flush boundary beyond the WAL; replaying all of it", "boundary", from, "first", first, "last", last)
		}
		from = first
	}
	if err := db.replay(from); err != nil {
		return err
	}
	if from > first {
		if err := w.TruncateBefore(from); err != nil {
			return err
		}
	}
	return nil
}

// recoverStaging completes the rename of the flush block named by the
// flush state and removes any other staged block: those are from flushes
// that crashed before their commit point, so their data is still in the
// WAL.
func (db *DB) recoverStaging(st flushState) error {
	staging := filepath.Join(db.dir, stagingDir)
	ents, err := os.ReadDir(staging)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("tsdb: open: %w", err)
	}
	for _, e := range ents {
		p := filepath.Join(staging, e.Name())
		if st.Block != "" && e.Name() == st.Block {
			dst := filepath.Join(db.dir, blocksDir, e.Name())
			if _, err := os.Stat(dst); err == nil {
				if err := os.RemoveAll(p); err != nil {
					return fmt.Errorf("tsdb: open: %w", err)
				}
				continue
			}
			if err := os.Rename(p, dst); err != nil {
				return fmt.Errorf("tsdb: open: finish flush of block %s: %w", e.Name(), err)
			}
			if err := syncDir(filepath.Join(db.dir, blocksDir)); err != nil {
				return err
			}
			db.log.Info("tsdb: finished interrupted flush", "block", e.Name())
			continue
		}
		db.log.Info("tsdb: removing block of an interrupted flush (its data is in the WAL)", "dir", p)
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("tsdb: open: %w", err)
		}
	}
	return nil
}

func (db *DB) openBlocks() error {
	dir := filepath.Join(db.dir, blocksDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("tsdb: open blocks: %w", err)
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if strings.HasSuffix(e.Name(), ".tmp") {
			db.stats.skippedTmp.Add(1)
			db.log.Warn("tsdb: skipping unfinished block directory", "dir", filepath.Join(dir, e.Name()))
			continue
		}
		b, err := db.store.open(filepath.Join(dir, e.Name()))
		if err != nil {
			return fmt.Errorf("tsdb: open block %s: %w", e.Name(), err)
		}
		db.blocks = append(db.blocks, b)
	}
	return nil
}

func readFlushState(dir string) (flushState, error) {
	b, err := os.ReadFile(filepath.Join(dir, flushStateFile))
	if errors.Is(err, os.ErrNotExist) {
		return flushState{Version: 1}, nil
	}
	if err != nil {
		return flushState{}, fmt.Errorf("tsdb: read flush state: %w", err)
	}
	var st flushState
	if err := json.Unmarshal(b, &st); err != nil {
		return flushState{}, fmt.Errorf("tsdb: flush state %s: %w", filepath.Join(dir, flushStateFile), err)
	}
	if st.Version != 1 {
		return flushState{}, fmt.Errorf("tsdb: flush state version %d unsupported", st.Version)
	}
	return st, nil
}

// writeFlushState replaces the flush state atomically and durably.
func writeFlushState(dir string, st flushState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, flushStateFile+".tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("tsdb: write flush state: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, flushStateFile))
	}
	if err != nil {
		return fmt.Errorf("tsdb: write flush state: %w", err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("tsdb: sync dir: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("tsdb: sync dir %s: %w", dir, err)
	}
	return nil
}

// replay applies the WAL from segment from into the active head. Refs are
// rebound by every series entry in log order: a process life's refs are
// written before its samples, so a sample always resolves to the latest
// binding before it.
func (db *DB) replay(from int) error {
	var dec recordDecoder
	refs := make(map[uint64]*memSeries)
	var ap applyState
	err := db.wal.Replay(from, func(rec []byte) error {
		entries, err := dec.decode(rec)
		if err != nil {
			return err
		}
		db.stats.replayedRecords.Add(1)
		for i := range entries {
			e := &entries[i]
			if e.typ != entrySeries {
				continue
			}
			ms, err := db.seriesFor(e.lset, e.kind, e.format)
			if err != nil {
				db.log.Warn("tsdb: replay: dropping series", "labels", e.lset.String(), "err", err)
				refs[e.ref] = nil
				continue
			}
			refs[e.ref] = ms
			if e.hasLast {
				ms.mu.Lock()
				if !ms.hasLast || e.t > ms.lastT {
					ms.hasLast, ms.lastT, ms.lastV = true, e.t, e.v
				}
				ms.mu.Unlock()
			}
		}
		ap.reset()
		for i := range entries {
			e := &entries[i]
			if e.typ == entrySeries {
				continue
			}
			ms := refs[e.ref]
			if ms == nil {
				db.stats.applyErrors.Add(1)
				continue
			}
			ap.add(pendingSample{ms: ms, t: e.t, v: e.v, delta: e.delta, sketch: e.typ == entrySketch})
		}
		db.apply(db.active, &ap)
		return nil
	})
	if err != nil {
		return fmt.Errorf("tsdb: replay WAL: %w", err)
	}
	return nil
}

// seriesFor returns the registry series for lset, creating it with kind and
// format, or ErrFormatMismatch if it exists with another kind or format.
func (db *DB) seriesFor(lset labels.Labels, kind series.Kind, format sketch.Format) (*memSeries, error) {
	ref, _, err := db.index.GetOrCreate(lset)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidLabels, err)
	}
	ms := db.reg.get(ref)
	if ms == nil {
		l, _ := db.index.Labels(ref)
		ms = db.reg.getOrInsert(&memSeries{ref: ref, lset: l, kind: kind, format: format})
	}
	if ms.kind != kind {
		return nil, fmt.Errorf("%w: series %s holds %v, write is %v", ErrFormatMismatch, ms.lset.String(), ms.kind, kind)
	}
	if ms.format != format {
		return nil, fmt.Errorf("%w: series %s holds sketch format %v, delta is %v", ErrFormatMismatch, ms.lset.String(), ms.format, format)
	}
	return ms, nil
}

// Run flushes the head whenever it is older than FlushAge, larger than
// FlushBytes or its WAL longer than FlushWALBytes, checking every
// CheckEvery, until ctx is done.
func (db *DB) Run(ctx context.Context) error {
	t := db.opts.NewTicker(db.opts.CheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C():
			if db.closed.Load() {
				return ErrClosed
			}
			if db.flushDue() {
				if err := db.Flush(); err != nil {
					db.log.Error("tsdb: flush failed; will retry", "err", err)
				}
			}
		}
	}
}

func (db *DB) flushDue() bool {
	db.stateMu.RLock()
	h := db.active
	db.stateMu.RUnlock()
	if h.empty() {
		return false
	}
	if h.bytes.Load() >= db.opts.FlushBytes {
		return true
	}
	seg := db.opts.WAL.SegmentSize
	if seg == 0 {
		seg = wal.DefaultSegmentSize
	}
	if ws := db.wal.Stats(); int64(ws.Segments-1)*seg >= db.opts.FlushWALBytes {
		return true
	}
	first := h.firstWrite.Load()
	return first != 0 && db.opts.Now().UnixMilli()-first >= db.opts.FlushAge.Milliseconds()
}

func (db *DB) hook(step string) error {
	if db.opts.flushHook != nil {
		return db.opts.flushHook(step)
	}
	return nil
}

// Flush writes the whole head as one block and checkpoints the WAL. Writers
// are blocked only while the head is swapped for an empty one; readers see
// every piece of data exactly once throughout. After a crash at any point,
// Open recovers a state where every acknowledged write is counted once.
func (db *DB) Flush() error {
	if db.closed.Load() {
		return ErrClosed
	}
	db.flushMu.Lock()
	defer db.flushMu.Unlock()
	start := time.Now()
	err := db.flush()
	if err != nil {
		db.stats.flushErrors.Add(1)
		return err
	}
	db.stats.lastFlushNanos.Store(int64(time.Since(start)))
	return nil
}

func (db *DB) flush() error {
	// A frozen head left by a failed flush goes first.
	db.stateMu.RLock()
	frozen, boundary := db.frozen, db.frozenSeg
	db.stateMu.RUnlock()
	if frozen == nil {
		db.commitMu.Lock()
		if db.active.empty() {
			db.commitMu.Unlock()
			return nil
		}
		n, err := db.wal.NextSegment()
		if err != nil {
			db.commitMu.Unlock()
			return fmt.Errorf("tsdb: flush: %w", err)
		}
		db.stateMu.Lock()
		frozen, boundary = db.active, n
		db.frozen, db.frozenSeg = frozen, n
		db.active = newHead()
		db.stateMu.Unlock()
		db.epoch++
		db.commitMu.Unlock()
	}
	if err := db.hook("swapped"); err != nil {
		return err
	}

	staging := filepath.Join(db.dir, stagingDir)
	if err := os.MkdirAll(staging, 0o755); err != nil {
		return fmt.Errorf("tsdb: flush: %w", err)
	}
	set := newHeadSeriesSet([]*head{frozen}, nil, series.Hints{Mint: minTime, Maxt: maxTime}, db.bucketMs)
	id, err := db.store.write(staging, db.bucketMs, set)
	if err != nil {
		return fmt.Errorf("tsdb: flush: write block: %w", err)
	}
	if err := db.hook("block-written"); err != nil {
		return err
	}
	// The commit point: from here on Open replays only the segments the
	// new head's writes went to, and finishes moving the block.
	if err := writeFlushState(db.dir, flushState{Version: 1, ReplayFrom: boundary, Block: id}); err != nil {
		return err
	}
	if err := db.hook("state-written"); err != nil {
		return err
	}
	var b blockHandle
	if id != "" {
		dst := filepath.Join(db.dir, blocksDir, id)
		if err := os.Rename(filepath.Join(staging, id), dst); err != nil {
			return fmt.Errorf("tsdb: flush: move block: %w", err)
		}
		if err := syncDir(filepath.Join(db.dir, blocksDir)); err != nil {
			return err
		}
		if b, err = db.store.open(dst); err != nil {
			return fmt.Errorf("tsdb: flush: open block: %w", err)
		}
	}
	db.stateMu.Lock()
	if b != nil {
		db.blocks = append(db.blocks, b)
	}
	db.frozen = nil
	db.stateMu.Unlock()
	if err := db.hook("block-opened"); err != nil {
		return err
	}
	if err := db.checkpoint(); err != nil {
		return err
	}
	if err := db.hook("checkpointed"); err != nil {
		return err
	}
	if err := db.wal.TruncateBefore(boundary); err != nil {
		return fmt.Errorf("tsdb: flush: %w", err)
	}
	db.stats.flushes.Add(1)
	return nil
}

// checkpoint writes a series entry for every registry series into the WAL
// (after the swap boundary), carrying float series' newest sample, so that
// after the older segments are removed a restart still knows every series'
// kind, format and float order.
func (db *DB) checkpoint() error {
	all := db.reg.all()
	slices.SortFunc(all, func(a, b *memSeries) int { return cmp.Compare(int64(a.ref), int64(b.ref)) })
	rec := []byte{recordVersion}
	for _, ms := range all {
		ms.mu.Lock()
		hasLast, lastT, lastV := ms.hasLast, ms.lastT, ms.lastV
		ms.mu.Unlock()
		rec = appendSeriesEntry(rec, uint64(ms.ref), ms.kind, ms.format, ms.lset, hasLast, lastT, lastV)
		if len(rec) >= 1<<20 {
			if err := db.wal.Log(rec); err != nil {
				return fmt.Errorf("tsdb: checkpoint: %w", err)
			}
			rec = rec[:1]
		}
	}
	if len(rec) > 1 {
		if err := db.wal.Log(rec); err != nil {
			return fmt.Errorf("tsdb: checkpoint: %w", err)
		}
	}
	return nil
}

// Close waits for in-flight commits, flushes and closes the WAL (the head
// is not flushed: the WAL holds it), closes the blocks and releases the
// directory lock.
func (db *DB) Close() error {
	if db.closed.Swap(true) {
		return ErrClosed
	}
	db.flushMu.Lock()
	defer db.flushMu.Unlock()
	db.commitMu.Lock()
	defer db.commitMu.Unlock()
	var errs []error
	if err := db.wal.Close(); err != nil {
		errs = append(errs, err)
	}
	db.stateMu.Lock()
	for _, b := range db.blocks {
		if err := b.close(); err != nil {
			errs = append(errs, err)
		}
	}
	db.blocks = nil
	db.stateMu.Unlock()
	if err := db.lock.Close(); err != nil {
		errs = append(errs, fmt.Errorf("tsdb: release lock: %w", err))
	}
	return errors.Join(errs...)
}

// Stats is a snapshot of the DB's counters and sizes, for metrics.
type Stats struct {
	Series             int   // series in the registry
	HeadSeries         int64 // series with data in the head (active + flushing)
	HeadBuckets        int64
	HeadSamples        int64
	HeadBytes          int64 // estimated head memory: sketch MemSize plus overheads
	HeadMinT, HeadMaxT int64 // active head's data range (MinT > MaxT: empty)
	Blocks             int
	BlockBytes         int64
	Commits            uint64
	SketchMerges       uint64 // sketch deltas applied to the head
	FloatSamples       uint64 // float samples applied to the head
	FloatsDropped      uint64 // float samples dropped at apply: a concurrent commit won the timestamp
	ApplyErrors        uint64 // logged entries that could not be applied (incompatible state, unknown ref)
	Flushes            uint64
	FlushErrors        uint64
	LastFlushDuration  time.Duration
	ReplayedRecords    uint64
	SkippedTmpBlocks   uint64
	WAL                wal.Stats
}

// Stats returns a snapshot of the counters.
func (db *DB) Stats() Stats {
	s := Stats{
		Series:            db.index.NumSeries(),
		Commits:           db.stats.commits.Load(),
		SketchMerges:      db.stats.sketchMerges.Load(),
		FloatSamples:      db.stats.floatSamples.Load(),
		FloatsDropped:     db.stats.floatsDropped.Load(),
		ApplyErrors:       db.stats.applyErrors.Load(),
		Flushes:           db.stats.flushes.Load(),
		FlushErrors:       db.stats.flushErrors.Load(),
		LastFlushDuration: time.Duration(db.stats.lastFlushNanos.Load()),
		ReplayedRecords:   db.stats.replayedRecords.Load(),
		SkippedTmpBlocks:  db.stats.skippedTmp.Load(),
	}
	db.stateMu.RLock()
	for _, h := range []*head{db.active, db.frozen} {
		if h == nil {
			continue
		}
		s.HeadSeries += h.numSeries.Load()
		s.HeadBuckets += h.buckets.Load()
		s.HeadSamples += h.samples.Load()
		s.HeadBytes += h.bytes.Load()
	}
	s.HeadMinT, s.HeadMaxT = db.active.mint.Load(), db.active.maxt.Load()
	s.Blocks = len(db.blocks)
	for _, b := range db.blocks {
		s.BlockBytes += b.size()
	}
	db.stateMu.RUnlock()
	if !db.closed.Load() {
		s.WAL = db.wal.Stats()
	}
	return s
}
