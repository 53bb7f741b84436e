package parser

import (
	"github.com/alecthomas/participle/v2"
	"github.com/alecthomas/participle/v2/lexer"
)

// The participle grammar. Binary operators are parsed as a flat list
// (operand, operator, operand, ...) and arranged by precedence in
// convert.go, which keeps the grammar small and the precedence table in one
// place. Disjunctions and optional groups backtrack (UseLookahead with
// MaxLookahead): that is what lets `parser:"name<"` try a matcher bracket first and
// fall back to the less-than operator.

type gExpr struct {
	Head *gUnary     `parser:"@@"`
	Tail []*gBinTail `parser:"@@*"`
}

type gBinTail struct {
	Pos   lexer.Position
	Op    string     `parser:"@(BinOp | 'and' | 'or' | 'unless' | 'atan2')"`
	Bool  *gKeyword  `parser:"@@?"`
	Match *gMatching `parser:"@@?"`
	RHS   *gUnary    `parser:"@@"`
}

type gKeyword struct {
	Pos lexer.Position
	Kw  string `parser:"@'bool'"`
}

type gMatching struct {
	Pos    lexer.Position
	Kind   string      `parser:"@('on' | 'ignoring')"`
	Labels *gLabelList `parser:"@@"`
	Group  *gGroup     `parser:"@@?"`
}

type gGroup struct {
	Pos    lexer.Position
	Kind   string      `parser:"@('group_left' | 'group_right')"`
	Labels *gLabelList `parser:"@@?"`
}

type gLabelList struct {
	Names []*gLabelName `parser:"'(' ( @@ ( ',' @@ )* ','? )? ')'"`
}

type gLabelName struct {
	Pos    lexer.Position
	EndPos lexer.Position
	Ident  *string `parser:"@Ident"`
	Str    *string `parser:"| @String"`
}

type gUnary struct {
	Signs []*gSign  `parser:"@@*"`
	Post  *gPostfix `parser:"@@"`
}

type gSign struct {
	Pos lexer.Position
	Op  string `parser:"@('-' | '+')"`
}

type gPostfix struct {
	Prim *gPrimary `parser:"@@"`
	Mods []*gMod   `parser:"@@*"`
}

type gMod struct {
	Pos    lexer.Position
	EndPos lexer.Position
	Range  *gRange  `parser:"@@"`
	Offset *gOffset `parser:"| @@"`
	At     *gAt     `parser:"| @@"`
}

type gRange struct {
	Range *gDur `parser:"'[' @@"`
	Sub   bool  `parser:"( @':'"`
	Step  *gDur `parser:"@@? )? ']'"`
}

type gDur struct {
	Pos lexer.Position
	Dur *string `parser:"@Duration"`
	Num *string `parser:"| @Number"`
}

type gOffset struct {
	Sign string `parser:"'offset' @('-' | '+')?"`
	Dur  *gDur  `parser:"@@"`
}

type gAt struct {
	Pos   lexer.Position
	Start bool    `parser:"'@' ( @'start' '(' ')'"`
	End   bool    `parser:"| @'end' '(' ')'"`
	Sign  string  `parser:"| @('-' | '+')?"`
	Num   *string `parser:"@Number"`
	Dur   *string `parser:"| @Duration )"`
}

type gPrimary struct {
	Pos    lexer.Position
	EndPos lexer.Position
	Named  *gNamed    `parser:"@@"`
	Br     *gBrackets `parser:"| @@"`
	Num    *string    `parser:"| @Number"`
	Paren  *gExpr     `parser:"| '(' @@ ')'"`
	Str    *string    `parser:"| @String"`
	Dur    *string    `parser:"| @Duration"`
}

// Names: on, ignoring, group_left, group_right, bool and atan2 can never be
// a metric or function name (as in Prometheus); every other keyword (sum,
// by, offset, and, start...) can be, where an operand is expected.

// gNamed is an operand that starts with a name: a function call or an
// aggregation (which one is decided in convert.go), or a selector with a
// metric name. Parsing the name once keeps backtracking cheap.
type gNamed struct {
	Pos  lexer.Position
	Name string     `parser:"(?! 'on' | 'ignoring' | 'group_left' | 'group_right' | 'bool' | 'atan2') @Ident"`
	Call *gCallRest `parser:"( @@"`
	Br   *gBrackets `parser:"| @@ )?"`
}

type gCallRest struct {
	Pre  *gGrouping `parser:"@@?"`
	Args []*gExpr   `parser:"'(' ( @@ ( ',' @@ )* )? ')'"`
	Post *gGrouping `parser:"@@?"`
}

type gGrouping struct {
	Pos    lexer.Position
	Kind   string      `parser:"@('by' | 'without')"`
	Labels *gLabelList `parser:"@@"`
}

type gBrackets struct {
	Pos   lexer.Position
	Brace *gBraceList `parser:"@@"`
	Angle *gAngleList `parser:"| @@"`
}

type gBraceList struct {
	Open  bool            `parser:"@'{'"`
	Items []*gMatcherItem `parser:"( @@ ( ',' @@ )* ','? )? '}'"`
}

type gAngleList struct {
	Items []*gAngleMatcher `parser:"'<' @@ ( ',' @@ )* ','? '>'"`
}

type gMatcherItem struct {
	Pos   lexer.Position
	Name  *gLabelName `parser:"@@"`
	Op    string      `parser:"( @('=~' | '!~' | '!=' | '=')"`
	Value *gString    `parser:"@@ )?"`
}

type gAngleMatcher struct {
	Pos   lexer.Position
	Name  *gLabelName `parser:"@@"`
	Op    string      `parser:"@('=~' | '!~' | '!=' | '=')"`
	Value *gString    `parser:"@@"`
}

type gString struct {
	Pos lexer.Position
	Val string `parser:"@String"`
}

var grammar = participle.MustBuild[gExpr](
	participle.Lexer(lexDef{}),
	participle.UseLookahead(participle.MaxLookahead),
	participle.CaseInsensitive("Ident"),
)
