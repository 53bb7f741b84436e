// Package tsdb stores one mergeable sketch state per series and time bucket,
// plus plain float samples, durably on local disk.
//
// A DB is an LSM-style store: writes are validated by an Appender, committed
// as one WAL record per batch (tsdb/wal) and merged into the in-memory head;
// Flush writes the whole head as an immutable block (tsdb/block) and
// checkpoints the WAL; a Querier merges head and blocks on read, so a bucket
// written from several places (a label arriving days late) reads as one
// merged state. docs/parts/tsdbcore-operations.md describes the design,
// crash safety and disk layout; tsdbcore-format.md the WAL record layout.
package tsdb
