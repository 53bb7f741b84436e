// Package parser turns evalstore query text (PromQL plus angle-bracket
// matchers and sketch-friendly typing) into a position-annotated AST.
//
// The grammar is written with github.com/alecthomas/participle/v2 (unexported
// grammar structs in grammar.go) and converted into the exported AST in
// ast.go. The parser checks syntax only; type checking (instant vector,
// range vector, scalar, string) and function arity belong to the engine,
// because sketch metrics change PromQL's typing. See
// docs/query-language.md ("Query language: syntax") for the language reference.
package parser
