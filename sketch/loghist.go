package sketch

import (
	"fmt"
	"math"
	"unsafe"
)

// Schema limits and defaults of LogHistogram. The schemas are those of
// Prometheus native histograms: schema s splits every power of two into 2^s
// buckets (for s < 0, one bucket spans 2^-s powers of two).
const (
	MinLogHistogramSchema int32 = -4
	MaxLogHistogramSchema int32 = 8

	// DefaultRelativeError is the quantile accuracy NewDefaultLogHistogram
	// guarantees.
	DefaultRelativeError = 0.01
	// DefaultLogHistogramSchema is SchemaForRelativeError(DefaultRelativeError).
	DefaultLogHistogramSchema int32 = 6
	// DefaultZeroThreshold is Prometheus's default zero bucket half-width,
	// 2^-128, a bucket bound in every schema.
	DefaultZeroThreshold = 0x1p-128
)

// LogHistogram is a relative-error histogram with exponential buckets whose
// bucket math is exactly that of Prometheus native histograms, so a value
// observed here lands in the bucket a Prometheus client puts it in and
// native histograms convert both ways without loss.
//
// Positive bucket i at schema s holds (b^(i-1), b^i] with b = 2^(2^-s);
// negative values go to the mirrored negative bucket of their absolute
// value; values with |x| <= ZeroThreshold go to the zero bucket. Count,
// sum, minimum and maximum are kept exactly.
//
// Merging states of different schemas reduces the finer one to the coarser
// schema; different zero thresholds resolve to the wider one (see Merge).
// An empty state is the identity of Merge: merging into it adopts the other
// state's schema and zero threshold. The zero value is an empty state of
// schema 0 with zero threshold 0.
type LogHistogram struct {
	schema int32
	zt     float64 // zero threshold
	zero   uint64  // observations in the zero bucket
	count  uint64  // observations placed in a bucket (zero bucket included)
	nan    uint64  // NaN observations carried over from Prometheus: counted, in no bucket
	sum    float64
	min    float64 // valid when count > 0
	max    float64
	pos    logStore
	neg    logStore
}

var (
	_ Sketch              = (*LogHistogram)(nil)
	_ NumericDistribution = (*LogHistogram)(nil)
)

// Span is a run of consecutive bucket indices, as in Prometheus: Offset is
// the first index for the first span and the gap (>= 0) after the previous
// span otherwise.
type Span struct {
	Offset int32
	Length uint32
}

// NativeHistogram mirrors Prometheus's integer native histogram
// (model/histogram.Histogram with an exponential schema). Bucket counts are
// delta-encoded: the first is absolute, each later one is the difference to
// the previous one. Count exceeds the bucket total only by NaN observations,
// which Prometheus allows only when Sum is NaN.
type NativeHistogram struct {
	Schema         int32
	ZeroThreshold  float64
	ZeroCount      uint64
	Count          uint64
	Sum            float64
	PositiveSpans  []Span
	PositiveDeltas []int64
	NegativeSpans  []Span
	NegativeDeltas []int64
}

// NativeFloatHistogram mirrors Prometheus's float native histogram
// (model/histogram.FloatHistogram) with absolute counts. LogHistogram keeps
// integer counts, so every count must be a non-negative integer.
type NativeFloatHistogram struct {
	Schema         int32
	ZeroThreshold  float64
	ZeroCount      float64
	Count          float64
	Sum            float64
	PositiveSpans  []Span
	PositiveCounts []float64
	NegativeSpans  []Span
	NegativeCounts []float64
}

// expBoundFracs are Prometheus's bucket bounds for schema 8 within one power
// of two, as fractions in [0.5, 1): entry j is about 2^(j/256-1). Schema s > 0
// uses every 2^(8-s)-th entry, which is exactly Prometheus's own table for s
// (it builds each coarser table as a subset of the finer one). The values are
// Prometheus's, not recomputed: they come from repeated multiplication, 178
// of them are not the correctly rounded 2^(j/256-1), and bucket membership
// must agree bit for bit. The table is never written.
var expBoundFracs = [256]float64{
	0x1p-01, 0x1.00b1afa5abcbfp-01, 0x1.0163da9fb3335p-01, 0x1.02168143b0281p-01,
	0x1.02c9a3e778061p-01, 0x1.037d42e11bbccp-01, 0x1.04315e86e7f84p-01, 0x1.04e5f72f654b1p-01,
	0x1.059b0d3158574p-01, 0x1.0650a0e3c1f89p-01, 0x1.0706b29ddf6ddp-01, 0x1.07bd42b72a836p-01,
	0x1.0874518759bc8p-01, 0x1.092bdf66607ep-01, 0x1.09e3ecac6f383p-01, 0x1.0a9c79b1f3919p-01,
	0x1.0b5586cf9890fp-01, 0x1.0c0f145e46c85p-01, 0x1.0cc922b7247f6p-01, 0x1.0d83b23395deap-01,
	0x1.0e3ec32d3d1a2p-01, 0x1.0efa55fdfa9c5p-01, 0x1.0fb66affed31ap-01, 0x1.1073028d7233dp-01,
	0x1.11301d0125b5p-01, 0x1.11edbab5e2ab5p-01, 0x1.12abdc06c31cbp-01, 0x1.136a814f204aap-01,
	0x1.1429aaea92ddfp-01, 0x1.14e95934f312dp-01, 0x1.15a98c8a58e5p-01, 0x1.166a45471c3c1p-01,
	0x1.172b83c7d517bp-01, 0x1.17ed48695bbcp-01, 0x1.18af9388c8de9p-01, 0x1.1972658375d2fp-01,
	0x1.1a35beb6fcb75p-01, 0x1.1af99f8138a1cp-01, 0x1.1bbe084045cd3p-01, 0x1.1c82f95281c6bp-01,
	0x1.1d4873168b9aap-01, 0x1.1e0e75eb44026p-01, 0x1.1ed5022fcd91cp-01, 0x1.1f9c18438ce4cp-01,
	0x1.2063b88628cd6p-01, 0x1.212be3578a819p-01, 0x1.21f49917ddc95p-01, 0x1.22bdda27912dp-01,
	0x1.2387a6e756238p-01, 0x1.2451ffb82140ap-01, 0x1.251ce4fb2a63ep-01, 0x1.25e85711ece74p-01,
	0x1.26b4565e27cddp-01, 0x1.2780e341ddf2ap-01, 0x1.284dfe1f5638p-01, 0x1.291ba7591bb6fp-01,
	0x1.29e9df51fdee1p-01, 0x1.2ab8a66d10f13p-01, 0x1.2b87fd0dad98fp-01, 0x1.2c57e39771b2ep-01,
	0x1.2d285a6e4030bp-01, 0x1.2df961f641589p-01, 0x1.2ecafa93e2f55p-01, 0x1.2f9d24abd886ap-01,
	0x1.306fe0a31b715p-01, 0x1.31432edeeb2fdp-01, 0x1.32170fc4cd831p-01, 0x1.32eb83ba8ea32p-01,
	0x1.33c08b26416ffp-01, 0x1.3496266e3fa2dp-01, 0x1.356c55f929ffp-01, 0x1.36431a2de883ap-01,
	0x1.371a7373aa9cap-01, 0x1.37f26231e7549p-01, 0x1.38cae6d05d864p-01, 0x1.39a401b7140edp-01,
	0x1.3a7db34e59ff6p-01, 0x1.3b57fbfec6cf4p-01, 0x1.3c32dc313a8e3p-01, 0x1.3d0e544ede172p-01,
	0x1.3dea64c123422p-01, 0x1.3ec70df1c5175p-01, 0x1.3fa4504ac801bp-01, 0x1.40822c367a024p-01,
	0x1.4160a21f72e2ap-01, 0x1.423fb2709468ap-01, 0x1.431f5d950a896p-01, 0x1.43ffa3f84b9d4p-01,
	0x1.44e086061892dp-01, 0x1.45c2042a7d232p-01, 0x1.46a41ed1d0057p-01, 0x1.4786d668b3236p-01,
	0x1.486a2b5c13cdp-01, 0x1.494e1e192aed2p-01, 0x1.4a32af0d7d3dep-01, 0x1.4b17dea6db7d7p-01,
	0x1.4bfdad5362a27p-01, 0x1.4ce41b817c114p-01, 0x1.4dcb299fddd0dp-01, 0x1.4eb2d81d8abfep-01,
	0x1.4f9b2769d2ca7p-01, 0x1.508417f4531efp-01, 0x1.516daa2cf6642p-01, 0x1.5257de83f4eefp-01,
	0x1.5342b569d4f81p-01, 0x1.542e2f4f6ad27p-01, 0x1.551a4ca5d920dp-01, 0x1.56070dde910dp-01,
	0x1.56f4736b527dap-01, 0x1.57e27dbe2c4cfp-01, 0x1.58d12d497c7fcp-01, 0x1.59c0827ff07cbp-01,
	0x1.5ab07dd485429p-01, 0x1.5ba11fba87a02p-01, 0x1.5c9268a5946b6p-01, 0x1.5d84590998b92p-01,
	0x1.5e76f15ad2148p-01, 0x1.5f6a320dceb71p-01, 0x1.605e1b976dc08p-01, 0x1.6152ae6cdf6f4p-01,
	0x1.6247eb03a5584p-01, 0x1.633dd1d1929fdp-01, 0x1.6434634ccc31ep-01, 0x1.652b9febc8fb5p-01,
	0x1.6623882552224p-01, 0x1.671c1c70833f5p-01, 0x1.68155d44ca972p-01, 0x1.690f4b19e9537p-01,
	0x1.6a09e667f3bccp-01, 0x1.6b052fa75173ep-01, 0x1.6c012750bdabep-01, 0x1.6cfdcddd47645p-01,
	0x1.6dfb23c651a2ep-01, 0x1.6ef9298593ae4p-01, 0x1.6ff7df9519482p-01, 0x1.70f7466f42e85p-01,
	0x1.71f75e8ec5f73p-01, 0x1.72f8286ead089p-01, 0x1.73f9a48a58172p-01, 0x1.74fbd35d7cbfcp-01,
	0x1.75feb564267c8p-01, 0x1.77024b1ab6e09p-01, 0x1.780694fde5d3ep-01, 0x1.790b938ac1cf5p-01,
	0x1.7a11473eb0186p-01, 0x1.7b17b0976cfdap-01, 0x1.7c1ed0130c131p-01, 0x1.7d26a62ff86efp-01,
	0x1.7e2f336cf4e61p-01, 0x1.7f3878491c49p-01, 0x1.80427543e1a1p-01, 0x1.814d2add106d8p-01,
	0x1.82589994cce11p-01, 0x1.8364c1eb941f6p-01, 0x1.8471a4623c7abp-01, 0x1.857f4179f5b1fp-01,
	0x1.868d99b4492ebp-01, 0x1.879cad931a435p-01, 0x1.88ac7d98a6697p-01, 0x1.89bd0a478580dp-01,
	0x1.8ace5422aa0dbp-01, 0x1.8be05bad61778p-01, 0x1.8cf3216b5448bp-01, 0x1.8e06a5e0866d8p-01,
	0x1.8f1ae99157736p-01, 0x1.902fed0282c8ap-01, 0x1.9145b0b91ffc5p-01, 0x1.925c353aa2fe2p-01,
	0x1.93737b0cdc5e4p-01, 0x1.948b82b5f98e4p-01, 0x1.95a44cbc8520dp-01, 0x1.96bdd9a7670b1p-01,
	0x1.97d829fde4e4fp-01, 0x1.98f33e47a22a2p-01, 0x1.9a0f170ca07b8p-01, 0x1.9b2bb4d53fe0bp-01,
	0x1.9c49182a3f08fp-01, 0x1.9d674194bb8d4p-01, 0x1.9e86319e32321p-01, 0x1.9fa5e8d07f29cp-01,
	0x1.a0c667b5de564p-01, 0x1.a1e7aed8eb8bbp-01, 0x1.a309bec4a2d32p-01, 0x1.a42c980460ad7p-01,
	0x1.a5503b23e255bp-01, 0x1.a674a8af46051p-01, 0x1.a799e1330b356p-01, 0x1.a8bfe53c12e57p-01,
	0x1.a9e6b5579fdbep-01, 0x1.ab0e521356eb9p-01, 0x1.ac36bbfd3f378p-01, 0x1.ad5ff3a3c2773p-01,
	0x1.ae89f995ad3acp-01, 0x1.afb4ce622f2fep-01, 0x1.b0e07298db663p-01, 0x1.b20ce6c9a895p-01,
	0x1.b33a2b84f15fap-01, 0x1.b468415b749bp-01, 0x1.b59728de55938p-01, 0x1.b6c6e29f1c529p-01,
	0x1.b7f76f2fb5e45p-01, 0x1.b928cf22749e2p-01, 0x1.ba5b030a10647p-01, 0x1.bb8e0b79a6f1dp-01,
	0x1.bcc1e904bc1dp-01, 0x1.bdf69c3f3a205p-01, 0x1.bf2c25bd71e06p-01, 0x1.c06286141b33bp-01,
	0x1.c199bdd85529ap-01, 0x1.c2d1cd9fa652ap-01, 0x1.c40ab5fffd078p-01, 0x1.c544778fafb2p-01,
	0x1.c67f12e57d149p-01, 0x1.c7ba88988c931p-01, 0x1.c8f6d9406e7b2p-01, 0x1.ca3405751c4d8p-01,
	0x1.cb720dcef9066p-01, 0x1.ccb0f2e6d1672p-01, 0x1.cdf0b555dc3f6p-01, 0x1.cf3155b5bab7p-01,
	0x1.d072d4a078979p-01, 0x1.d1b532b08c966p-01, 0x1.d2f87080d89eep-01, 0x1.d43c8eacaa1d3p-01,
	0x1.d5818dcfba486p-01, 0x1.d6c76e862e6d2p-01, 0x1.d80e316c98396p-01, 0x1.d955d71ff6074p-01,
	0x1.da9e603db3284p-01, 0x1.dbe7cd63a8313p-01, 0x1.dd321f301b45ep-01, 0x1.de7d5641c0656p-01,
	0x1.dfc97337b9b5dp-01, 0x1.e11676b197d16p-01, 0x1.e264614f5a126p-01, 0x1.e3b333b16ee0fp-01,
	0x1.e502ee78b3ff5p-01, 0x1.e653924676d75p-01, 0x1.e7a51fbc74c81p-01, 0x1.e8f7977cdb73ep-01,
	0x1.ea4afa2a490d8p-01, 0x1.eb9f4867cca6dp-01, 0x1.ecf482d8e67eep-01, 0x1.ee4aaa218850ep-01,
	0x1.efa1bee615a26p-01, 0x1.f0f9c1cb64129p-01, 0x1.f252b376bba95p-01, 0x1.f3ac948dd7272p-01,
	0x1.f50765b6e453ep-01, 0x1.f6632798844f6p-01, 0x1.f7bfdad9cbe1p-01, 0x1.f91d802243c86p-01,
	0x1.fa7c1819e90d6p-01, 0x1.fbdba3692d512p-01, 0x1.fd3c22b8f71eep-01, 0x1.fe9d96b2a23d6p-01,
}

// schemaRelativeError is the quantile guarantee of schema s: the bucket
// point 2u/(b+1) is within (b-1)/(b+1) of every value in (u/b, u]. Expm1
// keeps the fine schemas, where b is barely above 1, accurate.
func schemaRelativeError(s int32) float64 {
	e := math.Expm1(math.Ln2 * math.Exp2(float64(-s)))
	return e / (e + 2)
}

// SchemaForRelativeError returns the coarsest schema whose relative error
// guarantee (b-1)/(b+1), b = 2^(2^-s), is at most alpha. Alpha must be in
// (0, 1) and at least schema 8's guarantee (about 0.00135).
func SchemaForRelativeError(alpha float64) (int32, error) {
	if !(alpha > 0 && alpha < 1) {
		return 0, fmt.Errorf("%w: relative error %v must be in (0, 1)", ErrInvalid, alpha)
	}
	for s := MinLogHistogramSchema; s <= MaxLogHistogramSchema; s++ {
		if schemaRelativeError(s) <= alpha {
			return s, nil
		}
	}
	return 0, fmt.Errorf("%w: relative error %v is below the finest schema's %v", ErrInvalid, alpha, schemaRelativeError(MaxLogHistogramSchema))
}

func validSchema(s int32) bool { return s >= MinLogHistogramSchema && s <= MaxLogHistogramSchema }

// bucketIndex returns the bucket of |x| = ax > 0 the way Prometheus clients
// compute it, so both sides agree on values at and next to bucket bounds.
// Infinity goes one bucket above the one holding math.MaxFloat64.
func bucketIndex(ax float64, s int32) int32 {
	inf := ax > math.MaxFloat64
	if inf {
		ax = math.MaxFloat64
	}
	frac, exp := math.Frexp(ax)
	var k int32
	if s > 0 {
		// Count the schema's bounds below frac (Prometheus's binary
		// search result). A cubic fit of log2(2·frac) (error under 0.34
		// of a schema-8 bucket) guesses the count; the two loops then
		// make it exact against the table, usually with one comparison
		// each, which is several times faster than a binary search.
		n := int32(1) << s
		stride := uint(8 - s)
		m := 2*frac - 1
		g := int32(float64(n) * (m * (1.4235 + m*(-0.5878+m*0.1656))))
		g = min(max(g, 0), n)
		for g > 0 && expBoundFracs[((g-1)<<stride)&255] >= frac {
			g--
		}
		for g < n && expBoundFracs[(g<<stride)&255] < frac {
			g++
		}
		k = g + int32(exp-1)<<s
	} else {
		k = int32(exp)
		if frac == 0.5 {
			k--
		}
		k = (k + int32(1)<<-s - 1) >> -s
	}
	if inf {
		k++
	}
	return k
}

// bucketBound returns the upper bound of bucket i, as Prometheus does: the
// last finite bucket ends at math.MaxFloat64 (its formula bound, 2^1024,
// overflows) and the bucket above it, which holds infinity, at +Inf.
func bucketBound(i, s int32) float64 {
	if s <= 0 {
		e := int(i) << -s
		if e == 1024 {
			return math.MaxFloat64
		}
		return math.Ldexp(1, e)
	}
	frac := expBoundFracs[(int(i)&(1<<s-1))<<(8-s)]
	e := int(i>>s) + 1
	if frac == 0.5 && e == 1025 {
		return math.MaxFloat64
	}
	return math.Ldexp(frac, e)
}

// absMinIndex and absMaxIndex bound the indices any float64 can reach, which
// bounds the dense arrays (at most 537,090 buckets per sign at schema 8).
func absMinIndex(s int32) int32 { return bucketIndex(math.SmallestNonzeroFloat64, s) }
func absMaxIndex(s int32) int32 { return bucketIndex(math.Inf(1), s) }

// keepFromIndex is the lowest bucket that can hold a value above the zero
// threshold zt, that is the lowest i with bucketBound(i) > zt. A threshold
// between bounds leaves the bucket that straddles it usable for (zt, bound].
func keepFromIndex(s int32, zt float64) int32 {
	if zt == 0 {
		return absMinIndex(s)
	}
	i := bucketIndex(zt, s)
	if bucketBound(i, s) <= zt {
		i++
	}
	return i
}

// snapThreshold widens zt to the nearest bucket bound of schema s at or
// above it, so no bucket straddles the merged zero bucket.
func snapThreshold(s int32, zt float64) float64 {
	if zt == 0 {
		return 0
	}
	return bucketBound(bucketIndex(zt, s), s)
}

// targetIndex maps bucket i to the bucket that contains it shift schemas
// coarser, as Prometheus's resolution reduction does.
func targetIndex(i, shift int32) int32 { return ((i - 1) >> shift) + 1 }

func validZeroThreshold(zt float64) bool {
	return zt >= 0 && zt <= math.MaxFloat64 && math.Float64bits(zt) != 1<<63
}

// canonicalSum collapses every NaN to one bit pattern: which NaN payload an
// addition returns depends on operand order, and encodings must not.
func canonicalSum(v float64) float64 {
	if v != v {
		return math.NaN()
	}
	return v
}

// NewLogHistogram returns an empty histogram of the given schema, in
// [-4, 8], with the default zero threshold.
func NewLogHistogram(schema int32) (*LogHistogram, error) {
	return NewLogHistogramWithZeroThreshold(schema, DefaultZeroThreshold)
}

// NewLogHistogramWithZeroThreshold returns an empty histogram whose zero
// bucket holds |x| <= zeroThreshold (finite, >= 0; 0 keeps only exact
// zeros there). A threshold that is not a bucket bound of the schema is
// widened to one when merging with a state of other parameters.
func NewLogHistogramWithZeroThreshold(schema int32, zeroThreshold float64) (*LogHistogram, error) {
	if !validSchema(schema) {
		return nil, fmt.Errorf("%w: log histogram schema %d outside [%d, %d]", ErrInvalid, schema, MinLogHistogramSchema, MaxLogHistogramSchema)
	}
	if !(zeroThreshold >= 0 && zeroThreshold <= math.MaxFloat64) {
		return nil, fmt.Errorf("%w: log histogram zero threshold %v must be finite and >= 0", ErrInvalid, zeroThreshold)
	}
	return &LogHistogram{schema: schema, zt: zeroThreshold + 0}, nil
}

// NewDefaultLogHistogram returns an empty histogram with a 1% relative
// error guarantee (schema 6, about 0.54%).
func NewDefaultLogHistogram() *LogHistogram {
	return &LogHistogram{schema: DefaultLogHistogramSchema, zt: DefaultZeroThreshold}
}

// Schema returns the current schema; merging may lower it.
func (h *LogHistogram) Schema() int32 { return h.schema }

// ZeroThreshold returns the current zero threshold; merging may raise it.
func (h *LogHistogram) ZeroThreshold() float64 { return h.zt }

// RelativeError returns the schema's quantile guarantee (b-1)/(b+1), which
// holds for values outside the zero bucket.
func (h *LogHistogram) RelativeError() float64 { return schemaRelativeError(h.schema) }

// Add records x. NaN is refused with ErrInvalid; ±Inf go to the outermost
// buckets, as in Prometheus.
func (h *LogHistogram) Add(x float64) error {
	if x != x {
		return fmt.Errorf("%w: log histogram observation is NaN", ErrInvalid)
	}
	x += 0 // -0 becomes +0 so that min, max and encodings have one zero
	var i int32
	if ax := math.Abs(x); ax > h.zt {
		i = bucketIndex(ax, h.schema)
	}
	h.addAt(x, i)
	return nil
}

// LogObservation is one value placed in the buckets of a schema and zero
// threshold (LogHistogram.Observation), so that adding it to many
// histograms computes its bucket once. The zero value is the observation 0.
type LogObservation struct {
	x      float64
	i      int32
	schema int32
	zt     float64
}

// Observation returns x placed in h's buckets, for AddObservation; h is not
// modified (concurrent calls on one histogram are safe). NaN is refused as
// by Add.
func (h *LogHistogram) Observation(x float64) (LogObservation, error) {
	if x != x {
		return LogObservation{}, fmt.Errorf("%w: log histogram observation is NaN", ErrInvalid)
	}
	x += 0
	o := LogObservation{x: x, schema: h.schema, zt: h.zt}
	if ax := math.Abs(x); ax > h.zt {
		o.i = bucketIndex(ax, h.schema)
	}
	return o, nil
}

// AddObservation adds o's value to h: exactly Add(value), without
// recomputing the bucket when h has the schema and zero threshold o was
// placed in.
func (h *LogHistogram) AddObservation(o LogObservation) {
	if o.schema != h.schema || o.zt != h.zt {
		_ = h.Add(o.x) // o.x is not NaN
		return
	}
	h.addAt(o.x, o.i)
}

// addAt adds x (not NaN, not -0) whose bucket in h is i (ignored when |x|
// is at most the zero threshold).
func (h *LogHistogram) addAt(x float64, i int32) {
	if ax := math.Abs(x); ax > h.zt {
		st := &h.pos
		if x < 0 {
			st = &h.neg
		}
		if !st.covers(i, i) {
			st.reserve(i, i, h.schema)
		}
		st.add(i, 1)
	} else {
		h.zero++
	}
	if h.count == 0 {
		h.min, h.max = x, x
	} else if x < h.min {
		h.min = x
	} else if x > h.max {
		h.max = x
	}
	h.count++
	h.sum = canonicalSum(h.sum + x)
}

// Merge adds o into h; o is not modified. States of different schemas meet
// at the coarser schema (each bucket i goes to ((i-1)>>d)+1, as in
// Prometheus). When the schemas or zero thresholds differ, the merged
// threshold is the larger one widened to a bucket bound of the merged
// schema, and buckets at or below it fold into the zero bucket. For
// thresholds that are bucket bounds (Prometheus's default is one) this is
// exactly Prometheus's rule; for others Prometheus widens only when a
// populated bucket straddles the threshold, which would make the result
// depend on merge order.
func (h *LogHistogram) Merge(o *LogHistogram) {
	if o == nil {
		return
	}
	s := o.summary()
	m, ok := h.prepare(&s, false)
	if !ok {
		return
	}
	h.mergeStore(&h.pos, &o.pos, m)
	h.mergeStore(&h.neg, &o.neg, m)
}

// logSummary is everything about a source state except its bucket counts,
// which the caller then streams in from whatever representation it has.
type logSummary struct {
	schema   int32
	zt       float64
	zero     uint64
	count    uint64
	nan      uint64
	sum      float64
	min, max float64
	pos, neg idxRange // non-empty source indices, to size the stores up front
}

func (h *LogHistogram) summary() logSummary {
	return logSummary{
		schema: h.schema, zt: h.zt, zero: h.zero, count: h.count, nan: h.nan,
		sum: h.sum, min: h.min, max: h.max, pos: h.pos.idxRange, neg: h.neg.idxRange,
	}
}

// logMapping places source bucket i at targetIndex(i, shift), or in the zero
// bucket when that is below keepFrom. direct means the identity with
// nothing to fold, so counts can be added slice to slice.
type logMapping struct {
	shift    int32
	keepFrom int32
	direct   bool
}

func (h *LogHistogram) empty() bool { return h.count == 0 && h.nan == 0 }

// prepare reconciles h's parameters with the source's, makes room for the
// source's buckets and merges everything but those buckets. It reports
// false when the source is empty. mayFold says the source may hold buckets
// at or below its own zero threshold (Prometheus input), which must then
// go through the checked path. prepare never fails, so callers validate
// first.
func (h *LogHistogram) prepare(s *logSummary, mayFold bool) (logMapping, bool) {
	if s.count == 0 && s.nan == 0 {
		if h.empty() {
			h.reconcile(s.schema, s.zt)
		}
		return logMapping{}, false
	}
	if h.empty() {
		h.schema, h.zt = s.schema, s.zt
	}
	h.reconcile(s.schema, s.zt)
	m := logMapping{shift: s.schema - h.schema, keepFrom: math.MinInt32}
	m.direct = m.shift == 0 && s.zt == h.zt && !mayFold
	if !m.direct {
		// Only folding needs the threshold's bucket; computing it costs
		// about as much as a small direct merge.
		m.keepFrom = keepFromIndex(h.schema, h.zt)
	}
	h.pos.reserveMapped(s.pos, m, h.schema)
	h.neg.reserveMapped(s.neg, m, h.schema)
	if s.count > 0 {
		if h.count == 0 {
			h.min, h.max = s.min, s.max
		} else {
			h.min, h.max = min(h.min, s.min), max(h.max, s.max)
		}
	}
	h.zero += s.zero
	h.count += s.count
	h.nan += s.nan
	h.sum = canonicalSum(h.sum + s.sum)
	return m, true
}

// reconcile moves h to the parameters a merge with a (schema, zt) state
// produces; see Merge.
func (h *LogHistogram) reconcile(schema int32, zt float64) {
	if schema == h.schema && zt == h.zt {
		return
	}
	target := min(h.schema, schema)
	if d := h.schema - target; d > 0 {
		h.pos.coarsen(d)
		h.neg.coarsen(d)
	}
	h.schema = target
	h.zt = snapThreshold(target, max(h.zt, zt))
	k := keepFromIndex(target, h.zt)
	h.zero += h.pos.fold(k) + h.neg.fold(k)
}

func (h *LogHistogram) mergeStore(dst, src *logStore, m logMapping) {
	if !src.used {
		return
	}
	if m.direct {
		sc := src.counts[src.lo-src.off : src.hi-src.off+1]
		dc := dst.counts[src.lo-dst.off : src.hi-dst.off+1]
		dc = dc[:len(sc)]
		for k, c := range sc {
			dc[k] += c
		}
		dst.include(src.lo, src.hi)
		return
	}
	// Indices map monotonically: fold the prefix below keepFrom, then add
	// the rest without per-bucket range bookkeeping.
	sc := src.populated()
	k := 0
	for ; k < len(sc) && targetIndex(src.lo+int32(k), m.shift) < m.keepFrom; k++ {
		h.zero += sc[k]
	}
	for k < len(sc) && sc[k] == 0 {
		k++
	}
	if k == len(sc) {
		return
	}
	first := targetIndex(src.lo+int32(k), m.shift)
	for ; k < len(sc); k++ {
		dst.counts[targetIndex(src.lo+int32(k), m.shift)-dst.off] += sc[k]
	}
	dst.include(first, targetIndex(src.hi, m.shift))
}

func (h *LogHistogram) addMapped(dst *logStore, i int32, c uint64, m logMapping) {
	j := targetIndex(i, m.shift)
	if j < m.keepFrom {
		h.zero += c
		return
	}
	dst.add(j, c)
}

// idxRange is the range of non-empty bucket indices; lo and hi are
// themselves non-empty.
type idxRange struct {
	lo, hi int32
	used   bool
}

func (r *idxRange) include(lo, hi int32) {
	if !r.used {
		r.lo, r.hi, r.used = lo, hi, true
		return
	}
	r.lo, r.hi = min(r.lo, lo), max(r.hi, hi)
}

// logStore is a dense array of bucket counts with an index offset, as in
// DDSketch's dense store: merging is then a loop over two slices.
type logStore struct {
	counts []uint64 // counts[k] is bucket off+k; cells outside [lo, hi] are zero
	off    int32
	idxRange
}

func (s *logStore) covers(lo, hi int32) bool {
	return lo >= s.off && int64(hi) < int64(s.off)+int64(len(s.counts))
}

// add needs i to be covered.
func (s *logStore) add(i int32, c uint64) {
	s.counts[i-s.off] += c
	s.include(i, i)
}

func (s *logStore) reset() {
	if s.used {
		clear(s.counts[s.lo-s.off : s.hi-s.off+1])
	}
	s.used = false
}

// reserveMapped makes room for the source range r once mapped by m.
func (s *logStore) reserveMapped(r idxRange, m logMapping, schema int32) {
	if !r.used {
		return
	}
	lo, hi := max(targetIndex(r.lo, m.shift), m.keepFrom), targetIndex(r.hi, m.shift)
	if lo <= hi && !s.covers(lo, hi) {
		s.reserve(lo, hi, schema)
	}
}

// reserve makes counts cover [lo, hi] as well as the populated range,
// sliding within the current array when it is long enough and otherwise
// growing by a quarter plus a few buckets on each side so that a range
// creeping outwards costs amortised O(1) per bucket.
func (s *logStore) reserve(lo, hi, schema int32) {
	if s.used {
		lo, hi = min(lo, s.lo), max(hi, s.hi)
	}
	need := int(hi-lo) + 1
	if need <= len(s.counts) {
		s.slide(lo - int32((len(s.counts)-need)/2))
		return
	}
	pad := int32(need/4 + 8)
	a := max(lo-pad, min(lo, absMinIndex(schema)))
	b := min(hi+pad, max(hi, absMaxIndex(schema)))
	counts := make([]uint64, int(b-a)+1)
	if s.used {
		copy(counts[s.lo-a:], s.counts[s.lo-s.off:s.hi-s.off+1])
	}
	s.counts, s.off = counts, a
}

// slide moves the populated cells so that counts[0] is bucket off.
func (s *logStore) slide(off int32) {
	if s.used {
		from, to, n := int(s.lo-s.off), int(s.lo-off), int(s.hi-s.lo)+1
		copy(s.counts[to:to+n], s.counts[from:from+n])
		if to > from {
			clear(s.counts[from:min(to, from+n)])
		} else {
			clear(s.counts[max(to+n, from) : from+n])
		}
	}
	s.off = off
}

// coarsen reduces the resolution by d schemas in place. Mapped positions
// never pass the position being read, so one ascending pass suffices.
func (s *logStore) coarsen(d int32) {
	if !s.used {
		return
	}
	lo := targetIndex(s.lo, d)
	off := lo - (s.lo - s.off)
	for i := s.lo; i <= s.hi; i++ {
		p := i - s.off
		c := s.counts[p]
		if c == 0 {
			continue
		}
		s.counts[p] = 0
		s.counts[targetIndex(i, d)-off] += c
	}
	s.off, s.lo, s.hi = off, lo, targetIndex(s.hi, d)
}

// fold empties the buckets below keepFrom and returns their total.
func (s *logStore) fold(keepFrom int32) uint64 {
	if !s.used || s.lo >= keepFrom {
		return 0
	}
	seg := s.counts[s.lo-s.off : min(s.hi, keepFrom-1)-s.off+1]
	var n uint64
	for _, c := range seg {
		n += c
	}
	clear(seg)
	if s.hi < keepFrom {
		s.used = false
		return n
	}
	s.lo = keepFrom
	for s.counts[s.lo-s.off] == 0 {
		s.lo++
	}
	return n
}

// Reset empties the histogram, keeping its schema, zero threshold and
// memory.
func (h *LogHistogram) Reset() {
	h.pos.reset()
	h.neg.reset()
	h.zero, h.count, h.nan = 0, 0, 0
	h.sum, h.min, h.max = 0, 0, 0
}

// MemSize estimates the bytes held: the struct and both dense arrays.
func (h *LogHistogram) MemSize() int {
	return int(unsafe.Sizeof(*h)) + 8*(cap(h.pos.counts)+cap(h.neg.counts))
}

// Format returns FormatLogHistogram.
func (h *LogHistogram) Format() Format { return FormatLogHistogram }

// Count returns the number of observations placed in buckets, the weight
// CDF and Quantile describe. NaN observations carried over from Prometheus
// are not included (see NaNCount).
func (h *LogHistogram) Count() float64 { return float64(h.count) }

// NaNCount returns the NaN observations a Prometheus client counted but put
// in no bucket; they are kept so that Native round-trips Count.
func (h *LogHistogram) NaNCount() uint64 { return h.nan }

// Sum returns the sum of the observations: 0 when empty, ±Inf or NaN when
// infinities or NaN observations were counted.
func (h *LogHistogram) Sum() float64 { return h.sum }

// Mean returns Sum/Count, NaN when empty.
func (h *LogHistogram) Mean() float64 {
	if h.count == 0 {
		return math.NaN()
	}
	return h.sum / float64(h.count)
}

// Min returns the smallest observation, NaN when empty. For data converted
// from Prometheus it is the lower bound of the lowest non-empty bucket.
func (h *LogHistogram) Min() float64 {
	if h.count == 0 {
		return math.NaN()
	}
	return h.min
}

// Max returns the largest observation, NaN when empty. For data converted
// from Prometheus it is the upper bound of the highest non-empty bucket.
func (h *LogHistogram) Max() float64 {
	if h.count == 0 {
		return math.NaN()
	}
	return h.max
}

// Bucket regions: sign -1 for a negative bucket, 0 for the zero bucket, +1
// for a positive bucket.

// eachBucket calls f for the non-empty buckets in increasing order of value
// until f returns false.
func (h *LogHistogram) eachBucket(f func(sign int, i int32, c uint64) bool) {
	if n := &h.neg; n.used {
		for i := n.hi; i >= n.lo; i-- {
			if c := n.counts[i-n.off]; c != 0 && !f(-1, i, c) {
				return
			}
		}
	}
	if h.zero != 0 && !f(0, 0, h.zero) {
		return
	}
	if p := &h.pos; p.used {
		for i := p.lo; i <= p.hi; i++ {
			if c := p.counts[i-p.off]; c != 0 && !f(1, i, c) {
				return
			}
		}
	}
}

// regionOf returns the closed value range a bucket can hold, before
// clamping. Values in a bucket are above the zero threshold too, which
// matters for a bucket straddling a threshold that is not a bound.
func regionOf(sign int, i, schema int32, zt float64) (lo, hi float64) {
	if sign == 0 {
		return 0 - zt, zt
	}
	l, u := max(bucketBound(i-1, schema), zt), bucketBound(i, schema)
	if sign < 0 {
		return 0 - u, 0 - l
	}
	return l, u
}

// region is regionOf clamped to [min, max]; only meaningful when count > 0.
func (h *LogHistogram) region(sign int, i int32) (lo, hi float64) {
	lo, hi = regionOf(sign, i, h.schema, h.zt)
	return min(max(lo, h.min), h.max), min(max(hi, h.min), h.max)
}

// Quantile returns the estimated observation of 0-based rank ⌊q·(n−1)⌋:
// for a value in bucket (u/b, u] the point 2u/(b+1), which is within
// RelativeError of every value in the bucket; 0 for the zero bucket;
// clamped to [Min, Max]. It returns NaN when empty or q is outside [0, 1].
func (h *LogHistogram) Quantile(q float64) float64 {
	if h.count == 0 || !(q >= 0 && q <= 1) {
		return math.NaN()
	}
	// float64(h.count-1) may round up past the last rank; cap before
	// converting back.
	rank := h.count - 1
	if f := math.Floor(q * float64(h.count-1)); f < float64(rank) {
		rank = uint64(f)
	}
	// 2/(b+1) first: 2u overflows for the bucket ending at MaxFloat64.
	scale := 2 / (1 + math.Exp2(math.Exp2(float64(-h.schema))))
	est := 0.0
	var seen uint64
	h.eachBucket(func(sign int, i int32, c uint64) bool {
		if seen += c; seen <= rank {
			return true
		}
		if sign != 0 {
			est = float64(sign) * (bucketBound(i, h.schema) * scale)
		}
		return false
	})
	return min(max(est, h.min), h.max)
}

// CDF returns the estimated fraction of observations <= x, interpolating
// linearly inside each bucket's range clamped to [Min, Max] (a bucket whose
// clamped range is one point is a step there). It returns 0 when empty and
// NaN for NaN x.
func (h *LogHistogram) CDF(x float64) float64 {
	if h.count == 0 {
		return 0
	}
	if x != x {
		return math.NaN()
	}
	if x < h.min {
		return 0
	}
	if x >= h.max {
		return 1
	}
	n := float64(h.count)
	var below uint64
	frac := 0.0
	h.eachBucket(func(sign int, i int32, c uint64) bool {
		lo, hi := h.region(sign, i)
		if x >= hi {
			below += c
			return true
		}
		if x > lo {
			frac = (x - lo) / (hi - lo) * float64(c)
		}
		return false
	})
	return (float64(below) + frac) / n
}

// AppendBreakpoints appends the clamped bounds of the non-empty buckets,
// increasing and without duplicates; CDF is linear between them.
func (h *LogHistogram) AppendBreakpoints(dst []float64) []float64 {
	start := len(dst)
	h.eachBucket(func(sign int, i int32, _ uint64) bool {
		lo, hi := h.region(sign, i)
		if len(dst) == start || dst[len(dst)-1] != lo {
			dst = append(dst, lo)
		}
		if hi != lo {
			dst = append(dst, hi)
		}
		return true
	})
	return dst
}

// outerRanges returns the ranges of the lowest and the highest non-empty
// region, in which the minimum and maximum must lie.
func outerRanges(schema int32, zt float64, zero uint64, pos, neg idxRange) (minLo, minHi, maxLo, maxHi float64) {
	switch {
	case neg.used:
		minLo, minHi = regionOf(-1, neg.hi, schema, zt)
	case zero != 0:
		minLo, minHi = regionOf(0, 0, schema, zt)
	default:
		minLo, minHi = regionOf(1, pos.lo, schema, zt)
	}
	switch {
	case pos.used:
		maxLo, maxHi = regionOf(1, pos.hi, schema, zt)
	case zero != 0:
		maxLo, maxHi = regionOf(0, 0, schema, zt)
	default:
		maxLo, maxHi = regionOf(-1, neg.lo, schema, zt)
	}
	return minLo, minHi, maxLo, maxHi
}

// AppendBinary appends the encoding described in docs/format.md: format id,
// schema, zero threshold, zero and NaN counts, sum, the positive and the
// negative buckets as spans of non-zero counts, then min and max when
// anything was placed.
func (h *LogHistogram) AppendBinary(dst []byte) []byte {
	dst = append(dst, byte(FormatLogHistogram))
	dst = appendVarint(dst, int64(h.schema))
	dst = appendFloat64(dst, h.zt)
	dst = appendUvarint(dst, h.zero)
	dst = appendUvarint(dst, h.nan)
	dst = appendFloat64(dst, h.sum)
	dst = h.pos.appendSpans(dst)
	dst = h.neg.appendSpans(dst)
	if h.count > 0 {
		dst = appendFloat64(dst, h.min)
		dst = appendFloat64(dst, h.max)
	}
	return dst
}

// eachRun calls f for each maximal run [a, b) of non-zero cells of c.
func eachRun(c []uint64, f func(a, b int)) {
	for a := 0; a < len(c); {
		if c[a] == 0 {
			a++
			continue
		}
		b := a + 1
		for b < len(c) && c[b] != 0 {
			b++
		}
		f(a, b)
		a = b
	}
}

func (s *logStore) populated() []uint64 {
	if !s.used {
		return nil
	}
	return s.counts[s.lo-s.off : s.hi-s.off+1]
}

func (s *logStore) appendSpans(dst []byte) []byte {
	c := s.populated()
	runs := 0
	eachRun(c, func(int, int) { runs++ })
	dst = appendUvarint(dst, uint64(runs))
	end := -1
	eachRun(c, func(a, b int) {
		if end < 0 {
			dst = appendVarint(dst, int64(s.lo)+int64(a))
		} else {
			dst = appendUvarint(dst, uint64(a-end))
		}
		dst = appendUvarint(dst, uint64(b-a))
		for _, v := range c[a:b] {
			dst = appendUvarint(dst, v)
		}
		end = b
	})
	return dst
}

// spanScan reads one encoded bucket section. Validating only (h nil), it
// checks the layout and accumulates the total; applying, it adds the
// (already validated) counts into st through m.
type spanScan struct {
	schema   int32
	keepFrom int32 // lowest index the source's zero threshold leaves
	total    uint64
	h        *LogHistogram
	st       *logStore
	m        logMapping
}

// side names the section in semantic errors only: building names for the
// reader's truncation errors eagerly would allocate on every call.
func (sc *spanScan) section(r *reader, side string) idxRange {
	var rng idxRange
	n := r.count("span count", 3) // start or gap, length, one count
	maxIdx := int64(absMaxIndex(sc.schema))
	var idx int64
	for k := 0; k < n && r.err() == nil; k++ {
		if k == 0 {
			idx = r.varint("span start")
		} else {
			gap := r.uvarint("span gap")
			// idx is the end of a validated span, so at most maxIdx+1.
			if room := uint64(max(maxIdx-idx, 0)); r.err() == nil && (gap == 0 || gap > room) {
				r.invalid("%s span %d: gap %d must be in [1, %d]", side, k, gap, room)
			}
			idx += int64(gap)
		}
		length := r.count("span length", 1)
		if r.err() != nil {
			break
		}
		if length == 0 {
			r.invalid("%s span %d is empty", side, k)
			break
		}
		if idx < int64(sc.keepFrom) || idx > maxIdx-int64(length)+1 {
			r.invalid("%s span %d covers buckets [%d, %d] outside [%d, %d] for schema %d",
				side, k, idx, idx+int64(length)-1, sc.keepFrom, maxIdx, sc.schema)
			break
		}
		for j := range length {
			c := r.uvarint("bucket count")
			if r.err() != nil {
				break
			}
			if c == 0 {
				r.invalid("%s span %d has a zero count", side, k)
				break
			}
			if c > math.MaxUint64-sc.total {
				r.invalid("total count overflows")
				break
			}
			sc.total += c
			i := int32(idx) + int32(j)
			switch {
			case sc.h == nil:
			case sc.m.direct:
				sc.st.counts[i-sc.st.off] += c
			default:
				sc.h.addMapped(sc.st, i, c, sc.m)
			}
		}
		if sc.m.direct && sc.h != nil {
			sc.st.include(int32(idx), int32(idx)+int32(length)-1)
		}
		rng.include(int32(idx), int32(idx)+int32(length)-1)
		idx += int64(length)
	}
	return rng
}

// parseLogHistogram validates a whole encoding without touching any state
// and returns its summary and where the two bucket sections start.
func parseLogHistogram(src []byte) (s logSummary, posAt, negAt int, err error) {
	r := newReader(src)
	r.format(FormatLogHistogram)
	schema := r.varint("schema")
	if r.err() == nil && (schema < int64(MinLogHistogramSchema) || schema > int64(MaxLogHistogramSchema)) {
		r.invalid("schema %d outside [%d, %d]", schema, MinLogHistogramSchema, MaxLogHistogramSchema)
	}
	s.schema = int32(schema)
	s.zt = r.float64("zero threshold")
	if r.err() == nil && !validZeroThreshold(s.zt) {
		r.invalid("zero threshold %v must be finite and >= +0", s.zt)
	}
	s.zero = r.uvarint("zero count")
	s.nan = r.uvarint("NaN count")
	s.sum = r.float64("sum")
	if r.err() != nil {
		return s, 0, 0, r.err()
	}
	sc := spanScan{schema: s.schema, keepFrom: keepFromIndex(s.schema, s.zt), total: s.zero}
	posAt = r.off
	s.pos = sc.section(&r, "positive")
	negAt = r.off
	s.neg = sc.section(&r, "negative")
	s.count = sc.total
	if r.err() == nil {
		switch {
		case s.nan > math.MaxUint64-s.count:
			r.invalid("NaN count %d overflows the total count", s.nan)
		case s.count == 0 && s.nan == 0 && math.Float64bits(s.sum) != 0:
			r.invalid("sum %v of an empty state must be +0", s.sum)
		case s.nan > 0 && s.sum == s.sum:
			r.invalid("sum %v must be NaN with %d NaN observations", s.sum, s.nan)
		case s.sum != s.sum && math.Float64bits(s.sum) != math.Float64bits(math.NaN()):
			r.invalid("sum NaN has non-canonical bits %#x", math.Float64bits(s.sum))
		}
	}
	if s.count > 0 {
		s.min = r.float64("min")
		s.max = r.float64("max")
		if r.err() == nil {
			minLo, minHi, maxLo, maxHi := outerRanges(s.schema, s.zt, s.zero, s.pos, s.neg)
			switch {
			case !(s.min >= minLo && s.min <= minHi):
				r.invalid("min %v outside the lowest bucket [%v, %v]", s.min, minLo, minHi)
			case !(s.max >= maxLo && s.max <= maxHi):
				r.invalid("max %v outside the highest bucket [%v, %v]", s.max, maxLo, maxHi)
			case s.min > s.max:
				r.invalid("min %v above max %v", s.min, s.max)
			case math.Float64bits(s.min) == 1<<63 || math.Float64bits(s.max) == 1<<63:
				r.invalid("min or max is -0")
			}
		}
	}
	return s, posAt, negAt, r.done()
}

// applySections adds the validated bucket sections of src through m.
func (h *LogHistogram) applySections(src []byte, s *logSummary, posAt, negAt int, m logMapping) {
	sc := spanScan{schema: s.schema, keepFrom: keepFromIndex(s.schema, s.zt), h: h, m: m}
	r := newReader(src)
	r.off = posAt
	sc.st = &h.pos
	sc.section(&r, "positive")
	r.off = negAt
	sc.st = &h.neg
	sc.section(&r, "negative")
}

// DecodeAndMerge merges an encoded LogHistogram into h as Merge would,
// reading counts straight from src. It validates all of src first; on
// error h is unchanged.
func (h *LogHistogram) DecodeAndMerge(src []byte) error {
	s, posAt, negAt, err := parseLogHistogram(src)
	if err != nil {
		return fmt.Errorf("log histogram: %w", err)
	}
	if m, ok := h.prepare(&s, false); ok {
		h.applySections(src, &s, posAt, negAt, m)
	}
	return nil
}

// UnmarshalBinary replaces h with an encoded LogHistogram, schema and zero
// threshold included; on error h is unchanged.
func (h *LogHistogram) UnmarshalBinary(src []byte) error {
	s, posAt, negAt, err := parseLogHistogram(src)
	if err != nil {
		return fmt.Errorf("log histogram: %w", err)
	}
	h.Reset()
	h.schema, h.zt = s.schema, s.zt
	if m, ok := h.prepare(&s, false); ok {
		h.applySections(src, &s, posAt, negAt, m)
	}
	return nil
}

// nativeSide is one sign's buckets of a native histogram, integer deltas or
// float counts.
type nativeSide struct {
	name   string // "Positive" or "Negative", for errors
	spans  []Span
	deltas []int64
	floats []float64
	float  bool
}

// walk validates the side as Prometheus does (span offsets after the first
// are >= 0, spans and counts agree in number, counts are non-negative) plus
// what a dense store needs (indices inside the float64 range of the
// schema), and calls f for each non-zero count.
func (ns nativeSide) walk(schema int32, f func(i int32, c uint64)) error {
	n := len(ns.deltas)
	if ns.float {
		n = len(ns.floats)
	}
	var want int64
	for k, sp := range ns.spans {
		if k > 0 && sp.Offset < 0 {
			return fmt.Errorf("%w: %sSpans[%d] has negative offset %d", ErrInvalid, ns.name, k, sp.Offset)
		}
		want += int64(sp.Length)
	}
	if want != int64(n) {
		kind := "Deltas"
		if ns.float {
			kind = "Counts"
		}
		return fmt.Errorf("%w: %sSpans need %d buckets, %s%s has %d", ErrInvalid, ns.name, want, ns.name, kind, n)
	}
	lo, hi := int64(absMinIndex(schema)), int64(absMaxIndex(schema))
	var idx, abs int64
	b := 0
	for k, sp := range ns.spans {
		idx += int64(sp.Offset)
		if sp.Length > 0 && (idx < lo || idx+int64(sp.Length)-1 > hi) {
			return fmt.Errorf("%w: %sSpans[%d] covers buckets [%d, %d] outside [%d, %d] for schema %d",
				ErrInvalid, ns.name, k, idx, idx+int64(sp.Length)-1, lo, hi, schema)
		}
		for j := int64(0); j < int64(sp.Length); j++ {
			var c uint64
			if ns.float {
				v := ns.floats[b]
				if !(v >= 0 && v < 0x1p64 && v == math.Trunc(v)) {
					return fmt.Errorf("%w: %sCounts[%d] = %v is not a non-negative integer below 2^64", ErrInvalid, ns.name, b, v)
				}
				c = uint64(v)
			} else {
				d := ns.deltas[b]
				next := abs + d
				if (d > 0 && next < abs) || (d < 0 && next > abs) {
					return fmt.Errorf("%w: %sDeltas[%d] overflows the bucket count", ErrInvalid, ns.name, b)
				}
				if next < 0 {
					return fmt.Errorf("%w: %sDeltas[%d] gives negative bucket count %d", ErrInvalid, ns.name, b, next)
				}
				abs = next
				c = uint64(abs)
			}
			if c != 0 {
				f(int32(idx+j), c)
			}
			b++
		}
		idx += int64(sp.Length)
	}
	return nil
}

// nativeView is the common form of NativeHistogram and NativeFloatHistogram
// once their scalar counts are integers.
type nativeView struct {
	schema   int32
	zt       float64
	zero     uint64
	count    uint64
	sum      float64
	pos, neg nativeSide
}

// summarize validates v and returns what prepare needs. Buckets at or below
// the zero threshold, which Prometheus tolerates, count as zero bucket
// observations (for min and max here; addMapped moves their counts).
func (v *nativeView) summarize() (logSummary, error) {
	if !validSchema(v.schema) {
		return logSummary{}, fmt.Errorf("%w: native histogram Schema %d outside [%d, %d] (custom buckets are not supported)",
			ErrInvalid, v.schema, MinLogHistogramSchema, MaxLogHistogramSchema)
	}
	if !(v.zt >= 0 && v.zt <= math.MaxFloat64) {
		return logSummary{}, fmt.Errorf("%w: native histogram ZeroThreshold %v must be finite and >= 0", ErrInvalid, v.zt)
	}
	s := logSummary{schema: v.schema, zt: v.zt + 0, zero: v.zero, sum: canonicalSum(v.sum + 0)}
	keepFrom := keepFromIndex(s.schema, s.zt)
	total, inZero, overflow := v.zero, v.zero, false
	for _, side := range []struct {
		ns  nativeSide
		rng *idxRange
	}{{v.pos, &s.pos}, {v.neg, &s.neg}} {
		err := side.ns.walk(s.schema, func(i int32, c uint64) {
			if c > math.MaxUint64-total {
				overflow = true
				return
			}
			total += c
			if i < keepFrom {
				inZero += c
			} else {
				side.rng.include(i, i)
			}
		})
		if err != nil {
			return logSummary{}, err
		}
	}
	switch {
	case overflow:
		return logSummary{}, fmt.Errorf("%w: native histogram bucket counts overflow uint64", ErrInvalid)
	case v.count < total:
		return logSummary{}, fmt.Errorf("%w: native histogram Count %d is below the %d observations in its buckets", ErrInvalid, v.count, total)
	case v.count > total && v.sum == v.sum:
		return logSummary{}, fmt.Errorf("%w: native histogram Count %d exceeds the %d observations in its buckets but Sum %v is not NaN", ErrInvalid, v.count, total, v.sum)
	case v.count == 0 && v.sum != 0:
		return logSummary{}, fmt.Errorf("%w: native histogram Sum %v with Count 0 (a stale marker?)", ErrInvalid, v.sum)
	}
	s.count, s.nan = total, v.count-total
	if total > 0 {
		s.min, _, _, s.max = outerRanges(s.schema, s.zt, inZero, s.pos, s.neg)
		s.min += 0
		s.max += 0
	}
	return s, nil
}

// mergeView validates all of v and then merges it into h.
func (h *LogHistogram) mergeView(v *nativeView) error {
	s, err := v.summarize()
	if err != nil {
		return err
	}
	m, ok := h.prepare(&s, true)
	if !ok {
		return nil
	}
	for _, side := range []struct {
		ns nativeSide
		st *logStore
	}{{v.pos, &h.pos}, {v.neg, &h.neg}} {
		// Cannot fail: summarize walked the same input.
		_ = side.ns.walk(v.schema, func(i int32, c uint64) { h.addMapped(side.st, i, c, m) })
	}
	return nil
}

// MergeNative merges a Prometheus integer native histogram into h, as
// Merge would merge the equivalent LogHistogram. Into an empty h this is a
// lossless conversion. Minimum and maximum, which Prometheus does not
// keep, become the outer bounds of the outermost non-empty buckets (the
// zero bucket counts as [-ZeroThreshold, ZeroThreshold]). Invalid input
// returns an error wrapping ErrInvalid and leaves h unchanged.
func (h *LogHistogram) MergeNative(n NativeHistogram) error {
	return h.mergeView(&nativeView{
		schema: n.Schema, zt: n.ZeroThreshold, zero: n.ZeroCount, count: n.Count, sum: n.Sum,
		pos: nativeSide{name: "Positive", spans: n.PositiveSpans, deltas: n.PositiveDeltas},
		neg: nativeSide{name: "Negative", spans: n.NegativeSpans, deltas: n.NegativeDeltas},
	})
}

// MergeNativeFloat is MergeNative for float native histograms; every count
// must be a non-negative integer below 2^64.
func (h *LogHistogram) MergeNativeFloat(n NativeFloatHistogram) error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"ZeroCount", n.ZeroCount}, {"Count", n.Count}} {
		if !(f.v >= 0 && f.v < 0x1p64 && f.v == math.Trunc(f.v)) {
			return fmt.Errorf("%w: native histogram %s %v is not a non-negative integer below 2^64", ErrInvalid, f.name, f.v)
		}
	}
	return h.mergeView(&nativeView{
		schema: n.Schema, zt: n.ZeroThreshold, zero: uint64(n.ZeroCount), count: uint64(n.Count), sum: n.Sum,
		pos: nativeSide{name: "Positive", spans: n.PositiveSpans, floats: n.PositiveCounts, float: true},
		neg: nativeSide{name: "Negative", spans: n.NegativeSpans, floats: n.NegativeCounts, float: true},
	})
}

// nativeSpans returns the store's buckets as spans of non-empty buckets,
// the form Prometheus's Compact(0) produces, with emit called per count.
func (s *logStore) nativeSpans(emit func(c uint64)) []Span {
	var spans []Span
	end := 0
	eachRun(s.populated(), func(a, b int) {
		off := int32(a - end)
		if spans == nil {
			off = s.lo + int32(a)
		}
		spans = append(spans, Span{Offset: off, Length: uint32(b - a)})
		for _, c := range s.counts[int(s.lo-s.off)+a : int(s.lo-s.off)+b] {
			emit(c)
		}
		end = b
	})
	return spans
}

func (s *logStore) nativeDeltas() ([]Span, []int64) {
	var deltas []int64
	var prev uint64
	spans := s.nativeSpans(func(c uint64) {
		deltas = append(deltas, int64(c-prev))
		prev = c
	})
	return spans, deltas
}

func (s *logStore) nativeCounts() ([]Span, []float64) {
	var counts []float64
	spans := s.nativeSpans(func(c uint64) { counts = append(counts, float64(c)) })
	return spans, counts
}

// Native returns h as a Prometheus integer native histogram with compact
// spans (no empty buckets). Count includes NaNCount. Bucket counts above
// 2^63-1 do not fit Prometheus's int64 deltas.
func (h *LogHistogram) Native() NativeHistogram {
	n := NativeHistogram{Schema: h.schema, ZeroThreshold: h.zt, ZeroCount: h.zero, Count: h.count + h.nan, Sum: h.sum}
	n.PositiveSpans, n.PositiveDeltas = h.pos.nativeDeltas()
	n.NegativeSpans, n.NegativeDeltas = h.neg.nativeDeltas()
	return n
}

// NativeFloat returns h as a Prometheus float native histogram.
func (h *LogHistogram) NativeFloat() NativeFloatHistogram {
	n := NativeFloatHistogram{
		Schema: h.schema, ZeroThreshold: h.zt, ZeroCount: float64(h.zero),
		Count: float64(h.count + h.nan), Sum: h.sum,
	}
	n.PositiveSpans, n.PositiveCounts = h.pos.nativeCounts()
	n.NegativeSpans, n.NegativeCounts = h.neg.nativeCounts()
	return n
}
