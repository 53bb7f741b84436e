// Package manifest records, in one atomically replaced and checksummed file,
// which blocks are live and which WAL segments they already contain.
//
// The set of live blocks must change atomically: a compaction that adds its
// outputs and removes its inputs in two steps would, after a crash between
// them, either double count (inputs and outputs both read) or lose data.
// Every change is therefore one [Edit] applied with [Manifest.Apply], which
// writes the next generation of the MANIFEST file to a temporary file, fsyncs
// it, renames it over the old one and fsyncs the directory, and only then
// updates memory. A crash at any point leaves either the old or the new
// generation on disk, never a mix.
//
// # Contract
//
//   - [Load] of a directory without a MANIFEST returns an empty manifest
//     (generation 0, no blocks, WAL checkpoint -1). A MANIFEST that fails its
//     checksum or its validation is reported with an error wrapping
//     [ErrCorrupt]; a newer format version with [ErrUnsupportedVersion].
//   - [Manifest.Apply] validates the edit against the current state (an
//     invalid edit wraps [ErrInvalid] and changes nothing). If writing fails
//     before the rename, nothing changed on disk or in memory and Apply may
//     be called again. If the rename or the directory fsync fails, the disk
//     may hold either generation: the manifest is poisoned (every later
//     Apply returns that error) and the caller must restart (Load again),
//     and must not delete any block directory the failed edit mentioned.
//   - The WAL checkpoint only moves forward: segments numbered ≤ it are fully
//     contained in live blocks and are skipped by WAL replay.
//   - Block directories not listed are garbage ([Manifest.Garbage]) and are
//     deleted by the DB at startup, before anything is read.
//   - All methods are safe for concurrent use.
//
// The file layout is specified in docs/format.md (section "Manifest").
package manifest
