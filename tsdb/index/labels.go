package index

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/labels"
)

// metricName is the label that holds a series' metric name.
const metricName = "__name__"

// ErrInvalidLabels reports a label set the index refuses: no metric name
// (__name__ missing or empty), an empty or duplicate label name, or a name
// or value that is not valid UTF-8. Errors for such label sets wrap it.
var ErrInvalidLabels = errors.New("invalid label set")

// ErrInvalidMatcher reports a nil matcher or one with an unknown MatchType.
var ErrInvalidMatcher = errors.New("invalid label matcher")

// sortLabels returns ls with its labels sorted by name, or ls itself when it
// already is (the common case, which costs one pass and no allocation).
// Duplicate names are kept; validateLabels reports them.
func sortLabels(ls labels.Labels) labels.Labels {
	sorted, first, prev := true, true, ""
	ls.Range(func(l labels.Label) {
		if !first && l.Name < prev {
			sorted = false
		}
		first, prev = false, l.Name
	})
	if sorted {
		return ls
	}
	var all []labels.Label
	ls.Range(func(l labels.Label) { all = append(all, l) })
	return labels.New(all...) // New sorts (stably) by name.
}

// validateLabels checks a label set whose empty values were dropped and
// whose names are sorted.
func validateLabels(ls labels.Labels) error {
	var (
		prev    string
		i       int
		hasName bool
	)
	err := ls.Validate(func(l labels.Label) error {
		switch {
		case l.Name == "":
			return fmt.Errorf("%w: empty label name (with value %q)", ErrInvalidLabels, l.Value)
		case i > 0 && l.Name == prev:
			return fmt.Errorf("%w: duplicate label name %q", ErrInvalidLabels, l.Name)
		case i > 0 && l.Name < prev:
			return fmt.Errorf("%w: label names not sorted (%q after %q)", ErrInvalidLabels, l.Name, prev)
		case !utf8.ValidString(l.Name):
			return fmt.Errorf("%w: label name %q is not valid UTF-8", ErrInvalidLabels, l.Name)
		case !utf8.ValidString(l.Value):
			return fmt.Errorf("%w: value %q of label %q is not valid UTF-8", ErrInvalidLabels, l.Value, l.Name)
		}
		hasName = hasName || l.Name == metricName
		prev = l.Name
		i++
		return nil
	})
	if err != nil {
		return err
	}
	if !hasName {
		return fmt.Errorf("%w: no metric name (%s missing or empty) in %s", ErrInvalidLabels, metricName, ls.String())
	}
	return nil
}

// validateMatchers checks that every matcher is usable.
func validateMatchers(ms []*labels.Matcher) error {
	for i, m := range ms {
		if m == nil {
			return fmt.Errorf("%w: matcher %d is nil", ErrInvalidMatcher, i)
		}
		switch m.Type {
		case labels.MatchEqual, labels.MatchNotEqual, labels.MatchRegexp, labels.MatchNotRegexp:
		default:
			return fmt.Errorf("%w: matcher %d on %q has unknown type %d", ErrInvalidMatcher, i, m.Name, int(m.Type))
		}
	}
	return nil
}

// matchesAll reports whether lset matches every matcher, with Prometheus's
// rule that a missing label has the value "".
func matchesAll(lset labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(lset.Get(m.Name)) {
			return false
		}
	}
	return true
}
