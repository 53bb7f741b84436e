package parser

import (
	"strings"
	"testing"
)

// FuzzParse: Parse never panics, and for every accepted input String()
// parses back to an equal AST (same canonical text and same tree shape).
func FuzzParse(f *testing.F) {
	for _, s := range promqlCorpus {
		f.Add(s)
	}
	for _, s := range promqlInvalid {
		f.Add(s)
	}
	for _, tc := range validCases {
		f.Add(tc.in)
	}
	for _, tc := range invalidCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		e, err := Parse(in)
		if err != nil {
			pe, ok := err.(*ParseError)
			if !ok {
				t.Fatalf("Parse(%q): error %T is not a *ParseError: %v", in, err, err)
			}
			if pe.Pos.Start < 0 || pe.Pos.End > len(in) || pe.Pos.Start > pe.Pos.End || pe.Line < 1 || pe.Column < 1 {
				t.Fatalf("Parse(%q): bad error position %+v", in, pe)
			}
			return
		}
		s := e.String()
		e2, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q) ok, but its String %q does not parse: %v", in, s, err)
		}
		if s2 := e2.String(); s2 != s {
			t.Fatalf("String not stable: %q -> %q -> %q", in, s, s2)
		}
		if !sameTree(e, e2) {
			t.Fatalf("tree changed for %q:\n%s\n%s", in, tree(e), tree(e2))
		}
		r := e.PositionRange()
		if r.Start < 0 || r.End > len(in) || r.Start > r.End {
			t.Fatalf("Parse(%q): root position %v out of the input", in, r)
		}
	})
}

// sameTree reports whether a and b have the same shape, ignoring
// positions and whether selectors were written with <...> (String prints
// them with {...}).
func sameTree(a, b Expr) bool {
	return strings.ReplaceAll(tree(a), "<>", "") == tree(b)
}
