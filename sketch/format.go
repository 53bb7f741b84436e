package sketch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Format is the one-byte id that starts every encoded sketch state. It names
// both the type and the version of its byte layout; a new layout gets a new
// id so old data stays readable. docs/format.md documents each layout.
type Format byte

// The format ids. Zero is never valid so that an all-zero buffer is refused.
const (
	FormatConfusion      Format = 0x01
	FormatScoreHistogram Format = 0x02
	FormatMoments        Format = 0x03
	FormatRegression     Format = 0x04
	FormatLogHistogram   Format = 0x05
	FormatTDigest        Format = 0x06
	FormatCategorical    Format = 0x07
)

func (f Format) String() string {
	switch f {
	case FormatConfusion:
		return "confusion"
	case FormatScoreHistogram:
		return "score_histogram"
	case FormatMoments:
		return "moments"
	case FormatRegression:
		return "regression"
	case FormatLogHistogram:
		return "log_histogram"
	case FormatTDigest:
		return "tdigest"
	case FormatCategorical:
		return "categorical"
	}
	return fmt.Sprintf("format(0x%02x)", byte(f))
}

var (
	// ErrCorrupt reports bytes that do not decode to a valid state.
	ErrCorrupt = errors.New("corrupt sketch encoding")
	// ErrFormat reports an encoding whose format id is unknown or is not
	// the one the decoding type reads.
	ErrFormat = errors.New("unexpected sketch format")
	// ErrIncompatible reports two states that cannot be merged or compared
	// (for example score histograms with different bin counts).
	ErrIncompatible = errors.New("incompatible sketch states")
	// ErrInvalid reports an argument outside its domain (a quantile outside
	// [0, 1], a NaN observation, a confidence level outside (0, 1)).
	ErrInvalid = errors.New("invalid argument")
)

// FormatOf returns the format id of an encoded state.
func FormatOf(src []byte) (Format, error) {
	if len(src) == 0 {
		return 0, fmt.Errorf("%w: empty input", ErrCorrupt)
	}
	return Format(src[0]), nil
}

// appendFloat64 appends f as 8 little-endian bytes.
func appendFloat64(dst []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
}

// appendVarint appends a zig-zag varint.
func appendVarint(dst []byte, v int64) []byte { return binary.AppendVarint(dst, v) }

// appendUvarint appends an unsigned varint.
func appendUvarint(dst []byte, v uint64) []byte { return binary.AppendUvarint(dst, v) }

// reader decodes the primitives of an encoding. The first failure sticks:
// later calls return zero values and err() reports the first cause, so a
// decoder can read a whole layout and check once.
type reader struct {
	b   []byte
	off int
	e   error
}

func newReader(src []byte) reader { return reader{b: src} }

func (r *reader) fail(what string) {
	if r.e == nil {
		r.e = fmt.Errorf("%w: truncated or invalid %s at byte %d", ErrCorrupt, what, r.off)
	}
}

// format reads the leading format id and checks it is want.
func (r *reader) format(want Format) {
	if r.e != nil {
		return
	}
	if r.off >= len(r.b) {
		r.fail("format id")
		return
	}
	got := Format(r.b[r.off])
	r.off++
	if got != want {
		r.e = fmt.Errorf("%w: got %v, want %v", ErrFormat, got, want)
	}
}

func (r *reader) byte(what string) byte {
	if r.e != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.fail(what)
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

// uvarint has a one-byte fast path small enough to inline, because most
// counts and index gaps in the layouts fit in one byte.
func (r *reader) uvarint(what string) uint64 {
	if r.off < len(r.b) && r.b[r.off] < 0x80 && r.e == nil {
		r.off++
		return uint64(r.b[r.off-1])
	}
	return r.uvarintSlow(what)
}

func (r *reader) uvarintSlow(what string) uint64 {
	if r.e != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.off += n
	return v
}

func (r *reader) varint(what string) int64 {
	if r.off < len(r.b) && r.b[r.off] < 0x80 && r.e == nil {
		u := int64(r.b[r.off])
		r.off++
		return (u >> 1) ^ -(u & 1)
	}
	return r.varintSlow(what)
}

func (r *reader) varintSlow(what string) int64 {
	if r.e != nil {
		return 0
	}
	v, n := binary.Varint(r.b[r.off:])
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.off += n
	return v
}

func (r *reader) float64(what string) float64 {
	if r.e != nil {
		return 0
	}
	if len(r.b)-r.off < 8 {
		r.fail(what)
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b[r.off:]))
	r.off += 8
	return v
}

// bytes returns the next n bytes, aliasing the input.
func (r *reader) bytes(n uint64, what string) []byte {
	if r.e != nil {
		return nil
	}
	if n > uint64(len(r.b)-r.off) {
		r.fail(what)
		return nil
	}
	s := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return s
}

// count reads a length prefix and checks it against the bytes left, given
// that each element takes at least minBytes; this bounds allocations made
// from untrusted lengths.
func (r *reader) count(what string, minBytes int) int {
	n := r.uvarint(what)
	if r.e != nil {
		return 0
	}
	if minBytes < 1 {
		minBytes = 1
	}
	if n > uint64(len(r.b)-r.off)/uint64(minBytes) {
		r.e = fmt.Errorf("%w: %s %d exceeds the %d bytes left", ErrCorrupt, what, n, len(r.b)-r.off)
		return 0
	}
	return int(n)
}

// invalid records a semantic error found while decoding.
func (r *reader) invalid(format string, args ...any) {
	if r.e == nil {
		r.e = fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
	}
}

// done reports the first error, or ErrCorrupt if bytes are left over.
func (r *reader) done() error {
	if r.e != nil {
		return r.e
	}
	if r.off != len(r.b) {
		return fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(r.b)-r.off)
	}
	return nil
}

// err reports the first error without checking for trailing bytes.
func (r *reader) err() error { return r.e }
