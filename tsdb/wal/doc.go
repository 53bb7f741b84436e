// Package wal is the TSDB's write-ahead log: a segmented, append-only,
// checksummed log of opaque records that is replayed after a restart or crash.
//
// The TSDB encodes its own series and sketch-delta records; this package only
// frames them (length, type, CRC-32C), groups them into numbered segment files
// in one directory and makes them durable under a [SyncPolicy]. The byte layout
// is specified in docs/format.md (section "Write-ahead log").
//
// # Contract
//
//   - [Open] takes exclusive ownership of the directory (the TSDB's data-dir
//     lock guarantees one process); it repairs a torn tail of the last segment
//     and fails with an error wrapping [ErrCorrupt] on any other damage unless
//     [Options.Repair] is set.
//   - [WAL.Log] appends a batch of records in order. When it returns nil, every
//     record of the batch is durable according to [Options.Sync]: with
//     [SyncAlways] (the default) it has been fsynced, so "2xx means it is in the
//     WAL" holds across kill -9 and power loss. Concurrent callers share fsyncs
//     (group commit). A batch is not atomic across a crash: after a crash in the
//     middle of an unacknowledged Log, a prefix of its records may be replayed,
//     each record whole or not at all.
//   - After a write or fsync error the WAL is poisoned: every later Log,
//     NextSegment and Close returns that error. Linux may drop dirty pages after
//     a failed fsync, so a retry could report success for lost data; reopen
//     the WAL instead (Open re-reads what really is on disk).
//   - All methods are safe for concurrent use. [WAL.Replay] sees at least every
//     record whose Log returned before Replay was called.
//   - Record slices passed to the callback of [WAL.Replay] or returned by
//     [Reader.Record] are valid only until the next record is read; copy them
//     to keep them. Slices passed to Log may be reused as soon as Log returns.
//   - Segments are removed only by [WAL.TruncateBefore] (after a checkpoint) and
//     by [Options.Repair]; the caller must not remove segments that a
//     concurrent Replay is still reading.
package wal
