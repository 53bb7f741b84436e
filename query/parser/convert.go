package parser

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/alecthomas/participle/v2/lexer"
	"github.com/prometheus/prometheus/model/labels"
)

// conv turns the participle grammar tree into the AST, checking what the
// grammar cannot express (precedence, modifiers, matchers, literals).
type conv struct {
	input string
	toks  []lexer.Token // without whitespace and comments, ending with EOF
}

func (c *conv) errf(start, end int, format string, args ...any) *ParseError {
	return errAt(c.input, start, end, format, args...)
}

// tokIndex returns the index of the token starting at offset off, or of the
// first token after it.
func (c *conv) tokIndex(off int) int {
	i, _ := slices.BinarySearchFunc(c.toks, off, func(t lexer.Token, off int) int { return t.Pos.Offset - off })
	return i
}

// endBefore returns the end offset of the last token that starts before
// the token at next (participle's EndPos is the start of the next token).
func (c *conv) endBefore(next lexer.Position) int {
	i := c.tokIndex(next.Offset)
	if i == 0 {
		return next.Offset
	}
	t := c.toks[i-1]
	return t.Pos.Offset + len(t.Value)
}

// tokEnd returns the end offset of the token starting at p.
func (c *conv) tokEnd(p lexer.Position) int {
	i := c.tokIndex(p.Offset)
	if i < len(c.toks) {
		return p.Offset + len(c.toks[i].Value)
	}
	return p.Offset
}

// ---- binary operators by precedence ----

// Precedence, lowest first. Unary minus and plus bind tighter than * / %
// atan2 and looser than ^, as in Prometheus: -a^b is -(a^b), -a*b is (-a)*b.
const (
	precOr = iota + 1
	precAnd
	precCmp
	precAdd
	precMul
	precPow
)

func precedence(op string) int {
	switch op {
	case "or":
		return precOr
	case "and", "unless":
		return precAnd
	case "==", "!=", "<", "<=", ">", ">=":
		return precCmp
	case "+", "-":
		return precAdd
	case "*", "/", "%", "atan2":
		return precMul
	case "^":
		return precPow
	}
	return 0
}

type climber struct {
	c     *conv
	items []*gUnary
	ops   []*gBinTail // ops[i] sits between items[i] and items[i+1]
	next  int         // next operand
	sign  int         // signs of items[next] already consumed
}

func (c *conv) expr(g *gExpr) (Expr, error) {
	if len(g.Tail) == 0 && len(g.Head.Signs) == 0 {
		return c.postfix(g.Head.Post)
	}
	items := make([]*gUnary, 0, len(g.Tail)+1)
	items = append(items, g.Head)
	for _, t := range g.Tail {
		t.Op = strings.ToLower(t.Op)
		items = append(items, t.RHS)
	}
	cl := &climber{c: c, items: items, ops: g.Tail}
	return cl.parse(precOr)
}

func (cl *climber) parse(minPrec int) (Expr, error) {
	lhs, err := cl.unary()
	if err != nil {
		return nil, err
	}
	for cl.next-1 < len(cl.ops) {
		t := cl.ops[cl.next-1]
		p := precedence(t.Op)
		if p < minPrec {
			break
		}
		nextMin := p + 1
		if t.Op == "^" {
			nextMin = p // right-associative
		}
		rhs, err := cl.parse(nextMin)
		if err != nil {
			return nil, err
		}
		lhs, err = cl.c.binary(t, lhs, rhs)
		if err != nil {
			return nil, err
		}
	}
	return lhs, nil
}

func (cl *climber) unary() (Expr, error) {
	it := cl.items[cl.next]
	if cl.sign < len(it.Signs) {
		s := it.Signs[cl.sign]
		cl.sign++
		inner, err := cl.parse(precPow)
		if err != nil {
			return nil, err
		}
		return unaryOf(s.Op, s.Pos.Offset, inner), nil
	}
	e, err := cl.c.postfix(it.Post)
	if err != nil {
		return nil, err
	}
	cl.next++
	cl.sign = 0
	return e, nil
}

// unaryOf folds a sign into a number literal, as Prometheus does.
func unaryOf(op string, start int, e Expr) Expr {
	if n, ok := e.(*NumberLiteral); ok {
		if op == "-" {
			n.Val = -n.Val
		}
		n.Pos.Start = start
		return n
	}
	return &UnaryExpr{Op: op, Expr: e, Pos: PositionRange{Start: start, End: e.PositionRange().End}}
}

func (c *conv) binary(t *gBinTail, lhs, rhs Expr) (Expr, error) {
	b := &BinaryExpr{
		Op:  t.Op,
		LHS: lhs,
		RHS: rhs,
		Pos: PositionRange{Start: lhs.PositionRange().Start, End: rhs.PositionRange().End},
	}
	if t.Bool != nil {
		if !IsComparisonOperator(t.Op) {
			return nil, c.errf(t.Bool.Pos.Offset, c.tokEnd(t.Bool.Pos), "bool modifier can only be used on comparison operators (== != < <= > >=), not on %q", t.Op)
		}
		b.ReturnBool = true
	}
	if m := t.Match; m != nil {
		vm := &VectorMatching{On: strings.EqualFold(m.Kind, "on")}
		var err error
		if vm.MatchingLabels, err = c.labelList(m.Labels); err != nil {
			return nil, err
		}
		if g := m.Group; g != nil {
			if IsSetOperator(t.Op) {
				return nil, c.errf(g.Pos.Offset, c.tokEnd(g.Pos), "no grouping (%s) allowed for %q: set operators are always many-to-many", strings.ToLower(g.Kind), t.Op)
			}
			vm.Card = CardOneToMany
			if strings.EqualFold(g.Kind, "group_left") {
				vm.Card = CardManyToOne
			}
			vm.Include = []string{}
			if g.Labels != nil {
				if vm.Include, err = c.labelList(g.Labels); err != nil {
					return nil, err
				}
			}
			if vm.On {
				for _, l := range vm.Include {
					if slices.Contains(vm.MatchingLabels, l) {
						return nil, c.errf(g.Pos.Offset, c.tokEnd(g.Pos), "label %q must not occur in on(...) and %s(...) at once", l, strings.ToLower(g.Kind))
					}
				}
			}
		}
		if vm.On || len(vm.MatchingLabels) > 0 || vm.Card != CardOneToOne {
			b.VectorMatching = vm
		}
	}
	return b, nil
}

func (c *conv) labelList(l *gLabelList) ([]string, error) {
	out := make([]string, 0, len(l.Names))
	for _, n := range l.Names {
		if n.Ident != nil {
			// Prometheus accepts any identifier here, colons included.
			out = append(out, *n.Ident)
			continue
		}
		s, err := c.labelName(n)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func (c *conv) labelName(n *gLabelName) (string, error) {
	if n.Ident != nil {
		if !isLegacyLabelName(*n.Ident) {
			return "", c.errf(n.Pos.Offset, n.Pos.Offset+len(*n.Ident), "invalid label name %q — label names are letters, digits and _ (quote other names: \"%s\")", *n.Ident, *n.Ident)
		}
		return *n.Ident, nil
	}
	return c.str(n.Pos, *n.Str)
}

// ---- operands ----

func (c *conv) postfix(g *gPostfix) (Expr, error) {
	e, err := c.primary(g.Prim)
	if err != nil {
		return nil, err
	}
	if len(g.Mods) == 0 {
		return e, nil
	}
	var offsetSet, atSet bool // on the current selector or subquery
	for _, m := range g.Mods {
		end := c.endBefore(m.EndPos)
		switch {
		case m.Range != nil:
			r, err := c.duration(m.Range.Range, false)
			if err != nil {
				return nil, err
			}
			if r <= 0 {
				return nil, c.errf(m.Range.Range.Pos.Offset, end-1, "range must be greater than 0, such as [5m]")
			}
			if !m.Range.Sub {
				vs, ok := e.(*VectorSelector)
				switch {
				case !ok:
					return nil, c.errf(m.Pos.Offset, end, "a range [%s] is only allowed after a selector such as m{...}; for an expression use a subquery [%s:]", FormatDuration(r), FormatDuration(r))
				case offsetSet:
					return nil, c.errf(m.Pos.Offset, end, "no offset modifiers allowed before a range: write m[%s] offset ...", FormatDuration(r))
				case atSet:
					return nil, c.errf(m.Pos.Offset, end, "no @ modifiers allowed before a range: write m[%s] @ ...", FormatDuration(r))
				}
				e = &MatrixSelector{VectorSelector: vs, Range: r, Pos: PositionRange{Start: vs.Pos.Start, End: end}}
				continue
			}
			sq := &SubqueryExpr{Expr: e, Range: r, Pos: PositionRange{Start: e.PositionRange().Start, End: end}}
			if m.Range.Step != nil {
				if sq.Step, err = c.duration(m.Range.Step, false); err != nil {
					return nil, err
				}
				if sq.Step <= 0 {
					return nil, c.errf(m.Range.Step.Pos.Offset, end-1, "subquery step must be greater than 0, or left out ([%s:]) for the default", FormatDuration(r))
				}
			}
			e = sq
			offsetSet, atSet = false, false
		case m.Offset != nil:
			d, err := c.duration(m.Offset.Dur, m.Offset.Sign == "-")
			if err != nil {
				return nil, err
			}
			if offsetSet {
				return nil, c.errf(m.Pos.Offset, end, "offset may not be set multiple times")
			}
			offsetSet = true
			switch n := e.(type) {
			case *VectorSelector:
				n.Offset = d
				n.Pos.End = end
			case *MatrixSelector:
				n.VectorSelector.Offset = d
				n.Pos.End = end
			case *SubqueryExpr:
				n.Offset = d
				n.Pos.End = end
			default:
				return nil, c.errf(m.Pos.Offset, end, "offset modifier must follow a selector, a range selector or a subquery")
			}
		case m.At != nil:
			ts, se, err := c.at(m.At)
			if err != nil {
				return nil, err
			}
			if atSet {
				return nil, c.errf(m.Pos.Offset, end, "@ modifier may not be set multiple times")
			}
			atSet = true
			switch n := e.(type) {
			case *VectorSelector:
				n.Timestamp, n.StartOrEnd = ts, se
				n.Pos.End = end
			case *MatrixSelector:
				n.VectorSelector.Timestamp, n.VectorSelector.StartOrEnd = ts, se
				n.Pos.End = end
			case *SubqueryExpr:
				n.Timestamp, n.StartOrEnd = ts, se
				n.Pos.End = end
			default:
				return nil, c.errf(m.Pos.Offset, end, "@ modifier must follow a selector, a range selector or a subquery")
			}
		}
	}
	return e, nil
}

func (c *conv) at(g *gAt) (*int64, AtModifier, error) {
	switch {
	case g.Start:
		return nil, AtStart, nil
	case g.End:
		return nil, AtEnd, nil
	}
	var f float64
	if g.Num != nil {
		v, err := c.number(g.Pos, *g.Num)
		if err != nil {
			return nil, 0, err
		}
		f = v
	} else {
		d, _ := ParseDuration(*g.Dur)
		f = d.Seconds()
	}
	if g.Sign == "-" {
		f = -f
	}
	if math.IsInf(f, 0) || math.IsNaN(f) || f*1000 >= float64(math.MaxInt64) || f*1000 <= float64(math.MinInt64) {
		return nil, 0, c.errf(g.Pos.Offset, g.Pos.Offset+1, "timestamp out of bounds for @ modifier: %v", f)
	}
	ms := int64(math.Round(f * 1000))
	return &ms, AtNone, nil
}

// duration converts a duration literal or a number of seconds.
func (c *conv) duration(g *gDur, neg bool) (time.Duration, error) {
	var d time.Duration
	if g.Dur != nil {
		d, _ = ParseDuration(*g.Dur) // validated by the lexer
	} else {
		f, err := c.number(g.Pos, *g.Num)
		if err != nil {
			return 0, err
		}
		if d, err = secondsToDuration(f); err != nil {
			return 0, c.errf(g.Pos.Offset, g.Pos.Offset+len(*g.Num), "%s", err.Error())
		}
	}
	if neg {
		d = -d
	}
	return d, nil
}

func (c *conv) number(p lexer.Position, s string) (float64, error) {
	switch {
	case strings.EqualFold(s, "inf"):
		return math.Inf(1), nil
	case strings.EqualFold(s, "nan"):
		return math.NaN(), nil
	case len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'):
		u, err := strconv.ParseUint(s[2:], 16, 64)
		if err != nil {
			return 0, c.errf(p.Offset, p.Offset+len(s), "hexadecimal number %s is out of range", s)
		}
		return float64(u), nil
	}
	f, err := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64)
	if err != nil && !math.IsInf(f, 0) && f != 0 {
		return 0, c.errf(p.Offset, p.Offset+len(s), "bad number %s", s)
	}
	return f, nil
}

// str unquotes a string token: "double" and 'single' with Go escapes,
// `raw` as is.
func (c *conv) str(p lexer.Position, raw string) (string, error) {
	q := raw[0]
	body := raw[1 : len(raw)-1]
	if q == '`' {
		if !utf8.ValidString(body) {
			return "", c.errf(p.Offset, p.Offset+len(raw), "invalid UTF-8 in string")
		}
		return body, nil
	}
	if !strings.ContainsRune(body, '\\') {
		if !utf8.ValidString(body) {
			return "", c.errf(p.Offset, p.Offset+len(raw), "invalid UTF-8 in string")
		}
		return body, nil
	}
	var b strings.Builder
	rest := body
	for len(rest) > 0 {
		r, mb, tail, err := strconv.UnquoteChar(rest, q)
		if err != nil {
			off := p.Offset + 1 + len(body) - len(rest)
			esc := rest
			if len(esc) > 2 {
				esc = esc[:2]
			}
			return "", c.errf(off, off+len(esc), "unknown or invalid escape sequence %s in string (Go escapes: \\n \\t \\\\ \\\" \\' \\xFF \\u00e9 ...)", strconv.Quote(esc))
		}
		if r < utf8.RuneSelf || !mb {
			b.WriteByte(byte(r))
		} else {
			b.WriteRune(r)
		}
		rest = tail
	}
	s := b.String()
	if !utf8.ValidString(s) {
		return "", c.errf(p.Offset, p.Offset+len(raw), "invalid UTF-8 in string")
	}
	return s, nil
}

func (c *conv) primary(g *gPrimary) (Expr, error) {
	pos := PositionRange{Start: g.Pos.Offset, End: c.endBefore(g.EndPos)}
	switch {
	case g.Paren != nil:
		e, err := c.expr(g.Paren)
		if err != nil {
			return nil, err
		}
		return &ParenExpr{Expr: e, Pos: pos}, nil
	case g.Num != nil:
		f, err := c.number(g.Pos, *g.Num)
		if err != nil {
			return nil, err
		}
		return &NumberLiteral{Val: f, Pos: pos}, nil
	case g.Dur != nil:
		d, _ := ParseDuration(*g.Dur)
		return &NumberLiteral{Val: d.Seconds(), Duration: true, Pos: pos}, nil
	case g.Str != nil:
		s, err := c.str(g.Pos, *g.Str)
		if err != nil {
			return nil, err
		}
		return &StringLiteral{Val: s, Pos: pos}, nil
	case g.Named != nil && g.Named.Call != nil:
		return c.call(g.Named, pos)
	case g.Named != nil:
		return c.selector(g.Named, g.Named.Br, pos)
	default:
		return c.selector(nil, g.Br, pos)
	}
}

func (c *conv) call(named *gNamed, pos PositionRange) (Expr, error) {
	g := named.Call
	args := make([]Expr, 0, len(g.Args))
	for _, a := range g.Args {
		e, err := c.expr(a)
		if err != nil {
			return nil, err
		}
		args = append(args, e)
	}
	name := strings.ToLower(named.Name)
	if !IsAggregator(name) {
		if g.Pre != nil || g.Post != nil {
			gr := g.Pre
			if gr == nil {
				gr = g.Post
			}
			return nil, c.errf(gr.Pos.Offset, c.tokEnd(gr.Pos), "%s (...) is only allowed on aggregations such as sum; %q is a function", strings.ToLower(gr.Kind), named.Name)
		}
		return &Call{Func: named.Name, Args: args, Pos: pos}, nil
	}
	agg := &AggregateExpr{Op: name, Pos: pos}
	gr := g.Pre
	if g.Post != nil {
		if gr != nil {
			return nil, c.errf(g.Post.Pos.Offset, c.tokEnd(g.Post.Pos), "%s has a grouping clause both before and after its arguments; keep one", name)
		}
		gr = g.Post
	}
	if gr != nil {
		var err error
		agg.Without = strings.EqualFold(gr.Kind, "without")
		if agg.Grouping, err = c.labelList(gr.Labels); err != nil {
			return nil, err
		}
		if !agg.Without && len(agg.Grouping) == 0 {
			agg.Grouping = nil // sum by () (x) is sum(x)
		}
	}
	want := 1
	if AggregatorHasParam(name) {
		want = 2
	}
	switch {
	case len(args) == 0:
		return nil, c.errf(pos.Start, pos.End, "no arguments for aggregation %s: expected %s", name, aggArgsHint(name))
	case len(args) != want:
		return nil, c.errf(pos.Start, pos.End, "wrong number of arguments for aggregation %s: expected %d (%s), got %d", name, want, aggArgsHint(name), len(args))
	}
	if want == 2 {
		agg.Param = args[0]
	}
	agg.Expr = args[want-1]
	return agg, nil
}

func aggArgsHint(op string) string {
	switch op {
	case "topk", "bottomk", "limitk":
		return op + "(k, expr)"
	case "quantile":
		return "quantile(φ, expr)"
	case "count_values":
		return "count_values(\"label\", expr)"
	case "limit_ratio":
		return "limit_ratio(ratio, expr)"
	}
	return op + "(expr)"
}

var matchTypes = map[string]labels.MatchType{
	"=": labels.MatchEqual, "!=": labels.MatchNotEqual, "=~": labels.MatchRegexp, "!~": labels.MatchNotRegexp,
}

func (c *conv) selector(named *gNamed, br *gBrackets, pos PositionRange) (Expr, error) {
	vs := &VectorSelector{Pos: pos}
	if named != nil {
		vs.Name = named.Name
		m, err := labels.NewMatcher(labels.MatchEqual, MetricNameLabel, vs.Name)
		if err != nil {
			return nil, c.errf(pos.Start, pos.End, "%s", err.Error())
		}
		vs.LabelMatchers = append(vs.LabelMatchers, m)
	}
	nameSet := vs.Name != ""
	var nameErr *ParseError
	add := func(p lexer.Position, name, op string, value *gString) error {
		var val string
		if value != nil {
			var err error
			if val, err = c.str(value.Pos, value.Val); err != nil {
				return err
			}
		}
		m, err := labels.NewMatcher(matchTypes[op], name, val)
		if err != nil {
			end := value.Pos.Offset + len(value.Val)
			return c.errf(value.Pos.Offset, end, "invalid regular expression %s in matcher: %s", value.Val, err.Error())
		}
		if name == MetricNameLabel {
			if nameSet && nameErr == nil {
				nameErr = c.errf(p.Offset, p.Offset+len(name), "metric name must not be set twice (%q already selects the name)", vs.Name)
			}
			nameSet = true
		}
		vs.LabelMatchers = append(vs.LabelMatchers, m)
		return nil
	}
	if br != nil {
		if br.Brace != nil {
			for _, it := range br.Brace.Items {
				if it.Op == "" {
					// A bare string is a metric name: {"my.metric"}.
					if it.Name.Str == nil {
						return nil, c.errf(it.Pos.Offset, c.endBefore(it.Name.EndPos), "label %q needs a matcher operator and a value, such as %s=\"a\"", *it.Name.Ident, *it.Name.Ident)
					}
					v := &gString{Pos: it.Name.Pos, Val: *it.Name.Str}
					if err := add(it.Pos, MetricNameLabel, "=", v); err != nil {
						return nil, err
					}
					continue
				}
				name, err := c.labelName(it.Name)
				if err != nil {
					return nil, err
				}
				if err := add(it.Pos, name, it.Op, it.Value); err != nil {
					return nil, err
				}
			}
		} else {
			vs.Angle = true
			for _, it := range br.Angle.Items {
				name, err := c.labelName(it.Name)
				if err != nil {
					return nil, err
				}
				if err := add(it.Pos, name, it.Op, it.Value); err != nil {
					return nil, err
				}
			}
		}
	}
	if nameErr != nil {
		return nil, nameErr
	}
	if vs.Name == "" {
		ok := false
		for _, m := range vs.LabelMatchers {
			if !m.Matches("") {
				ok = true
				break
			}
		}
		if !ok {
			return nil, c.errf(pos.Start, pos.End, "a selector needs a metric name or at least one matcher that does not match the empty string, such as {job=\"api\"}")
		}
	}
	return vs, nil
}
