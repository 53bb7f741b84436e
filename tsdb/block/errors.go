package block

import (
	"errors"
	"fmt"
)

var (
	// ErrEmpty reports a Write or Compact with no data to write; no block
	// was created.
	ErrEmpty = errors.New("block: no data to write")
	// ErrCorrupt reports bytes on disk that fail a checksum or do not
	// decode. Errors wrapping it are *CorruptError values naming the file
	// and offset.
	ErrCorrupt = errors.New("block: corrupt")
	// ErrNotBlock reports a directory that is not a complete block: no
	// meta.json (a crashed write never gets one) or a leftover ".tmp"
	// directory, which callers should delete.
	ErrNotBlock = errors.New("block: not a block directory")
	// ErrClosed reports use of a Block after Close.
	ErrClosed = errors.New("block: closed")
	// ErrInvalid reports an argument outside its domain (a resolution that
	// is not positive or not a multiple of an input's, unsorted input).
	ErrInvalid = errors.New("block: invalid argument")
)

// CorruptError locates a corruption: File is relative to the block
// directory ("index", "chunks/000001", "meta.json"), Offset the byte offset
// in it where the bad record starts (-1 when the whole file is at fault).
type CorruptError struct {
	Dir    string
	File   string
	Offset int64
	Reason string
	Err    error // optional underlying cause (for example an index.ErrCorrupt)
}

func (e *CorruptError) Error() string {
	s := fmt.Sprintf("block %s: corrupt %s", e.Dir, e.File)
	if e.Offset >= 0 {
		s += fmt.Sprintf(" at offset %d", e.Offset)
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap makes errors.Is(err, ErrCorrupt) hold, and keeps the cause.
func (e *CorruptError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrCorrupt, e.Err}
	}
	return []error{ErrCorrupt}
}

func corruptf(dir, file string, off int64, format string, args ...any) error {
	return &CorruptError{Dir: dir, File: file, Offset: off, Reason: fmt.Sprintf(format, args...)}
}
