package parser

import (
	"fmt"
	"strings"
)

// tree prints an AST as an s-expression that shows its shape (grouping,
// node kinds, modifiers) and ignores positions.
func tree(n Node) string {
	switch n := n.(type) {
	case *NumberLiteral:
		if n.Duration {
			return "dur:" + n.String()
		}
		return n.String()
	case *StringLiteral:
		return n.String()
	case *VectorSelector:
		s := "sel:" + n.String()
		if n.Angle {
			s += "<>"
		}
		return s
	case *MatrixSelector:
		return fmt.Sprintf("(matrix %s %s)", tree(n.VectorSelector), FormatDuration(n.Range))
	case *SubqueryExpr:
		s := fmt.Sprintf("(subquery %s %s %s", tree(n.Expr), FormatDuration(n.Range), FormatDuration(n.Step))
		if n.Offset != 0 {
			s += " offset " + FormatDuration(n.Offset)
		}
		if n.Timestamp != nil {
			s += fmt.Sprintf(" @%d", *n.Timestamp)
		}
		if n.StartOrEnd != AtNone {
			s += fmt.Sprintf(" @%d()", n.StartOrEnd)
		}
		return s + ")"
	case *BinaryExpr:
		op := n.Op
		if n.ReturnBool {
			op += " bool"
		}
		if vm := n.VectorMatching; vm != nil {
			kw := "ignoring"
			if vm.On {
				kw = "on"
			}
			op += fmt.Sprintf(" %s(%s)", kw, strings.Join(vm.MatchingLabels, ","))
			switch vm.Card {
			case CardManyToOne:
				op += fmt.Sprintf(" group_left(%s)", strings.Join(vm.Include, ","))
			case CardOneToMany:
				op += fmt.Sprintf(" group_right(%s)", strings.Join(vm.Include, ","))
			}
		}
		return fmt.Sprintf("(%s %s %s)", op, tree(n.LHS), tree(n.RHS))
	case *UnaryExpr:
		return fmt.Sprintf("(unary%s %s)", n.Op, tree(n.Expr))
	case *AggregateExpr:
		s := "(" + n.Op
		if n.Without {
			s += " without(" + strings.Join(n.Grouping, ",") + ")"
		} else if n.Grouping != nil {
			s += " by(" + strings.Join(n.Grouping, ",") + ")"
		}
		if n.Param != nil {
			s += " " + tree(n.Param)
		}
		return s + " " + tree(n.Expr) + ")"
	case *Call:
		parts := []string{"call:" + n.Func}
		for _, a := range n.Args {
			parts = append(parts, tree(a))
		}
		return "(" + strings.Join(parts, " ") + ")"
	case *ParenExpr:
		return "(paren " + tree(n.Expr) + ")"
	}
	return fmt.Sprintf("?%T", n)
}
