package sketch

// NumericDistribution is the read-only view of a numeric distribution state
// (LogHistogram, TDigest) that the distance functions need. Implementations
// must not mutate the state in any of these methods.
type NumericDistribution interface {
	// Count returns the total weight observed.
	Count() float64
	// CDF returns the estimated fraction of the weight at or below x, in
	// [0, 1]; 0 for an empty state.
	CDF(x float64) float64
	// Quantile returns the estimated value at rank q in [0, 1]; NaN for an
	// empty state or q outside [0, 1].
	Quantile(q float64) float64
	// AppendBreakpoints appends to dst, in increasing order and without
	// duplicates, the points between which the estimated CDF is linear
	// (bucket bounds, centroid means, the minimum and maximum), and
	// returns the extended slice.
	AppendBreakpoints(dst []float64) []float64
}
