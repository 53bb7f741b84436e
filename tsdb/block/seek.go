package block

import "github.com/prometheus/prometheus/tsdb/chunkenc"

// seekMethod gives an iterator the Seek(int64) chunkenc.ValueType method of
// chunkenc.Iterator. It exists because go vet's stdmethods check takes any
// method Seek(int64, ...) for a malformed io.Seeker; declaring the
// parameter as a type parameter instantiated with int64 keeps the method
// set Prometheus needs while the check (which sees T, not int64) stays on
// for the rest of the package.
type seekMethod[T ~int64] struct{ s seeker }

type seeker interface {
	seek(t int64) chunkenc.ValueType
}

// Seek advances to the first sample at or after t (never backwards).
func (m seekMethod[T]) Seek(t T) chunkenc.ValueType { return m.s.seek(int64(t)) }

var (
	_ chunkenc.Iterator = (*sampleIter)(nil)
	_ chunkenc.Iterator = (*mergeSampleIter)(nil)
)
