package wal

import (
	"fmt"
	"log/slog"
	"os"
	"time"
)

// SyncPolicy says when Log's records reach stable storage.
type SyncPolicy int

const (
	// SyncAlways fsyncs before Log returns. Concurrent Log calls share one
	// fsync (group commit). Nothing acknowledged is lost on kill -9, OS
	// crash or power loss.
	SyncAlways SyncPolicy = iota
	// SyncInterval returns from Log after write(2); a background loop fsyncs
	// every Options.SyncEvery. Acknowledged records survive kill -9, but an
	// OS crash or power loss may lose those acknowledged in the last
	// SyncEvery plus one fsync's duration.
	SyncInterval
	// SyncNever returns after write(2) and fsyncs only when a segment is
	// completed and at Close. For tests and bulk imports that can be redone:
	// survives kill -9, not power loss.
	SyncNever
)

func (p SyncPolicy) String() string {
	switch p {
	case SyncAlways:
		return "always"
	case SyncInterval:
		return "interval"
	case SyncNever:
		return "never"
	}
	return fmt.Sprintf("SyncPolicy(%d)", int(p))
}

// Defaults for zero Options fields.
const (
	DefaultSegmentSize = 64 << 20
	DefaultSyncEvery   = 100 * time.Millisecond
	// MinSegmentSize keeps segments large enough to hold typical batches.
	MinSegmentSize = 1 << 10
)

// Ticker is the part of *time.Ticker the SyncInterval loop uses, so tests can
// drive it without the real clock.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

// Options configures Open. The zero value is the production configuration:
// 64 MiB segments, SyncAlways, strict corruption handling.
type Options struct {
	// SegmentSize is the size at which a new segment is started; a segment
	// exceeds it only to hold a single record larger than it.
	SegmentSize int64
	// Sync is the fsync policy (default SyncAlways).
	Sync SyncPolicy
	// SyncEvery is the SyncInterval period (default DefaultSyncEvery).
	SyncEvery time.Duration
	// Repair makes Open read every segment and truncate the log at the first
	// corruption, deleting every later segment: records after the damage are
	// lost. For operators, after Open or Replay reported ErrCorrupt. A torn
	// tail of the last segment is repaired with or without it.
	Repair bool
	// Logger receives repair and truncation reports; nil discards them.
	Logger *slog.Logger
	// Now measures fsync durations (default time.Now).
	Now func() time.Time
	// NewTicker drives the SyncInterval loop (default time.NewTicker).
	NewTicker func(d time.Duration) Ticker

	// Test hooks.
	syncFile      func(f *os.File) error
	maxRecordSize int
}

type realTicker struct{ t *time.Ticker }

func (t realTicker) C() <-chan time.Time { return t.t.C }
func (t realTicker) Stop()               { t.t.Stop() }

func (o Options) withDefaults() (Options, error) {
	if o.SegmentSize == 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.SegmentSize < MinSegmentSize {
		return o, fmt.Errorf("wal: segment size %d below minimum %d: %w", o.SegmentSize, MinSegmentSize, ErrInvalid)
	}
	switch o.Sync {
	case SyncAlways, SyncInterval, SyncNever:
	default:
		return o, fmt.Errorf("wal: sync policy %v: %w", o.Sync, ErrInvalid)
	}
	if o.SyncEvery == 0 {
		o.SyncEvery = DefaultSyncEvery
	}
	if o.SyncEvery < 0 {
		return o, fmt.Errorf("wal: sync interval %v: %w", o.SyncEvery, ErrInvalid)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.NewTicker == nil {
		o.NewTicker = func(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }
	}
	if o.syncFile == nil {
		o.syncFile = (*os.File).Sync
	}
	if o.maxRecordSize == 0 {
		o.maxRecordSize = MaxRecordSize
	}
	return o, nil
}
