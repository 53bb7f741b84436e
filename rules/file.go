package rules

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/template"
	"go.yaml.in/yaml/v3"

	"evalstore/query"
)

// File is a parsed and validated rule file.
type File struct {
	Path   string
	Groups []GroupSpec
}

// GroupSpec is one group of a rule file: rules evaluated in order, at one
// interval.
type GroupSpec struct {
	Name string
	File string
	// Interval is the group's evaluation interval; zero means the
	// manager's default.
	Interval time.Duration
	// QueryOffset evaluates the group's queries this far in the past.
	QueryOffset time.Duration
	// Limit bounds the alerts (or series) one rule may produce; 0 is none.
	Limit int
	// Labels are added to every rule's results (rule labels win).
	Labels map[string]string
	Rules  []RuleSpec
}

// RuleSpec is one alerting (Alert set) or recording (Record set) rule.
type RuleSpec struct {
	Alert         string
	Record        string
	Expr          string
	For           time.Duration
	KeepFiringFor time.Duration
	Labels        map[string]string
	Annotations   map[string]string
	// Line is the rule's line in its file.
	Line int
}

// Name is the alert or record name.
func (r RuleSpec) Name() string {
	if r.Alert != "" {
		return r.Alert
	}
	return r.Record
}

// Error is a rule file error: where it is (file, line, column, group and
// rule) and what is wrong.
type Error struct {
	File         string
	Line, Column int    // 0 when unknown
	Group        string // "" when the error is not in a group
	Rule         int    // 1-based index in the group; 0 when not in a rule
	RuleName     string
	Err          error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	}
	b.WriteString(": ")
	if e.Group != "" || e.Rule > 0 {
		fmt.Fprintf(&b, "group %q", e.Group)
		if e.Rule > 0 {
			fmt.Fprintf(&b, ", rule %d", e.Rule)
			if e.RuleName != "" {
				fmt.Fprintf(&b, " %q", e.RuleName)
			}
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// ParseFile reads and validates the rule file path.
func ParseFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{File: path, Err: err}
	}
	return Parse(path, b)
}

// strict* mirror the file's shape with typed fields: decoding into them
// with KnownFields catches unknown fields and wrong types, with lines.
type strictFile struct {
	Groups []strictGroup `yaml:"groups"`
}

type strictGroup struct {
	Name        string            `yaml:"name"`
	Interval    model.Duration    `yaml:"interval,omitempty"`
	QueryOffset *model.Duration   `yaml:"query_offset,omitempty"`
	Limit       int               `yaml:"limit,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Rules       []strictRule      `yaml:"rules"`
}

type strictRule struct {
	Record        string            `yaml:"record,omitempty"`
	Alert         string            `yaml:"alert,omitempty"`
	Expr          string            `yaml:"expr"`
	For           model.Duration    `yaml:"for,omitempty"`
	KeepFiringFor model.Duration    `yaml:"keep_firing_for,omitempty"`
	Labels        map[string]string `yaml:"labels,omitempty"`
	Annotations   map[string]string `yaml:"annotations,omitempty"`
}

// node* keep each field's yaml node, for positions.
type nodeFile struct {
	Groups []yaml.Node `yaml:"groups"`
}

type nodeGroup struct {
	Name     yaml.Node   `yaml:"name"`
	Interval yaml.Node   `yaml:"interval"`
	Labels   yaml.Node   `yaml:"labels"`
	Rules    []yaml.Node `yaml:"rules"`
}

type nodeRule struct {
	Record        yaml.Node `yaml:"record"`
	Alert         yaml.Node `yaml:"alert"`
	Expr          yaml.Node `yaml:"expr"`
	For           yaml.Node `yaml:"for"`
	KeepFiringFor yaml.Node `yaml:"keep_firing_for"`
	Labels        yaml.Node `yaml:"labels"`
	Annotations   yaml.Node `yaml:"annotations"`
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlErrors turns yaml's type errors into positioned *Error values with
// the rule file's own words instead of Go type names.
func yamlErrors(path string, err error) error {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	repl := strings.NewReplacer("in type rules.strictRule", "in a rule", "in type rules.strictGroup", "in a group",
		"in type rules.strictFile", "at the top level (expected groups:)", "into rules.strictFile", "into a rule file (expected groups:)",
		"into model.Duration", "into a duration", "into map[string]string", "into a map of strings",
		"into []rules.strictGroup", "into a list of groups", "into []rules.strictRule", "into a list of rules")
	var errs []error
	for _, m := range msgs {
		e := &Error{File: path}
		if sm := yamlLine.FindStringSubmatch(m); sm != nil {
			fmt.Sscan(sm[1], &e.Line)
			e.Column = 1
			m = sm[2]
		}
		e.Err = errors.New(repl.Replace(m))
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

// Parse validates the content of rule file path: the YAML shape, names,
// durations, label names, templates, and every expression with
// query.Check. Every problem found is returned, joined; each is an *Error.
func Parse(path string, content []byte) (*File, error) {
	var sf strictFile
	dec := yaml.NewDecoder(bytes.NewReader(content))
	dec.KnownFields(true)
	if err := dec.Decode(&sf); err != nil && !errors.Is(err, io.EOF) {
		if !yamlLine.MatchString(err.Error()) {
			if errs := durationErrors(path, content); errs != nil {
				return nil, errs
			}
		}
		return nil, yamlErrors(path, err)
	}
	var nf nodeFile
	if err := yaml.Unmarshal(content, &nf); err != nil {
		return nil, yamlErrors(path, err)
	}
	f := &File{Path: path}
	lines := strings.Split(string(content), "\n")
	var errs []error
	seen := map[string]bool{}
	for gi, sg := range sf.Groups {
		var ng nodeGroup
		gnode := &nf.Groups[gi]
		if err := gnode.Decode(&ng); err != nil {
			return nil, yamlErrors(path, err)
		}
		gerr := func(n *yaml.Node, format string, args ...any) {
			if n == nil || n.Line == 0 {
				n = gnode
			}
			errs = append(errs, &Error{File: path, Line: n.Line, Column: n.Column, Group: sg.Name, Err: fmt.Errorf(format, args...)})
		}
		if sg.Name == "" {
			gerr(&ng.Name, "group name must not be empty")
		} else if seen[sg.Name] {
			gerr(&ng.Name, "group name %q is repeated in the same file", sg.Name)
		}
		seen[sg.Name] = true
		if sg.Interval < 0 {
			gerr(&ng.Interval, "interval must be positive")
		}
		checkLabels(sg.Labels, func(format string, args ...any) { gerr(&ng.Labels, format, args...) })
		g := GroupSpec{Name: sg.Name, File: path, Interval: time.Duration(sg.Interval), Limit: sg.Limit, Labels: sg.Labels}
		if sg.QueryOffset != nil {
			g.QueryOffset = time.Duration(*sg.QueryOffset)
		}
		if sg.Limit < 0 {
			gerr(gnode, "limit must not be negative")
		}
		for ri, sr := range sg.Rules {
			var nr nodeRule
			rnode := &ng.Rules[ri]
			if err := rnode.Decode(&nr); err != nil {
				return nil, yamlErrors(path, err)
			}
			name := sr.Alert
			if name == "" {
				name = sr.Record
			}
			rerr := func(n *yaml.Node, line, col int, err error) {
				if line == 0 {
					if n == nil || n.Line == 0 {
						n = rnode
					}
					line, col = n.Line, n.Column
				}
				errs = append(errs, &Error{File: path, Line: line, Column: col, Group: sg.Name, Rule: ri + 1, RuleName: name, Err: err})
			}
			validateRule(sr, &nr, lines, rerr)
			g.Rules = append(g.Rules, RuleSpec{
				Alert: sr.Alert, Record: sr.Record, Expr: sr.Expr,
				For: time.Duration(sr.For), KeepFiringFor: time.Duration(sr.KeepFiringFor),
				Labels: sr.Labels, Annotations: sr.Annotations, Line: rnode.Line,
			})
		}
		f.Groups = append(f.Groups, g)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return f, nil
}

var metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

func checkLabels(ls map[string]string, report func(format string, args ...any)) {
	for _, k := range sortedKeys(ls) {
		if !labelNameRE.MatchString(k) || k == model.MetricNameLabel {
			report("invalid label name %q", k)
		}
		if !model.LabelValue(ls[k]).IsValid() {
			report("invalid label value %q of label %q", ls[k], k)
		}
	}
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func validateRule(r strictRule, n *nodeRule, lines []string, report func(n *yaml.Node, line, col int, err error)) {
	at := func(node *yaml.Node, format string, args ...any) { report(node, 0, 0, fmt.Errorf(format, args...)) }
	switch {
	case r.Record != "" && r.Alert != "":
		at(&n.Record, "only one of 'record' and 'alert' may be set")
	case r.Record == "" && r.Alert == "":
		at(nil, "one of 'record' or 'alert' must be set")
	}
	if r.Expr == "" {
		at(nil, "field 'expr' must be set in the rule")
	} else if _, typ, err := query.Check(r.Expr); err != nil {
		line, col := exprPosition(&n.Expr, lines, err)
		report(nil, line, col, fmt.Errorf("expr: %w", err))
	} else if typ != query.TypeVector && typ != query.TypeScalar {
		at(&n.Expr, "expr: the expression must be an instant vector or a scalar, not a %s", typ)
	}
	if r.Record != "" {
		if len(r.Annotations) > 0 {
			at(&n.Annotations, "invalid field 'annotations' in a recording rule")
		}
		if r.For != 0 {
			at(&n.For, "invalid field 'for' in a recording rule")
		}
		if r.KeepFiringFor != 0 {
			at(&n.KeepFiringFor, "invalid field 'keep_firing_for' in a recording rule")
		}
		if strings.ContainsAny(r.Record, "{}<>") {
			at(&n.Record, "braces in the recording rule name %q: should they be in expr?", r.Record)
		} else if !metricNameRE.MatchString(r.Record) {
			at(&n.Record, "invalid recording rule name %q: must match [a-zA-Z_:][a-zA-Z0-9_:]*", r.Record)
		}
	}
	if r.For < 0 || r.KeepFiringFor < 0 {
		at(nil, "'for' and 'keep_firing_for' must not be negative")
	}
	checkLabels(r.Labels, func(format string, args ...any) { at(&n.Labels, format, args...) })
	for _, k := range sortedKeys(r.Annotations) {
		if !labelNameRE.MatchString(k) {
			at(&n.Annotations, "invalid annotation name %q", k)
		}
	}
	if r.Alert != "" {
		for _, k := range sortedKeys(r.Labels) {
			if err := parseTemplate(r.Alert, r.Labels[k]); err != nil {
				at(mapValueNode(&n.Labels, k), "label %q: %v", k, err)
			}
		}
		for _, k := range sortedKeys(r.Annotations) {
			if err := parseTemplate(r.Alert, r.Annotations[k]); err != nil {
				at(mapValueNode(&n.Annotations, k), "annotation %q: %v", k, err)
			}
		}
	}
}

// mapValueNode returns the value node of key k in mapping m (m if absent).
func mapValueNode(m *yaml.Node, k string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == k {
			return m.Content[i+1]
		}
	}
	return m
}

// exprPosition maps a query error's position to the file: exact for a
// plain or quoted one-line expr, the line for block scalars (| and >).
func exprPosition(n *yaml.Node, lines []string, err error) (int, int) {
	var qe *query.Error
	if !errors.As(err, &qe) || qe.Pos == nil || n.Line == 0 {
		return n.Line, n.Column
	}
	input := n.Value
	start := max(0, min(qe.Pos.Start, len(input)))
	line := strings.Count(input[:start], "\n")
	col := start - (strings.LastIndexByte(input[:start], '\n') + 1)
	switch n.Style {
	case yaml.LiteralStyle:
		// The block's lines start on the next line, at its indentation.
		l := n.Line + 1 + line
		if l-1 < len(lines) && strings.TrimSpace(lines[l-1]) != "" {
			text := lines[l-1]
			indent := len(text) - len(strings.TrimLeft(text, " "))
			// The first content line's indentation is the block's.
			if first := lines[n.Line]; len(first) > 0 {
				indent = len(first) - len(strings.TrimLeft(first, " "))
			}
			return l, indent + 1 + col
		}
		return n.Line, n.Column
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		if line == 0 {
			return n.Line, n.Column + 1 + col
		}
	case 0:
		if line == 0 {
			return n.Line, n.Column + col
		}
	}
	return n.Line, n.Column
}

// durationKeys are the fields holding durations.
var durationKeys = map[string]bool{"interval": true, "query_offset": true, "for": true, "keep_firing_for": true}

// durationErrors finds the durations that do not parse, with their
// positions (yaml reports a custom unmarshaler's error without one).
func durationErrors(path string, content []byte) error {
	var root yaml.Node
	if yaml.Unmarshal(content, &root) != nil {
		return nil
	}
	var errs []error
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if durationKeys[k.Value] && v.Kind == yaml.ScalarNode {
					if _, err := model.ParseDuration(v.Value); err != nil {
						errs = append(errs, &Error{File: path, Line: v.Line, Column: v.Column, Err: fmt.Errorf("%s: %w", k.Value, err)})
					}
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&root)
	return errors.Join(errs...)
}

// templateDefs are the variables Prometheus defines for alert templates.
var templateDefs = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"

func parseTemplate(alert, text string) error {
	data := template.AlertTemplateData(map[string]string{}, map[string]string{}, "", promql.Sample{})
	te := template.NewTemplateExpander(context.Background(), templateDefs+text, "__alert_"+alert, data, model.Time(0), nil, nil, nil)
	return te.ParseTest()
}
