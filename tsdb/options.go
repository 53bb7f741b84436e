package tsdb

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/VictoriaMetrics/fastcache"

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
)

// Ticker is the part of *time.Ticker the Run loop uses, so tests drive it
// without the real clock.
type Ticker = wal.Ticker

// Options configures Open. The zero value is the production configuration.
type Options struct {
	// BucketSize is the width of a sketch bucket (default 1m). It must not
	// change for an existing data directory.
	BucketSize time.Duration
	// Retention refuses writes older than now−Retention (default 400d).
	Retention time.Duration
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
	// CheckEvery is the period of Run's threshold check (default 1m).
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
	return o, nil
}
