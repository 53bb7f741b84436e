package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
)

// Sentinel errors. Errors returned by this package wrap one of them (or an
// I/O error from the operating system) and name the segment involved.
var (
	// ErrCorrupt means a segment holds bytes that are not a valid record
	// where one must be, or the segment sequence has a gap. Damage found by
	// reading records is reported as a *CorruptionError.
	ErrCorrupt = errors.New("wal: corrupt")
	// ErrUnsupportedVersion means a segment was written by a newer format
	// version. It is never repaired: repairing would destroy valid data.
	ErrUnsupportedVersion = errors.New("wal: unsupported segment format version")
	// ErrClosed is returned by methods called after Close.
	ErrClosed = errors.New("wal: closed")
	// ErrRecordTooLarge is returned by Log for a record above MaxRecordSize;
	// nothing of that batch is written.
	ErrRecordTooLarge = errors.New("wal: record too large")
	// ErrInvalid reports an invalid option or argument (for example a
	// segment number outside the log).
	ErrInvalid = errors.New("wal: invalid argument")
)

// CorruptionError locates damage inside a segment. It wraps ErrCorrupt.
type CorruptionError struct {
	Dir     string
	Segment int   // segment number
	Offset  int64 // byte offset in the segment of the first bad record (0: the segment header)
	Reason  string
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("wal: corrupt segment %s at offset %d: %s", segmentPath(e.Dir, e.Segment), e.Offset, e.Reason)
}

// Unwrap makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptionError) Unwrap() error { return ErrCorrupt }

// Byte layout; see docs/format.md ("Write-ahead log").
const (
	segmentHeaderSize = 8
	recordHeaderSize  = 9
	formatVersion     = 1

	// recordFull is the only record type of format version 1. Zero is never
	// a valid type, so zero-filled space (a file extended but not yet
	// written when power failed) can never parse as a record.
	recordFull = 1
)

// MaxRecordSize bounds one record's payload. A reader also never allocates
// more than the rest of the segment file for a record.
const MaxRecordSize = 256 << 20

// segmentMagic is "EVWL"; bytes 4..7 of the header are the version and three
// reserved zero bytes.
func segmentHeader() [segmentHeaderSize]byte {
	return [segmentHeaderSize]byte{'E', 'V', 'W', 'L', formatVersion, 0, 0, 0}
}

func crcTable() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) }

// appendRecord frames rec: CRC-32C (over length, type and payload), length,
// type, payload. Little-endian throughout.
func appendRecord(dst, rec []byte, tab *crc32.Table) []byte {
	// The header is built in place: a local array would escape through
	// crc32.Update and cost an allocation per record.
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, 0)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(rec)))
	dst = append(dst, recordFull)
	dst = append(dst, rec...)
	h := dst[start:]
	binary.LittleEndian.PutUint32(h[0:4], recordCRC(h, rec, tab))
	return dst
}

// parseHeader checks the fields of a record header that can be checked
// without the payload; avail is the number of bytes after the header that
// belong to the segment. It returns the payload length or a reason.
func parseHeader(h []byte, avail int64) (crc uint32, n int64, reason string) {
	if h[8] != recordFull {
		return 0, 0, fmt.Sprintf("invalid record type %d", h[8])
	}
	n = int64(binary.LittleEndian.Uint32(h[4:8]))
	if n > MaxRecordSize {
		return 0, 0, fmt.Sprintf("record length %d above limit %d", n, MaxRecordSize)
	}
	if n > avail {
		return 0, 0, fmt.Sprintf("record length %d runs past the end of the segment (%d bytes left)", n, avail)
	}
	return binary.LittleEndian.Uint32(h[0:4]), n, ""
}

func recordCRC(h, payload []byte, tab *crc32.Table) uint32 {
	return crc32.Update(crc32.Update(0, tab, h[4:recordHeaderSize]), tab, payload)
}

// validRecordAt reports whether a complete record with a correct checksum
// starts at b[p:].
func validRecordAt(b []byte, p int, tab *crc32.Table) bool {
	if len(b)-p < recordHeaderSize {
		return false
	}
	h := b[p : p+recordHeaderSize]
	crc, n, reason := parseHeader(h, int64(len(b)-p-recordHeaderSize))
	if reason != "" {
		return false
	}
	return recordCRC(h, b[p+recordHeaderSize:p+recordHeaderSize+int(n)], tab) == crc
}

// anyValidRecord reports whether a valid record starts at any offset >= from
// in b. It decides whether bad bytes are a torn tail (nothing valid after
// them) or damage in the middle of the log. A false positive needs a type
// byte and a 32-bit checksum to match by chance.
func anyValidRecord(b []byte, from int, tab *crc32.Table) bool {
	for p := from; p+recordHeaderSize <= len(b); p++ {
		if b[p+8] == recordFull && validRecordAt(b, p, tab) {
			return true
		}
	}
	return false
}

// checkSegmentHeader returns "" for a valid header, or a reason. A header
// with our magic and another version is ErrUnsupportedVersion.
func checkSegmentHeader(h []byte, path string) (reason string, err error) {
	want := segmentHeader()
	if len(h) < segmentHeaderSize {
		return fmt.Sprintf("segment header truncated to %d bytes", len(h)), nil
	}
	if string(h[:4]) != string(want[:4]) {
		return fmt.Sprintf("bad segment magic %q", h[:4]), nil
	}
	if h[4] != formatVersion {
		return "", fmt.Errorf("%w %d in %s (this build reads %d)", ErrUnsupportedVersion, h[4], path, formatVersion)
	}
	if h[5] != 0 || h[6] != 0 || h[7] != 0 {
		return "bad reserved bytes in segment header", nil
	}
	return "", nil
}

// Segment files are named by their sequence number, zero-padded to 8 digits.
func segmentName(n int) string { return fmt.Sprintf("%08d", n) }

func segmentPath(dir string, n int) string { return filepath.Join(dir, segmentName(n)) }

func parseSegmentName(name string) (int, bool) {
	if len(name) < 8 {
		return 0, false
	}
	for _, c := range name {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(name)
	if err != nil || segmentName(n) != name {
		return 0, false
	}
	return n, true
}

// listSegments returns the sorted segment numbers in dir; other names are
// ignored. A gap in the sequence is corruption: replay would silently skip
// records.
func listSegments(dir string) ([]int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("wal: list segments: %w", err)
	}
	var segs []int
	for _, e := range ents {
		if n, ok := parseSegmentName(e.Name()); ok && e.Type().IsRegular() {
			segs = append(segs, n)
		}
	}
	slices.Sort(segs)
	for i := 1; i < len(segs); i++ {
		if segs[i] != segs[i-1]+1 {
			return nil, fmt.Errorf("wal: segments in %s not contiguous: %s follows %s: %w",
				dir, segmentName(segs[i]), segmentName(segs[i-1]), ErrCorrupt)
		}
	}
	return segs, nil
}

// syncDir makes file creations and removals in dir durable.
func syncDir(dir string, sync func(*os.File) error) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("wal: sync dir: %w", err)
	}
	if err := sync(d); err != nil {
		_ = d.Close()
		return fmt.Errorf("wal: sync dir %s: %w", dir, err)
	}
	if err := d.Close(); err != nil {
		return fmt.Errorf("wal: close dir %s: %w", dir, err)
	}
	return nil
}
