// Package tsdb stores one mergeable sketch state per series and time bucket,
// plus plain float samples and native histogram samples, durably on local
// disk.
//
// A DB is an LSM-style store: writes are validated by an Appender, committed
// as one WAL record per batch (tsdb/wal) and merged into the in-memory head;
// Flush writes the head as immutable blocks (tsdb/block), one per owned
// partition (tsdb/plan), and makes them live together with the WAL
// checkpoint in one manifest edit (tsdb/manifest); Compact (run by Run)
// folds flush blocks into partitions, downsamples and applies retention,
// one manifest edit per job; a Querier merges head and blocks on read,
// reading each time range from exactly one version (plan.Read), so a
// bucket written from several places (a label arriving days late) reads
// as one merged state. docs/operations.md and
// compact-operations.md describe the design, crash safety and disk layout;
// tsdbcore-format.md the WAL record layout.
package tsdb
