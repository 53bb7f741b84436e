package tsdb

import "errors"

// Sentinel errors. Every error the Appender returns wraps exactly one of
// them (or sketch.ErrCorrupt / sketch.ErrFormat for a bad delta), so callers
// can map them to HTTP status codes with errors.Is.
var (
	// ErrOutOfBounds reports a timestamp older than now−Retention or newer
	// than now+MaxFuture.
	ErrOutOfBounds = errors.New("tsdb: timestamp out of bounds")
	// ErrOutOfOrderSample reports a float or histogram sample older than
	// the series' newest sample.
	ErrOutOfOrderSample = errors.New("tsdb: out of order sample")
	// ErrDuplicateSampleForTimestamp reports a float or histogram sample
	// whose timestamp equals the series' newest sample's with a different
	// value.
	ErrDuplicateSampleForTimestamp = errors.New("tsdb: duplicate sample for timestamp")
	// ErrInvalidHistogram reports a native histogram that is nil or fails
	// histogram.FloatHistogram.Validate; the message names the reason.
	ErrInvalidHistogram = errors.New("tsdb: invalid native histogram")
	// ErrFormatMismatch reports a write whose kind (sketch/float/histogram)
	// or sketch format differs from what the series already holds.
	ErrFormatMismatch = errors.New("tsdb: series kind or sketch format mismatch")
	// ErrInvalidLabels reports a label set that cannot name a series.
	ErrInvalidLabels = errors.New("tsdb: invalid labels")
	// ErrClosed reports use of a closed DB or a finished Appender.
	ErrClosed = errors.New("tsdb: closed")
	// ErrLocked reports a data directory already opened by another DB.
	ErrLocked = errors.New("tsdb: data directory locked by another process")
	// ErrCorruptRecord reports a WAL record that does not decode.
	ErrCorruptRecord = errors.New("tsdb: corrupt WAL record")
)

// ErrNoManifest reports a blocks directory holding finished blocks but no
// MANIFEST (and no pre-manifest flush.json to adopt): Open refuses to
// guess which blocks are live. See docs/operations.md for the recovery.
var ErrNoManifest = errors.New("tsdb: block directories without a manifest")
