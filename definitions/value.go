package definitions

import (
	"math"
	"strconv"
)

// Kind is the type of a Value.
type Kind uint8

// The kinds of Value. The zero Value is KindNull, which slice predicates
// treat as missing.
const (
	KindNull Kind = iota
	KindString
	KindNumber
	KindBool
)

func (k Kind) String() string {
	switch k {
	case KindString:
		return "string"
	case KindNumber:
		return "number"
	case KindBool:
		return "boolean"
	default:
		return "null"
	}
}

// Value is one feature or attribute value of a record: a string, a number
// (float64), a boolean, or null. The zero Value is null.
type Value struct {
	str  string
	num  float64
	kind Kind
}

// StringValue returns a string Value.
func StringValue(s string) Value { return Value{kind: KindString, str: s} }

// NumberValue returns a number Value.
func NumberValue(f float64) Value { return Value{kind: KindNumber, num: f} }

// BoolValue returns a boolean Value.
func BoolValue(b bool) Value {
	v := Value{kind: KindBool}
	if b {
		v.num = 1
	}
	return v
}

// Kind returns the type of v.
func (v Value) Kind() Kind { return v.kind }

// IsNull reports whether v is null (missing).
func (v Value) IsNull() bool { return v.kind == KindNull }

// Str returns the string of a string Value, else "".
func (v Value) Str() string { return v.str }

// Num returns the number of a number Value, else 0.
func (v Value) Num() float64 {
	if v.kind != KindNumber {
		return 0
	}
	return v.num
}

// Bool returns the boolean of a boolean Value, else false.
func (v Value) Bool() bool { return v.kind == KindBool && v.num != 0 }

// String returns v's canonical text: strings as they are, numbers formatted
// as encoding/json formats them (1, 2.5, 1e+21), true/false, and "" for
// null. It is the key under which a label value is matched against a
// model's classes: ingest must turn a JSON label into a Value and use
// String, so that the label 1 and the class "1" (or 1 in YAML) agree.
func (v Value) String() string {
	switch v.kind {
	case KindString:
		return v.str
	case KindNumber:
		return formatNumber(v.num)
	case KindBool:
		if v.num != 0 {
			return "true"
		}
		return "false"
	default:
		return ""
	}
}

// formatNumber formats like encoding/json (and ECMAScript): plain decimal
// notation between 1e-6 and 1e21, exponent notation outside.
func formatNumber(f float64) string {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	a := math.Abs(f)
	if a != 0 && (a < 1e-6 || a >= 1e21) {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// Scope says where a Record looks a name up.
type Scope uint8

// The scopes of a Record lookup.
const (
	// ScopeFeature looks in the record's features.
	ScopeFeature Scope = iota
	// ScopeAttribute looks in the record's attributes.
	ScopeAttribute
	// ScopeRecord looks at the record's own fields: "model" and "version".
	ScopeRecord
)

// Record is what a slice predicate reads. Get returns the value of name in
// scope and whether it is present; a present null Value counts as missing
// for predicates. Implementations must not allocate for Match to stay
// allocation-free.
type Record interface {
	Get(scope Scope, name string) (Value, bool)
}

// MapRecord is a Record backed by maps, for tests, tools and callers that
// already hold maps.
type MapRecord struct {
	Model      string
	Version    string
	Features   map[string]Value
	Attributes map[string]Value
}

// Get implements Record.
func (r *MapRecord) Get(scope Scope, name string) (Value, bool) {
	switch scope {
	case ScopeFeature:
		v, ok := r.Features[name]
		return v, ok
	case ScopeAttribute:
		v, ok := r.Attributes[name]
		return v, ok
	case ScopeRecord:
		switch name {
		case "model":
			return StringValue(r.Model), r.Model != ""
		case "version":
			return StringValue(r.Version), r.Version != ""
		}
	}
	return Value{}, false
}
