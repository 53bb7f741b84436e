package ingest

import (
	"fmt"
	"strings"
)

// RecordError is one problem with one record of a batch. Index is the
// record's position in the batch (for NDJSON, its line among the non-empty
// lines; -1 for a problem with the body or, in an evaluation, with the run's
// own fields). Field is the JSON path of the offending field ("score",
// "features.age", "records[3].label"; "" for the whole record).
type RecordError struct {
	Index  int    `json:"index"`
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

func (e RecordError) String() string {
	if e.Field == "" {
		return fmt.Sprintf("record %d: %s", e.Index, e.Reason)
	}
	return fmt.Sprintf("record %d: %s: %s", e.Index, e.Field, e.Reason)
}

// BatchError lists every bad record of a refused batch (HTTP 400). Nothing of
// the batch was written.
type BatchError struct {
	Errors []RecordError `json:"errors"`
}

func (e *BatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ingest: batch refused, %d error(s)", len(e.Errors))
	for i, r := range e.Errors {
		if i == 5 {
			fmt.Fprintf(&b, "; ...")
			break
		}
		b.WriteString("; ")
		b.WriteString(r.String())
	}
	return b.String()
}

// TooLargeError says a request body exceeds a size limit (HTTP 413).
type TooLargeError struct {
	// What is "body" (the bytes as sent) or "decoded body" (after
	// Content-Encoding) or "records" (the record count).
	What  string
	Limit int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("ingest: %s exceeds the limit of %d", e.What, e.Limit)
}

// UnsupportedError says a request's content type or content encoding is not
// supported (HTTP 415).
type UnsupportedError struct {
	// What is "content type" or "content encoding".
	What, Value string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("ingest: unsupported %s %q", e.What, e.Value)
}
