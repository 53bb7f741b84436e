// Package block writes, reads and compacts the TSDB's immutable on-disk
// blocks: a directory of series index, checksummed chunk segments and
// meta.json holding one time range of sketch buckets and float samples.
//
// Integrity: Open reads meta.json, checks every file's size against it
// (truncation), verifies the whole index (tsdb/index checks every section's
// CRC-32C) and the chunk segment headers. Chunk checksums are verified
// lazily, on every read of a chunk, before anything in it is decoded; Verify
// checks every chunk up front. Every corruption is reported as an error
// wrapping ErrCorrupt that names the file and the offset (see CorruptError).
//
// Lifetime: a Block maps its files; Querier pins it, and Close waits until
// every querier it handed out has been closed before unmapping.
//
// docs/format.md ("Block format") documents every byte on disk.
package block
