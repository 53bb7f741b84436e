package ingest

import (
	"evalstore/definitions"
)

// KV is one named feature or attribute value of a record.
type KV struct {
	Name  string
	Value definitions.Value
}

// Measure is one named numeric observation (latency, revenue...).
type Measure struct {
	Name  string
	Value float64
}

// ClassScore is the probability a multiclass model gives one class.
type ClassScore struct {
	Class string
	Score float64
}

// Prediction is one decoded and syntactically validated prediction record:
// {model, version, id, timestamp, features{}, prediction, score | scores{},
// label?, attributes{}, measures{}}. Time is in Unix milliseconds.
type Prediction struct {
	Model, Version, ID string
	Time               int64
	Features           []KV
	Attributes         []KV
	// Prediction is the predicted class or value (null when absent).
	Prediction definitions.Value
	Score      float64
	HasScore   bool
	Scores     []ClassScore
	// Label is the ground truth when given inline (HasLabel).
	Label    definitions.Value
	HasLabel bool
	Measures []Measure
	// key is the join key model\x00id when the decoder built it (ID is
	// a substring of it); IngestPredictions checks it against Model and ID.
	key string
}

// joinKey returns p's join key, reusing the decoder's when it still
// matches Model and ID.
func (p *Prediction) joinKey() string {
	k := p.key
	if len(k) == len(p.Model)+1+len(p.ID) && k[:len(p.Model)] == p.Model && k[len(p.Model)] == 0 && k[len(p.Model)+1:] == p.ID {
		return k
	}
	return joinKey(p.Model, p.ID)
}

// Get implements definitions.Record without allocating.
func (p *Prediction) Get(scope definitions.Scope, name string) (definitions.Value, bool) {
	switch scope {
	case definitions.ScopeFeature:
		for i := range p.Features {
			if p.Features[i].Name == name {
				return p.Features[i].Value, true
			}
		}
	case definitions.ScopeAttribute:
		for i := range p.Attributes {
			if p.Attributes[i].Name == name {
				return p.Attributes[i].Value, true
			}
		}
	case definitions.ScopeRecord:
		switch name {
		case "model":
			return definitions.StringValue(p.Model), true
		case "version":
			return definitions.StringValue(p.Version), true
		}
	}
	return definitions.Value{}, false
}

// Feedback is one decoded feedback record {model, id, label?, timestamp?,
// measures{}?}. Time (Unix ms) is the label's time; HasTime is false when the
// record has none (the arrival time is used).
type Feedback struct {
	Model, ID string
	Label     definitions.Value
	HasLabel  bool
	Time      int64
	HasTime   bool
	Measures  []Measure
}

// Evaluation is one decoded offline run {model, version, dataset, run,
// timestamp, records: [...]}. Every record is counted at Time, with the run's
// model and version (a record's own model/version, when given, must match).
type Evaluation struct {
	Model, Version, Dataset, Run string
	Time                         int64
	Records                      []Prediction
}
