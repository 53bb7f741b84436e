// Package plan decides, from block metadata alone, which compactions,
// downsamplings and retention deletions to run and which blocks (and time
// ranges of them) a query must read so every data point counts exactly once.
//
// It is pure logic: no I/O, no clock, no goroutines. The DB feeds it the live
// blocks (block metadata plus the rollup relation recorded in the manifest),
// runs each [Job] with block.Compact and applies it with ONE manifest edit
// that adds the job's outputs and removes its inputs, so a crash between jobs
// (or inside one) leaves a state from which re-planning converges.
//
// # Invariant
//
// Two live blocks never hold the same data point, except a rollup and its
// base (the same data at a coarser resolution, produced together). [Read]
// reads exactly one of a base and its rollups for any time, and every other
// block in full; every [Job] removes all of its inputs in the edit that adds
// its outputs, so the invariant is preserved by every step.
//
// The rules, with an example timeline, are in docs/operations.md (section
// "Compaction, downsampling and retention").
package plan
