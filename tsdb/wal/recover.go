package wal

import (
	"errors"
	"fmt"
	"os"
)

// recover brings the directory to a state Log can append to: it finds the
// segments, repairs a torn tail (and, with Options.Repair, any corruption)
// and opens the last segment. Called by Open before the WAL is shared.
func (w *WAL) recover() error {
	var c ioCounts
	defer w.addCounts(&c)
	segs, err := listSegments(w.dir)
	if err != nil {
		return err
	}
	if len(segs) == 0 {
		f, err := w.createSegment(0, &c)
		if err != nil {
			return err
		}
		w.file, w.firstSeg, w.curSeg, w.curSize = f, 0, 0, segmentHeaderSize
		return nil
	}
	first, last := segs[0], segs[len(segs)-1]
	scan := segs[len(segs)-1:]
	if w.opts.Repair {
		scan = segs
	}
	r := newReader(w.dir, scan, -1)
	for r.Next() {
	}
	err = errors.Join(r.Err(), r.Close())

	cut, cutOff := -1, int64(0)
	var ce *CorruptionError
	switch {
	case err != nil && w.opts.Repair && errors.As(err, &ce):
		w.opts.Logger.Warn("wal: repairing corruption: truncating the log", "dir", w.dir,
			"segment", ce.Segment, "offset", ce.Offset, "reason", ce.Reason, "later_segments_removed", last-ce.Segment)
		if err := w.removeAfter(ce.Segment, last, &c); err != nil {
			return err
		}
		last, cut, cutOff = ce.Segment, ce.Segment, ce.Offset
	case err != nil && errors.As(err, &ce):
		return fmt.Errorf("%w (Options.Repair truncates the log there)", err)
	case err != nil:
		return err
	case r.torn:
		w.opts.Logger.Warn("wal: truncating torn tail of last segment", "dir", w.dir,
			"segment", r.tornSeg, "offset", r.tornOff, "bytes", r.tornSize-r.tornOff)
		cut, cutOff = r.tornSeg, r.tornOff
	}

	f, err := os.OpenFile(segmentPath(w.dir, last), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("wal: open segment: %w", err)
	}
	size, err := w.prepareLast(f, last, cut == last, cutOff, &c)
	if err != nil {
		_ = f.Close()
		return err
	}
	w.file, w.firstSeg, w.curSeg, w.curSize = f, first, last, size
	return nil
}

// prepareLast truncates the last segment at off if cut is set (rewriting the
// header if the damage starts inside it), fsyncs it and returns its size.
func (w *WAL) prepareLast(f *os.File, seg int, cut bool, off int64, c *ioCounts) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("wal: stat segment %s: %w", segmentPath(w.dir, seg), err)
	}
	size := fi.Size()
	if cut {
		if off < segmentHeaderSize {
			off = 0
		}
		if err := f.Truncate(off); err != nil {
			return 0, fmt.Errorf("wal: truncate segment %s at %d: %w", segmentPath(w.dir, seg), off, err)
		}
		w.stats.RepairedBytes += size - off
		size = off
		if off == 0 {
			h := segmentHeader()
			if _, err := f.Write(h[:]); err != nil {
				return 0, fmt.Errorf("wal: write header of segment %s: %w", segmentPath(w.dir, seg), err)
			}
			size = segmentHeaderSize
		}
	}
	// Also covers records a previous process wrote under SyncInterval or
	// SyncNever and never fsynced: replay must return only durable records.
	if err := w.fsync(f, seg, c); err != nil {
		return 0, err
	}
	return size, nil
}

// removeAfter deletes segments seg+1..last, newest first, so that a crash
// part way leaves a contiguous log that still ends at the damage.
func (w *WAL) removeAfter(seg, last int, c *ioCounts) error {
	if last == seg {
		return nil
	}
	for n := last; n > seg; n-- {
		p := segmentPath(w.dir, n)
		if fi, err := os.Stat(p); err == nil {
			w.stats.RepairedBytes += fi.Size()
		}
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("wal: repair: %w", err)
		}
		w.stats.SegmentsRemoved++
	}
	return w.syncDir(c)
}
