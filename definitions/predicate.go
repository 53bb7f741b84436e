package definitions

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxDepth bounds the nesting of parentheses and not, so that a hostile
// predicate cannot exhaust the stack.
const maxDepth = 64

// maxInList bounds the length of an in (...) list.
const maxInList = 10000

// SyntaxError is an error in a predicate's text. Offset is the byte offset
// in the predicate where the problem was found.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("column %d: %s", e.Offset+1, e.Msg)
}

// Predicate is a parsed and compiled slice predicate. It is immutable and
// safe for concurrent use.
type Predicate struct {
	root node
	eval evalFn
}

// ParsePredicate parses and compiles a predicate in the slice language
// (see docs/definitions.md). Errors are *SyntaxError.
func ParsePredicate(src string) (*Predicate, error) {
	root, err := parsePredicate(src)
	if err != nil {
		return nil, err
	}
	return &Predicate{root: root, eval: compile(root)}, nil
}

// String returns the canonical text of p; parsing it yields an equal
// predicate.
func (p *Predicate) String() string {
	var b strings.Builder
	writeNode(&b, p.root)
	return b.String()
}

// Match reports whether record r satisfies p: the predicate evaluates to
// true under three-valued logic (unknown does not match).
func (p *Predicate) Match(r Record) bool { return p.eval(r) == triTrue }

// Fields returns the fields p reads, in order of first appearance.
func (p *Predicate) Fields() []Field {
	var out []Field
	seen := map[Field]bool{}
	walk(p.root, func(n node) {
		var f Field
		switch n := n.(type) {
		case *cmpNode:
			f = n.field
		case *inNode:
			f = n.field
		case *missingNode:
			f = n.field
		default:
			return
		}
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	})
	return out
}

// FieldScope is how a predicate names a field.
type FieldScope uint8

// The ways a predicate names a field.
const (
	// FieldBare is an unqualified name: looked up in features, then, when
	// the record has no such feature, in attributes.
	FieldBare FieldScope = iota
	// FieldFeature is features.name.
	FieldFeature
	// FieldAttribute is attributes.name.
	FieldAttribute
	// FieldRecord is the record's model or version.
	FieldRecord
)

// Field is a name read by a predicate.
type Field struct {
	Scope FieldScope
	Name  string
}

func (f Field) String() string {
	switch f.Scope {
	case FieldRecord:
		return f.Name
	case FieldFeature:
		return "features." + quoteName(f.Name, false)
	case FieldAttribute:
		return "attributes." + quoteName(f.Name, false)
	default:
		return quoteName(f.Name, true)
	}
}

// quoteName writes a field name as dotted identifiers when it can be read
// back so, else in backticks.
func quoteName(name string, bare bool) string {
	if bare {
		if name == "model" || name == "version" ||
			strings.HasPrefix(name, "features.") || strings.HasPrefix(name, "attributes.") {
			return "`" + name + "`"
		}
	}
	for part := range strings.SplitSeq(name, ".") {
		if !isIdent(part) || (isKeyword(part) && bare) {
			return "`" + name + "`"
		}
	}
	return name
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || (i > 0 && '0' <= c && c <= '9') {
			continue
		}
		return false
	}
	return true
}

var keywords = map[string]bool{
	"and": true, "or": true, "not": true, "in": true, "is": true,
	"missing": true, "true": true, "false": true,
}

func isKeyword(s string) bool { return keywords[strings.ToLower(s)] }

// ---- AST ----

type node interface{ isNode() }

type cmpOp uint8

const (
	opEq cmpOp = iota
	opNe
	opLt
	opLe
	opGt
	opGe
)

var opText = [...]string{"==", "!=", "<", "<=", ">", ">="}

type (
	andNode struct{ terms []node }
	orNode  struct{ terms []node }
	notNode struct{ x node }
	cmpNode struct {
		field Field
		op    cmpOp
		lit   Value
		pos   int // byte offset of lit, for messages only
	}
	inNode struct {
		field Field
		not   bool
		list  []Value
		pos   []int // byte offsets of list, for messages only
	}
	missingNode struct {
		field Field
		not   bool
	}
)

func (*andNode) isNode()     {}
func (*orNode) isNode()      {}
func (*notNode) isNode()     {}
func (*cmpNode) isNode()     {}
func (*inNode) isNode()      {}
func (*missingNode) isNode() {}

func walk(n node, f func(node)) {
	f(n)
	switch n := n.(type) {
	case *andNode:
		for _, t := range n.terms {
			walk(t, f)
		}
	case *orNode:
		for _, t := range n.terms {
			walk(t, f)
		}
	case *notNode:
		walk(n.x, f)
	}
}

// fieldUse is a literal compared with a field, for load-time type checks.
type fieldUse struct {
	field Field
	lit   Value
	op    string
	pos   int
}

func fieldUses(n node) []fieldUse {
	var out []fieldUse
	walk(n, func(n node) {
		switch n := n.(type) {
		case *cmpNode:
			out = append(out, fieldUse{n.field, n.lit, opText[n.op], n.pos})
		case *inNode:
			op := "in"
			if n.not {
				op = "not in"
			}
			for i, l := range n.list {
				out = append(out, fieldUse{n.field, l, op, n.pos[i]})
			}
		}
	})
	return out
}

// ---- printing ----

func writeNode(b *strings.Builder, n node) {
	switch n := n.(type) {
	case *orNode:
		for i, t := range n.terms {
			if i > 0 {
				b.WriteString(" or ")
			}
			if _, ok := t.(*andNode); ok {
				// Not needed (and binds tighter than or), but clearer.
				b.WriteByte('(')
				writeNode(b, t)
				b.WriteByte(')')
			} else {
				writeNode(b, t)
			}
		}
	case *andNode:
		for i, t := range n.terms {
			if i > 0 {
				b.WriteString(" and ")
			}
			if _, ok := t.(*orNode); ok {
				b.WriteByte('(')
				writeNode(b, t)
				b.WriteByte(')')
			} else {
				writeNode(b, t)
			}
		}
	case *notNode:
		b.WriteString("not ")
		switch n.x.(type) {
		case *notNode:
			writeNode(b, n.x)
		default:
			b.WriteByte('(')
			writeNode(b, n.x)
			b.WriteByte(')')
		}
	case *cmpNode:
		b.WriteString(n.field.String())
		b.WriteByte(' ')
		b.WriteString(opText[n.op])
		b.WriteByte(' ')
		writeLit(b, n.lit)
	case *inNode:
		b.WriteString(n.field.String())
		if n.not {
			b.WriteString(" not in (")
		} else {
			b.WriteString(" in (")
		}
		for i, l := range n.list {
			if i > 0 {
				b.WriteString(", ")
			}
			writeLit(b, l)
		}
		b.WriteByte(')')
	case *missingNode:
		b.WriteString(n.field.String())
		if n.not {
			b.WriteString(" is not missing")
		} else {
			b.WriteString(" is missing")
		}
	}
}

func writeLit(b *strings.Builder, v Value) {
	switch v.kind {
	case KindString:
		b.WriteString(strconv.Quote(v.str))
	case KindNumber:
		b.WriteString(strconv.FormatFloat(v.num, 'g', -1, 64))
	default:
		b.WriteString(v.String())
	}
}

// ---- lexer ----

type tokKind uint8

const (
	tEOF tokKind = iota
	tIdent
	tQuoted // `name`
	tString
	tNumber
	tOp
	tLParen
	tRParen
	tComma
	tDot
)

type token struct {
	kind tokKind
	pos  int
	text string // raw text (identifier, operator) or decoded string
	num  float64
}

func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "end of predicate"
	case tString:
		return "string " + strconv.Quote(t.text)
	case tQuoted:
		return "`" + t.text + "`"
	default:
		return strconv.Quote(t.text)
	}
}

func (t token) isKeyword(kw string) bool {
	return t.kind == tIdent && strings.EqualFold(t.text, kw)
}

func lex(src string) ([]token, error) {
	for i, r := range src {
		if r == utf8.RuneError {
			if _, sz := utf8.DecodeRuneInString(src[i:]); sz == 1 {
				return nil, &SyntaxError{i, "predicate is not valid UTF-8"}
			}
		}
	}
	var toks []token
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(':
			toks = append(toks, token{kind: tLParen, pos: i, text: "("})
			i++
		case c == ')':
			toks = append(toks, token{kind: tRParen, pos: i, text: ")"})
			i++
		case c == ',':
			toks = append(toks, token{kind: tComma, pos: i, text: ","})
			i++
		case c == '.' && !(i+1 < len(src) && isDigit(src[i+1])):
			toks = append(toks, token{kind: tDot, pos: i, text: "."})
			i++
		case c == '=' || c == '!' || c == '<' || c == '>':
			two := i+1 < len(src) && src[i+1] == '='
			switch {
			case two:
				toks = append(toks, token{kind: tOp, pos: i, text: src[i : i+2]})
				i += 2
			case c == '<' || c == '>':
				toks = append(toks, token{kind: tOp, pos: i, text: src[i : i+1]})
				i++
			case c == '=':
				return nil, &SyntaxError{i, `unexpected "=" (use == for equality)`}
			default:
				return nil, &SyntaxError{i, `unexpected "!" (use not, or != for inequality)`}
			}
		case c == '&' || c == '|':
			word := "and"
			if c == '|' {
				word = "or"
			}
			return nil, &SyntaxError{i, fmt.Sprintf("unexpected %q (use %s)", c, word)}
		case c == '"' || c == '\'':
			s, n, err := lexString(src[i:])
			if err != nil {
				return nil, &SyntaxError{i, err.Error()}
			}
			toks = append(toks, token{kind: tString, pos: i, text: s})
			i += n
		case c == '`':
			j := strings.IndexAny(src[i+1:], "`\n")
			if j < 0 || src[i+1+j] != '`' {
				return nil, &SyntaxError{i, "unterminated `name`"}
			}
			name := src[i+1 : i+1+j]
			if name == "" {
				return nil, &SyntaxError{i, "empty `name`"}
			}
			toks = append(toks, token{kind: tQuoted, pos: i, text: name})
			i += j + 2
		case isDigit(c) || c == '.' || ((c == '-' || c == '+') && i+1 < len(src) && (isDigit(src[i+1]) || src[i+1] == '.')):
			j := scanNumber(src, i)
			text := src[i:j]
			f, err := strconv.ParseFloat(text, 64)
			if err != nil {
				if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
					return nil, &SyntaxError{i, fmt.Sprintf("number %s is out of range", text)}
				}
				return nil, &SyntaxError{i, fmt.Sprintf("malformed number %q", text)}
			}
			if j < len(src) && isIdentByte(src[j]) {
				return nil, &SyntaxError{i, fmt.Sprintf("malformed number %q", src[i:j+1])}
			}
			toks = append(toks, token{kind: tNumber, pos: i, text: text, num: f})
			i = j
		case isIdentByte(c) && !isDigit(c):
			j := i + 1
			for j < len(src) && isIdentByte(src[j]) {
				j++
			}
			toks = append(toks, token{kind: tIdent, pos: i, text: src[i:j]})
			i = j
		default:
			r, _ := utf8.DecodeRuneInString(src[i:])
			return nil, &SyntaxError{i, fmt.Sprintf("unexpected character %q", r)}
		}
	}
	toks = append(toks, token{kind: tEOF, pos: len(src)})
	return toks, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isIdentByte(c byte) bool {
	return c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || isDigit(c)
}

// scanNumber returns the end of the number starting at i:
// [+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?
func scanNumber(src string, i int) int {
	j := i
	if src[j] == '+' || src[j] == '-' {
		j++
	}
	for j < len(src) && isDigit(src[j]) {
		j++
	}
	if j < len(src) && src[j] == '.' {
		j++
		for j < len(src) && isDigit(src[j]) {
			j++
		}
	}
	if j < len(src) && (src[j] == 'e' || src[j] == 'E') {
		k := j + 1
		if k < len(src) && (src[k] == '+' || src[k] == '-') {
			k++
		}
		if k < len(src) && isDigit(src[k]) {
			for k < len(src) && isDigit(src[k]) {
				k++
			}
			j = k
		}
	}
	return j
}

// lexString decodes a "double" or 'single' quoted string with Go's escapes
// and returns it with the number of bytes consumed.
func lexString(s string) (string, int, error) {
	q := s[0]
	var raw strings.Builder
	raw.WriteByte('"')
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == q:
			out, err := strconv.Unquote(raw.String() + `"`)
			if err != nil {
				return "", 0, fmt.Errorf("malformed string %s: bad escape", s[:i+1])
			}
			if !utf8.ValidString(out) { // an escape such as \xff
				return "", 0, fmt.Errorf("string %s is not valid UTF-8", s[:i+1])
			}
			return out, i + 1, nil
		case c == '\\':
			if i+1 >= len(s) {
				return "", 0, fmt.Errorf("unterminated string")
			}
			if s[i+1] == '\'' {
				raw.WriteByte('\'')
			} else {
				raw.WriteByte('\\')
				raw.WriteByte(s[i+1])
			}
			i++
		case c == '"':
			raw.WriteString(`\"`)
		case c == '\n':
			return "", 0, fmt.Errorf("newline in string")
		default:
			raw.WriteByte(c)
		}
	}
	return "", 0, fmt.Errorf("unterminated string")
}

// ---- parser ----

type parser struct {
	toks  []token
	i     int
	depth int
}

func parsePredicate(src string) (node, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	if p.peek().kind == tEOF {
		return nil, &SyntaxError{0, "empty predicate"}
	}
	n, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		if t.kind == tRParen {
			return nil, &SyntaxError{t.pos, `unbalanced ")"`}
		}
		return nil, &SyntaxError{t.pos, fmt.Sprintf("expected and, or or end of predicate, found %s", t.describe())}
	}
	return n, nil
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) parseOr() (node, error) {
	first, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	if !p.peek().isKeyword("or") {
		return first, nil
	}
	or := &orNode{}
	or.add(first)
	for p.peek().isKeyword("or") {
		p.next()
		t, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		or.add(t)
	}
	return or, nil
}

func (o *orNode) add(n node) {
	if x, ok := n.(*orNode); ok {
		o.terms = append(o.terms, x.terms...)
	} else {
		o.terms = append(o.terms, n)
	}
}

func (a *andNode) add(n node) {
	if x, ok := n.(*andNode); ok {
		a.terms = append(a.terms, x.terms...)
	} else {
		a.terms = append(a.terms, n)
	}
}

func (p *parser) parseAnd() (node, error) {
	first, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	if !p.peek().isKeyword("and") {
		return first, nil
	}
	and := &andNode{}
	and.add(first)
	for p.peek().isKeyword("and") {
		p.next()
		t, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		and.add(t)
	}
	return and, nil
}

func (p *parser) parseUnary() (node, error) {
	t := p.peek()
	if t.isKeyword("not") {
		p.next()
		if p.depth++; p.depth > maxDepth {
			return nil, &SyntaxError{t.pos, fmt.Sprintf("predicate nested deeper than %d", maxDepth)}
		}
		x, err := p.parseUnary()
		p.depth--
		if err != nil {
			return nil, err
		}
		return &notNode{x: x}, nil
	}
	if t.kind == tLParen {
		p.next()
		if p.depth++; p.depth > maxDepth {
			return nil, &SyntaxError{t.pos, fmt.Sprintf("predicate nested deeper than %d", maxDepth)}
		}
		x, err := p.parseOr()
		p.depth--
		if err != nil {
			return nil, err
		}
		if c := p.next(); c.kind != tRParen {
			return nil, &SyntaxError{c.pos, fmt.Sprintf(`expected ")" to close the "(" at column %d, found %s`, t.pos+1, c.describe())}
		}
		return x, nil
	}
	return p.parseCond()
}

func (p *parser) parseField() (Field, error) {
	t := p.next()
	switch t.kind {
	case tQuoted:
		return Field{Scope: FieldBare, Name: t.text}, nil
	case tIdent:
		if isKeyword(t.text) {
			return Field{}, &SyntaxError{t.pos, fmt.Sprintf("expected a field name, found keyword %q (quote a field with that name in backticks)", t.text)}
		}
	default:
		return Field{}, &SyntaxError{t.pos, fmt.Sprintf("expected a field name, found %s", t.describe())}
	}
	f := Field{Scope: FieldBare}
	var parts []string
	if (t.text == "features" || t.text == "attributes") && p.peek().kind == tDot {
		if t.text == "features" {
			f.Scope = FieldFeature
		} else {
			f.Scope = FieldAttribute
		}
		p.next()
		n := p.next()
		switch n.kind {
		case tQuoted:
			f.Name = n.text
			return f, nil
		case tIdent:
			parts = append(parts, n.text)
		default:
			return Field{}, &SyntaxError{n.pos, fmt.Sprintf("expected a name after %q, found %s", t.text+".", n.describe())}
		}
	} else {
		parts = append(parts, t.text)
	}
	for p.peek().kind == tDot {
		d := p.next()
		n := p.next()
		if n.kind != tIdent {
			return Field{}, &SyntaxError{d.pos, fmt.Sprintf(`expected a name after ".", found %s (quote names with other characters in backticks)`, n.describe())}
		}
		parts = append(parts, n.text)
	}
	f.Name = strings.Join(parts, ".")
	if f.Scope == FieldBare && (f.Name == "model" || f.Name == "version") {
		f.Scope = FieldRecord
	}
	return f, nil
}

func (p *parser) parseLiteral() (Value, token, error) {
	t := p.next()
	switch {
	case t.kind == tString:
		return StringValue(t.text), t, nil
	case t.kind == tNumber:
		return NumberValue(t.num), t, nil
	case t.isKeyword("true"):
		return BoolValue(true), t, nil
	case t.isKeyword("false"):
		return BoolValue(false), t, nil
	case t.kind == tIdent && (strings.EqualFold(t.text, "null") || strings.EqualFold(t.text, "nil") || strings.EqualFold(t.text, "none")):
		return Value{}, t, &SyntaxError{t.pos, fmt.Sprintf("%s is not a value: test for missing values with \"is missing\"", t.text)}
	case t.kind == tIdent || t.kind == tQuoted:
		return Value{}, t, &SyntaxError{t.pos, fmt.Sprintf("expected a string, number or boolean, found %s (quote strings; fields can only be compared with literals)", t.describe())}
	default:
		return Value{}, t, &SyntaxError{t.pos, fmt.Sprintf("expected a string, number or boolean, found %s", t.describe())}
	}
}

func (p *parser) parseCond() (node, error) {
	field, err := p.parseField()
	if err != nil {
		return nil, err
	}
	t := p.next()
	switch {
	case t.kind == tOp:
		var op cmpOp
		for i, s := range opText {
			if s == t.text {
				op = cmpOp(i)
			}
		}
		lit, lt, err := p.parseLiteral()
		if err != nil {
			return nil, err
		}
		if op >= opLt && lit.kind == KindBool {
			return nil, &SyntaxError{lt.pos, fmt.Sprintf("booleans are not ordered: %s %s %s", field, t.text, lt.text)}
		}
		return &cmpNode{field: field, op: op, lit: lit, pos: lt.pos}, nil
	case t.isKeyword("in"):
		return p.parseIn(field, false)
	case t.isKeyword("not"):
		n := p.next()
		if !n.isKeyword("in") {
			return nil, &SyntaxError{n.pos, fmt.Sprintf(`expected "in" after "not", found %s`, n.describe())}
		}
		return p.parseIn(field, true)
	case t.isKeyword("is"):
		not := false
		n := p.next()
		if n.isKeyword("not") {
			not = true
			n = p.next()
		}
		if !n.isKeyword("missing") {
			return nil, &SyntaxError{n.pos, fmt.Sprintf(`expected "missing" after "is", found %s`, n.describe())}
		}
		return &missingNode{field: field, not: not}, nil
	default:
		return nil, &SyntaxError{t.pos, fmt.Sprintf("expected ==, !=, <, <=, >, >=, in, not in or is after %s, found %s", field, t.describe())}
	}
}

func (p *parser) parseIn(field Field, not bool) (node, error) {
	t := p.next()
	if t.kind != tLParen {
		return nil, &SyntaxError{t.pos, fmt.Sprintf(`expected "(" after "in", found %s`, t.describe())}
	}
	n := &inNode{field: field, not: not}
	for {
		if c := p.peek(); c.kind == tRParen {
			if len(n.list) == 0 {
				return nil, &SyntaxError{c.pos, "empty in () list"}
			}
			p.next()
			return n, nil
		}
		lit, lt, err := p.parseLiteral()
		if err != nil {
			return nil, err
		}
		if len(n.list) >= maxInList {
			return nil, &SyntaxError{t.pos, fmt.Sprintf("in list longer than %d values", maxInList)}
		}
		n.list = append(n.list, lit)
		n.pos = append(n.pos, lt.pos)
		switch c := p.next(); c.kind {
		case tComma:
		case tRParen:
			return n, nil
		default:
			return nil, &SyntaxError{c.pos, fmt.Sprintf(`expected "," or ")" in the in list, found %s`, c.describe())}
		}
	}
}
