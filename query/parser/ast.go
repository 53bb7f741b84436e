package parser

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// MetricNameLabel is the label that holds the metric name ("__name__").
const MetricNameLabel = "__name__"

// Node is any node of the AST. String returns the canonical text, which
// parses back to an equal AST (positions aside).
type Node interface {
	String() string
	// PositionRange is the byte range of the node in the query text.
	PositionRange() PositionRange
}

// Expr is a node that computes a value: every node is one.
type Expr interface {
	Node
	expr()
}

// NumberLiteral is a number: 1, 1.5e3, 0x1f, Inf, NaN, or (Prometheus 3) a
// duration literal used as a number of seconds, such as `foo > 5m`
// (Duration is then true and String prints the duration).
type NumberLiteral struct {
	Val      float64
	Duration bool
	Pos      PositionRange
}

// StringLiteral is a string: "double" (Go escapes), 'single', `raw`.
type StringLiteral struct {
	Val string
	Pos PositionRange
}

// AtModifier says which special value an @ modifier names.
type AtModifier int

// The @ modifier kinds: none or a fixed timestamp (see Timestamp), start()
// and end() of the query.
const (
	AtNone AtModifier = iota
	AtStart
	AtEnd
)

// VectorSelector selects series by name and label matchers:
// name{matchers}, {matchers}, name<matchers>, <matchers>.
type VectorSelector struct {
	// Name is the metric name written before the brackets ("" when none).
	Name string
	// LabelMatchers holds every matcher, including __name__="Name" when a
	// name was written, in the order written (the name first). Regex
	// matchers are compiled and anchored, as storage expects.
	LabelMatchers []*labels.Matcher
	// Angle is true when the matchers were written in <...> brackets; it
	// does not change the meaning, and String always prints {...}.
	Angle bool

	// Offset is the offset modifier (negative for offset -5m).
	Offset time.Duration
	// Timestamp is the @ timestamp in milliseconds, when one was given.
	Timestamp *int64
	// StartOrEnd is AtStart or AtEnd for @ start() and @ end().
	StartOrEnd AtModifier

	Pos PositionRange
}

// MatrixSelector is a vector selector with a range: m[5m]. Offset and @
// modifiers live on the inner VectorSelector, as in Prometheus.
type MatrixSelector struct {
	VectorSelector *VectorSelector
	Range          time.Duration
	Pos            PositionRange
}

// SubqueryExpr is expr[range:step] or expr[range:] (Step is 0 then), with
// optional offset and @ modifiers.
type SubqueryExpr struct {
	Expr       Expr
	Range      time.Duration
	Step       time.Duration
	Offset     time.Duration
	Timestamp  *int64
	StartOrEnd AtModifier
	Pos        PositionRange
}

// VectorMatchCardinality is the cardinality of a vector match.
type VectorMatchCardinality int

// Cardinalities: one-to-one by default, many-to-one with group_left,
// one-to-many with group_right. The parser never sets many-to-many: set
// operators (and, or, unless) are many-to-many by definition and the engine
// knows that from Op.
const (
	CardOneToOne VectorMatchCardinality = iota
	CardManyToOne
	CardOneToMany
)

// VectorMatching is the on/ignoring and group_left/group_right modifier of a
// binary expression.
type VectorMatching struct {
	Card VectorMatchCardinality
	// MatchingLabels are the labels of on(...) (On true) or ignoring(...).
	MatchingLabels []string
	On             bool
	// Include are the labels of group_left(...) / group_right(...).
	Include []string
}

// BinaryExpr is LHS Op RHS. Op is one of + - * / % ^ atan2 == != < <= > >=
// and or unless (lower case).
type BinaryExpr struct {
	Op       string
	LHS, RHS Expr
	// ReturnBool is the bool modifier of a comparison.
	ReturnBool bool
	// VectorMatching is nil when neither on nor ignoring was written.
	VectorMatching *VectorMatching
	Pos            PositionRange
}

// UnaryExpr is -Expr or +Expr. A sign in front of a number literal is folded
// into the literal instead, as Prometheus does (-1 is NumberLiteral{-1}).
type UnaryExpr struct {
	Op   string
	Expr Expr
	Pos  PositionRange
}

// AggregateExpr is an aggregation: sum, avg, min, max, count, stddev,
// stdvar, group, topk, bottomk, quantile, count_values, limitk, limit_ratio.
// Param is the first argument of topk, bottomk, quantile, count_values,
// limitk and limit_ratio, nil for the others.
type AggregateExpr struct {
	Op       string
	Param    Expr
	Expr     Expr
	Grouping []string
	Without  bool
	Pos      PositionRange
}

// Call is a function call. Function names are not checked by the parser:
// the engine owns the function registry (rate, offline, psi, ttest...).
type Call struct {
	Func string
	Args []Expr
	Pos  PositionRange
}

// ParenExpr is (Expr).
type ParenExpr struct {
	Expr Expr
	Pos  PositionRange
}

func (*NumberLiteral) expr()  {}
func (*StringLiteral) expr()  {}
func (*VectorSelector) expr() {}
func (*MatrixSelector) expr() {}
func (*SubqueryExpr) expr()   {}
func (*BinaryExpr) expr()     {}
func (*UnaryExpr) expr()      {}
func (*AggregateExpr) expr()  {}
func (*Call) expr()           {}
func (*ParenExpr) expr()      {}

// PositionRange implements Node.
func (n *NumberLiteral) PositionRange() PositionRange { return n.Pos }

// PositionRange implements Node.
func (n *StringLiteral) PositionRange() PositionRange { return n.Pos }

// PositionRange implements Node.
func (n *VectorSelector) PositionRange() PositionRange { return n.Pos }

// PositionRange implements Node.
func (n *MatrixSelector) PositionRange() PositionRange { return n.Pos }

// PositionRange implements Node.
func (n *SubqueryExpr) PositionRange() PositionRange { return n.Pos }

// PositionRange implements Node.
func (n *BinaryExpr) PositionRange() PositionRange { return n.Pos }

// PositionRange implements Node.
func (n *UnaryExpr) PositionRange() PositionRange { return n.Pos }

// PositionRange implements Node.
func (n *AggregateExpr) PositionRange() PositionRange { return n.Pos }

// PositionRange implements Node.
func (n *Call) PositionRange() PositionRange { return n.Pos }

// PositionRange implements Node.
func (n *ParenExpr) PositionRange() PositionRange { return n.Pos }

// IsComparisonOperator reports whether op is == != < <= > >=.
func IsComparisonOperator(op string) bool {
	switch op {
	case "==", "!=", "<", "<=", ">", ">=":
		return true
	}
	return false
}

// IsSetOperator reports whether op is and, or, unless.
func IsSetOperator(op string) bool {
	return op == "and" || op == "or" || op == "unless"
}

// aggregators maps each aggregation operator to whether it takes a
// parameter before the vector argument.
var aggregators = map[string]bool{
	"sum": false, "avg": false, "min": false, "max": false, "count": false,
	"stddev": false, "stdvar": false, "group": false,
	"topk": true, "bottomk": true, "quantile": true, "count_values": true,
	"limitk": true, "limit_ratio": true,
}

// IsAggregator reports whether name is an aggregation operator.
func IsAggregator(name string) bool {
	_, ok := aggregators[name]
	return ok
}

// AggregatorHasParam reports whether aggregation op takes a parameter
// (topk, bottomk, quantile, count_values, limitk, limit_ratio).
func AggregatorHasParam(op string) bool { return aggregators[op] }

// ---- String ----

// String implements Node.
func (n *NumberLiteral) String() string {
	if n.Duration {
		return FormatDuration(time.Duration(n.Val * 1e9))
	}
	return strconv.FormatFloat(n.Val, 'f', -1, 64)
}

// String implements Node.
func (n *StringLiteral) String() string { return strconv.Quote(n.Val) }

func isLegacyLabelName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z') || (i > 0 && isDigit(c))) {
			return false
		}
	}
	return true
}

func writeLabelName(b *strings.Builder, s string) {
	if isLegacyLabelName(s) {
		b.WriteString(s)
	} else {
		b.WriteString(strconv.Quote(s))
	}
}

func writeLabelList(b *strings.Builder, ls []string) {
	b.WriteByte('(')
	for i, l := range ls {
		if i > 0 {
			b.WriteString(", ")
		}
		writeLabelName(b, l)
	}
	b.WriteByte(')')
}

func writeAtOffset(b *strings.Builder, ts *int64, se AtModifier, off time.Duration) {
	switch {
	case ts != nil:
		b.WriteString(" @ ")
		b.WriteString(strconv.FormatFloat(float64(*ts)/1000, 'f', 3, 64))
	case se == AtStart:
		b.WriteString(" @ start()")
	case se == AtEnd:
		b.WriteString(" @ end()")
	}
	if off != 0 {
		b.WriteString(" offset ")
		b.WriteString(FormatDuration(off))
	}
}

// writeSelector writes name{matchers} without modifiers: matchers sorted as
// Prometheus sorts them, the name matcher folded into the name.
func (n *VectorSelector) writeSelector(b *strings.Builder) {
	strs := make([]string, 0, len(n.LabelMatchers))
	var mb strings.Builder
	for _, m := range n.LabelMatchers {
		if m == nil {
			continue
		}
		if m.Name == MetricNameLabel && m.Type == labels.MatchEqual && m.Value == n.Name && m.Value != "" {
			continue
		}
		mb.Reset()
		writeLabelName(&mb, m.Name)
		mb.WriteString(m.Type.String())
		mb.WriteString(strconv.Quote(m.Value))
		strs = append(strs, mb.String())
	}
	b.WriteString(n.Name)
	if len(strs) > 0 {
		slices.Sort(strs)
		b.WriteByte('{')
		b.WriteString(strings.Join(strs, ","))
		b.WriteByte('}')
	}
}

// String implements Node.
func (n *VectorSelector) String() string {
	var b strings.Builder
	n.writeSelector(&b)
	writeAtOffset(&b, n.Timestamp, n.StartOrEnd, n.Offset)
	return b.String()
}

// String implements Node.
func (n *MatrixSelector) String() string {
	var b strings.Builder
	vs := n.VectorSelector
	vs.writeSelector(&b)
	b.WriteByte('[')
	b.WriteString(FormatDuration(n.Range))
	b.WriteByte(']')
	writeAtOffset(&b, vs.Timestamp, vs.StartOrEnd, vs.Offset)
	return b.String()
}

// String implements Node.
func (n *SubqueryExpr) String() string {
	var b strings.Builder
	b.WriteString(n.Expr.String())
	b.WriteByte('[')
	b.WriteString(FormatDuration(n.Range))
	b.WriteByte(':')
	if n.Step != 0 {
		b.WriteString(FormatDuration(n.Step))
	}
	b.WriteByte(']')
	writeAtOffset(&b, n.Timestamp, n.StartOrEnd, n.Offset)
	return b.String()
}

// String implements Node.
func (n *BinaryExpr) String() string {
	var b strings.Builder
	b.WriteString(n.LHS.String())
	b.WriteByte(' ')
	b.WriteString(n.Op)
	if n.ReturnBool {
		b.WriteString(" bool")
	}
	if vm := n.VectorMatching; vm != nil {
		group := vm.Card == CardManyToOne || vm.Card == CardOneToMany
		if len(vm.MatchingLabels) > 0 || vm.On || group {
			if vm.On {
				b.WriteString(" on ")
			} else {
				b.WriteString(" ignoring ")
			}
			writeLabelList(&b, vm.MatchingLabels)
		}
		if group {
			if vm.Card == CardManyToOne {
				b.WriteString(" group_left ")
			} else {
				b.WriteString(" group_right ")
			}
			writeLabelList(&b, vm.Include)
		}
	}
	b.WriteByte(' ')
	b.WriteString(n.RHS.String())
	return b.String()
}

// String implements Node.
func (n *UnaryExpr) String() string { return n.Op + n.Expr.String() }

// String implements Node.
func (n *AggregateExpr) String() string {
	var b strings.Builder
	b.WriteString(n.Op)
	switch {
	case n.Without:
		b.WriteString(" without ")
		writeLabelList(&b, n.Grouping)
		b.WriteByte(' ')
	case len(n.Grouping) > 0:
		b.WriteString(" by ")
		writeLabelList(&b, n.Grouping)
		b.WriteByte(' ')
	}
	b.WriteByte('(')
	if n.Param != nil {
		b.WriteString(n.Param.String())
		b.WriteString(", ")
	}
	b.WriteString(n.Expr.String())
	b.WriteByte(')')
	return b.String()
}

// String implements Node.
func (n *Call) String() string {
	var b strings.Builder
	b.WriteString(n.Func)
	b.WriteByte('(')
	for i, a := range n.Args {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(a.String())
	}
	b.WriteByte(')')
	return b.String()
}

// String implements Node.
func (n *ParenExpr) String() string { return "(" + n.Expr.String() + ")" }

// ---- walking ----

// Children returns the direct children of node in evaluation order.
func Children(node Node) []Node {
	switch n := node.(type) {
	case *MatrixSelector:
		return []Node{n.VectorSelector}
	case *SubqueryExpr:
		return []Node{n.Expr}
	case *BinaryExpr:
		return []Node{n.LHS, n.RHS}
	case *UnaryExpr:
		return []Node{n.Expr}
	case *AggregateExpr:
		if n.Param != nil {
			return []Node{n.Param, n.Expr}
		}
		return []Node{n.Expr}
	case *Call:
		out := make([]Node, len(n.Args))
		for i, a := range n.Args {
			out[i] = a
		}
		return out
	case *ParenExpr:
		return []Node{n.Expr}
	}
	return nil
}

// Inspect walks the tree depth-first, calling f with each node and its
// ancestors (outermost first). When f returns false, the node's children are
// skipped.
func Inspect(node Node, f func(node Node, path []Node) bool) {
	inspect(node, nil, f)
}

func inspect(node Node, path []Node, f func(Node, []Node) bool) {
	if node == nil || !f(node, path) {
		return
	}
	path = append(path, node)
	for _, c := range Children(node) {
		inspect(c, path, f)
	}
}
