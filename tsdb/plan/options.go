package plan

import (
	"errors"
	"fmt"
)

// Durations in Unix milliseconds.
const (
	Minute int64 = 60_000
	Hour   int64 = 60 * Minute
	Day    int64 = 24 * Hour
)

// ErrInvalid reports invalid Options.
var ErrInvalid = errors.New("plan: invalid options")

// Level is one downsampled level: time whose partition at this level is
// wholly older than After is stored at Resolution, in blocks covering one
// epoch-aligned Partition each.
type Level struct {
	// Resolution is the bucket width in ms; a multiple of the next finer
	// level's resolution.
	Resolution int64
	// After is the age (ms before now) a whole partition must have passed
	// before it moves to this level; larger than the finer level's.
	After int64
	// Partition is the length of one block of this level in ms: a multiple
	// of the finer level's partition and of Resolution.
	Partition int64
	// Rollup keeps, next to every partition of the next finer level, a copy
	// of it at this level's Resolution (so long windows over recent data read
	// few buckets). Resolution must divide the finer level's Partition.
	Rollup bool
}

// Options configures the planner. All times are in ms.
type Options struct {
	// RawResolution is the head's bucket size (flush blocks' resolution).
	RawResolution int64
	// PartitionRaw is the length of a raw partition block.
	PartitionRaw int64
	// Levels are the downsampled levels, finest first.
	Levels []Level
	// Retention drops partitions wholly older than now - Retention
	// (0: keep forever).
	Retention int64
	// RetentionBytes drops the oldest partitions while the live blocks
	// exceed it in total (0: no limit).
	RetentionBytes int64
	// FlushSettle is how long after it was written (Block.Created; if
	// unknown, after its newest bucket ended) a flush block may stay before
	// it is folded into partitions. Each fold rewrites the partitions it
	// touches, so a partition is rewritten about once per FlushSettle while
	// data keeps arriving for it; until then queries read the flush blocks.
	FlushSettle int64
}

// DefaultOptions are the defaults evalstore ships (see docs/operations.md for
// the reasoning): raw 1m buckets in 1-day partitions with a 1h rollup; after
// 7 days, 1h buckets in 7-day partitions with a 1d rollup; after 90 days, 1d
// buckets in 28-day partitions; 400 days of retention; flush blocks folded 3h
// after they were written.
func DefaultOptions() Options {
	return Options{
		RawResolution: Minute,
		PartitionRaw:  Day,
		Levels: []Level{
			{Resolution: Hour, After: 7 * Day, Partition: 7 * Day, Rollup: true},
			{Resolution: Day, After: 90 * Day, Partition: 28 * Day, Rollup: true},
		},
		Retention:   400 * Day,
		FlushSettle: 3 * Hour,
	}
}

// level is the internal view: index 0 is raw.
type level struct {
	res, after, part int64
	rollup           bool // this level keeps a rollup copy of the finer level's partitions
}

func (o Options) levels() []level {
	lv := []level{{res: o.RawResolution, part: o.PartitionRaw}}
	for _, l := range o.Levels {
		lv = append(lv, level{res: l.Resolution, after: l.After, part: l.Partition, rollup: l.Rollup})
	}
	return lv
}

// Validate checks the nesting rules the planner relies on: resolutions and
// partitions grow by whole multiples, so a partition of a coarser level is a
// union of whole partitions and whole buckets of every finer level.
func (o Options) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
	}
	if o.RawResolution <= 0 || o.PartitionRaw <= 0 || o.PartitionRaw%o.RawResolution != 0 {
		return bad("PartitionRaw %d must be a positive multiple of RawResolution %d", o.PartitionRaw, o.RawResolution)
	}
	if o.Retention < 0 || o.RetentionBytes < 0 || o.FlushSettle < 0 {
		return bad("Retention %d, RetentionBytes %d and FlushSettle %d must not be negative", o.Retention, o.RetentionBytes, o.FlushSettle)
	}
	lv := o.levels()
	for i := 1; i < len(lv); i++ {
		f, c := lv[i-1], lv[i]
		switch {
		case c.res <= f.res || c.res%f.res != 0:
			return bad("Levels[%d].Resolution %d must be a larger multiple of %d", i-1, c.res, f.res)
		case c.after <= f.after:
			return bad("Levels[%d].After %d must exceed %d", i-1, c.after, f.after)
		case c.part < f.part || c.part%f.part != 0 || c.part%c.res != 0:
			return bad("Levels[%d].Partition %d must be a multiple of %d and of its resolution %d", i-1, c.part, f.part, c.res)
		case c.rollup && f.part%c.res != 0:
			return bad("Levels[%d].Rollup: resolution %d must divide the finer partition %d", i-1, c.res, f.part)
		}
	}
	return nil
}

// floorDiv is floor(a / b) for b > 0, also for negative a.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// alignDown is the largest multiple of b not above a.
func alignDown(a, b int64) int64 { return floorDiv(a, b) * b }

// Partition is the partition that owns a time: where that time's data is
// stored once compacted.
type Partition struct {
	// Level is 0 for raw, i for Levels[i-1].
	Level int
	// Resolution is the level's bucket width.
	Resolution int64
	// MinT and MaxT are the partition's first and last ms.
	MinT, MaxT int64
}

// Owner returns the partition that owns time t at time now. The head should
// cut each flush at these boundaries (one flush block per owned partition
// with data, all added in one manifest edit): the planner only sees a
// block's [MinT, MaxT], so a flush block holding today's data and one label
// 30 days late would make every partition in between be rewritten.
func Owner(t, now int64, opts Options) (Partition, error) {
	if err := opts.Validate(); err != nil {
		return Partition{}, err
	}
	p := planner{lv: opts.levels(), now: now}
	i, s := p.own(t)
	return Partition{Level: i, Resolution: p.lv[i].res, MinT: s, MaxT: satAdd(s, p.lv[i].part-1)}, nil
}
