package tsdb

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
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
	"evalstore/tsdb/manifest"
	"evalstore/tsdb/plan"
	"evalstore/tsdb/series"
	"evalstore/tsdb/wal"
)

// Directory layout under the data directory.
const (
	lockFile  = "LOCK"
	walDir    = "wal"
	blocksDir = "blocks"
	// stagingDir and flushStateFile are the flush commit point of data
	// directories written before the manifest; Open adopts them once.
	stagingDir     = "blocks.staging"
	flushStateFile = "flush.json"
)

// DB is an open data directory: the head (memtable), its WAL and the
// immutable blocks. All methods are safe for concurrent use.
type DB struct {
	dir      string
	opts     Options
	popts    plan.Options
	bucketMs int64
	lock     *os.File
	wal      *wal.WAL
	man      *manifest.Manifest
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
	// active to frozen and from frozen to blocks under it, and compaction
	// swaps a job's inputs for its outputs under it, so a reader sees each
	// piece of data exactly once.
	stateMu   sync.RWMutex
	active    *head
	frozen    *head
	frozenSeg int // WAL boundary of frozen: its data is in segments below
	blocks    []*liveBlock

	flushMu   sync.Mutex    // serialises Flush
	pending   *pendingFlush // a flush that failed part-way (under flushMu)
	compactMu sync.Mutex    // serialises Compact
	bg        sync.WaitGroup
	closed    atomic.Bool

	stats struct {
		commits, sketchMerges, floatSamples atomic.Uint64
		histogramSamples                    atomic.Uint64
		floatsDropped, applyErrors          atomic.Uint64
		flushes, flushErrors                atomic.Uint64
		lastFlushNanos                      atomic.Int64
		replayedRecords                     atomic.Uint64
		garbage                             atomic.Uint64
		merges, downsamples, deletes        atomic.Uint64
		compactionErrors                    atomic.Uint64
		lastCompactNanos                    atomic.Int64
		outputs, removed, removing          atomic.Int64
	}
}

// liveBlock is a block listed in the manifest and open for reading.
type liveBlock struct {
	h        blockHandle
	m        blockMeta
	bytes    int64
	rollupOf string // base block ID if this block is a rollup (manifest)
	created  int64  // Unix ms the block was written (plan.Block.Created)
}

func (b *liveBlock) plan() plan.Block {
	return plan.Block{ID: b.m.id, MinT: b.m.mint, MaxT: b.m.maxt, Resolution: b.m.resolution, Level: b.m.level,
		Sources: b.m.sources, Bytes: b.bytes, RollupOf: b.rollupOf, Created: b.created}
}

func newLiveBlock(h blockHandle, rollupOf string, created int64) *liveBlock {
	return &liveBlock{h: h, m: h.meta(), bytes: h.size(), rollupOf: rollupOf, created: created}
}

// flushState is the pre-manifest flush commit point (flush.json): the WAL
// segments below ReplayFrom were covered by blocks, and Block (if set) was
// the last flush's block, possibly still in the staging directory. Open
// reads it only to adopt such a directory into its first manifest.
type flushState struct {
	Version    int    `json:"version"`
	ReplayFrom int    `json:"replay_from"`
	Block      string `json:"block,omitempty"`
}

// Open opens (creating if needed) the data directory dir: it takes the
// directory lock, loads the manifest (creating it on first use, or adopting
// a pre-manifest directory), deletes block directories the manifest does
// not list, opens the live blocks and replays the WAL after the manifest's
// checkpoint into the head.
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
		popts:    opts.planOptions(),
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
			_ = b.h.close()
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

func (db *DB) blocksPath(id string) string { return filepath.Join(db.dir, blocksDir, id) }

func (db *DB) open() error {
	bdir := filepath.Join(db.dir, blocksDir)
	m, err := manifest.Load(bdir)
	if err != nil {
		return fmt.Errorf("tsdb: open: %w (restore blocks/MANIFEST from a backup; see docs/operations.md)", err)
	}
	db.man = m
	if m.Generation() == 0 {
		if err := db.initManifest(); err != nil {
			return err
		}
	}
	// The pre-manifest commit point is adopted (or stale after a crash
	// right after the adoption): the manifest supersedes it.
	for _, p := range []string{flushStateFile, flushStateFile + ".tmp", stagingDir} {
		if err := os.RemoveAll(filepath.Join(db.dir, p)); err != nil {
			return fmt.Errorf("tsdb: open: %w", err)
		}
	}
	names, err := dirNames(bdir)
	if err != nil {
		return err
	}
	if garbage := m.Garbage(names); len(garbage) > 0 {
		for _, g := range garbage {
			db.log.Info("tsdb: deleting block directory not in the manifest (unfinished write, or removed by a compaction)", "dir", filepath.Join(bdir, g))
			if err := os.RemoveAll(filepath.Join(bdir, g)); err != nil {
				return fmt.Errorf("tsdb: open: %w", err)
			}
		}
		db.stats.garbage.Add(uint64(len(garbage)))
		if err := syncDir(bdir); err != nil {
			return err
		}
	}
	rollups := m.Rollups()
	now := db.opts.Now().UnixMilli()
	for _, id := range m.Live() {
		h, err := db.store.open(db.blocksPath(id))
		if err != nil {
			return fmt.Errorf("tsdb: open live block %s: %w (move it aside and remove it from the manifest to start without its data; see docs/operations.md)", id, err)
		}
		// Creation time survives a restart only as the block ID's
		// timestamp (wall clock at write); never in the future.
		db.blocks = append(db.blocks, newLiveBlock(h, rollups[id], min(idTime(id), now)))
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
	from := m.WALCheckpoint() + 1
	if from < first || from > last+1 {
		if from > last+1 {
			db.log.Warn("tsdb: manifest WAL checkpoint beyond the WAL; replaying all of it", "checkpoint", from-1, "first", first, "last", last)
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

// initManifest writes the first manifest generation of a data directory
// without one:
//   - a pre-manifest directory (flush.json present) is adopted: its staged
//     flush block is finished as before, every finished block directory
//     becomes live and the WAL checkpoint is flush.json's boundary − 1
//     (those blocks were exactly the committed flush blocks, disjoint);
//   - a directory without blocks gets an empty generation 1;
//   - finished block directories without a manifest or flush.json are
//     refused (ErrNoManifest): nothing tells which of them are live (a
//     lost MANIFEST after compactions leaves inputs and outputs side by
//     side), and adopting or deleting them could double count or destroy
//     data.
func (db *DB) initManifest() error {
	st, ok, err := readFlushState(db.dir)
	if err != nil {
		return err
	}
	edit := manifest.Edit{}
	if ok {
		if err := db.recoverStaging(st); err != nil {
			return err
		}
		ckpt := max(st.ReplayFrom-1, -1)
		edit.WALCheckpoint = &ckpt
	}
	names, err := dirNames(filepath.Join(db.dir, blocksDir))
	if err != nil {
		return err
	}
	for _, n := range names {
		if n == manifest.FileName || n == manifest.TempFileName || strings.HasSuffix(n, ".tmp") {
			continue
		}
		if fi, err := os.Stat(db.blocksPath(n)); err != nil || !fi.IsDir() {
			continue
		}
		edit.Add = append(edit.Add, n)
	}
	if len(edit.Add) > 0 && !ok {
		return fmt.Errorf("%w: %s holds %d block directories (e.g. %s) but no MANIFEST; restore blocks/MANIFEST from a backup, or move the block directories aside to start from the WAL alone (see docs/operations.md)",
			ErrNoManifest, filepath.Join(db.dir, blocksDir), len(edit.Add), edit.Add[0])
	}
	if err := db.man.Apply(edit); err != nil {
		return fmt.Errorf("tsdb: open: create manifest: %w", err)
	}
	if ok {
		db.log.Info("tsdb: adopted a pre-manifest data directory", "blocks", len(edit.Add), "walCheckpoint", *edit.WALCheckpoint)
	}
	return nil
}

func dirNames(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("tsdb: open: %w", err)
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	return names, nil
}

// recoverStaging (pre-manifest directories only) completes the rename of
// the flush block named by flush.json and removes any other staged block:
// those are from flushes that crashed before their commit point, so their
// data is still in the WAL.
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
			dst := db.blocksPath(e.Name())
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

func readFlushState(dir string) (flushState, bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, flushStateFile))
	if errors.Is(err, os.ErrNotExist) {
		return flushState{Version: 1}, false, nil
	}
	if err != nil {
		return flushState{}, false, fmt.Errorf("tsdb: read flush state: %w", err)
	}
	var st flushState
	if err := json.Unmarshal(b, &st); err != nil {
		return flushState{}, false, fmt.Errorf("tsdb: flush state %s: %w", filepath.Join(dir, flushStateFile), err)
	}
	if st.Version != 1 {
		return flushState{}, false, fmt.Errorf("tsdb: flush state version %d unsupported", st.Version)
	}
	return st, true, nil
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
	ap := applyState{hd: &histDecoder{}}
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
			if e.typ == entryHistogram {
				ap.hists = append(ap.hists, histSample{ms: ms, t: e.t, v: e.v, enc: e.delta})
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
// FlushBytes or its WAL longer than FlushWALBytes, then runs the
// compactions, downsamplings and retention deletions due (unless
// DisableCompaction), checking every CheckEvery, until ctx is done.
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
			if !db.opts.DisableCompaction {
				if err := db.Compact(); err != nil && !errors.Is(err, ErrClosed) {
					db.log.Error("tsdb: compaction failed; will re-plan", "err", err)
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

// pendingFlush is a flush in progress; if a step fails it stays, and the
// next Flush resumes it where it stopped.
type pendingFlush struct {
	h            *head
	boundary     int           // WAL segment of the swap: h's records are all below it
	created      int64         // Unix ms the blocks were written
	blocks       []blockHandle // written and opened, not yet live (written = true)
	written      bool
	checkpointed bool
	applied      bool
}

// Flush writes the head as blocks, one per owned partition it has data in
// (plan.Owner), and checkpoints the WAL. Writers are blocked only while the
// head is swapped for an empty one; readers see every piece of data exactly
// once throughout. The blocks become live, together with the WAL
// checkpoint, in one manifest edit: the flush's commit point. After a crash
// at any point, Open recovers a state where every acknowledged write is
// counted once.
func (db *DB) Flush() error {
	if db.closed.Load() {
		return ErrClosed
	}
	db.flushMu.Lock()
	defer db.flushMu.Unlock()
	if db.closed.Load() {
		return ErrClosed
	}
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
	// A flush that failed part-way goes first.
	p := db.pending
	if p == nil {
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
		p = &pendingFlush{h: db.active, boundary: n}
		db.frozen, db.frozenSeg = db.active, n
		db.active = newHead()
		db.stateMu.Unlock()
		db.epoch++
		db.commitMu.Unlock()
		db.pending = p
	}
	if err := db.hook("swapped"); err != nil {
		return err
	}
	if !p.written {
		bs, err := db.writeHead(p.h)
		if err != nil {
			return err
		}
		p.blocks, p.written, p.created = bs, true, db.opts.Now().UnixMilli()
	}
	if err := db.hook("block-written"); err != nil {
		return err
	}
	// Series records for the registry go into the segments kept after the
	// checkpoint before the commit point, so the registry (kinds, formats,
	// float order) survives the truncation whatever happens next.
	if !p.checkpointed {
		if err := db.checkpoint(); err != nil {
			return err
		}
		p.checkpointed = true
	}
	if err := db.hook("checkpointed"); err != nil {
		return err
	}
	if !p.applied {
		// The commit point: from here on Open reads the blocks and
		// replays only the segments the new head's writes went to.
		ckpt := p.boundary - 1
		edit := manifest.Edit{WALCheckpoint: &ckpt}
		for _, b := range p.blocks {
			edit.Add = append(edit.Add, b.meta().id)
		}
		if err := db.man.Apply(edit); err != nil {
			return fmt.Errorf("tsdb: flush: %w", err)
		}
		p.applied = true
	}
	if err := db.hook("manifest-applied"); err != nil {
		return err
	}
	db.stateMu.Lock()
	for _, b := range p.blocks {
		db.blocks = append(db.blocks, newLiveBlock(b, "", p.created))
	}
	db.frozen = nil
	db.stateMu.Unlock()
	db.pending = nil
	if err := db.hook("published"); err != nil {
		return err
	}
	if err := db.wal.TruncateBefore(p.boundary); err != nil {
		return fmt.Errorf("tsdb: flush: %w", err)
	}
	db.stats.flushes.Add(1)
	return nil
}

// writeHead writes h (frozen) as one block per owned partition it has data
// in, and opens them. On error it removes what it wrote (not live yet).
func (db *DB) writeHead(h *head) ([]blockHandle, error) {
	var out []blockHandle
	fail := func(err error) ([]blockHandle, error) {
		for _, b := range out {
			_ = b.close()
			_ = os.RemoveAll(b.meta().dir)
		}
		return nil, fmt.Errorf("tsdb: flush: %w", err)
	}
	bdir := filepath.Join(db.dir, blocksDir)
	for _, part := range db.headPartitions(h, db.opts.Now().UnixMilli()) {
		set := newHeadSeriesSet([]*head{h}, nil, series.Hints{Mint: part.MinT, Maxt: part.MaxT}, db.bucketMs)
		id, err := db.store.write(bdir, db.bucketMs, set)
		if err != nil {
			return fail(fmt.Errorf("write block: %w", err))
		}
		if id == "" {
			continue
		}
		b, err := db.store.open(db.blocksPath(id))
		if err != nil {
			_ = os.RemoveAll(db.blocksPath(id))
			return fail(fmt.Errorf("open block: %w", err))
		}
		out = append(out, b)
	}
	return out, nil
}

// headPartitions returns, sorted, the partitions (plan.Owner at now) that
// h holds data in. A float chunk's whole time span counts (a partition it
// merely spans writes no block).
func (db *DB) headPartitions(h *head, now int64) []plan.Partition {
	seen := map[int64]plan.Partition{}
	owner := func(t int64) plan.Partition {
		p, _ := plan.Owner(t, now, db.popts) // options validated at Open
		seen[p.MinT] = p
		return p
	}
	span := func(lo, hi int64) {
		for t := lo; t <= hi; {
			p := owner(t)
			if p.MaxT >= hi || p.MaxT == math.MaxInt64 {
				break
			}
			t = p.MaxT + 1
		}
	}
	var cur plan.Partition
	have := false
	for _, hs := range h.allSeries() {
		hs.ms.mu.Lock()
		for _, b := range hs.buckets {
			if !have || b.t < cur.MinT || b.t > cur.MaxT {
				cur, have = owner(b.t), true
			}
		}
		for _, c := range hs.chunks {
			span(c.mint, c.maxt)
		}
		if hs.cur != nil && hs.curSamples > 0 {
			span(hs.curMint, hs.curMaxt)
		}
		hs.ms.mu.Unlock()
	}
	out := make([]plan.Partition, 0, len(seen))
	for _, p := range seen {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b plan.Partition) int { return cmp.Compare(a.MinT, b.MinT) })
	return out
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

// Close stops compaction between jobs, waits for in-flight commits and
// flushes, flushes and closes the WAL (the head is not flushed: the WAL
// holds it), closes the blocks (waiting for their queriers), waits for the
// deletion of blocks a compaction removed, and releases the directory lock.
func (db *DB) Close() error {
	if db.closed.Swap(true) {
		return ErrClosed
	}
	db.compactMu.Lock()
	defer db.compactMu.Unlock()
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
		if err := b.h.close(); err != nil {
			errs = append(errs, err)
		}
	}
	db.blocks = nil
	db.stateMu.Unlock()
	if p := db.pending; p != nil {
		// Written by a flush that failed before publishing them: live
		// only if the edit was applied (then Open reads them), garbage
		// otherwise.
		for _, b := range p.blocks {
			_ = b.close()
		}
	}
	db.bg.Wait()
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
	HeadSamples        int64 // float and histogram samples
	HeadBytes          int64 // estimated head memory: sketch MemSize plus overheads
	HeadMinT, HeadMaxT int64 // active head's data range (MinT > MaxT: empty)
	Blocks             int   // live blocks
	BlockBytes         int64 // bytes on disk of the live blocks
	BlockBuckets       uint64
	Commits            uint64
	SketchMerges       uint64 // sketch deltas applied to the head
	FloatSamples       uint64 // float samples applied to the head
	HistogramSamples   uint64 // native histogram samples applied to the head
	FloatsDropped      uint64 // float and histogram samples dropped at apply: a concurrent commit won the timestamp
	ApplyErrors        uint64 // logged entries that could not be applied (incompatible state, unknown ref)
	Flushes            uint64
	FlushErrors        uint64
	LastFlushDuration  time.Duration
	ReplayedRecords    uint64
	// GarbageBlocks counts block directories Open deleted because the
	// manifest does not list them (unfinished writes, compaction inputs
	// whose deletion a crash interrupted, outputs of jobs that crashed).
	GarbageBlocks uint64
	// Compaction jobs applied, by kind (plan.Merge, Downsample, Delete).
	Compactions, Downsamples, RetentionDeletes uint64
	CompactionErrors                           uint64
	LastCompactionDuration                     time.Duration // of the last Compact that ran a job
	CompactionOutputs                          int64         // blocks written by compaction jobs
	BlocksRemoved                              int64         // blocks deleted after a job removed them
	BlocksRemoving                             int64         // removed blocks waiting for their readers
	ManifestGeneration                         uint64
	WAL                                        wal.Stats
}

// Stats returns a snapshot of the counters.
func (db *DB) Stats() Stats {
	s := Stats{
		Series:                 db.index.NumSeries(),
		Commits:                db.stats.commits.Load(),
		SketchMerges:           db.stats.sketchMerges.Load(),
		FloatSamples:           db.stats.floatSamples.Load(),
		HistogramSamples:       db.stats.histogramSamples.Load(),
		FloatsDropped:          db.stats.floatsDropped.Load(),
		ApplyErrors:            db.stats.applyErrors.Load(),
		Flushes:                db.stats.flushes.Load(),
		FlushErrors:            db.stats.flushErrors.Load(),
		LastFlushDuration:      time.Duration(db.stats.lastFlushNanos.Load()),
		ReplayedRecords:        db.stats.replayedRecords.Load(),
		GarbageBlocks:          db.stats.garbage.Load(),
		Compactions:            db.stats.merges.Load(),
		Downsamples:            db.stats.downsamples.Load(),
		RetentionDeletes:       db.stats.deletes.Load(),
		CompactionErrors:       db.stats.compactionErrors.Load(),
		LastCompactionDuration: time.Duration(db.stats.lastCompactNanos.Load()),
		CompactionOutputs:      db.stats.outputs.Load(),
		BlocksRemoved:          db.stats.removed.Load(),
		BlocksRemoving:         db.stats.removing.Load(),
		ManifestGeneration:     db.man.Generation(),
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
		s.BlockBytes += b.bytes
		s.BlockBuckets += b.m.buckets
	}
	db.stateMu.RUnlock()
	if !db.closed.Load() {
		s.WAL = db.wal.Stats()
	}
	return s
}
