package plan

import (
	"math"
	"slices"
	"strings"
)

// Block is the metadata the planner works on: block.Meta plus the rollup
// relation the manifest records.
type Block struct {
	ID string
	// MinT and MaxT are the first and last bucket start (or sample time) in
	// the block, inclusive.
	MinT, MaxT int64
	// Resolution is the bucket width in ms.
	Resolution int64
	// Level is 1 for a flush block (written from the head), more for
	// compaction outputs.
	Level int
	// Sources are the IDs of the flush blocks whose data the block holds.
	Sources []string
	// Bytes is the block's size on disk.
	Bytes int64
	// RollupOf is the ID of the block this one is a coarser copy of (from
	// the manifest), or empty.
	RollupOf string
	// Created is when the block was written (Unix ms), 0 if unknown. It
	// decides when a flush block has settled; without it the time its
	// newest bucket ended is used, which settles late-data blocks at once.
	Created int64
}

// Kind is what a job does.
type Kind int

const (
	// Merge folds flush blocks (and stray blocks) into partition blocks.
	Merge Kind = iota + 1
	// Downsample rewrites finer partitions as one partition of a coarser
	// level (folding any flush blocks of its range on the way).
	Downsample
	// Delete removes blocks for retention; it has no outputs.
	Delete
)

func (k Kind) String() string {
	switch k {
	case Merge:
		return "merge"
	case Downsample:
		return "downsample"
	case Delete:
		return "delete"
	}
	return "unknown"
}

// Output is one block a job writes: block.Compact(parent, Inputs,
// Resolution, MinT, MaxT). An empty result (block.ErrEmpty) is simply not
// added; if a base output is empty, so is its rollup.
type Output struct {
	// Inputs are the blocks to read, sorted.
	Inputs []string
	// Resolution is the output bucket width; MinT and MaxT the inclusive
	// range of bucket starts to keep (a whole partition).
	Resolution, MinT, MaxT int64
	// RollupOf is the index in Job.Outputs of the output this one is a
	// rollup copy of, or -1. The edit records it in Edit.Rollups.
	RollupOf int
	// Expect is the metadata the output should get. ID is empty (unknown
	// until written); MinT/MaxT are the partition range, the real block
	// reports the range of its data inside it; Bytes is 0.
	Expect Block
}

// Job is applied with exactly one manifest edit: Add the IDs of the
// non-empty Outputs (with their rollup relation), Remove Inputs.
type Job struct {
	Kind Kind
	// Inputs are every block the edit removes, sorted: compaction inputs
	// plus their old rollups, or the blocks a Delete drops.
	Inputs []string
	// Resolution is the finest output resolution (0 for Delete).
	Resolution int64
	// MinT and MaxT span the outputs' ranges (for Delete, the removed
	// blocks' data).
	MinT, MaxT int64
	Outputs    []Output
}

// group is a block with its attached rollups.
type group struct {
	b       Block
	rollups []Block
	// role
	flush bool
	lvl   int   // level index of a partition base, -1 if loose
	start int64 // partition start of a base
}

func (g *group) bytes() int64 {
	n := g.b.Bytes
	for _, r := range g.rollups {
		n += r.Bytes
	}
	return n
}

func (g *group) ids() []string {
	out := []string{g.b.ID}
	for _, r := range g.rollups {
		out = append(out, r.ID)
	}
	return out
}

// end is the last ms of raw time the group's data may stand for.
func (g *group) end(lv []level) int64 {
	if g.lvl >= 0 {
		return g.start + lv[g.lvl].part - 1
	}
	return satAdd(g.b.MaxT, max(g.b.Resolution, 1)-1)
}

func (g *group) first() int64 {
	if g.lvl >= 0 {
		return g.start
	}
	return g.b.MinT
}

func satAdd(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	if b < 0 && a < math.MinInt64-b {
		return math.MinInt64
	}
	return a + b
}

// groups attaches every rollup to its live base (a rollup whose base is not
// in blocks, or is itself a rollup, stands alone) and returns the groups
// sorted by ID.
func groups(blocks []Block) []*group {
	byID := make(map[string]Block, len(blocks))
	for _, b := range blocks {
		byID[b.ID] = b
	}
	isAttached := func(b Block) bool {
		base, ok := byID[b.RollupOf]
		return b.RollupOf != "" && ok && base.RollupOf == "" && base.ID != b.ID
	}
	gs := map[string]*group{}
	for _, b := range blocks {
		if !isAttached(b) {
			gs[b.ID] = &group{b: b, lvl: -1}
		}
	}
	for _, b := range blocks {
		if isAttached(b) {
			g := gs[b.RollupOf]
			g.rollups = append(g.rollups, b)
		}
	}
	out := make([]*group, 0, len(gs))
	for _, g := range gs {
		slices.SortFunc(g.rollups, func(a, b Block) int { return strings.Compare(a.ID, b.ID) })
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b *group) int { return strings.Compare(a.b.ID, b.b.ID) })
	return out
}
