package parser

import (
	"errors"
	"fmt"
	"strings"

	"github.com/alecthomas/participle/v2"
	"github.com/alecthomas/participle/v2/lexer"
	"github.com/prometheus/prometheus/model/labels"
)

// MaxNesting bounds how deeply brackets may nest, so hostile input cannot
// exhaust the stack.
const MaxNesting = 256

// Parse parses a query into its AST. Errors are *ParseError.
func Parse(input string) (Expr, error) {
	toks, perr := lex(input)
	if perr != nil {
		return nil, perr
	}
	if perr := checkBrackets(input, toks); perr != nil {
		return nil, perr
	}
	c := &conv{input: input, toks: toks}
	if len(toks) == 1 {
		return nil, c.errf(0, len(input), "empty query — expected an expression such as up or sum(rate(x[5m]))")
	}
	pl, err := lexer.Upgrade(&sliceLexer{toks: toks})
	if err != nil {
		return nil, err
	}
	g, err := grammar.ParseFromLexer(pl)
	if err != nil {
		return nil, c.explain(err)
	}
	return c.expr(g)
}

// ParseMatchers parses a series selector such as `up{job="api"}`,
// `{__name__=~"x.*"}` or `accuracy<model="a">` (the match[] parameter of
// the HTTP API) into its label matchers, the name matcher included.
func ParseMatchers(s string) ([]*labels.Matcher, error) {
	e, err := Parse(s)
	if err != nil {
		return nil, err
	}
	vs, ok := e.(*VectorSelector)
	if !ok || vs.Offset != 0 || vs.Timestamp != nil || vs.StartOrEnd != AtNone {
		r := e.PositionRange()
		return nil, errAt(s, r.Start, r.End, "expected a series selector such as up{job=\"api\"}, got %s", describe(e))
	}
	return vs.LabelMatchers, nil
}

func describe(e Expr) string {
	switch e.(type) {
	case *VectorSelector:
		return "a selector with modifiers"
	case *MatrixSelector:
		return "a range selector"
	case *NumberLiteral:
		return "a number"
	case *StringLiteral:
		return "a string"
	case *BinaryExpr:
		return "a binary expression"
	case *AggregateExpr:
		return "an aggregation"
	case *Call:
		return "a function call"
	case *SubqueryExpr:
		return "a subquery"
	}
	return "an expression"
}

// checkBrackets reports unbalanced (), [] and {} before the grammar runs:
// the message can then name the bracket that is not closed.
func checkBrackets(input string, toks []lexer.Token) *ParseError {
	var stack []lexer.Token
	for _, t := range toks {
		if !isPunct(t) {
			continue
		}
		switch t.Value {
		case "(", "[", "{":
			stack = append(stack, t)
			if len(stack) > MaxNesting {
				return errAt(input, t.Pos.Offset, t.Pos.Offset+1, "brackets nested more than %d deep", MaxNesting)
			}
		case ")", "]", "}":
			open := map[string]string{")": "(", "]": "[", "}": "{"}[t.Value]
			if len(stack) == 0 {
				return errAt(input, t.Pos.Offset, t.Pos.Offset+1, "unexpected %q — there is no %q to close", t.Value, open)
			}
			top := stack[len(stack)-1]
			if top.Value != open {
				return errAt(input, t.Pos.Offset, t.Pos.Offset+1, "unexpected %q — expected %q to close the %q at %d:%d", t.Value, closer(top.Value), top.Value, top.Pos.Line, top.Pos.Column)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 {
		top := stack[len(stack)-1]
		end := toks[len(toks)-1].Pos.Offset
		// Say what belongs inside when the bracket is empty so far.
		return errAt(input, end, end, "unexpected end of input — %q opened at %d:%d is not closed", top.Value, top.Pos.Line, top.Pos.Column)
	}
	return nil
}

func closer(open string) string {
	switch open {
	case "(":
		return ")"
	case "[":
		return "]"
	case "{":
		return "}"
	case "<":
		return ">"
	}
	return ""
}

// ---- error messages ----

func describeTok(t lexer.Token) string {
	switch t.Type {
	case lexer.EOF:
		return "end of input"
	case tokString:
		return "string " + snippet(t.Value)
	case tokNumber:
		return "number " + t.Value
	case tokDuration:
		return "duration " + t.Value
	}
	return fmt.Sprintf("%q", t.Value)
}

var matcherOps = map[string]bool{"=": true, "!=": true, "=~": true, "!~": true}

var binaryOps = map[string]bool{
	"+": true, "-": true, "*": true, "/": true, "%": true, "^": true,
	"==": true, "!=": true, "<": true, "<=": true, ">": true, ">=": true,
	"and": true, "or": true, "unless": true, "atan2": true, "bool": true,
}

var labelListKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// opener is an open bracket seen before the error, with what kind of list
// it holds.
type opener struct {
	tok  lexer.Token
	kind string // "matchers", "angle", "labels", "args", "paren", "range"
	kw   string // for "labels": the keyword before the list (by, on...)
}

// explain turns a participle error into a message in the language of the
// query: what was found and what could come there instead.
func (c *conv) explain(err error) error {
	var perr participle.Error
	if !errors.As(err, &perr) {
		return c.errf(0, len(c.input), "%s", err.Error())
	}
	off := perr.Position().Offset
	idx := c.tokIndex(off)
	if idx >= len(c.toks) {
		idx = len(c.toks) - 1
	}
	cur := c.toks[idx]
	if lv := strings.ToLower(cur.Value); cur.Type == tokIdent && (lv == "group_left" || lv == "group_right") {
		return c.errf(cur.Pos.Offset, cur.Pos.Offset+len(cur.Value), "%s must follow on(...) or ignoring(...), such as a * on(job) %s(team) b", lv, lv)
	}
	want := c.expected(idx)
	return c.errf(cur.Pos.Offset, cur.Pos.Offset+len(cur.Value), "unexpected %s — expected %s", describeTok(cur), want)
}

// isAngleOpen reports whether the "<" at toks[i] opens a matcher bracket by
// the lexical rule: it is followed by label_name (=|!=|=~|!~) string.
func (c *conv) isAngleOpen(i int) bool {
	t := c.toks
	if i > 0 {
		p := t[i-1]
		operandStart := isPunct(p) && (binaryOps[p.Value] || p.Value == "(" || p.Value == ",") ||
			p.Type == tokIdent && binaryOps[strings.ToLower(p.Value)]
		if p.Type != tokIdent && !operandStart {
			return false
		}
	}
	if i+2 >= len(t) || t[i].Value != "<" || !isPunct(t[i]) ||
		(t[i+1].Type != tokIdent && t[i+1].Type != tokString) || !isPunct(t[i+2]) {
		return false
	}
	switch t[i+2].Value {
	case "=", "=~", "!~": // never valid after a < b in PromQL
		return true
	case "!=":
		return i+3 < len(t) && t[i+3].Type == tokString
	}
	return false
}

func (c *conv) expected(idx int) string {
	t := c.toks
	var stack []opener
	var closed opener // the bracket pair that ended just before idx, if any
	for i := 0; i < idx; i++ {
		closed = opener{}
		tk := t[i]
		if !isPunct(tk) {
			continue
		}
		switch tk.Value {
		case "{":
			stack = append(stack, opener{tk, "matchers", ""})
		case "<":
			if c.isAngleOpen(i) {
				stack = append(stack, opener{tk, "angle", ""})
			}
		case "[":
			stack = append(stack, opener{tk, "range", ""})
		case "(":
			kind, kw := "paren", ""
			if i > 0 {
				p := t[i-1]
				switch {
				case p.Type == tokIdent && labelListKeywords[strings.ToLower(p.Value)]:
					kind, kw = "labels", strings.ToLower(p.Value)
				case p.Type == tokIdent:
					kind = "args"
				}
			}
			stack = append(stack, opener{tk, kind, kw})
		case ")", "]", "}", ">":
			if len(stack) > 0 && closer(stack[len(stack)-1].tok.Value) == tk.Value {
				closed = stack[len(stack)-1]
				stack = stack[:len(stack)-1]
			}
		}
	}
	top := ""
	if len(stack) > 0 {
		top = stack[len(stack)-1].kind
	}
	if idx == 0 {
		return "an expression such as up or sum(rate(x[5m]))"
	}
	prev, cur := t[idx-1], t[idx]
	pv := strings.ToLower(prev.Value)
	var prev2 lexer.Token
	if idx >= 2 {
		prev2 = t[idx-2]
	}
	inMatchers := top == "matchers" || top == "angle"
	closeM := "\"}\""
	if top == "angle" {
		closeM = "\">\""
	}
	switch {
	case inMatchers && isPunct(prev) && (prev.Value == "{" || prev.Value == "<" || prev.Value == ","):
		return "a label matcher such as model=\"a\""
	case inMatchers && (prev.Type == tokIdent || prev.Type == tokString) && isPunct(prev2) &&
		(prev2.Value == "{" || prev2.Value == "<" || prev2.Value == ","):
		if prev.Type == tokString && top == "matchers" {
			return "a matcher operator (=, !=, =~, !~), \",\" or \"}\""
		}
		return "a matcher operator (=, !=, =~ or !~)"
	case inMatchers && isPunct(prev) && matcherOps[prev.Value]:
		return "a quoted string such as \"a\""
	case inMatchers && prev.Type == tokString:
		return "\",\" or " + closeM
	case top == "range" && prev.Value == "[":
		return "a duration such as 5m"
	case top == "range" && prev.Value == ":":
		return "a step duration such as 1m, or \"]\""
	case top == "range" && (prev.Type == tokDuration || prev.Type == tokNumber) && prev2.Value == "[":
		return "\":\" or \"]\""
	case top == "range" && (prev.Type == tokDuration || prev.Type == tokNumber):
		return "\"]\""
	case cur.Type != tokDuration && cur.Type != tokNumber &&
		(prev.Type == tokIdent && pv == "offset" || (prev.Value == "-" || prev.Value == "+") && strings.EqualFold(prev2.Value, "offset")):
		return "a duration such as 5m"
	case isPunct(prev) && prev.Value == "@":
		return "a Unix timestamp in seconds, start() or end()"
	case prev.Type == tokIdent && (pv == "start" || pv == "end") && prev2.Value == "@":
		return "\"()\""
	case prev.Type == tokIdent && (pv == "group_left" || pv == "group_right"):
		return "a list of label names such as (job), or the right-hand expression"
	case prev.Type == tokIdent && labelListKeywords[pv]:
		return "a list of label names in parentheses such as (job)"
	case closed.kind == "labels" && (closed.kw == "on" || closed.kw == "ignoring" || closed.kw == "group_left" || closed.kw == "group_right"):
		return "the right-hand expression"
	case closed.kind == "labels" && !isPunct(prev2):
		return "the aggregation's arguments in parentheses, such as (x)"
	case top == "labels" && (prev.Value == "(" || prev.Value == ","):
		return "a label name"
	case top == "labels":
		return "\",\" or \")\""
	case isPunct(prev) && (binaryOps[pv] || prev.Value == "(" || prev.Value == ",") ||
		prev.Type == tokIdent && binaryOps[pv] && idx >= 2:
		if prev.Value == "(" || prev.Value == "," {
			return "an expression"
		}
		return fmt.Sprintf("an expression after %q", prev.Value)
	case top == "args":
		return "an operator, \",\" or \")\""
	case top == "paren":
		return "an operator or \")\""
	case top == "range":
		return "\"]\""
	}
	return "an operator or the end of the expression"
}

func isPunct(t lexer.Token) bool { return t.Type == tokPunct || t.Type == tokBinOp }
