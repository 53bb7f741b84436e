package definitions

import (
	"bytes"
	"encoding/json"
	"time"
)

// View is the JSON form of Definitions served by GET /api/v1/definitions.
// Its field names are stable.
type View struct {
	Version Version               `json:"version"`
	Schema  int                   `json:"schema"`
	Models  map[string]ModelView  `json:"models"`
	Slices  map[string]SliceView  `json:"slices"`
	Metrics map[string]MetricView `json:"metrics"`
	// Defaults describes what an undeclared model gets.
	Defaults DefaultsView `json:"defaults"`
}

// ModelView is the JSON form of a Model.
type ModelView struct {
	Task          Task                   `json:"task"`
	Description   string                 `json:"description,omitempty"`
	Classes       []string               `json:"classes"`
	PositiveClass string                 `json:"positive_class,omitempty"`
	Features      map[string]FeatureView `json:"features"`
	Reference     Reference              `json:"reference"`
	Versions      map[string]VersionView `json:"versions"`
}

// FeatureView is the JSON form of a Feature.
type FeatureView struct {
	Type        FeatureType `json:"type"`
	Importance  float64     `json:"importance"`
	Description string      `json:"description,omitempty"`
}

// VersionView is the JSON form of a ModelVersion.
type VersionView struct {
	Description string     `json:"description,omitempty"`
	DeployedAt  *time.Time `json:"deployed_at,omitempty"`
}

// SliceView is the JSON form of a Slice.
type SliceView struct {
	// Where is the predicate as written; Canonical is its canonical form.
	Where       string   `json:"where"`
	Canonical   string   `json:"canonical"`
	Models      []string `json:"models"`
	Description string   `json:"description,omitempty"`
}

// MetricView is the JSON form of a Metric.
type MetricView struct {
	Expr        string `json:"expr"`
	Description string `json:"description,omitempty"`
	Unit        string `json:"unit,omitempty"`
}

// DefaultsView is the JSON form of the defaults of undeclared models.
type DefaultsView struct {
	Task       string    `json:"task"`
	Importance float64   `json:"importance"`
	Reference  Reference `json:"reference"`
	Slice      string    `json:"implicit_slice"`
}

// View returns the JSON view of d.
func (d *Definitions) View() View {
	v := View{
		Version: d.version,
		Schema:  d.schema,
		Models:  make(map[string]ModelView, len(d.models)),
		Slices:  make(map[string]SliceView, len(d.slices)),
		Metrics: make(map[string]MetricView, len(d.metrics)),
		Defaults: DefaultsView{
			Task:       "inferred per record: score → binary, scores → multiclass, numeric prediction or label → regression",
			Importance: DefaultImportance,
			Reference:  DefaultReference,
			Slice:      AllSlice,
		},
	}
	for name, m := range d.models {
		mv := ModelView{
			Task: m.Task, Description: m.Description, Classes: m.Classes,
			PositiveClass: m.PositiveClass, Reference: m.Reference,
			Features: make(map[string]FeatureView, len(m.Features)),
			Versions: make(map[string]VersionView, len(m.Versions)),
		}
		if mv.Classes == nil {
			mv.Classes = []string{}
		}
		for fn, f := range m.Features {
			mv.Features[fn] = FeatureView{Type: f.Type, Importance: f.Importance, Description: f.Description}
		}
		for vn, ver := range m.Versions {
			vv := VersionView{Description: ver.Description}
			if !ver.DeployedAt.IsZero() {
				t := ver.DeployedAt
				vv.DeployedAt = &t
			}
			mv.Versions[vn] = vv
		}
		v.Models[name] = mv
	}
	for name, s := range d.slices {
		sv := SliceView{Where: s.Where, Canonical: s.pred.String(), Models: s.Models, Description: s.Description}
		if sv.Models == nil {
			sv.Models = []string{}
		}
		v.Slices[name] = sv
	}
	for name, m := range d.metrics {
		v.Metrics[name] = MetricView{Expr: m.Expr, Description: m.Description, Unit: m.Unit}
	}
	return v
}

// MarshalJSON renders d as its View, without HTML escaping (predicates
// hold < and >; an outer json.Marshal escapes them again unless its
// encoder has SetEscapeHTML(false)).
func (d *Definitions) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(d.View()); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
