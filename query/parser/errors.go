package parser

import (
	"fmt"
	"strings"
)

// PositionRange is a half-open range of byte offsets [Start, End) into the
// query text.
type PositionRange struct {
	Start, End int
}

// ParseError is a syntax error at a position of the query text. Line and
// Column are 1-based; Column counts bytes, as Prometheus does.
type ParseError struct {
	Pos    PositionRange
	Line   int
	Column int
	Msg    string
}

// Error returns "line:column: message".
func (e *ParseError) Error() string {
	return fmt.Sprintf("%d:%d: %s", e.Line, e.Column, e.Msg)
}

// errAt builds a ParseError for input[start:end].
func errAt(input string, start, end int, format string, args ...any) *ParseError {
	start = max(0, min(start, len(input)))
	end = max(start, min(end, len(input)))
	line := 1 + strings.Count(input[:start], "\n")
	col := start - (strings.LastIndexByte(input[:start], '\n') + 1) + 1
	return &ParseError{
		Pos:    PositionRange{Start: start, End: end},
		Line:   line,
		Column: col,
		Msg:    fmt.Sprintf(format, args...),
	}
}
