package remotewrite

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Sentinels for errors.Is. Every error Receiver.Write returns is an *Error
// wrapping exactly one of them.
var (
	// ErrUnsupported: the content type, proto message or content encoding
	// is not one this receiver reads (HTTP 415).
	ErrUnsupported = errors.New("unsupported media type")
	// ErrTooLarge: the body, compressed or decoded, exceeds the limit (HTTP 413).
	ErrTooLarge = errors.New("request too large")
	// ErrInvalid: the request is malformed or carries invalid data; nothing
	// was written and a retry cannot succeed (HTTP 400).
	ErrInvalid = errors.New("invalid remote-write request")
	// ErrStorage: the storage failed; nothing was written and the sender
	// should retry (HTTP 500, or 503 when the request context ended).
	ErrStorage = errors.New("storage error")
)

// Problem names one invalid item of a request.
type Problem struct {
	// Series is the item's series in Prometheus text form when its labels
	// could be decoded, otherwise a description such as "timeseries[3]".
	Series string
	// Item is "series", "sample", "histogram", "exemplar" or "metadata".
	Item string
	// Index is the item's position within its series (-1 for the series
	// itself).
	Index int
	// Timestamp is the sample's timestamp when Item is a sample or histogram.
	Timestamp int64
	Reason    string
}

func (p Problem) String() string {
	if p.Index < 0 {
		return fmt.Sprintf("%s: %s", p.Series, p.Reason)
	}
	if p.Item == "sample" || p.Item == "histogram" {
		return fmt.Sprintf("%s: %s[%d] at %d: %s", p.Series, p.Item, p.Index, p.Timestamp, p.Reason)
	}
	return fmt.Sprintf("%s: %s[%d]: %s", p.Series, p.Item, p.Index, p.Reason)
}

// Error is the error type of Receiver.Write: the HTTP status the API layer
// answers with, and for invalid data the problems found (at most
// Options.MaxProblems; Omitted counts the rest).
type Error struct {
	Status   int
	Kind     error // one of the sentinels
	Msg      string
	Problems []Problem
	Omitted  int
	Cause    error // storage or decoding error, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Kind.Error())
	if e.Msg != "" {
		b.WriteString(": ")
		b.WriteString(e.Msg)
	}
	if e.Cause != nil {
		b.WriteString(": ")
		b.WriteString(e.Cause.Error())
	}
	for i, p := range e.Problems {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	if e.Omitted > 0 {
		fmt.Fprintf(&b, "; and %d more", e.Omitted)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrInvalid) and friends work.
func (e *Error) Is(target error) bool { return target == e.Kind }

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Cause }

// Retryable reports whether the sender should retry (5xx and 429).
func (e *Error) Retryable() bool { return e.Status >= 500 || e.Status == http.StatusTooManyRequests }

// StatusCode returns the HTTP status for an error from Receiver.Write:
// the *Error's Status, 204 for nil, 500 for any other error.
func StatusCode(err error) int {
	if err == nil {
		return http.StatusNoContent
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Status
	}
	return http.StatusInternalServerError
}

func unsupported(format string, args ...any) *Error {
	return &Error{Status: http.StatusUnsupportedMediaType, Kind: ErrUnsupported, Msg: fmt.Sprintf(format, args...)}
}

func invalid(cause error, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Kind: ErrInvalid, Msg: fmt.Sprintf(format, args...), Cause: cause}
}

func tooLarge(format string, args ...any) *Error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Kind: ErrTooLarge, Msg: fmt.Sprintf(format, args...)}
}

func storageErr(status int, cause error, format string, args ...any) *Error {
	return &Error{Status: status, Kind: ErrStorage, Msg: fmt.Sprintf(format, args...), Cause: cause}
}
