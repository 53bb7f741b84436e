package wal

import (
	"bufio"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
)

// Reader iterates over the records of a WAL directory in log order:
//
//	r, err := wal.NewReader(dir, first)
//	for r.Next() {
//		use(r.Record()) // valid until the next call to Next
//	}
//	err = errors.Join(r.Err(), r.Close())
//
// A Reader does not modify the directory. In the last segment, bad bytes
// followed by no valid record are a torn tail (a crash in the middle of a
// write): iteration ends there without error, as Open would repair it. Any
// other damage ends iteration with a *CorruptionError. A Reader is not safe
// for concurrent use.
type Reader struct {
	dir  string
	segs []int
	tab  *crc32.Table

	// lastLimit, if >= 0, is the number of bytes of the last segment to
	// read, all of which must be valid (a live WAL's written size); -1
	// tolerates a torn tail and reads to the end of the file.
	lastLimit int64

	i   int // index into segs of the open segment
	f   *os.File
	br  *bufio.Reader
	end int64 // bytes of the open segment to read
	off int64 // offset of the next record in the open segment

	hdr    [recordHeaderSize]byte // in the struct: a local would escape
	rec    []byte
	recSeg int
	recOff int64
	err    error
	done   bool

	torn     bool // a torn tail was found at tornSeg/tornOff
	tornSeg  int
	tornOff  int64
	tornSize int64 // size of the segment file at the time
}

// NewReader returns a Reader over the segments of dir numbered from and up.
// from must lie between the first segment and one past the last; an empty
// directory yields no records.
func NewReader(dir string, from int) (*Reader, error) {
	segs, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	if len(segs) == 0 {
		if from < 0 {
			return nil, fmt.Errorf("wal: read from segment %d: %w", from, ErrInvalid)
		}
		return newReader(dir, nil, -1), nil
	}
	segs, err = segmentRange(segs[0], segs[len(segs)-1], from)
	if err != nil {
		return nil, err
	}
	return newReader(dir, segs, -1), nil
}

// segmentRange returns from..last, checking from against the log's extent.
func segmentRange(first, last, from int) ([]int, error) {
	if from < first || from > last+1 {
		return nil, fmt.Errorf("wal: read from segment %d: log holds segments %d to %d: %w", from, first, last, ErrInvalid)
	}
	segs := make([]int, 0, last-from+1)
	for n := from; n <= last; n++ {
		segs = append(segs, n)
	}
	return segs, nil
}

func newReader(dir string, segs []int, lastLimit int64) *Reader {
	return &Reader{dir: dir, segs: segs, tab: crcTable(), lastLimit: lastLimit}
}

// Next advances to the next record and reports whether there is one. It
// returns false at the end of the log or on an error (see Err).
func (r *Reader) Next() bool {
	if r.err != nil || r.done {
		return false
	}
	for {
		if r.f == nil {
			if r.i >= len(r.segs) {
				r.done = true
				return false
			}
			ok, err := r.openSegment()
			if err != nil {
				r.fail(err)
				return false
			}
			if !ok { // torn header in the last segment
				r.done = true
				r.closeSegment()
				return false
			}
		}
		ok, err := r.readRecord()
		if err != nil {
			r.fail(err)
			return false
		}
		if ok {
			return true
		}
		if r.torn {
			r.done = true
			r.closeSegment()
			return false
		}
		r.closeSegment()
		r.i++
	}
}

// Record returns the current record. The slice is valid until the next call
// to Next; copy it to keep it.
func (r *Reader) Record() []byte { return r.rec }

// Segment returns the segment number of the current record.
func (r *Reader) Segment() int { return r.recSeg }

// Offset returns the byte offset of the current record's header in its
// segment.
func (r *Reader) Offset() int64 { return r.recOff }

// Err returns the error that ended iteration, or nil at a clean end (which
// includes a torn tail in the last segment).
func (r *Reader) Err() error { return r.err }

// Close ends iteration and releases the open segment file. It is safe to
// call more than once.
func (r *Reader) Close() error {
	r.done = true
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f, r.br = nil, nil
	if err != nil {
		return fmt.Errorf("wal: close segment reader: %w", err)
	}
	return nil
}

func (r *Reader) fail(err error) {
	r.err = err
	r.closeSegment()
}

func (r *Reader) closeSegment() {
	if r.f != nil {
		_ = r.f.Close() // read-only: a close error loses nothing
		r.f, r.br = nil, nil
	}
}

func (r *Reader) isLast() bool { return r.i == len(r.segs)-1 }

// openSegment opens segs[i] and checks its header. It returns false if the
// last segment's header is torn (nothing valid in the file).
func (r *Reader) openSegment() (bool, error) {
	seg := r.segs[r.i]
	f, err := os.Open(segmentPath(r.dir, seg))
	if err != nil {
		return false, fmt.Errorf("wal: open segment %s: %w", segmentName(seg), err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return false, fmt.Errorf("wal: stat segment %s: %w", segmentName(seg), err)
	}
	r.f, r.off, r.end = f, 0, fi.Size()
	if r.isLast() && r.lastLimit >= 0 {
		if r.end < r.lastLimit {
			return false, &CorruptionError{Dir: r.dir, Segment: seg, Offset: r.end,
				Reason: fmt.Sprintf("segment is %d bytes, %d were written", r.end, r.lastLimit)}
		}
		r.end = r.lastLimit
	}
	if r.br == nil {
		r.br = bufio.NewReaderSize(f, 64<<10)
	} else {
		r.br.Reset(f)
	}
	var h [segmentHeaderSize]byte
	n, err := io.ReadFull(r.br, h[:min(int64(len(h)), r.end)])
	if err != nil {
		return false, fmt.Errorf("wal: read segment %s: %w", segmentName(seg), err)
	}
	reason, err := checkSegmentHeader(h[:n], segmentPath(r.dir, seg))
	if err != nil {
		return false, err
	}
	if reason != "" {
		return false, r.bad(0, reason)
	}
	r.off = segmentHeaderSize
	return true, nil
}

// readRecord reads the record at r.off. It returns false at the end of the
// segment or at a torn tail.
func (r *Reader) readRecord() (bool, error) {
	if r.off == r.end {
		return false, nil
	}
	if r.end-r.off < recordHeaderSize {
		return false, r.bad(r.off, fmt.Sprintf("%d bytes left, too few for a record header", r.end-r.off))
	}
	h := r.hdr[:]
	if _, err := io.ReadFull(r.br, h); err != nil {
		return false, r.ioErr(err)
	}
	crc, n, reason := parseHeader(h, r.end-r.off-recordHeaderSize)
	if reason != "" {
		return false, r.bad(r.off, reason)
	}
	if int64(cap(r.rec)) < n {
		r.rec = make([]byte, n)
	}
	r.rec = r.rec[:n]
	if _, err := io.ReadFull(r.br, r.rec); err != nil {
		return false, r.ioErr(err)
	}
	if recordCRC(h, r.rec, r.tab) != crc {
		return false, r.bad(r.off, "checksum mismatch")
	}
	r.recSeg, r.recOff = r.segs[r.i], r.off
	r.off += recordHeaderSize + n
	return true, nil
}

func (r *Reader) ioErr(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		// The file shrank under us; only a foreign writer does that.
		return &CorruptionError{Dir: r.dir, Segment: r.segs[r.i], Offset: r.off, Reason: "unexpected end of file"}
	}
	return fmt.Errorf("wal: read segment %s: %w", segmentName(r.segs[r.i]), err)
}

// bad classifies invalid bytes at off: in the last segment of a tolerant
// reader, they are a torn tail if no valid record starts anywhere after off;
// otherwise they are corruption. It returns nil for a torn tail.
func (r *Reader) bad(off int64, reason string) error {
	seg := r.segs[r.i]
	if !r.isLast() || r.lastLimit >= 0 {
		return &CorruptionError{Dir: r.dir, Segment: seg, Offset: off, Reason: reason}
	}
	rest := make([]byte, r.end-off)
	if _, err := r.f.ReadAt(rest, off); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("wal: read segment %s: %w", segmentName(seg), err)
	}
	if anyValidRecord(rest, 1, r.tab) {
		return &CorruptionError{Dir: r.dir, Segment: seg, Offset: off,
			Reason: reason + ", followed by valid records"}
	}
	r.torn, r.tornSeg, r.tornOff, r.tornSize = true, seg, off, r.end
	return nil
}
