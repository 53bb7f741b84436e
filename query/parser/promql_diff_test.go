package parser

import (
	"fmt"
	"slices"
	"testing"

	promparser "github.com/prometheus/prometheus/promql/parser"
)

// intentionalDiffs lists inputs whose canonical text differs from
// Prometheus's String(), with the reason. Keep it short and justified.
var intentionalDiffs = map[string]string{}

// evalstoreOnly lists inputs Prometheus rejects and evalstore accepts on
// purpose: the parser checks syntax only, and the engine type-checks later,
// because sketch metrics change PromQL's typing (m<...>[7d] is an instant
// vector) and the engine owns the function registry.
var evalstoreOnly = map[string]string{
	`accuracy<model="b",slice="eu">[7d] - offline(accuracy<model="b">)`: "angle-bracket matchers and the offline() function",
	`accuracy<model="a">`:          "angle-bracket matchers",
	`<model="a">`:                  "angle-bracket matchers",
	`sum(accuracy{model="a"}[7d])`: "a sketch range selector is an instant vector, so it can be aggregated",
	`-accuracy[7d]`:                "same: unary minus on a sketch range selector",
	`accuracy[7d] - accuracy[1d]`:  "same: arithmetic between sketch range selectors",
	`accuracy[7d][30d:1d]`:         "same: a subquery over a sketch range selector",
	`1[5m:]`:                       "type check (subquery over a scalar) is the engine's",
	`-x[5m:]`:                      "type check (unary minus on a range vector) is the engine's",
	`"a" + 1`:                      "type check (string operand) is the engine's",
	`1 > 2`:                        "type check (scalar comparison without bool) is the engine's",
	`offline(accuracy{model="b"})`: "function names and arity are the engine's (its registry has offline, psi, ttest...)",
	`rate()`:                       "function arity is the engine's",
	`RATE(x[5m])`:                  "function names are the engine's (Prometheus's are lower case)",
}

func promParser() promparser.Parser {
	return promparser.NewParser(promparser.Options{EnableExperimentalFunctions: true})
}

func TestDifferentialValid(t *testing.T) {
	pp := promParser()
	match := 0
	for _, in := range promqlCorpus {
		pe, perr := pp.ParseExpr(in)
		if perr != nil {
			t.Errorf("corpus entry %q is not valid PromQL: %v", in, perr)
			continue
		}
		oe, oerr := Parse(in)
		if oerr != nil {
			t.Errorf("Parse(%q): %v", in, oerr)
			continue
		}
		ps, os := pe.String(), oe.String()
		if ps == os {
			match++
			if _, ok := intentionalDiffs[in]; ok {
				t.Errorf("%q is listed as an intentional difference but matches", in)
			}
			continue
		}
		if why, ok := intentionalDiffs[in]; ok {
			t.Logf("intentional difference %q: ours %q, Prometheus %q (%s)", in, os, ps, why)
			continue
		}
		t.Errorf("String(%q): ours %q, Prometheus %q", in, os, ps)
	}
	t.Logf("differential: %d of %d valid expressions print identically to Prometheus", match, len(promqlCorpus))
	if len(promqlCorpus) < 200 {
		t.Errorf("corpus has %d expressions, want at least 200", len(promqlCorpus))
	}
}

func TestDifferentialInvalid(t *testing.T) {
	pp := promParser()
	for _, in := range promqlInvalid {
		if _, err := pp.ParseExpr(in); err == nil {
			t.Errorf("invalid-corpus entry %q is accepted by Prometheus", in)
		}
		if e, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) accepted it as %s", in, e)
		}
	}
}

func TestDifferentialPositions(t *testing.T) {
	pp := promParser()
	match := 0
	for _, in := range promqlCorpus {
		pe, _ := pp.ParseExpr(in)
		oe, err := Parse(in)
		if pe == nil || err != nil {
			continue
		}
		var theirs, ours []string
		promparser.Inspect(pe, func(n promparser.Node, _ []promparser.Node) error {
			if _, ok := n.(promparser.Expressions); ok || n == nil {
				return nil
			}
			r := n.PositionRange()
			theirs = append(theirs, fmt.Sprintf("%d-%d", r.Start, r.End))
			return nil
		})
		Inspect(oe, func(n Node, _ []Node) bool {
			r := n.PositionRange()
			ours = append(ours, fmt.Sprintf("%d-%d", r.Start, r.End))
			return true
		})
		// Prometheus walks an aggregation's Expr before its Param; compare as sets.
		slices.Sort(theirs)
		slices.Sort(ours)
		if slices.Equal(theirs, ours) {
			match++
		} else {
			t.Errorf("node positions of %q: ours %v, Prometheus %v", in, ours, theirs)
		}
	}
	t.Logf("positions: every node of %d of %d expressions has Prometheus's position range", match, len(promqlCorpus))
}

func TestDifferentialEvalstoreOnly(t *testing.T) {
	pp := promParser()
	for in, why := range evalstoreOnly {
		if _, err := pp.ParseExpr(in); err == nil {
			t.Errorf("%q is accepted by Prometheus; it does not belong in evalstoreOnly", in)
		}
		if _, err := Parse(in); err != nil {
			t.Errorf("Parse(%q) (%s): %v", in, why, err)
		}
	}
}
