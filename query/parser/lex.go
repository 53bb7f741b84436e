package parser

import (
	"io"
	"strconv"
	"strings"

	"github.com/alecthomas/participle/v2/lexer"
)

// Token types of the hand-written lexer. participle refers to them by the
// names in symbols (for example @Ident, @Number in grammar.go).
const (
	tokIdent lexer.TokenType = -(iota + 2)
	tokNumber
	tokDuration
	tokString
	tokPunct
	tokBinOp // + - * / % ^ == != <= >= < >
)

func symbols() map[string]lexer.TokenType {
	return map[string]lexer.TokenType{
		"EOF":      lexer.EOF,
		"Ident":    tokIdent,
		"Number":   tokNumber,
		"Duration": tokDuration,
		"String":   tokString,
		"Punct":    tokPunct,
		"BinOp":    tokBinOp,
	}
}

// lexDef satisfies lexer.Definition; Parse never calls Lex on it (it lexes
// first, with its own errors, and hands participle a token slice).
type lexDef struct{}

func (lexDef) Symbols() map[string]lexer.TokenType { return symbols() }

func (lexDef) Lex(_ string, r io.Reader) (lexer.Lexer, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	toks, perr := lex(string(b))
	if perr != nil {
		return nil, perr
	}
	return &sliceLexer{toks: toks}, nil
}

// sliceLexer replays already-lexed tokens to participle.
type sliceLexer struct {
	toks []lexer.Token
	i    int
}

func (l *sliceLexer) Next() (lexer.Token, error) {
	t := l.toks[l.i]
	if l.i < len(l.toks)-1 {
		l.i++
	}
	return t, nil
}

// two-character operators, tried before the single characters.
var ops2 = [...]string{"==", "!=", "<=", ">=", "=~", "!~"}

const ops1 = "+-*/%^=<>(){}[],:@"

// binOpChars lists the punctuation binary operators, space-separated.
const binOpChars = " + - * / % ^ == != <= >= < > "

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isHex(c byte) bool        { return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') }
func isIdentStart(c byte) bool { return c == '_' || c == ':' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isIdentChar(c byte) bool  { return isIdentStart(c) || isDigit(c) }
func isAlnum(c byte) bool      { return c == '_' || isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isDurationUnit(c byte) bool {
	return c == 's' || c == 'm' || c == 'h' || c == 'd' || c == 'w' || c == 'y'
}

// lex splits input into tokens, dropping whitespace and comments, and ends
// with an EOF token. Errors are *ParseError with the offending position.
func lex(input string) ([]lexer.Token, *ParseError) {
	toks := make([]lexer.Token, 0, len(input)/3+2)
	line, lineStart := 1, 0
	pos := func(off int) lexer.Position {
		return lexer.Position{Offset: off, Line: line, Column: off - lineStart + 1}
	}
	i := 0
	sq := 0 // depth of [ ]: inside, ":" separates range and step
	for i < len(input) {
		c := input[i]
		switch {
		case c == '\n':
			i++
			line, lineStart = line+1, i
			continue
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			i++
			continue
		case c == '#':
			for i < len(input) && input[i] != '\n' {
				i++
			}
			continue
		}
		start := i
		switch {
		case c == '"' || c == '\'' || c == '`':
			i++
			for {
				if i >= len(input) || (c != '`' && input[i] == '\n') {
					return nil, errAt(input, start, i, "unterminated quoted string — add the closing %c", c)
				}
				if input[i] == '\\' && c != '`' {
					i += 2
					continue
				}
				if input[i] == c {
					i++
					break
				}
				i++
			}
			if i > len(input) {
				i = len(input)
			}
			toks = append(toks, lexer.Token{Type: tokString, Value: input[start:i], Pos: pos(start)})
		case isDigit(c) || (c == '.' && i+1 < len(input) && isDigit(input[i+1])):
			typ, end, msg := scanNumber(input, i)
			if msg != "" {
				return nil, errAt(input, start, end, "%s", msg)
			}
			i = end
			toks = append(toks, lexer.Token{Type: typ, Value: input[start:i], Pos: pos(start)})
		case isIdentStart(c) && (c != ':' || sq == 0):
			for i < len(input) && isIdentChar(input[i]) && (input[i] != ':' || sq == 0) {
				i++
			}
			v := input[start:i]
			typ := tokIdent
			if strings.EqualFold(v, "inf") || strings.EqualFold(v, "nan") {
				typ = tokNumber
			}
			toks = append(toks, lexer.Token{Type: typ, Value: v, Pos: pos(start)})
		default:
			op := ""
			if i+1 < len(input) {
				for _, o := range ops2 {
					if input[i:i+2] == o {
						op = o
						break
					}
				}
			}
			if op == "" && strings.IndexByte(ops1, c) >= 0 {
				op = input[i : i+1]
			}
			if op == "" {
				r := []rune(input[i:min(len(input), i+4)])[0]
				return nil, errAt(input, start, start+len(string(r)), "unexpected character %q", r)
			}
			i += len(op)
			switch op {
			case "[":
				sq++
			case "]":
				sq = max(0, sq-1)
			}
			typ := tokPunct
			if strings.Contains(binOpChars, " "+op+" ") {
				typ = tokBinOp
			}
			toks = append(toks, lexer.Token{Type: typ, Value: op, Pos: pos(start)})
		}
	}
	toks = append(toks, lexer.Token{Type: lexer.EOF, Value: "", Pos: pos(len(input))})
	return toks, nil
}

// scanNumber scans a number (decimal with optional fraction and exponent,
// underscores between digits, or hexadecimal) or a duration (digits with
// Prometheus units, such as 1h30m) starting at i. It returns the token type,
// the end offset and an error message.
func scanNumber(s string, i int) (lexer.TokenType, int, string) {
	start := i
	if s[i] == '0' && i+1 < len(s) && (s[i+1] == 'x' || s[i+1] == 'X') {
		i += 2
		for i < len(s) && isHex(s[i]) {
			i++
		}
		if i == start+2 || (i < len(s) && isAlnum(s[i])) {
			return 0, endOfWord(s, i), "bad number syntax " + snippet(s[start:endOfWord(s, i)])
		}
		return tokNumber, i, ""
	}
	digits := func() {
		for i < len(s) && (isDigit(s[i]) || (s[i] == '_' && i > start && isDigit(s[i-1]) && i+1 < len(s) && isDigit(s[i+1]))) {
			i++
		}
	}
	digits()
	intOnly := true
	if i < len(s) && s[i] == '.' {
		intOnly = false
		i++
		digits()
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if j < len(s) && isDigit(s[j]) {
			intOnly = false
			i = j
			digits()
		}
	}
	if intOnly && i < len(s) && isDurationUnit(s[i]) {
		for i < len(s) && (isDigit(s[i]) || isDurationUnit(s[i])) {
			i++
		}
		end := endOfWord(s, i)
		if end != i {
			return 0, end, "bad number or duration syntax " + snippet(s[start:end])
		}
		if strings.ContainsRune(s[start:i], '_') {
			return 0, i, "bad duration syntax " + snippet(s[start:i]) + " — underscores are not allowed in durations"
		}
		if _, err := ParseDuration(s[start:i]); err != nil {
			return 0, i, "bad duration " + snippet(s[start:i]) + " — units must be in the order y w d h m s ms, each at most once, such as 1h30m"
		}
		return tokDuration, i, ""
	}
	if i < len(s) && (isAlnum(s[i]) || s[i] == '.') {
		end := endOfWord(s, i)
		return 0, end, "bad number or duration syntax " + snippet(s[start:end])
	}
	return tokNumber, i, ""
}

func endOfWord(s string, i int) int {
	for i < len(s) && (isAlnum(s[i]) || s[i] == '.') {
		i++
	}
	return i
}

// snippet quotes a piece of input for an error message, shortened.
func snippet(s string) string {
	if len(s) > 40 {
		return strconv.Quote(s[:37]) + "..."
	}
	return strconv.Quote(s)
}
