package tsdb

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"evalstore/tsdb/manifest"
	"evalstore/tsdb/plan"
)

func (db *DB) compactHook(step string) error {
	if db.opts.compactHook != nil {
		return db.opts.compactHook(step)
	}
	return nil
}

// Compact runs the compactions, downsamplings and retention deletions due
// now (plan.Compactions over the live blocks): each job writes its outputs
// with block.Compact, checks them, and becomes effective in ONE manifest
// edit that adds the outputs (with their rollup relation) and removes the
// inputs; readers switch to the outputs at once, and each removed block is
// closed and deleted once its last reader is done. A job that fails leaves
// the live set as it was; the next Compact re-plans. Close stops Compact
// between jobs and outputs.
func (db *DB) Compact() error {
	if db.closed.Load() {
		return ErrClosed
	}
	db.compactMu.Lock()
	defer db.compactMu.Unlock()
	start := time.Now()
	now := db.opts.Now().UnixMilli()
	db.stateMu.RLock()
	blocks := make([]plan.Block, len(db.blocks))
	byID := make(map[string]*liveBlock, len(db.blocks))
	for i, b := range db.blocks {
		blocks[i] = b.plan()
		byID[b.m.id] = b
	}
	db.stateMu.RUnlock()
	jobs := plan.Compactions(blocks, now, db.popts)
	for _, j := range jobs {
		if db.closed.Load() {
			return ErrClosed
		}
		if err := db.runJob(j, byID); err != nil {
			db.stats.compactionErrors.Add(1)
			return err
		}
	}
	if len(jobs) > 0 {
		db.stats.lastCompactNanos.Store(int64(time.Since(start)))
	}
	return nil
}

func (db *DB) runJob(j plan.Job, byID map[string]*liveBlock) error {
	outs := make([]blockHandle, len(j.Outputs))
	// discard removes outputs that never became live.
	discard := func() {
		for _, h := range outs {
			if h != nil {
				_ = h.close()
				_ = os.RemoveAll(h.meta().dir)
			}
		}
	}
	bdir := filepath.Join(db.dir, blocksDir)
	for i, o := range j.Outputs {
		if o.RollupOf >= 0 && outs[o.RollupOf] == nil {
			continue // the rollup of an empty base is empty
		}
		if db.closed.Load() {
			discard()
			return ErrClosed
		}
		inputs := make([]blockHandle, 0, len(o.Inputs))
		for _, id := range o.Inputs {
			b := byID[id]
			if b == nil {
				discard()
				return fmt.Errorf("tsdb: compact: input block %s is not live", id)
			}
			inputs = append(inputs, b.h)
		}
		id, err := db.store.compact(bdir, inputs, o.Resolution, o.MinT, o.MaxT)
		if err != nil {
			discard()
			return fmt.Errorf("tsdb: compact %s job: %w", j.Kind, err)
		}
		if id == "" {
			continue
		}
		h, err := db.store.open(db.blocksPath(id))
		if err == nil {
			outs[i] = h
			// Check every chunk before the inputs go away.
			err = h.verify()
		} else {
			_ = os.RemoveAll(db.blocksPath(id))
		}
		if err != nil {
			discard()
			return fmt.Errorf("tsdb: compact %s job: output %s: %w", j.Kind, id, err)
		}
		db.stats.outputs.Add(1)
		if err := db.compactHook("output-written"); err != nil {
			discard()
			return err
		}
	}
	if err := db.compactHook("outputs-written"); err != nil {
		discard()
		return err
	}
	edit := manifest.Edit{Remove: j.Inputs, Rollups: map[string]string{}}
	var added []*liveBlock
	for i, h := range outs {
		if h == nil {
			continue
		}
		id := h.meta().id
		edit.Add = append(edit.Add, id)
		rollupOf := ""
		if r := j.Outputs[i].RollupOf; r >= 0 {
			rollupOf = outs[r].meta().id
			edit.Rollups[id] = rollupOf
		}
		added = append(added, newLiveBlock(h, rollupOf, 0))
	}
	if err := db.man.Apply(edit); err != nil {
		if errors.Is(err, manifest.ErrInvalid) {
			discard()
		} else {
			// The manifest may be poisoned (state on disk unknown): the
			// outputs may be live on disk; Open sorts it out.
			for _, h := range outs {
				if h != nil {
					_ = h.close()
				}
			}
		}
		return fmt.Errorf("tsdb: compact %s job: %w", j.Kind, err)
	}
	removed := map[string]bool{}
	for _, id := range j.Inputs {
		removed[id] = true
	}
	var gone []*liveBlock
	db.stateMu.Lock()
	kept := db.blocks[:0]
	for _, b := range db.blocks {
		if removed[b.m.id] {
			gone = append(gone, b)
		} else {
			kept = append(kept, b)
		}
	}
	clear(db.blocks[len(kept):])
	db.blocks = append(kept, added...)
	db.stateMu.Unlock()
	switch j.Kind {
	case plan.Downsample:
		db.stats.downsamples.Add(1)
	case plan.Delete:
		db.stats.deletes.Add(1)
	default:
		db.stats.merges.Add(1)
	}
	if err := db.compactHook("applied"); err != nil {
		// A crash here: the removed blocks are garbage for the next Open.
		for _, b := range gone {
			_ = b.h.close()
		}
		return err
	}
	for _, b := range gone {
		db.stats.removing.Add(1)
		db.bg.Add(1)
		go func(b *liveBlock) {
			defer db.bg.Done()
			defer db.stats.removing.Add(-1)
			// close waits until the last querier pinning the block is done.
			if err := b.h.close(); err != nil {
				db.log.Warn("tsdb: closing removed block", "block", b.m.id, "err", err)
			}
			if err := os.RemoveAll(b.m.dir); err != nil {
				db.log.Warn("tsdb: deleting removed block; Open will retry", "block", b.m.id, "err", err)
				return
			}
			db.stats.removed.Add(1)
		}(b)
	}
	return nil
}
