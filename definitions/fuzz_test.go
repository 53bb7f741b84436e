package definitions

import (
	"errors"
	"math"
	"os"
	"reflect"
	"testing"
)

// FuzzParsePredicate: the parser never panics; a parsed predicate's String
// re-parses to an equal predicate (same tree, same String), and evaluating
// it never panics.
func FuzzParsePredicate(f *testing.F) {
	for _, s := range []string{
		`country == "de"`, `a in ("x", 1, true) and not b is missing`,
		`(a < 1 or b >= -2.5e3) and c != 'q\'s'`, "features.`x y` not in (1,)",
		`attributes.t == "gold" or model == "m" and version != "v"`,
		`not not (x <= .5)`, `a == 1 or (b == 2 and (c == 3 or d == 4))`,
		`user.age > 3`, "`model` == 1", `a == "\u00e9\x41\t"`,
	} {
		f.Add(s)
	}
	r := &MapRecord{Model: "m", Version: "v", Features: map[string]Value{
		"a": NumberValue(1), "b": StringValue("x"), "c": BoolValue(true), "d": NumberValue(math.NaN()), "e": {},
	}, Attributes: map[string]Value{"t": StringValue("gold"), "a": StringValue("attr")}}
	f.Fuzz(func(t *testing.T, src string) {
		p, err := ParsePredicate(src)
		if err != nil {
			if _, ok := err.(*SyntaxError); !ok {
				t.Fatalf("error %T is not *SyntaxError", err)
			}
			return
		}
		s := p.String()
		q, err := ParsePredicate(s)
		if err != nil {
			t.Fatalf("String %q of %q does not re-parse: %v", s, src, err)
		}
		if q.String() != s {
			t.Fatalf("String not stable: %q -> %q", s, q.String())
		}
		if !reflect.DeepEqual(stripPos(p.root), stripPos(q.root)) {
			t.Fatalf("re-parse of %q differs from %q", s, src)
		}
		if p.Match(r) != q.Match(r) {
			t.Fatalf("%q and %q evaluate differently", src, s)
		}
		_ = p.Fields()
	})
}

// stripPos zeroes the message-only positions so trees can be compared.
func stripPos(n node) node {
	switch n := n.(type) {
	case *andNode:
		out := &andNode{}
		for _, t := range n.terms {
			out.terms = append(out.terms, stripPos(t))
		}
		return out
	case *orNode:
		out := &orNode{}
		for _, t := range n.terms {
			out.terms = append(out.terms, stripPos(t))
		}
		return out
	case *notNode:
		return &notNode{x: stripPos(n.x)}
	case *cmpNode:
		c := *n
		c.pos = 0
		return &c
	case *inNode:
		c := *n
		c.pos = nil
		return &c
	}
	return n
}

// FuzzParse: parsing any file never panics, and either succeeds or returns
// an *Error with at least one located problem.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("testdata/example.yaml"); err == nil {
		f.Add(b)
	}
	for _, s := range []string{
		"", "models: [x]", "slices:\n  a: b == 1\n", "metrics:\n  m: x\n",
		"x-a: &a {task: binary, classes: [a, b], positive_class: a}\nmodels:\n  m: {<<: *a}\n",
		"models:\n  m:\n    task: binary\n    classes: [0, 1]\n    positive_class: 1\n    features: {a: numeric}\nslices:\n  s: {where: a > \"x\", models: [m]}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse("f.yaml", data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || len(e.Problems) == 0 {
				t.Fatalf("error %T %v", err, err)
			}
			return
		}
		if _, err := d.MarshalJSON(); err != nil {
			t.Fatal(err)
		}
	})
}
