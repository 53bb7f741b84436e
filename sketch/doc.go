// Package sketch implements the mergeable sketch states that evalstore stores
// per series and time bucket, their binary encodings, and the metrics,
// statistical tests and distribution distances derived from them.
//
// Every type follows one contract:
//
//   - Add/Observe records one observation; Merge folds another state of the
//     same type in. Merge is associative and commutative (exactly so for the
//     integer-count types; up to float rounding for float sums).
//   - AppendBinary appends the encoding to the caller's buffer; the first
//     byte is a Format id. DecodeAndMerge merges an encoded state straight
//     from bytes; UnmarshalBinary replaces the receiver with one. Both leave
//     the receiver unchanged when they return an error, which wraps
//     ErrCorrupt or ErrFormat.
//   - Reading (metrics, quantiles, encoding) never mutates the state, so a
//     sealed state may be read by many goroutines at once. Writing (Add,
//     Merge, Reset, decoding into) needs exclusive access: the types are not
//     safe for concurrent mutation.
package sketch
