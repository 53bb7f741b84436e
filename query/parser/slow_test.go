package parser

import (
	"strings"
	"testing"
	"time"
)

// TestNoBacktrackingBlowup: inputs that make a backtracking parser re-parse
// the same text must still parse (or fail) in linear-ish time.
func TestNoBacktrackingBlowup(t *testing.T) {
	n := MaxNesting - 1
	cases := map[string]string{
		"nested calls, error inside":     strings.Repeat("f(", n) + "x +" + strings.Repeat(")", n),
		"nested aggregations, error":     strings.Repeat("sum(", n) + "x," + strings.Repeat(")", n),
		"nested parens, error":           strings.Repeat("(", n) + "x +" + strings.Repeat(")", n),
		"nested calls with by":           strings.Repeat("sum by (a) (", n) + "x" + strings.Repeat(")", n),
		"angle attempts":                 strings.Repeat("a<b>", 2000) + "c",
		"failed angle brackets":          strings.Repeat(`a<b="x" < `, 2000) + "c",
		"long sum":                       strings.Repeat("a + ", 5000) + "b",
		"nested subqueries":              strings.Repeat("(", n) + "x" + strings.Repeat(")[5m:]", n),
		"unary chain":                    strings.Repeat("-", 5000) + "x",
		"nested calls, bad last matcher": strings.Repeat("f(", n) + `x{a="b",c=}` + strings.Repeat(")", n),
	}
	for name, in := range cases {
		start := time.Now()
		_, err := Parse(in)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s: %v (err %v)", name, d, err)
		} else {
			t.Logf("%s: %d bytes in %v (error: %v)", name, len(in), d, err != nil)
		}
	}
}
