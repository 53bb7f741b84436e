package query

import (
	"errors"
	"fmt"
	"strings"

	"evalstore/query/parser"
)

// ErrorType classifies an error as the Prometheus HTTP API's errorType does.
type ErrorType string

// The error types the HTTP layer maps to Prometheus's errorType values.
const (
	ErrBadData  ErrorType = "bad_data"
	ErrTimeout  ErrorType = "timeout"
	ErrCanceled ErrorType = "canceled"
	// ErrExecution covers evaluation errors, limit errors included (their
	// Limit field names the limit).
	ErrExecution ErrorType = "execution"
)

// Error is every error the engine returns.
type Error struct {
	Type ErrorType
	// Limit names the limit that was exceeded ("max series"), for limit errors.
	Limit string
	// Pos is the position of the offending expression, for bad_data errors.
	Pos *parser.PositionRange
	Err error
}

func (e *Error) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// TypeOf returns the ErrorType of err (execution when it is not an *Error).
func TypeOf(err error) ErrorType {
	var e *Error
	if errors.As(err, &e) {
		return e.Type
	}
	return ErrExecution
}

// IsLimit reports whether err is a query limit error, and which limit.
func IsLimit(err error) (string, bool) {
	var e *Error
	if errors.As(err, &e) && e.Limit != "" {
		return e.Limit, true
	}
	return "", false
}

func limitError(name string, limit int) *Error {
	return &Error{Type: ErrExecution, Limit: name, Err: fmt.Errorf("query exceeded %s limit (%d)", name, limit)}
}

// badData builds a positioned bad_data error the way parser.ParseError does.
func badData(input string, pos parser.PositionRange, format string, args ...any) *Error {
	start := max(0, min(pos.Start, len(input)))
	line := 1 + strings.Count(input[:start], "\n")
	col := start - (strings.LastIndexByte(input[:start], '\n') + 1) + 1
	pe := &parser.ParseError{Pos: pos, Line: line, Column: col, Msg: fmt.Sprintf(format, args...)}
	return &Error{Type: ErrBadData, Pos: &pe.Pos, Err: pe}
}

// execError is an evaluation error (Prometheus reports these as execution
// errors, for example duplicate label sets).
func execError(format string, args ...any) *Error {
	return &Error{Type: ErrExecution, Err: fmt.Errorf(format, args...)}
}

// evalAbort carries an *Error out of deep evaluation by panic; Instant and
// Range recover it. Only the engine raises it.
type evalAbort struct{ err *Error }
