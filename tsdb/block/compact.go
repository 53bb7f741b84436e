package block

import (
	"context"
	"fmt"
	"slices"

	"evalstore/tsdb/series"
)

// Compact merges blocks, which may overlap in time and share series, into
// one new block in parent at the given resolution, keeping only buckets
// whose start and samples whose timestamp lie in [mint, maxt] (selected
// before re-keying, so a cut inside a coarse bucket keeps only part of its
// data; callers align mint and maxt+1 to resolution). resolution must be a
// multiple of every input's (equal keeps the resolution, larger
// downsamples). Buckets with the same (series, start) are merged with the
// sketch's DecodeAndMerge; float samples with equal timestamps are
// deduplicated keeping the sample of the earliest block in blocks.
//
// The result has Level 1 + the largest input level and Sources the sorted
// union of the inputs' sources. The inputs are left as they are (deleting
// them is the caller's job, after the result is durable). With no data in
// range Compact returns ErrEmpty and creates nothing.
func Compact(parent string, blocks []*Block, resolution, mint, maxt int64) (meta Meta, err error) {
	if len(blocks) == 0 {
		return Meta{}, ErrEmpty
	}
	if resolution <= 0 {
		return Meta{}, fmt.Errorf("%w: resolution %d", ErrInvalid, resolution)
	}
	if mint > maxt {
		return Meta{}, fmt.Errorf("%w: mint %d after maxt %d", ErrInvalid, mint, maxt)
	}
	level := 0
	var sources []string
	for _, b := range blocks {
		m := b.Meta()
		if resolution < m.Resolution || resolution%m.Resolution != 0 {
			return Meta{}, fmt.Errorf("%w: resolution %d is not a multiple of block %s's %d", ErrInvalid, resolution, m.ID, m.Resolution)
		}
		level = max(level, m.Level)
		sources = append(sources, m.Sources...)
	}
	slices.Sort(sources)
	sources = slices.Compact(sources)

	sets := make([]series.SeriesSet, 0, len(blocks))
	qs := make([]series.Querier, 0, len(blocks))
	defer func() {
		for _, q := range qs {
			if cerr := q.Close(); cerr != nil && err == nil {
				meta, err = Meta{}, fmt.Errorf("compact: close querier: %w", cerr)
			}
		}
	}()
	for _, b := range blocks {
		q, err := b.Querier(mint, maxt)
		if err != nil {
			return Meta{}, err
		}
		qs = append(qs, q)
		sets = append(sets, q.Select(context.Background(), series.Hints{Mint: mint, Maxt: maxt}))
	}
	return write(parent, resolution, MergeSeriesSets(sets...), level+1, sources, maxSegmentSize)
}
