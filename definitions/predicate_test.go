package definitions

import (
	"math"
	"testing"
)

func TestParsePredicateCanonical(t *testing.T) {
	cases := []struct{ src, want string }{
		{`country == "de"`, `country == "de"`},
		{`country=='de'`, `country == "de"`},
		{`x != 1`, `x != 1`},
		{`x<1.5`, `x < 1.5`},
		{`x <= -2`, `x <= -2`},
		{`x > .5`, `x > 0.5`},
		{`x >= 1e3`, `x >= 1000`},
		{`x >= 1E+30`, `x >= 1e+30`},
		{`flag == true`, `flag == true`},
		{`flag != FALSE`, `flag != false`},
		{`c in ("eu", "us")`, `c in ("eu", "us")`},
		{`c in ("eu", 3, true,)`, `c in ("eu", 3, true)`},
		{`c NOT IN ('eu')`, `c not in ("eu")`},
		{`c is missing`, `c is missing`},
		{`c IS NOT MISSING`, `c is not missing`},
		{`features.age > 3`, `features.age > 3`},
		{`attributes.tier == "gold"`, `attributes.tier == "gold"`},
		{`features.user.age > 3`, `features.user.age > 3`},
		{`user.age > 3`, `user.age > 3`},
		{"features.`page-type` == \"x\"", "features.`page-type` == \"x\""},
		{"`my feature` == 1", "`my feature` == 1"},
		{"`model` == \"a\"", "`model` == \"a\""},
		{"`features.x` == 1", "`features.x` == 1"},
		{`features.in == 1`, `features.in == 1`},
		{"`in` == 1", "`in` == 1"},
		{`model == "churn"`, `model == "churn"`},
		{`version != "v1"`, `version != "v1"`},
		{`a == 1 and b == 2 or c == 3`, `(a == 1 and b == 2) or c == 3`},
		{`a == 1 or b == 2 and c == 3`, `a == 1 or (b == 2 and c == 3)`},
		{`(a == 1 or b == 2) and c == 3`, `(a == 1 or b == 2) and c == 3`},
		{`a == 1 and (b == 2 and c == 3)`, `a == 1 and b == 2 and c == 3`},
		{`((a == 1))`, `a == 1`},
		{`not a == 1 and b == 2`, `not (a == 1) and b == 2`},
		{`not (a == 1 and b == 2)`, `not (a == 1 and b == 2)`},
		{`not not a is missing`, `not not (a is missing)`},
		{`s == "tab\there \"q\" 'sq' \u00e9"`, `s == "tab\there \"q\" 'sq' é"`},
		{`s == 'it\'s "x"'`, `s == "it's \"x\""`},
		{"a == 1\n  and b == 2", `a == 1 and b == 2`},
	}
	for _, c := range cases {
		p, err := ParsePredicate(c.src)
		if err != nil {
			t.Errorf("ParsePredicate(%q): %v", c.src, err)
			continue
		}
		if got := p.String(); got != c.want {
			t.Errorf("ParsePredicate(%q).String() = %q, want %q", c.src, got, c.want)
		}
		q, err := ParsePredicate(p.String())
		if err != nil || q.String() != p.String() {
			t.Errorf("re-parse of %q: %v, %v", p.String(), q, err)
		}
	}
}

func TestParsePredicateErrors(t *testing.T) {
	cases := []struct{ src, want string }{
		{``, `column 1: empty predicate`},
		{`   `, `column 1: empty predicate`},
		{`country = "de"`, `column 9: unexpected "=" (use == for equality)`},
		{`!(a == 1)`, `column 1: unexpected "!" (use not, or != for inequality)`},
		{`a == 1 && b == 2`, `column 8: unexpected '&' (use and)`},
		{`a == 1 || b == 2`, `column 8: unexpected '|' (use or)`},
		{`a == "x`, `column 6: unterminated string`},
		{`a == "x\qy"`, `column 6: malformed string "x\qy": bad escape`},
		{"a == \"x\ny\"", `column 6: newline in string`},
		{"a == `", "column 6: unterminated `name`"},
		{"`` == 1", "column 1: empty `name`"},
		{`a == 1e999`, `column 6: number 1e999 is out of range`},
		{`a == 12abc`, `column 6: malformed number "12a"`},
		{`a == 0x10`, `column 6: malformed number "0x"`},
		{`a == null`, `column 6: null is not a value: test for missing values with "is missing"`},
		{`a == b`, `column 6: expected a string, number or boolean, found "b" (quote strings; fields can only be compared with literals)`},
		{`a ==`, `column 5: expected a string, number or boolean, found end of predicate`},
		{`a`, `column 2: expected ==, !=, <, <=, >, >=, in, not in or is after a, found end of predicate`},
		{`a b`, `column 3: expected ==, !=, <, <=, >, >=, in, not in or is after a, found "b"`},
		{`a < true`, `column 5: booleans are not ordered: a < true`},
		{`a in "x"`, `column 6: expected "(" after "in", found string "x"`},
		{`a in ()`, `column 7: empty in () list`},
		{`a in ("x" "y")`, `column 11: expected "," or ")" in the in list, found string "y"`},
		{`a in ("x",`, `column 11: expected a string, number or boolean, found end of predicate`},
		{`a not ("x")`, `column 7: expected "in" after "not", found "("`},
		{`a is null`, `column 6: expected "missing" after "is", found "null"`},
		{`a is not`, `column 9: expected "missing" after "is", found end of predicate`},
		{`(a == 1`, `column 8: expected ")" to close the "(" at column 1, found end of predicate`},
		{`a == 1)`, `column 7: unbalanced ")"`},
		{`a == 1 b == 2`, `column 8: expected and, or or end of predicate, found "b"`},
		{`a == 1 and`, `column 11: expected a field name, found end of predicate`},
		{`and == 1`, `column 1: expected a field name, found keyword "and" (quote a field with that name in backticks)`},
		{`features. == 1`, `column 11: expected a name after "features.", found "=="`},
		{`a. == 1`, `column 2: expected a name after ".", found "==" (quote names with other characters in backticks)`},
		{`a == 1 § 2`, `column 8: unexpected character '§'`},
		{"a == \"\xff\"", "column 7: predicate is not valid UTF-8"},
		{`a == "\xff"`, `column 6: string "\xff" is not valid UTF-8`},
	}
	for _, c := range cases {
		_, err := ParsePredicate(c.src)
		if err == nil {
			t.Errorf("ParsePredicate(%q) succeeded, want %q", c.src, c.want)
			continue
		}
		if got := err.Error(); got != c.want {
			t.Errorf("ParsePredicate(%q)\n got %s\nwant %s", c.src, got, c.want)
		}
	}
}

func TestParsePredicateDepthLimit(t *testing.T) {
	deep := ""
	for range maxDepth + 1 {
		deep += "("
	}
	if _, err := ParsePredicate(deep + "a == 1"); err == nil {
		t.Fatal("no error for deep nesting")
	}
	nots := ""
	for range maxDepth + 1 {
		nots += "not "
	}
	if _, err := ParsePredicate(nots + "a == 1"); err == nil {
		t.Fatal("no error for deep not")
	}
}

func rec(features, attributes map[string]Value) *MapRecord {
	return &MapRecord{Model: "churn", Version: "v2", Features: features, Attributes: attributes}
}

func TestPredicateEval(t *testing.T) {
	s, n, b := StringValue, NumberValue, BoolValue
	r := rec(map[string]Value{
		"country": s("de"), "age": n(42), "premium": b(true), "empty": s(""),
		"nullf": {}, "nan": n(math.NaN()), "user.age": n(7), "tier": s("feature-tier"),
		"in": n(1), "model": s("feature-model"),
	}, map[string]Value{
		"tier": s("gold"), "cohort": s("beta"), "score": n(0.5),
	})
	cases := []struct {
		src  string
		want bool
	}{
		// equality and ordering on each type
		{`country == "de"`, true},
		{`country == "fr"`, false},
		{`country != "fr"`, true},
		{`country != "de"`, false},
		{`age == 42`, true},
		{`age == 42.0`, true},
		{`age != 41`, true},
		{`age < 43`, true},
		{`age <= 42`, true},
		{`age > 42`, false},
		{`age >= 42`, true},
		{`country < "e"`, true}, // strings order bytewise
		{`country >= "e"`, false},
		{`premium == true`, true},
		{`premium != true`, false},
		{`premium == false`, false},
		{`empty == ""`, true},
		// type mismatch: unequal, unordered
		{`age == "42"`, false},
		{`age != "42"`, true},
		{`country == 1`, false},
		{`country != 1`, true},
		{`premium == 1`, false},
		{`age < "z"`, false},
		{`not (age < "z")`, false},
		{`country > 1`, false},
		{`not (country > 1)`, false},
		// missing and null: unknown, never matches except via is missing
		{`nope == "x"`, false},
		{`nope != "x"`, false},
		{`not (nope == "x")`, false},
		{`nope < 1`, false},
		{`nope in ("x")`, false},
		{`nope not in ("x")`, false},
		{`nope is missing`, true},
		{`nope is not missing`, false},
		{`nullf == 1`, false},
		{`nullf != 1`, false},
		{`nullf is missing`, true},
		{`nullf is not missing`, false},
		{`empty is missing`, false},
		{`nope == "x" or country == "de"`, true},
		{`nope == "x" and country == "de"`, false},
		{`not (nope == "x" and country == "fr")`, true}, // unknown and false = false
		{`not (nope == "x" or country == "fr")`, false}, // unknown or false = unknown
		{`not (nope == "x" or country == "de")`, false},
		// NaN
		{`nan == 1`, false},
		{`nan != 1`, true},
		{`nan < 1`, false},
		{`nan >= 1`, false},
		// in lists
		{`country in ("fr", "de")`, true},
		{`country in ("fr", "it")`, false},
		{`country not in ("fr", "it")`, true},
		{`country not in ("fr", "de")`, false},
		{`country in (1, "de", true)`, true},
		{`age in (1, 42)`, true},
		{`age in ("42")`, false},
		{`age not in ("42")`, true},
		{`premium in (true)`, true},
		{`premium in (false, "true", 1)`, false},
		{`country in ("a", "b", "c", "d", "e", "f", "g", "h", "de")`, true},
		{`country in ("a", "b", "c", "d", "e", "f", "g", "h", "i")`, false},
		{`country not in ("a", "b", "c", "d", "e", "f", "g", "h", "de")`, false},
		{`age in (1, 2, 3, 4, 5, 6, 7, 8, 42)`, true},
		{`age in (1, 2, 3, 4, 5, 6, 7, 8, 9)`, false},
		{`age not in (1, 2, 3, 4, 5, 6, 7, 8, 9)`, true},
		// precedence: not > and > or
		{`country == "fr" and age == 1 or premium == true`, true},
		{`country == "fr" and (age == 1 or premium == true)`, false},
		{`premium == true or country == "fr" and age == 1`, true},
		{`(premium == true or country == "fr") and age == 1`, false},
		{`not country == "fr" and age == 42`, true},
		{`not (country == "de" and age == 1)`, true},
		{`not not country == "de"`, true},
		{`country == "de" and age == 42 and premium == true and cohort == "beta"`, true},
		{`country == "fr" or age == 1 or premium == false or cohort == "beta"`, true},
		{`country == "fr" or age == 1 or premium == false or cohort == "alpha"`, false},
		// name resolution
		{`tier == "feature-tier"`, true}, // bare: features first
		{`attributes.tier == "gold"`, true},
		{`features.tier == "feature-tier"`, true},
		{`cohort == "beta"`, true}, // bare falls back to attributes
		{`features.cohort is missing`, true},
		{`attributes.country is missing`, true},
		{`user.age == 7`, true},
		{`features.user.age == 7`, true},
		{"`in` == 1", true},
		{`features.in == 1`, true},
		{`model == "churn"`, true},
		{"`model` == \"feature-model\"", true},
		{`features.model == "feature-model"`, true},
		{`version == "v2"`, true},
		{`version in ("v1", "v3")`, false},
	}
	for _, c := range cases {
		p, err := ParsePredicate(c.src)
		if err != nil {
			t.Errorf("ParsePredicate(%q): %v", c.src, err)
			continue
		}
		if got := p.Match(r); got != c.want {
			t.Errorf("%s: Match = %v, want %v", c.src, got, c.want)
		}
		// The canonical form means the same.
		q, _ := ParsePredicate(p.String())
		if got := q.Match(r); got != c.want {
			t.Errorf("%s (canonical %s): Match = %v, want %v", c.src, p.String(), got, c.want)
		}
	}
}

// In three-valued logic x != v is not (x == v) and x not in L is
// not (x in L), for every kind of value, present or missing.
func TestPredicateNegationLaws(t *testing.T) {
	values := []Value{{}, StringValue("a"), StringValue("b"), NumberValue(1), NumberValue(2), BoolValue(true), BoolValue(false)}
	pairs := [][2]string{
		{`x != "a"`, `not (x == "a")`},
		{`x != 1`, `not (x == 1)`},
		{`x != true`, `not (x == true)`},
		{`x not in ("a", 1)`, `not (x in ("a", 1))`},
		{`x >= 2`, `not (x < 2)`},
		{`x > "a"`, `not (x <= "a")`},
		{`x is not missing`, `not (x is missing)`},
	}
	for _, pr := range pairs {
		a, _ := ParsePredicate(pr[0])
		b, _ := ParsePredicate(pr[1])
		for _, v := range values {
			for _, present := range []bool{true, false} {
				r := rec(map[string]Value{}, nil)
				if present {
					r.Features["x"] = v
				}
				if ea, eb := a.eval(r), b.eval(r); ea != eb {
					t.Errorf("%s = %v but %s = %v for x=%v present=%v", pr[0], ea, pr[1], eb, v, present)
				}
			}
		}
	}
}

func TestPredicateFields(t *testing.T) {
	p, _ := ParsePredicate(`a == 1 and features.b in (1) or attributes.c is missing or model == "m" or a == 2`)
	got := p.Fields()
	want := []Field{{FieldBare, "a"}, {FieldFeature, "b"}, {FieldAttribute, "c"}, {FieldRecord, "model"}}
	if len(got) != len(want) {
		t.Fatalf("Fields = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Fields = %v, want %v", got, want)
		}
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	p, _ := ParsePredicate(`(country in ("de", "fr") or attributes.tier == "gold") and age >= 18 and x is missing and not version == "v1"`)
	r := rec(map[string]Value{"country": StringValue("de"), "age": NumberValue(30)}, map[string]Value{"tier": StringValue("gold")})
	if n := testing.AllocsPerRun(100, func() { p.Match(r) }); n != 0 {
		t.Fatalf("Match allocates %v times", n)
	}
}

func TestValue(t *testing.T) {
	cases := []struct {
		v    Value
		kind Kind
		text string
	}{
		{Value{}, KindNull, ""},
		{StringValue("x"), KindString, "x"},
		{NumberValue(1), KindNumber, "1"},
		{NumberValue(2.5), KindNumber, "2.5"},
		{NumberValue(-0.000001), KindNumber, "-0.000001"},
		{NumberValue(1e21), KindNumber, "1e+21"},
		{NumberValue(1e-7), KindNumber, "1e-07"},
		{NumberValue(1e6), KindNumber, "1000000"},
		{BoolValue(true), KindBool, "true"},
		{BoolValue(false), KindBool, "false"},
	}
	for _, c := range cases {
		if c.v.Kind() != c.kind || c.v.String() != c.text {
			t.Errorf("%#v: kind %v text %q, want %v %q", c.v, c.v.Kind(), c.v.String(), c.kind, c.text)
		}
	}
	if !BoolValue(true).Bool() || NumberValue(3).Num() != 3 || StringValue("s").Str() != "s" || !(Value{}).IsNull() {
		t.Fatal("accessors")
	}
	if BoolValue(true).Num() != 0 {
		t.Fatal("Num of a bool must be 0")
	}
}
