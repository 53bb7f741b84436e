package index

import (
	"slices"

	"github.com/prometheus/prometheus/model/labels"
)

// planKind says how a label's values are chosen for one matcher.
type planKind uint8

const (
	// planValues: exactly the values in valuePlan.values (a set lookup).
	planValues planKind = iota
	// planAllBut: every value except those in valuePlan.values.
	planAllBut
	// planScan: every value v with m.Matches(v) == want; when prefix is
	// set, only values starting with prefix can qualify.
	planScan
)

// valuePlan selects the values v of one label name for which
// m.Matches(v) == want, using the cheapest strategy the matcher allows.
type valuePlan struct {
	kind   planKind
	values []string
	m      *labels.Matcher
	want   bool
	prefix string
}

// accept is the exact test a plan implements; planScan calls it per value.
func (p *valuePlan) accept(v string) bool { return p.m.Matches(v) == p.want }

// excluded reports whether v is in a planAllBut exclusion list.
func (p *valuePlan) excluded(v string) bool {
	if len(p.values) > 8 {
		return !p.accept(v) // the matcher has a map-based set matcher
	}
	return slices.Contains(p.values, v)
}

// planFor builds the plan for the values v with m.Matches(v) == want.
// Stored values are never empty, so a plan needs no care for "".
func planFor(m *labels.Matcher, want bool) valuePlan {
	switch m.Type {
	case labels.MatchEqual, labels.MatchNotEqual:
		if want == (m.Type == labels.MatchEqual) {
			return valuePlan{kind: planValues, values: []string{m.Value}}
		}
		return valuePlan{kind: planAllBut, values: []string{m.Value}}
	}
	// A regexp: reWant is whether the wanted values are those the regexp
	// itself matches.
	reWant := want == (m.Type == labels.MatchRegexp)
	switch m.Value {
	case ".*":
		if reWant {
			return valuePlan{kind: planAllBut}
		}
		return valuePlan{kind: planValues}
	case ".+":
		if reWant {
			return valuePlan{kind: planAllBut} // every stored value is non-empty
		}
		return valuePlan{kind: planValues}
	}
	if set := m.SetMatches(); len(set) > 0 {
		if reWant {
			slices.Sort(set)
			return valuePlan{kind: planValues, values: slices.Compact(set)}
		}
		return valuePlan{kind: planAllBut, values: set, m: m, want: want}
	}
	p := valuePlan{kind: planScan, m: m, want: want}
	if reWant {
		p.prefix = m.Prefix()
	}
	return p
}

// postingsSource is what selectPostings needs from an index. Both methods
// return the postings with an estimate of their length (used to order an
// intersection, smallest first).
type postingsSource interface {
	allPostings() (Postings, int)
	postingsFor(name string, p *valuePlan) (Postings, int)
}

// selectPostings evaluates matchers with Prometheus's semantics: a series
// matches when every matcher matches its value for the matcher's name,
// a missing label counting as "".
//
// A matcher that does not match "" selects series that have the label with
// a matching value: those postings are intersected. A matcher that matches
// "" selects every series except those having the label with a value it
// rejects: those postings are subtracted, from the intersection or, if no
// matcher intersects, from all postings. With no matchers, everything
// matches.
func selectPostings(src postingsSource, ms []*labels.Matcher) (Postings, error) {
	if err := validateMatchers(ms); err != nil {
		return nil, err
	}
	type sized struct {
		p Postings
		n int
	}
	var its []sized
	var nots []Postings
	for _, m := range ms {
		if m.Matches("") {
			plan := planFor(m, false)
			if p, _ := src.postingsFor(m.Name, &plan); !isEmpty(p) {
				nots = append(nots, p)
			}
			continue
		}
		plan := planFor(m, true)
		p, n := src.postingsFor(m.Name, &plan)
		if isEmpty(p) {
			return emptyPostings{}, nil
		}
		its = append(its, sized{p, n})
	}
	var res Postings
	switch len(its) {
	case 0:
		res, _ = src.allPostings()
	case 1:
		res = its[0].p
	default:
		slices.SortStableFunc(its, func(a, b sized) int { return a.n - b.n })
		ps := make([]Postings, len(its))
		for i := range its {
			ps[i] = its[i].p
		}
		res = Intersect(ps...)
	}
	if len(nots) > 0 {
		res = Without(res, Merge(nots...))
	}
	return res, nil
}

// lazyMergeMax is the number of postings lists up to which a union is a
// lazy heap merge; above it the lists are concatenated and sorted, which is
// faster for many lists and possible because the lists of one label name
// are disjoint (a series has one value per name).
const lazyMergeMax = 32

// unionLists returns the union of sorted, pairwise disjoint lists.
func unionLists(lists [][]SeriesRef) (Postings, int) {
	n := 0
	for _, l := range lists {
		n += len(l)
	}
	switch {
	case n == 0:
		return emptyPostings{}, 0
	case len(lists) == 1:
		return NewListPostings(lists[0]), n
	case len(lists) <= lazyMergeMax:
		ps := make([]Postings, len(lists))
		for i, l := range lists {
			ps[i] = NewListPostings(l)
		}
		return Merge(ps...), n
	}
	out := make([]SeriesRef, 0, n)
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.Sort(out)
	return NewListPostings(slices.Compact(out)), n
}
