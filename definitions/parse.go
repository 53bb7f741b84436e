package definitions

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// SchemaVersion is the only value the file's optional top-level "schema"
// key may have.
const SchemaVersion = 1

// Problem is one validation error, located in the file.
type Problem struct {
	File string `json:"file"`
	// Line and Column are 1-based; 0 when unknown.
	Line   int `json:"line"`
	Column int `json:"column"`
	// Path is the dotted path of the offending key, e.g.
	// models.churn.positive_class ("" for the whole file).
	Path string `json:"path"`
	// Message is the full reason, starting with the path.
	Message string `json:"message"`
}

func (p Problem) String() string {
	switch {
	case p.Line > 0 && p.Column > 0:
		return fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Column, p.Message)
	case p.Line > 0:
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Message)
	default:
		return fmt.Sprintf("%s: %s", p.File, p.Message)
	}
}

// Error is every problem found in a definitions file, in file order.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// Load reads and parses the definitions file at path. Errors name path.
func Load(path string) (*Definitions, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse parses and validates a definitions file; name is used in error
// messages and as the version's Source. An invalid file returns an *Error
// listing every problem found.
func Parse(name string, data []byte) (*Definitions, error) {
	p := &yparser{file: name, lines: strings.Split(string(data), "\n")}
	d := Empty()
	sum := sha256.Sum256(data)
	d.version = Version{Hash: hex.EncodeToString(sum[:]), Source: name}

	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	err := dec.Decode(&doc)
	switch {
	case errors.Is(err, io.EOF):
		// An empty file is valid: no models, slices or metrics.
	case err != nil:
		p.yamlError(err, data)
	default:
		var extra yaml.Node
		if err := dec.Decode(&extra); err == nil {
			p.add(&extra, "", "the file holds more than one YAML document")
		} else if !errors.Is(err, io.EOF) {
			p.yamlError(err, data)
		}
		if len(doc.Content) == 1 {
			p.top(d, doc.Content[0])
		}
	}
	if len(p.problems) > 0 {
		sort.SliceStable(p.problems, func(i, j int) bool {
			a, b := p.problems[i], p.problems[j]
			if a.Line != b.Line {
				return a.Line < b.Line
			}
			return a.Column < b.Column
		})
		return nil, &Error{Problems: p.problems}
	}
	return d, nil
}

type yparser struct {
	file     string
	lines    []string
	problems []Problem
	visits   int // mapping entries walked, bounded against alias bombs
}

// maxVisits bounds the mapping entries walked, counting every expansion of
// an alias or merge key, so that nested aliases cannot make parsing
// exponential.
const maxVisits = 1 << 20

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError records a YAML syntax error. yaml.v3 reports the line where
// the enclosing construct starts (or none), so the line is refined to the
// first line at which the file's prefix fails with the same message.
func (p *yparser) yamlError(err error, data []byte) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	if l := yamlProblemLine(data, msg, max(line, 1)); l > 0 {
		line = l
	}
	p.problems = append(p.problems, Problem{File: p.file, Line: line, Message: "invalid YAML: " + msg})
}

// yamlProblemLine returns the first line k in [from, from+100] such that
// the first k lines of data fail to parse with message msg, or 0.
func yamlProblemLine(data []byte, msg string, from int) int {
	lines := bytes.SplitAfter(data, []byte("\n"))
	for k := from; k <= len(lines) && k <= from+100; k++ {
		dec := yaml.NewDecoder(bytes.NewReader(bytes.Join(lines[:k], nil)))
		for {
			var n yaml.Node
			err := dec.Decode(&n)
			if err == nil {
				continue
			}
			if !errors.Is(err, io.EOF) {
				e := err.Error()
				if m := yamlLineRE.FindStringSubmatch(e); m != nil {
					e = m[2]
				}
				if strings.TrimPrefix(e, "yaml: ") == msg {
					return k
				}
			}
			break
		}
	}
	return 0
}

// add records a problem at node n; msg is the whole message.
func (p *yparser) add(n *yaml.Node, path, msg string) {
	pr := Problem{File: p.file, Path: path, Message: msg}
	if n != nil {
		pr.Line, pr.Column = n.Line, n.Column
	}
	p.problems = append(p.problems, pr)
}

func (p *yparser) addAt(line, col int, path, msg string) {
	p.problems = append(p.problems, Problem{File: p.file, Line: line, Column: col, Path: path, Message: msg})
}

// ---- generic node helpers ----

func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "null"
		case "!!int", "!!float":
			return "the number " + n.Value
		case "!!bool":
			return "the boolean " + n.Value
		}
		return fmt.Sprintf("the string %q", n.Value)
	}
	return "a YAML node"
}

var simpleKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

func join(path, key string) string {
	var k string
	if simpleKeyRE.MatchString(key) {
		k = key
	} else {
		k = strconv.Quote(key)
	}
	if path == "" {
		return k
	}
	if k[0] == '"' {
		return path + "[" + k + "]"
	}
	return path + "." + k
}

func pathOr(path, whole string) string {
	if path == "" {
		return whole
	}
	return path
}

type pair struct {
	key, val *yaml.Node
	name     string
}

// pairs returns the entries of mapping n, with YAML merge keys (<<)
// expanded (explicit keys win), reporting duplicates and non-scalar keys.
// It reports and returns ok=false when n is not a mapping.
func (p *yparser) pairs(n *yaml.Node, path, want string) ([]pair, bool) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		p.add(n, path, fmt.Sprintf("%s must be %s, found %s", pathOr(path, "the file"), want, kindName(n)))
		return nil, false
	}
	if p.visits += len(n.Content) / 2; p.visits > maxVisits {
		if p.visits-len(n.Content)/2 <= maxVisits {
			p.add(n, path, fmt.Sprintf("%s: the file expands to more than %d entries through aliases and merges", pathOr(path, "the file"), maxVisits))
		}
		return nil, false
	}
	var out []pair
	seen := map[string]*yaml.Node{}
	var merged []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			merged = append(merged, p.mergeSources(v, path)...)
			continue
		}
		k = resolve(k)
		if k.Kind != yaml.ScalarNode || k.Tag == "!!null" {
			p.add(k, path, fmt.Sprintf("%s has a key that is %s; keys must be names", pathOr(path, "the file"), kindName(k)))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			p.add(k, join(path, k.Value), fmt.Sprintf("%s is given twice (first at line %d)", join(path, k.Value), first.Line))
			continue
		}
		seen[k.Value] = k
		out = append(out, pair{key: k, val: v, name: k.Value})
	}
	for _, m := range merged {
		if _, dup := seen[m.name]; !dup {
			seen[m.name] = m.key
			out = append(out, m)
		}
	}
	return out, true
}

// mergeSources returns the entries a << merge key brings in; earlier
// sources win over later ones.
func (p *yparser) mergeSources(v *yaml.Node, path string) []pair {
	v = resolve(v)
	var srcs []*yaml.Node
	switch v.Kind {
	case yaml.MappingNode:
		srcs = []*yaml.Node{v}
	case yaml.SequenceNode:
		srcs = v.Content
	default:
		p.add(v, path, fmt.Sprintf("%s: a << merge needs a mapping or a list of mappings, found %s", pathOr(path, "the file"), kindName(v)))
		return nil
	}
	var out []pair
	seen := map[string]bool{}
	for _, s := range srcs {
		s = resolve(s)
		if s.Kind != yaml.MappingNode {
			p.add(s, path, fmt.Sprintf("%s: a << merge needs a mapping or a list of mappings, found %s", pathOr(path, "the file"), kindName(s)))
			continue
		}
		ps, _ := p.pairs(s, path, "a mapping")
		for _, e := range ps {
			if !seen[e.name] {
				seen[e.name] = true
				out = append(out, e)
			}
		}
	}
	return out
}

// fields returns the entries of mapping n by key, reporting unknown keys.
// Null values are dropped (a key with an empty value is as if absent).
func (p *yparser) fields(n *yaml.Node, path, want string, known ...string) (map[string]pair, bool) {
	ps, ok := p.pairs(n, path, want)
	if !ok {
		return nil, false
	}
	out := map[string]pair{}
	for _, e := range ps {
		if !slices.Contains(known, e.name) {
			msg := fmt.Sprintf("%s has unknown key %q", pathOr(path, "the file"), e.name)
			if s := suggest(e.name, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else {
				msg += " (known keys: " + strings.Join(known, ", ") + ")"
			}
			p.add(e.key, join(path, e.name), msg)
			continue
		}
		if isNull(e.val) {
			continue
		}
		out[e.name] = e
	}
	return out, true
}

// suggest returns the known key closest to key, if close enough to be a typo.
func suggest(key string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(strings.ToLower(key), k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// scalar returns the text of scalar node n, reporting other kinds.
func (p *yparser) scalar(n *yaml.Node, path, want string) (string, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode {
		p.add(n, path, fmt.Sprintf("%s must be %s, found %s", path, want, kindName(n)))
		return "", false
	}
	return n.Value, true
}

// text returns a string-valued field; any scalar is taken as its text.
func (p *yparser) text(f map[string]pair, key, path string) string {
	e, ok := f[key]
	if !ok {
		return ""
	}
	s, _ := p.scalar(e.val, join(path, key), "text")
	return s
}

// value returns the Value of scalar n, by its YAML type.
func (p *yparser) value(n *yaml.Node, path, want string) (Value, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.add(n, path, fmt.Sprintf("%s must be %s, found %s", path, want, kindName(n)))
		return Value{}, false
	}
	switch n.Tag {
	case "!!int", "!!float":
		var f float64
		if err := n.Decode(&f); err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			p.add(n, path, fmt.Sprintf("%s %s is not a finite number", path, n.Value))
			return Value{}, false
		}
		return NumberValue(f), true
	case "!!bool":
		var b bool
		_ = n.Decode(&b)
		return BoolValue(b), true
	}
	return StringValue(n.Value), true
}

// ---- names ----

var (
	sliceNameRE  = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.:-]*$`)
	metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
)

// checkName reports names that are empty, too long or hold control
// characters (and, for field names, backticks).
func (p *yparser) checkName(k *yaml.Node, path, what, name string, field bool) bool {
	switch {
	case name == "":
		p.add(k, path, fmt.Sprintf("%s: %s name is empty", path, what))
		return false
	case len(name) > 200:
		p.add(k, path, fmt.Sprintf("%s: %s name is longer than 200 bytes", path, what))
		return false
	case !utf8.ValidString(name):
		p.add(k, path, fmt.Sprintf("%s: %s name is not valid UTF-8", path, what))
		return false
	case strings.ContainsFunc(name, unicode.IsControl):
		p.add(k, path, fmt.Sprintf("%s: %s name holds a control character", path, what))
		return false
	case field && strings.Contains(name, "`"):
		p.add(k, path, fmt.Sprintf("%s: %s name holds a backtick", path, what))
		return false
	}
	return true
}

// ---- the file ----

func (p *yparser) top(d *Definitions, root *yaml.Node) {
	if isNull(root) {
		return
	}
	ps, ok := p.pairs(root, "", "a mapping with keys schema, models, slices, metrics")
	if !ok {
		return
	}
	known := []string{"schema", "models", "slices", "metrics"}
	var modelsN, slicesN, metricsN *yaml.Node
	for _, e := range ps {
		if strings.HasPrefix(e.name, "x-") {
			continue // extension keys, e.g. a home for YAML anchors
		}
		if !slices.Contains(known, e.name) {
			msg := fmt.Sprintf("the file has unknown top-level key %q", e.name)
			if s := suggest(e.name, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else {
				msg += " (known keys: schema, models, slices, metrics; keys starting with x- are ignored)"
			}
			p.add(e.key, e.name, msg)
			continue
		}
		if isNull(e.val) {
			continue
		}
		switch e.name {
		case "schema":
			v, ok := p.value(e.val, "schema", "the number 1")
			if ok && (v.kind != KindNumber || v.num != SchemaVersion) {
				p.add(resolve(e.val), "schema", fmt.Sprintf("schema %s is not supported (this evalstore reads schema %d)", resolve(e.val).Value, SchemaVersion))
			}
		case "models":
			modelsN = e.val
		case "slices":
			slicesN = e.val
		case "metrics":
			metricsN = e.val
		}
	}
	if modelsN != nil {
		p.models(d, modelsN)
	}
	if slicesN != nil {
		p.slices(d, slicesN)
	}
	if metricsN != nil {
		p.metrics(d, metricsN)
	}
}

var tasks = []string{string(TaskBinary), string(TaskMulticlass), string(TaskRegression)}

func (p *yparser) models(d *Definitions, n *yaml.Node) {
	ps, ok := p.pairs(n, "models", "a mapping of model name to model")
	if !ok {
		return
	}
	for _, e := range ps {
		path := join("models", e.name)
		if !p.checkName(e.key, path, "model", e.name, false) {
			continue
		}
		if m := p.model(e, path); m != nil {
			d.models[m.Name] = m
			d.modelNames = append(d.modelNames, m.Name)
		}
	}
	sort.Strings(d.modelNames)
}

func (p *yparser) model(e pair, path string) *Model {
	f, ok := p.fields(e.val, path, "a mapping with keys task, classes, positive_class, features...",
		"task", "description", "classes", "positive_class", "features", "reference", "versions")
	if !ok {
		return nil
	}
	m := InferModel(e.name)
	m.Declared = true
	m.Features = map[string]*Feature{}
	m.Versions = map[string]*ModelVersion{}

	taskE, hasTask := f["task"]
	if !hasTask {
		p.add(e.key, join(path, "task"), fmt.Sprintf("%s is required (one of %s)", join(path, "task"), strings.Join(tasks, ", ")))
	} else if s, ok := p.scalar(taskE.val, join(path, "task"), "one of "+strings.Join(tasks, ", ")); ok {
		if slices.Contains(tasks, s) {
			m.Task = Task(s)
		} else {
			msg := fmt.Sprintf("%s %q is not one of %s", join(path, "task"), s, strings.Join(tasks, ", "))
			if sg := suggest(s, tasks); sg != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", sg)
			}
			p.add(resolve(taskE.val), join(path, "task"), msg)
		}
	}
	m.Description = p.text(f, "description", path)

	// classes
	classesE, hasClasses := f["classes"]
	classesOK := true
	if hasClasses {
		cp := join(path, "classes")
		cn := resolve(classesE.val)
		if cn.Kind != yaml.SequenceNode {
			p.add(cn, cp, fmt.Sprintf("%s must be a list of class labels, found %s", cp, kindName(cn)))
			classesOK = false
		} else {
			seen := map[string]int{}
			for i, c := range cn.Content {
				ip := fmt.Sprintf("%s[%d]", cp, i)
				v, ok := p.value(c, ip, "a class label (string, number or boolean)")
				if !ok {
					classesOK = false
					continue
				}
				s := v.String()
				if s == "" {
					p.add(resolve(c), ip, fmt.Sprintf("%s is an empty class label", ip))
					classesOK = false
					continue
				}
				if j, dup := seen[s]; dup {
					p.add(resolve(c), ip, fmt.Sprintf("%s %q repeats %s[%d]", ip, s, cp, j))
					classesOK = false
					continue
				}
				seen[s] = i
				m.Classes = append(m.Classes, s)
			}
		}
	}
	switch m.Task {
	case TaskBinary:
		if !hasClasses {
			p.add(e.key, join(path, "classes"), fmt.Sprintf("%s is required for a binary model (the two class labels, e.g. [0, 1])", join(path, "classes")))
			classesOK = false
		} else if classesOK && len(m.Classes) != 2 {
			p.add(resolve(classesE.val), join(path, "classes"), fmt.Sprintf("%s of a binary model must list exactly 2 classes, found %d", join(path, "classes"), len(m.Classes)))
			classesOK = false
		}
	case TaskMulticlass:
		if hasClasses && classesOK && len(m.Classes) < 2 {
			p.add(resolve(classesE.val), join(path, "classes"), fmt.Sprintf("%s of a multiclass model must list at least 2 classes, found %d", join(path, "classes"), len(m.Classes)))
		}
	case TaskRegression:
		if hasClasses {
			p.add(classesE.key, join(path, "classes"), fmt.Sprintf("%s is not allowed for a regression model", join(path, "classes")))
		}
	}

	// positive class
	pp := join(path, "positive_class")
	if pcE, ok := f["positive_class"]; ok {
		if m.Task != TaskBinary && m.Task != TaskUnknown {
			p.add(pcE.key, pp, fmt.Sprintf("%s is only allowed for a binary model, and this model is %s", pp, m.Task))
		} else if v, ok := p.value(pcE.val, pp, "a class label"); ok {
			m.PositiveClass = v.String()
			if m.Task == TaskBinary && classesOK && !slices.Contains(m.Classes, m.PositiveClass) {
				p.add(resolve(pcE.val), pp, fmt.Sprintf("%s %q is not one of classes %v", pp, m.PositiveClass, m.Classes))
			}
		}
	} else if m.Task == TaskBinary {
		p.add(e.key, pp, fmt.Sprintf("%s is required for a binary model (one of its classes)", pp))
	}

	if fe, ok := f["features"]; ok {
		p.features(m, fe.val, join(path, "features"))
	}
	if re, ok := f["reference"]; ok {
		p.reference(m, re, join(path, "reference"))
	}
	if ve, ok := f["versions"]; ok {
		p.versions(m, ve.val, join(path, "versions"))
	}
	// A model with problems is still declared, so that slices naming it
	// do not report it as undeclared; the file is refused anyway.
	return m
}

var featureTypes = []string{string(Numeric), string(Categorical)}

func (p *yparser) features(m *Model, n *yaml.Node, path string) {
	ps, ok := p.pairs(n, path, "a mapping of feature name to feature")
	if !ok {
		return
	}
	for _, e := range ps {
		fp := join(path, e.name)
		if !p.checkName(e.key, fp, "feature", e.name, true) {
			continue
		}
		ft := &Feature{Name: e.name, Importance: DefaultImportance}
		var typeN *yaml.Node
		if v := resolve(e.val); v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
			typeN = v // shorthand: name: numeric
		} else if isNull(e.val) {
			p.add(e.key, join(fp, "type"), fmt.Sprintf("%s is required (numeric or categorical)", join(fp, "type")))
			continue
		} else {
			f, ok := p.fields(e.val, fp, "a mapping with keys type, importance, description (or just the type)",
				"type", "importance", "description")
			if !ok {
				continue
			}
			if te, ok := f["type"]; ok {
				typeN = resolve(te.val)
			} else {
				p.add(e.key, join(fp, "type"), fmt.Sprintf("%s is required (numeric or categorical)", join(fp, "type")))
			}
			if ie, ok := f["importance"]; ok {
				ip := join(fp, "importance")
				if v, ok := p.value(ie.val, ip, "a number ≥ 0"); ok {
					switch {
					case v.kind != KindNumber:
						p.add(resolve(ie.val), ip, fmt.Sprintf("%s must be a number ≥ 0, found %s", ip, kindName(resolve(ie.val))))
					case v.num < 0:
						p.add(resolve(ie.val), ip, fmt.Sprintf("%s %s is negative; importance must be ≥ 0", ip, resolve(ie.val).Value))
					default:
						ft.Importance = v.num
					}
				}
			}
			ft.Description = p.text(f, "description", fp)
		}
		if typeN != nil {
			tp := join(fp, "type")
			if s, ok := p.scalar(typeN, tp, "numeric or categorical"); ok {
				if slices.Contains(featureTypes, s) {
					ft.Type = FeatureType(s)
				} else {
					msg := fmt.Sprintf("%s %q is not numeric or categorical", tp, s)
					if sg := suggest(s, featureTypes); sg != "" {
						msg += fmt.Sprintf(" (did you mean %q?)", sg)
					}
					p.add(typeN, tp, msg)
				}
			}
		}
		m.Features[e.name] = ft
		m.FeatureNames = append(m.FeatureNames, e.name)
	}
	sort.Strings(m.FeatureNames)
}

func (p *yparser) reference(m *Model, e pair, path string) {
	f, ok := p.fields(e.val, path, "a mapping with keys dataset, run, version", "dataset", "run", "version")
	if !ok {
		return
	}
	ref := Reference{Run: "latest"}
	if _, ok := f["dataset"]; !ok {
		p.add(e.key, join(path, "dataset"), fmt.Sprintf("%s is required (the offline dataset, e.g. train)", join(path, "dataset")))
	}
	ref.Dataset = p.text(f, "dataset", path)
	if s := p.text(f, "run", path); s != "" {
		ref.Run = s
	}
	ref.Version = p.text(f, "version", path)
	m.Reference = ref
}

func (p *yparser) versions(m *Model, n *yaml.Node, path string) {
	ps, ok := p.pairs(n, path, "a mapping of version name to version info")
	if !ok {
		return
	}
	for _, e := range ps {
		vp := join(path, e.name)
		if !p.checkName(e.key, vp, "version", e.name, false) {
			continue
		}
		mv := &ModelVersion{Name: e.name}
		m.Versions[e.name] = mv
		if isNull(e.val) {
			continue
		}
		f, ok := p.fields(e.val, vp, "a mapping with keys description, deployed_at", "description", "deployed_at")
		if !ok {
			continue
		}
		mv.Description = p.text(f, "description", vp)
		if de, ok := f["deployed_at"]; ok {
			dp := join(vp, "deployed_at")
			if s, ok := p.scalar(de.val, dp, "a time (RFC 3339 or YYYY-MM-DD)"); ok {
				t, err := time.Parse(time.RFC3339Nano, s)
				if err != nil {
					t, err = time.Parse(time.DateOnly, s)
				}
				if err != nil {
					p.add(resolve(de.val), dp, fmt.Sprintf("%s %q is not a time (RFC 3339, e.g. 2026-01-31T12:00:00Z, or YYYY-MM-DD)", dp, s))
				} else {
					mv.DeployedAt = t.UTC()
				}
			}
		}
	}
}

func (p *yparser) slices(d *Definitions, n *yaml.Node) {
	ps, ok := p.pairs(n, "slices", "a mapping of slice name to slice")
	if !ok {
		return
	}
	for _, e := range ps {
		path := join("slices", e.name)
		if e.name == AllSlice {
			p.add(e.key, path, `slices.all is implicit (every record) and cannot be redefined`)
			continue
		}
		if !sliceNameRE.MatchString(e.name) {
			p.add(e.key, path, fmt.Sprintf("%s: slice name %q must start with a letter, digit or _ and hold only letters, digits, _ . : -", path, e.name))
			continue
		}
		var whereN *yaml.Node
		s := &Slice{Name: e.name}
		if v := resolve(e.val); v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
			whereN = v // shorthand: name: "predicate"
		} else {
			f, ok := p.fields(e.val, path, "a mapping with keys where, models, description (or just the predicate)",
				"where", "models", "description")
			if !ok {
				continue
			}
			s.Description = p.text(f, "description", path)
			if we, ok := f["where"]; ok {
				whereN = resolve(we.val)
			} else {
				p.add(e.key, join(path, "where"), fmt.Sprintf("%s is required (the predicate)", join(path, "where")))
			}
			if me, ok := f["models"]; ok {
				s.Models = p.sliceModels(d, me.val, join(path, "models"))
			}
		}
		if whereN == nil {
			continue
		}
		wp := join(path, "where")
		src, ok := p.scalar(whereN, wp, "a predicate (text)")
		if !ok {
			continue
		}
		pred, err := ParsePredicate(src)
		if err != nil {
			se := err.(*SyntaxError)
			line, col, exact := p.posIn(whereN, src, se.Offset)
			msg := fmt.Sprintf("%s: %s", wp, se.Msg)
			if !exact {
				msg += fmt.Sprintf(" (at column %d of the predicate)", se.Offset+1)
			}
			p.addAt(line, col, wp, msg)
			continue
		}
		s.Where = src
		s.pred = pred
		if !p.checkTypes(d, s, whereN, src, wp) {
			continue
		}
		d.slices[s.Name] = s
		d.sliceList = append(d.sliceList, s)
	}
	sort.Slice(d.sliceList, func(i, j int) bool { return d.sliceList[i].Name < d.sliceList[j].Name })
	for _, s := range d.sliceList {
		if len(s.Models) == 0 {
			d.unrestricted = append(d.unrestricted, s)
		}
	}
	for _, name := range d.modelNames {
		var list []*Slice
		for _, s := range d.sliceList {
			if s.AppliesTo(name) {
				list = append(list, s)
			}
		}
		d.byModel[name] = list
	}
}

func (p *yparser) sliceModels(d *Definitions, n *yaml.Node, path string) []string {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		p.add(n, path, fmt.Sprintf("%s must be a list of model names, found %s", path, kindName(n)))
		return nil
	}
	var out []string
	for i, c := range n.Content {
		ip := fmt.Sprintf("%s[%d]", path, i)
		name, ok := p.scalar(c, ip, "a model name")
		if !ok {
			continue
		}
		switch {
		case slices.Contains(out, name):
			p.add(resolve(c), ip, fmt.Sprintf("%s: model %q is listed twice", ip, name))
		case d.models[name] == nil:
			msg := fmt.Sprintf("%s: model %q is not declared in models", ip, name)
			if s := suggest(name, d.modelNames); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			p.add(resolve(c), ip, msg)
		default:
			out = append(out, name)
		}
	}
	if len(out) == 0 && len(n.Content) == 0 {
		p.add(n, path, fmt.Sprintf("%s is empty; omit it to keep the slice for every model", path))
	}
	sort.Strings(out)
	return out
}

// checkTypes refuses comparisons that contradict a declared feature type:
// a numeric feature compared with a string or boolean, a categorical one
// with a number or boolean. It checks the models the slice is restricted
// to, or every declared model.
func (p *yparser) checkTypes(d *Definitions, s *Slice, whereN *yaml.Node, src, path string) bool {
	models := s.Models
	if len(models) == 0 {
		models = d.modelNames
	}
	ok := true
	for _, u := range fieldUses(s.pred.root) {
		if u.field.Scope != FieldBare && u.field.Scope != FieldFeature {
			continue
		}
		for _, mn := range models {
			ft, found := d.models[mn].Features[u.field.Name]
			if !found || ft.Type == "" {
				continue
			}
			want := KindNumber
			if ft.Type == Categorical {
				want = KindString
			}
			if u.lit.kind == want {
				continue
			}
			line, col, exact := p.posIn(whereN, src, u.pos)
			var lit strings.Builder
			writeLit(&lit, u.lit)
			msg := fmt.Sprintf("%s: feature %q is %s in model %q but is compared (%s) with the %s %s",
				path, u.field.Name, ft.Type, mn, u.op, u.lit.kind, lit.String())
			if ft.Type == Categorical && u.lit.kind != KindString {
				msg += fmt.Sprintf("; quote it: \"%s\"", u.lit.String())
			}
			if len(s.Models) == 0 {
				msg += " (restrict the slice with models: if it is meant for other models)"
			}
			if !exact {
				msg += fmt.Sprintf(" (at column %d of the predicate)", u.pos+1)
			}
			p.addAt(line, col, path, msg)
			ok = false
			break
		}
	}
	return ok
}

// posIn maps byte offset off of scalar n's value to a file line and
// column. exact is false when only the scalar's start is known (folded and
// multi-line flow scalars).
func (p *yparser) posIn(n *yaml.Node, val string, off int) (line, col int, exact bool) {
	if off > len(val) {
		off = len(val)
	}
	if n.Style&yaml.LiteralStyle != 0 {
		trimmed := strings.TrimRight(val, "\n")
		if off > len(trimmed) {
			off = len(trimmed)
		}
		idx := strings.Count(val[:off], "\n")
		start := strings.LastIndexByte(val[:off], '\n') + 1
		end := strings.IndexByte(val[start:], '\n')
		if end < 0 {
			end = len(val) - start
		}
		vline := val[start : start+end]
		// Blank lines inside the block are "\n" in the value too, so the
		// value's line index is the source line's offset after the "|".
		srcLine := n.Line + 1 + idx
		if srcLine-1 >= len(p.lines) {
			return n.Line, n.Column, false
		}
		s := p.lines[srcLine-1]
		indent := len(s) - len(strings.TrimLeft(s, " ")) - (len(vline) - len(strings.TrimLeft(vline, " ")))
		if indent < 0 || !strings.HasSuffix(s, vline) {
			return n.Line, n.Column, false
		}
		return srcLine, indent + utf8.RuneCountInString(val[start:off]) + 1, true
	}
	if strings.ContainsRune(val, '\n') || n.Style&yaml.FoldedStyle != 0 || n.Line-1 >= len(p.lines) {
		return n.Line, n.Column, false
	}
	raw := p.lines[n.Line-1]
	// Column is 1-based in runes; find its byte index.
	bi := 0
	for c := 1; c < n.Column && bi < len(raw); c++ {
		_, sz := utf8.DecodeRuneInString(raw[bi:])
		bi += sz
	}
	switch {
	case n.Style&yaml.SingleQuotedStyle != 0:
		j, runes := bi+1, 1
		for k := 0; k < off && j < len(raw); {
			if raw[j] == '\'' {
				j += 2
				runes += 2
				k++
				continue
			}
			_, sz := utf8.DecodeRuneInString(raw[j:])
			j += sz
			k += sz
			runes++
		}
		return n.Line, n.Column + runes, true
	case n.Style&yaml.DoubleQuotedStyle != 0:
		j, runes := bi+1, 1
		for k := 0; k < off && j < len(raw); {
			if raw[j] == '\\' && j+1 < len(raw) {
				l := 2
				switch raw[j+1] {
				case 'x':
					l = 4
				case 'u':
					l = 6
				case 'U':
					l = 10
				}
				dec, _ := strconv.Unquote(`"` + raw[j:min(j+l, len(raw))] + `"`)
				if dec == "" {
					dec = " "
				}
				j += l
				runes += l
				k += len(dec)
				continue
			}
			_, sz := utf8.DecodeRuneInString(raw[j:])
			j += sz
			k += sz
			runes++
		}
		return n.Line, n.Column + runes, true
	default:
		return n.Line, n.Column + utf8.RuneCountInString(val[:off]), true
	}
}

func (p *yparser) metrics(d *Definitions, n *yaml.Node) {
	ps, ok := p.pairs(n, "metrics", "a mapping of metric name to metric")
	if !ok {
		return
	}
	for _, e := range ps {
		path := join("metrics", e.name)
		if !metricNameRE.MatchString(e.name) {
			p.add(e.key, path, fmt.Sprintf("%s: metric name %q must match [a-zA-Z_:][a-zA-Z0-9_:]* (a query-language name)", path, e.name))
			continue
		}
		m := &Metric{Name: e.name}
		var exprN *yaml.Node
		if v := resolve(e.val); v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
			exprN = v // shorthand: name: "expr"
		} else {
			f, ok := p.fields(e.val, path, "a mapping with keys expr, description, unit (or just the expression)",
				"expr", "description", "unit")
			if !ok {
				continue
			}
			m.Description = p.text(f, "description", path)
			m.Unit = p.text(f, "unit", path)
			if ee, ok := f["expr"]; ok {
				exprN = ee.val
			} else {
				p.add(e.key, join(path, "expr"), fmt.Sprintf("%s is required (a query-language expression)", join(path, "expr")))
				continue
			}
		}
		ep := join(path, "expr")
		s, ok := p.scalar(exprN, ep, "a query-language expression (text)")
		if !ok {
			continue
		}
		if strings.TrimSpace(s) == "" {
			p.add(resolve(exprN), ep, fmt.Sprintf("%s is empty", ep))
			continue
		}
		m.Expr = strings.TrimSpace(s)
		d.metrics[m.Name] = m
		d.metricList = append(d.metricList, m)
	}
	sort.Slice(d.metricList, func(i, j int) bool { return d.metricList[i].Name < d.metricList[j].Name })
}
