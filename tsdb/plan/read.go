package plan

import (
	"cmp"
	"slices"
	"strings"
)

// Part is a time range of one block that a query reads: the buckets of
// BlockID whose start lies in [MinT, MaxT].
type Part struct {
	BlockID    string
	MinT, MaxT int64
}

// Read returns the parts a query over bucket starts in [mint, maxt] must
// read so that every stored data point is counted exactly once, sorted by
// MinT then BlockID. For a block with rollups it reads, for each stretch of
// the window, the coarsest version whose resolution is ≤ resolution (0: any)
// and whose buckets lie wholly inside the window, and finer versions at the
// window's edges; it never reads two versions of the same time. Every other
// block (flush blocks, partitions without rollups) is read over the whole
// window. Data is counted by the start of the bucket it is stored in, so a
// coarse bucket that only exists coarse (no finer version) and starts inside
// the window counts whole.
func Read(blocks []Block, mint, maxt, resolution int64) []Part {
	if mint > maxt {
		return nil
	}
	var parts []Part
	for _, g := range groups(blocks) {
		versions := []Block{g.b}
		for _, r := range g.rollups {
			// A rollup must be coarser than its base (else it is useless
			// and, with equal width, ambiguous) and allowed by the query.
			if r.Resolution > g.b.Resolution && (resolution <= 0 || r.Resolution <= resolution) {
				versions = append(versions, r)
			}
		}
		// Coarsest first; equal resolutions keep the smaller ID only.
		slices.SortStableFunc(versions[1:], func(a, b Block) int {
			if c := cmp.Compare(b.Resolution, a.Resolution); c != 0 {
				return c
			}
			return strings.Compare(a.ID, b.ID)
		})
		versions = slices.CompactFunc(versions, func(a, b Block) bool { return a.Resolution == b.Resolution })
		parts = assign(parts, versions, 1, mint, maxt)
	}
	slices.SortFunc(parts, func(a, b Part) int {
		if c := cmp.Compare(a.MinT, b.MinT); c != 0 {
			return c
		}
		return strings.Compare(a.BlockID, b.BlockID)
	})
	return parts
}

// assign covers [lo, hi] with versions[i:], which run from coarse to fine;
// versions[0] is the base and takes whatever the rollups cannot.
func assign(parts []Part, versions []Block, i int, lo, hi int64) []Part {
	if lo > hi {
		return parts
	}
	if i >= len(versions) {
		return emit(parts, versions[0], lo, hi)
	}
	v := versions[i]
	// The aligned middle [a, b] holds only whole buckets of v.
	a := alignDown(lo, v.Resolution)
	if a < lo {
		a = satAdd(a, v.Resolution)
	}
	// At hi = MaxInt64 the saturated hi+1 makes the last bucket, which would
	// end past MaxInt64, count as not whole: conservative and safe.
	b := satAdd(alignDown(satAdd(hi, 1), v.Resolution), -1)
	if a > b || a < lo {
		return assign(parts, versions, i+1, lo, hi)
	}
	parts = assign(parts, versions, i+1, lo, a-1)
	parts = emit(parts, v, a, b)
	return assign(parts, versions, i+1, b+1, hi)
}

// emit adds a part clipped to the block's data; nothing if they miss.
func emit(parts []Part, b Block, lo, hi int64) []Part {
	lo, hi = max(lo, b.MinT), min(hi, b.MaxT)
	if lo > hi {
		return parts
	}
	return append(parts, Part{BlockID: b.ID, MinT: lo, MaxT: hi})
}
