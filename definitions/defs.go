package definitions

import (
	"slices"
	"time"
)

// Task is what a model predicts.
type Task string

// The tasks. TaskUnknown is the task of a model that is not declared: the
// ingest layer infers it per record (see InferTask).
const (
	TaskUnknown    Task = ""
	TaskBinary     Task = "binary"
	TaskMulticlass Task = "multiclass"
	TaskRegression Task = "regression"
)

// FeatureType is how a feature's distribution is kept.
type FeatureType string

// The feature types.
const (
	// Numeric features are kept as log histograms; their values are numbers.
	Numeric FeatureType = "numeric"
	// Categorical features are kept as category frequencies; their values
	// are strings (ingest turns a JSON number or boolean into its text).
	Categorical FeatureType = "categorical"
)

// DefaultImportance is the importance of a feature that is not declared, or
// declared without an importance.
const DefaultImportance = 1.0

// DefaultReference is the drift reference of a model that does not declare
// one: the latest offline run on dataset "train".
var DefaultReference = Reference{Dataset: "train", Run: "latest"}

// AllSlice is the implicit slice every record belongs to.
const AllSlice = "all"

// Version identifies one applied definitions file.
type Version struct {
	// Hash is the hex SHA-256 of the file's bytes.
	Hash string `json:"hash"`
	// LoadedAt is when the file was first applied (zero before a Store
	// applies it).
	LoadedAt time.Time `json:"loaded_at"`
	// Source is the path (or name) the file was read from.
	Source string `json:"source"`
}

// Definitions is one parsed, validated definitions file. It is immutable
// and safe for concurrent use.
type Definitions struct {
	version Version
	schema  int

	models     map[string]*Model
	modelNames []string

	slices       map[string]*Slice
	sliceList    []*Slice            // sorted by name
	unrestricted []*Slice            // sorted; slices without a models list
	byModel      map[string][]*Slice // declared model -> applicable slices, sorted

	metrics    map[string]*Metric
	metricList []*Metric // sorted by name
}

// Empty returns definitions with no models, slices or metrics: what is in
// force before any file is applied.
func Empty() *Definitions {
	return &Definitions{
		schema:  1,
		models:  map[string]*Model{},
		slices:  map[string]*Slice{},
		byModel: map[string][]*Slice{},
		metrics: map[string]*Metric{},
	}
}

// Version returns the version of the file d was parsed from.
func (d *Definitions) Version() Version { return d.version }

// Model returns the declared model name.
func (d *Definitions) Model(name string) (*Model, bool) {
	m, ok := d.models[name]
	return m, ok
}

// ModelOrDefault returns the declared model name, or InferModel(name) when
// it is not declared (which allocates). It never returns nil.
func (d *Definitions) ModelOrDefault(name string) *Model {
	if m, ok := d.models[name]; ok {
		return m
	}
	return InferModel(name)
}

// Models returns the declared models sorted by name.
func (d *Definitions) Models() []*Model {
	out := make([]*Model, len(d.modelNames))
	for i, n := range d.modelNames {
		out[i] = d.models[n]
	}
	return out
}

// Slice returns the slice name; "all" returns the implicit slice.
func (d *Definitions) Slice(name string) (*Slice, bool) {
	if name == AllSlice {
		return allSlice, true
	}
	s, ok := d.slices[name]
	return s, ok
}

// Slices returns the declared slices sorted by name ("all" is not among
// them).
func (d *Definitions) Slices() []*Slice { return slices.Clone(d.sliceList) }

// SlicesFor appends to dst "all" followed by the names of the slices that
// apply to model and match r, in name order, and returns the extended
// slice. It does not allocate when dst has room.
func (d *Definitions) SlicesFor(model string, r Record, dst []string) []string {
	dst = append(dst, AllSlice)
	list, ok := d.byModel[model]
	if !ok {
		list = d.unrestricted
	}
	for _, s := range list {
		if s.pred.eval(r) == triTrue {
			dst = append(dst, s.Name)
		}
	}
	return dst
}

// Metric returns the named derived metric.
func (d *Definitions) Metric(name string) (*Metric, bool) {
	m, ok := d.metrics[name]
	return m, ok
}

// Metrics returns the named derived metrics sorted by name.
func (d *Definitions) Metrics() []*Metric { return slices.Clone(d.metricList) }

// Model is a declared model, or the defaults of an undeclared one.
type Model struct {
	Name string
	// Declared is false for the defaults InferModel returns.
	Declared    bool
	Task        Task
	Description string
	// Classes are the class labels as text (Value.String of the YAML
	// scalar): binary models have two, multiclass models zero (classes are
	// taken from the data) or at least two, regression models none.
	Classes []string
	// PositiveClass is the positive class of a binary model.
	PositiveClass string
	// Features are the declared features; FeatureNames lists them sorted.
	Features     map[string]*Feature
	FeatureNames []string
	Reference    Reference
	Versions     map[string]*ModelVersion
}

// InferModel returns the defaults of a model that is not declared: task
// unknown (ingest infers it per record, see InferTask), no declared classes
// or features (each feature's type is inferred per value, see
// InferFeatureType, with importance 1), and DefaultReference.
//
// The result is a new value (one small allocation, nil maps); hot paths
// can use Definitions.Model and these package-level rules directly.
func InferModel(name string) *Model {
	return &Model{Name: name, Reference: DefaultReference}
}

// Feature returns the declared feature name.
func (m *Model) Feature(name string) (*Feature, bool) {
	f, ok := m.Features[name]
	return f, ok
}

// Importance returns the importance weight of feature name: its declared
// importance, or DefaultImportance.
func (m *Model) Importance(name string) float64 {
	if f, ok := m.Features[name]; ok {
		return f.Importance
	}
	return DefaultImportance
}

// FeatureType returns the declared type of feature name, or the type
// inferred from v when the feature is not declared.
func (m *Model) FeatureType(name string, v Value) FeatureType {
	if f, ok := m.Features[name]; ok {
		return f.Type
	}
	return InferFeatureType(v)
}

// IsPositive reports whether label is the positive class of a binary model.
func (m *Model) IsPositive(label string) bool {
	return m.Task == TaskBinary && label == m.PositiveClass
}

// HasClass reports whether label is a declared class. A model without
// declared classes has every class.
func (m *Model) HasClass(label string) bool {
	return len(m.Classes) == 0 || slices.Contains(m.Classes, label)
}

// InferTask is the rule by which the ingest layer infers the task of a
// record of an undeclared model: a "score" makes it binary, "scores"
// multiclass, a numeric prediction or label regression; else unknown.
func InferTask(hasScore, hasScores, numericPredictionOrLabel bool) Task {
	switch {
	case hasScore:
		return TaskBinary
	case hasScores:
		return TaskMulticlass
	case numericPredictionOrLabel:
		return TaskRegression
	}
	return TaskUnknown
}

// InferFeatureType is the type of an undeclared feature with value v:
// numeric for a number, categorical otherwise.
func InferFeatureType(v Value) FeatureType {
	if v.kind == KindNumber {
		return Numeric
	}
	return Categorical
}

// Feature is a declared model feature.
type Feature struct {
	Name        string
	Type        FeatureType
	Importance  float64
	Description string
}

// Reference names the offline evaluation data a model's drift is measured
// against.
type Reference struct {
	// Dataset is the offline dataset label, e.g. "train".
	Dataset string `json:"dataset"`
	// Run is the offline run label, or "latest" for the latest run at
	// query time.
	Run string `json:"run"`
	// Version is the model version label of the reference run; empty means
	// the version being compared.
	Version string `json:"version,omitempty"`
}

// ModelVersion is informational metadata about one model version.
type ModelVersion struct {
	Name        string
	Description string
	// DeployedAt is when the version went live (zero when not given).
	DeployedAt time.Time
}

// Slice is a named predicate over a record's features and attributes.
type Slice struct {
	Name        string
	Description string
	// Where is the predicate as written in the file.
	Where string
	// Models restricts the slice to these models (sorted); empty means all
	// models.
	Models []string
	pred   *Predicate
}

var allSlice = &Slice{Name: AllSlice, Description: "every record (implicit)"}

// Match reports whether r satisfies the slice's predicate. It ignores the
// Models restriction (see AppliesTo and Definitions.SlicesFor). The
// implicit slice "all" matches every record.
func (s *Slice) Match(r Record) bool {
	if s.pred == nil {
		return true
	}
	return s.pred.eval(r) == triTrue
}

// AppliesTo reports whether the slice is kept for model.
func (s *Slice) AppliesTo(model string) bool {
	return len(s.Models) == 0 || slices.Contains(s.Models, model)
}

// Predicate returns the compiled predicate (nil for "all").
func (s *Slice) Predicate() *Predicate { return s.pred }

// Implicit reports whether s is the implicit slice "all".
func (s *Slice) Implicit() bool { return s == allSlice }

// Metric is a named derived metric: an expression in the query language,
// parsed and checked by the query package.
type Metric struct {
	Name        string
	Expr        string
	Description string
	Unit        string
}
