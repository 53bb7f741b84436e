package query

import (
	"slices"

	"evalstore/query/parser"
)

// checker types an AST the way Prometheus's parser does (checkAST), with
// the same error texts, positioned in the query text.
type checker struct {
	input string
	err   *Error
}

func (c *checker) fail(n parser.Node, format string, args ...any) {
	if c.err == nil {
		c.err = badData(c.input, n.PositionRange(), format, args...)
	}
}

// typeOf returns an expression's type without checking its children.
func typeOf(e parser.Expr) ValueType {
	switch n := e.(type) {
	case *parser.NumberLiteral:
		return TypeScalar
	case *parser.StringLiteral:
		return TypeString
	case *parser.VectorSelector:
		return TypeVector
	case *parser.MatrixSelector:
		// A sketch metric with a range is finished over the window.
		if isSketchMetricName(selectorName(n.VectorSelector)) {
			return TypeVector
		}
		return TypeMatrix
	case *parser.SubqueryExpr:
		return TypeMatrix
	case *parser.ParenExpr:
		return typeOf(n.Expr)
	case *parser.UnaryExpr:
		return typeOf(n.Expr)
	case *parser.AggregateExpr:
		return TypeVector
	case *parser.BinaryExpr:
		if typeOf(n.LHS) == TypeScalar && typeOf(n.RHS) == TypeScalar {
			return TypeScalar
		}
		return TypeVector
	case *parser.Call:
		if f := lookupFunc(n.Func); f != nil {
			return f.ret
		}
	}
	return TypeNone
}

func (c *checker) expect(n parser.Expr, want ValueType, context string) {
	if t := c.check(n); t != want && c.err == nil {
		c.fail(n, "expected type %s in %s, got %s", want.documented(), context, t.documented())
	}
}

// check types n and its children, recording the first error.
func (c *checker) check(e parser.Expr) ValueType {
	if c.err != nil {
		return TypeNone
	}
	switch n := e.(type) {
	case *parser.AggregateExpr:
		c.expect(n.Expr, TypeVector, "aggregation expression")
		if n.Param != nil {
			if n.Op == "count_values" {
				c.expect(n.Param, TypeString, "aggregation parameter")
			} else {
				c.expect(n.Param, TypeScalar, "aggregation parameter")
			}
		}
	case *parser.BinaryExpr:
		lt, rt := c.check(n.LHS), c.check(n.RHS)
		if c.err != nil {
			return TypeNone
		}
		opPos := parser.PositionRange{Start: n.LHS.PositionRange().End, End: n.RHS.PositionRange().Start}
		for opPos.Start < opPos.End && opPos.Start < len(c.input) && isSpace(c.input[opPos.Start]) {
			opPos.Start++
		}
		op := opNode{opPos}
		if parser.IsComparisonOperator(n.Op) && !n.ReturnBool && lt == TypeScalar && rt == TypeScalar {
			c.fail(op, "comparisons between scalars must use BOOL modifier")
			return TypeNone
		}
		if vm := n.VectorMatching; vm != nil && vm.On {
			for _, l1 := range vm.MatchingLabels {
				if slices.Contains(vm.Include, l1) {
					c.fail(op, "label %q must not occur in ON and GROUP clause at once", l1)
					return TypeNone
				}
			}
		}
		if lt != TypeScalar && lt != TypeVector {
			c.fail(n.LHS, "binary expression must contain only scalar and instant vector types")
			return TypeNone
		}
		if rt != TypeScalar && rt != TypeVector {
			c.fail(n.RHS, "binary expression must contain only scalar and instant vector types")
			return TypeNone
		}
		if (lt != TypeVector || rt != TypeVector) && n.VectorMatching != nil && len(n.VectorMatching.MatchingLabels) > 0 {
			c.fail(n, "vector matching only allowed between instant vectors")
			return TypeNone
		}
		if (lt == TypeScalar || rt == TypeScalar) && parser.IsSetOperator(n.Op) {
			c.fail(n, "set operator %q not allowed in binary scalar expression", n.Op)
			return TypeNone
		}
	case *parser.Call:
		f := lookupFunc(n.Func)
		if f == nil {
			c.fail(n, "unknown function with name %q", n.Func)
			return TypeNone
		}
		nargs := len(f.args)
		if f.variadic == 0 {
			if nargs != len(n.Args) {
				c.fail(n, "expected %d argument(s) in call to %q, got %d", nargs, n.Func, len(n.Args))
				return TypeNone
			}
		} else {
			na := nargs - 1
			if na > len(n.Args) {
				c.fail(n, "expected at least %d argument(s) in call to %q, got %d", na, n.Func, len(n.Args))
				return TypeNone
			} else if nmax := na + f.variadic; f.variadic > 0 && nmax < len(n.Args) {
				c.fail(n, "expected at most %d argument(s) in call to %q, got %d", nmax, n.Func, len(n.Args))
				return TypeNone
			}
		}
		for i, a := range n.Args {
			j := i
			if j >= len(f.args) {
				j = len(f.args) - 1
			}
			if slices.Contains(f.sketchArgs, j) {
				if !isSketchable(a) {
					c.fail(a, "expected sketch states in argument %d of %q (a selector such as evalstore_feature{...}[1h], offline(...) or sum(...) over one), got %s", i+1, n.Func, typeOf(a).documented())
				}
				c.checkSketch(a)
				continue
			}
			if t := c.check(a); t != f.args[j] && c.err == nil {
				c.fail(a, "expected type %s in call to function %q, got %s", f.args[j].documented(), n.Func, t.documented())
			}
		}
	case *parser.ParenExpr:
		c.check(n.Expr)
	case *parser.UnaryExpr:
		if t := c.check(n.Expr); c.err == nil && t != TypeScalar && t != TypeVector {
			c.fail(n, "unary expression only allowed on expressions of type scalar or instant vector, got %q", t.documented())
		}
	case *parser.SubqueryExpr:
		if t := c.check(n.Expr); c.err == nil && t != TypeVector {
			c.fail(n, "subquery is only allowed on instant vector, got %s instead", t)
		}
	case *parser.MatrixSelector:
		c.check(n.VectorSelector)
	}
	if c.err != nil {
		return TypeNone
	}
	return typeOf(e)
}

// opNode positions an error on a binary operator.
type opNode struct{ pos parser.PositionRange }

func (o opNode) String() string                      { return "" }
func (o opNode) PositionRange() parser.PositionRange { return o.pos }

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// checkSketch checks a sketchable expression: offline's dataset argument
// must be a string; selectors need no check.
func (c *checker) checkSketch(e parser.Expr) {
	switch n := unwrapParens(e).(type) {
	case *parser.Call:
		if len(n.Args) > 2 {
			c.fail(n, "expected at most 2 argument(s) in call to %q, got %d", n.Func, len(n.Args))
			return
		}
		if len(n.Args) == 2 {
			if _, ok := unwrapParens(n.Args[1]).(*parser.StringLiteral); !ok {
				c.fail(n.Args[1], "expected a dataset name such as \"holdout\" in call to function %q", n.Func)
				return
			}
		}
		c.checkSketch(n.Args[0])
	case *parser.AggregateExpr:
		c.checkSketch(n.Expr)
	}
}
