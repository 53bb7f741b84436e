package tsdb

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/VictoriaMetrics/fastcache"

	"evalstore/tsdb/plan"
	"evalstore/tsdb/wal"
)

// Defaults for zero Options fields.
const (
	DefaultBucketSize = time.Minute
	DefaultRetention  = 400 * 24 * time.Hour
	DefaultMaxFuture  = 10 * time.Minute
	DefaultFlushAge   = 2 * time.Hour
	DefaultFlushBytes = 256 << 20
	DefaultFlushWAL   = 1 << 30
	DefaultCheckEvery = time.Minute
	// DefaultPartitionRaw is the span of a compacted raw block.
	DefaultPartitionRaw = 24 * time.Hour
	// DefaultFlushSettle is how long a flush block waits before it is
	// folded into its partition (see plan.Options.FlushSettle).
	DefaultFlushSettle = 3 * time.Hour
)

// Ticker is the part of *time.Ticker the Run loop uses, so tests drive it
// without the real clock.
type Ticker = wal.Ticker

// Options configures Open. The zero value is the production configuration.
type Options struct {
	// BucketSize is the width of a sketch bucket (default 1m). It must not
	// change for an existing data directory.
	BucketSize time.Duration
	// Retention refuses writes older than now−Retention (default 400d),
	// clips queries there and deletes blocks whose partition lies wholly
	// before it.
	Retention time.Duration
	// RetentionBytes, if positive, deletes the oldest partitions while the
	// live blocks exceed this many bytes (flush blocks are never deleted
	// for size).
	RetentionBytes int64
	// Levels are the downsampled levels, finest first (plan.Level; times
	// in ms). nil selects plan.DefaultOptions' levels (1h after 7d in
	// 7-day blocks with a 1h rollup of every raw day; 1d after 90d in
	// 28-day blocks with a 1d rollup of every 1h week); an empty non-nil
	// slice disables downsampling.
	Levels []plan.Level
	// PartitionRaw is the span of a compacted raw block (default 24h).
	PartitionRaw time.Duration
	// FlushSettle is how long a flush block stays before compaction folds
	// it into its partitions (default 3h; negative: at once). Larger
	// values rewrite partitions receiving late data less often.
	FlushSettle time.Duration
	// DisableCompaction stops Run from compacting (Compact still works).
	DisableCompaction bool
	// MaxFuture refuses writes newer than now+MaxFuture (default 10m).
	MaxFuture time.Duration
	// FlushAge flushes the head once its oldest unflushed write is this old
	// (default 2h); FlushBytes once its memory estimate exceeds this
	// (default 256 MiB). Both are checked by Run.
	FlushAge   time.Duration
	FlushBytes int64
	// FlushWALBytes flushes once the WAL holds about this many bytes
	// (default 1 GiB), which bounds disk use and replay time when many
	// deltas merge into few buckets (a small head, a large WAL).
	FlushWALBytes int64
	// CheckEvery is the period of Run's flush check and compaction
	// planning (default 1m).
	CheckEvery time.Duration
	// NewTicker drives Run (default time.NewTicker).
	NewTicker func(d time.Duration) Ticker
	// WAL configures the write-ahead log (default: fsync every commit,
	// group-committed).
	WAL wal.Options
	// Now is the clock for bounds checks and flush age (default time.Now).
	Now func() time.Time
	// Logger receives flush, replay and repair reports (default discard).
	Logger *slog.Logger
	// BlockCache, if set, caches decompressed block chunks (shared by
	// every block; see tsdb/block.Options).
	BlockCache *fastcache.Cache

	// flushHook, if set, is called between the steps of a flush with the
	// step's name; a non-nil return aborts the flush there (crash tests).
	flushHook func(step string) error
	// compactHook is the same for the steps of a compaction job.
	compactHook func(step string) error
	// blocks overrides the block layer (tests before tsdb/block exists).
	blocks blockStore
}

type realTicker struct{ t *time.Ticker }

func (t realTicker) C() <-chan time.Time { return t.t.C }
func (t realTicker) Stop()               { t.t.Stop() }

func (o Options) withDefaults() (Options, error) {
	if o.BucketSize == 0 {
		o.BucketSize = DefaultBucketSize
	}
	if o.BucketSize < time.Millisecond || o.BucketSize%time.Millisecond != 0 {
		return o, fmt.Errorf("tsdb: bucket size %v: must be a positive whole number of milliseconds", o.BucketSize)
	}
	if o.Retention == 0 {
		o.Retention = DefaultRetention
	}
	if o.MaxFuture == 0 {
		o.MaxFuture = DefaultMaxFuture
	}
	if o.Retention < 0 || o.MaxFuture < 0 {
		return o, fmt.Errorf("tsdb: negative retention %v or max future %v", o.Retention, o.MaxFuture)
	}
	if o.FlushAge == 0 {
		o.FlushAge = DefaultFlushAge
	}
	if o.FlushBytes == 0 {
		o.FlushBytes = DefaultFlushBytes
	}
	if o.FlushWALBytes == 0 {
		o.FlushWALBytes = DefaultFlushWAL
	}
	if o.CheckEvery == 0 {
		o.CheckEvery = DefaultCheckEvery
	}
	if o.NewTicker == nil {
		o.NewTicker = func(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.WAL.Logger == nil {
		o.WAL.Logger = o.Logger
	}
	if o.PartitionRaw == 0 {
		o.PartitionRaw = DefaultPartitionRaw
	}
	if o.FlushSettle == 0 {
		o.FlushSettle = DefaultFlushSettle
	}
	if o.RetentionBytes < 0 {
		return o, fmt.Errorf("tsdb: negative RetentionBytes %d", o.RetentionBytes)
	}
	if err := o.planOptions().Validate(); err != nil {
		return o, fmt.Errorf("tsdb: compaction options: %w", err)
	}
	return o, nil
}

// planOptions are the compaction planner's options derived from o (after
// withDefaults).
func (o Options) planOptions() plan.Options {
	p := plan.DefaultOptions()
	p.RawResolution = o.BucketSize.Milliseconds()
	p.PartitionRaw = o.PartitionRaw.Milliseconds()
	if o.Levels != nil {
		p.Levels = o.Levels
	}
	p.Retention = o.Retention.Milliseconds()
	p.RetentionBytes = o.RetentionBytes
	p.FlushSettle = max(o.FlushSettle.Milliseconds(), 0)
	return p
}
