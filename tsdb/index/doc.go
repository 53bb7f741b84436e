// Package index maps label sets to series references and answers label
// matcher queries over them, in memory for the head and from an immutable
// on-disk encoding for blocks.
//
// The pieces:
//
//   - Index is the head's in-memory series index: GetOrCreate assigns stable
//     SeriesRefs, inverted postings answer Select, per-series time ranges
//     (Touch) scope the metadata queries LabelNames, LabelValues and Series,
//     and Delete drops series for retention and head truncation.
//   - Postings is the sorted-reference iterator every query returns, with the
//     lazy combinators Intersect, Merge and Without.
//   - WriteBlockIndex encodes a snapshot of series (labels plus opaque chunk
//     references) for an immutable block; OpenBlockIndex reads one from a byte
//     slice (typically mmapped) and answers the same queries. The byte layout
//     is documented in docs/format.md ("Block index format").
//
// Matcher semantics are Prometheus's: a series matches a selector when every
// matcher matches the series' value for the matcher's label name, where a
// missing label has the value "". So {foo=""}, {foo=~"|bar"} and {foo!="x"}
// also select series without a foo label. Matchers must be built with
// labels.NewMatcher (a regexp matcher built as a struct literal has no
// compiled regexp).
package index
