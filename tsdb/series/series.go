package series

import (
	"context"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"evalstore/sketch"
)

// Kind says what a series holds.
type Kind uint8

const (
	// KindSketch series hold one encoded sketch state per time bucket.
	KindSketch Kind = 1
	// KindFloat series hold Prometheus float samples (one value per
	// timestamp, staleness markers kept), as remote-write delivers them.
	KindFloat Kind = 2
	// KindHistogram series hold Prometheus native histogram samples (one
	// cumulative or gauge histogram per timestamp, staleness markers
	// kept), as remote-write delivers them. Like float samples they are
	// points, not deltas: a sample is never merged with another.
	KindHistogram Kind = 3
)

// Points reports whether series of kind k hold one sample per timestamp
// (floats or native histograms), read through Series.Samples, rather than
// sketch buckets.
func (k Kind) Points() bool { return k == KindFloat || k == KindHistogram }

func (k Kind) String() string {
	switch k {
	case KindSketch:
		return "sketch"
	case KindFloat:
		return "float"
	case KindHistogram:
		return "histogram"
	}
	return "unknown"
}

// Meta describes one series. Format is set for sketch series only; a
// sketch series keeps one format for its whole life.
type Meta struct {
	Labels labels.Labels
	Kind   Kind
	Format sketch.Format
}

// Hints narrow a Select. Times are Unix milliseconds, both ends inclusive,
// as in Prometheus.
type Hints struct {
	Mint, Maxt int64
	// Resolution is the coarsest bucket width, in milliseconds, the caller
	// can use: a window merge asks for the window so storage may answer
	// from downsampled buckets where they lie wholly inside [Mint, Maxt].
	// Zero asks for the finest stored resolution.
	Resolution int64
}

// BucketIterator walks the buckets of one sketch series in increasing time
// order. Each bucket is reported once, with every source's state for that
// time already merged.
type BucketIterator interface {
	// Next advances to the next bucket and reports whether there is one.
	Next() bool
	// At returns the current bucket's start (Unix ms), its width (ms) and
	// its encoded state. The slice is valid until the next call to Next
	// and must not be modified.
	At() (t, width int64, state []byte)
	// Err returns the error that stopped iteration, if any.
	Err() error
}

// Series is one series' data restricted to the Select's hints.
type Series interface {
	Meta() Meta
	// Buckets returns an iterator over a sketch series' buckets, reusing
	// it when it is of the right concrete type. For float series it
	// returns an empty iterator.
	Buckets(reuse BucketIterator) BucketIterator
	// Samples returns an iterator over a float or histogram series'
	// samples, reusing it when possible. A float series' iterator yields
	// chunkenc.ValFloat, a histogram series' chunkenc.ValFloatHistogram
	// (AtFloatHistogram copies into the histogram passed in, as in
	// Prometheus; a staleness marker has Sum = value.StaleNaN). For sketch
	// series it returns an empty iterator.
	Samples(reuse chunkenc.Iterator) chunkenc.Iterator
}

// SeriesSet iterates series sorted by labels. At's value is valid until the
// next call to Next.
type SeriesSet interface {
	Next() bool
	At() Series
	Err() error
}

// Querier reads a consistent snapshot of storage. It is safe for concurrent
// use; Close releases what the snapshot pins (blocks, head ranges) and must
// be called once, after every SeriesSet it returned is done.
type Querier interface {
	Select(ctx context.Context, hints Hints, matchers ...*labels.Matcher) SeriesSet
	// LabelNames returns the sorted label names of the series with data in
	// the querier's time range that match all matchers (all series when
	// none are given).
	LabelNames(ctx context.Context, matchers ...*labels.Matcher) ([]string, error)
	// LabelValues returns the sorted values of label name over the same
	// series.
	LabelValues(ctx context.Context, name string, matchers ...*labels.Matcher) ([]string, error)
	Close() error
}
