package definitions

// tri is a truth value of three-valued (Kleene) logic.
type tri uint8

const (
	triFalse tri = iota
	triTrue
	triUnknown
)

type evalFn func(Record) tri

type getFn func(Record) (Value, bool)

// inMapThreshold is the in-list length from which membership uses a map.
const inMapThreshold = 8

func compile(n node) evalFn {
	switch n := n.(type) {
	case *andNode:
		terms := compileAll(n.terms)
		if len(terms) == 2 {
			a, b := terms[0], terms[1]
			return func(r Record) tri {
				x := a(r)
				if x == triFalse {
					return triFalse
				}
				y := b(r)
				if y == triFalse {
					return triFalse
				}
				if x == triTrue && y == triTrue {
					return triTrue
				}
				return triUnknown
			}
		}
		return func(r Record) tri {
			res := triTrue
			for _, t := range terms {
				switch t(r) {
				case triFalse:
					return triFalse
				case triUnknown:
					res = triUnknown
				}
			}
			return res
		}
	case *orNode:
		terms := compileAll(n.terms)
		return func(r Record) tri {
			res := triFalse
			for _, t := range terms {
				switch t(r) {
				case triTrue:
					return triTrue
				case triUnknown:
					res = triUnknown
				}
			}
			return res
		}
	case *notNode:
		x := compile(n.x)
		return func(r Record) tri {
			switch x(r) {
			case triTrue:
				return triFalse
			case triFalse:
				return triTrue
			}
			return triUnknown
		}
	case *missingNode:
		get := compileGet(n.field)
		present, absent := triFalse, triTrue
		if n.not {
			present, absent = triTrue, triFalse
		}
		return func(r Record) tri {
			if v, ok := get(r); ok && v.kind != KindNull {
				return present
			}
			return absent
		}
	case *cmpNode:
		return compileCmp(n)
	case *inNode:
		return compileIn(n)
	}
	panic("definitions: unknown predicate node")
}

func compileAll(ns []node) []evalFn {
	out := make([]evalFn, len(ns))
	for i, n := range ns {
		out[i] = compile(n)
	}
	return out
}

func compileGet(f Field) getFn {
	name := f.Name
	switch f.Scope {
	case FieldFeature:
		return func(r Record) (Value, bool) { return r.Get(ScopeFeature, name) }
	case FieldAttribute:
		return func(r Record) (Value, bool) { return r.Get(ScopeAttribute, name) }
	case FieldRecord:
		return func(r Record) (Value, bool) { return r.Get(ScopeRecord, name) }
	default:
		return func(r Record) (Value, bool) {
			if v, ok := r.Get(ScopeFeature, name); ok {
				return v, true
			}
			return r.Get(ScopeAttribute, name)
		}
	}
}

func boolTri(b bool) tri {
	if b {
		return triTrue
	}
	return triFalse
}

// compileCmp compiles field op literal. Missing or null values give
// unknown. Values of another type than the literal are unequal (== false,
// != true) and unordered (<, <=, >, >= unknown).
func compileCmp(n *cmpNode) evalFn {
	get := compileGet(n.field)
	lit := n.lit
	switch n.op {
	case opEq, opNe:
		eq, ne := triTrue, triFalse
		if n.op == opNe {
			eq, ne = triFalse, triTrue
		}
		switch lit.kind {
		case KindString:
			s := lit.str
			return func(r Record) tri {
				v, ok := get(r)
				if !ok || v.kind == KindNull {
					return triUnknown
				}
				if v.kind == KindString && v.str == s {
					return eq
				}
				return ne
			}
		default: // number or bool: compare num
			k, f := lit.kind, lit.num
			return func(r Record) tri {
				v, ok := get(r)
				if !ok || v.kind == KindNull {
					return triUnknown
				}
				if v.kind == k && v.num == f {
					return eq
				}
				return ne
			}
		}
	}
	op := n.op
	if lit.kind == KindString {
		s := lit.str
		return func(r Record) tri {
			v, ok := get(r)
			if !ok || v.kind != KindString {
				return triUnknown
			}
			switch op {
			case opLt:
				return boolTri(v.str < s)
			case opLe:
				return boolTri(v.str <= s)
			case opGt:
				return boolTri(v.str > s)
			default:
				return boolTri(v.str >= s)
			}
		}
	}
	f := lit.num
	return func(r Record) tri {
		v, ok := get(r)
		if !ok || v.kind != KindNumber {
			return triUnknown
		}
		switch op {
		case opLt:
			return boolTri(v.num < f)
		case opLe:
			return boolTri(v.num <= f)
		case opGt:
			return boolTri(v.num > f)
		default:
			return boolTri(v.num >= f)
		}
	}
}

func compileIn(n *inNode) evalFn {
	get := compileGet(n.field)
	found, notFound := triTrue, triFalse
	if n.not {
		found, notFound = triFalse, triTrue
	}
	var strs []string
	var nums []float64
	var bools [2]bool
	for _, l := range n.list {
		switch l.kind {
		case KindString:
			strs = append(strs, l.str)
		case KindNumber:
			nums = append(nums, l.num)
		case KindBool:
			bools[int(l.num)] = true
		}
	}
	var strSet map[string]struct{}
	if len(strs) >= inMapThreshold {
		strSet = make(map[string]struct{}, len(strs))
		for _, s := range strs {
			strSet[s] = struct{}{}
		}
	}
	var numSet map[float64]struct{}
	if len(nums) >= inMapThreshold {
		numSet = make(map[float64]struct{}, len(nums))
		for _, f := range nums {
			numSet[f] = struct{}{}
		}
	}
	return func(r Record) tri {
		v, ok := get(r)
		if !ok || v.kind == KindNull {
			return triUnknown
		}
		switch v.kind {
		case KindString:
			if strSet != nil {
				if _, ok := strSet[v.str]; ok {
					return found
				}
				return notFound
			}
			for _, s := range strs {
				if s == v.str {
					return found
				}
			}
		case KindNumber:
			if numSet != nil {
				if _, ok := numSet[v.num]; ok {
					return found
				}
				return notFound
			}
			for _, f := range nums {
				if f == v.num {
					return found
				}
			}
		case KindBool:
			if bools[int(v.num)] {
				return found
			}
		}
		return notFound
	}
}
