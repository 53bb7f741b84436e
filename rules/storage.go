package rules

import (
	"errors"
	"fmt"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"

	"evalstore/query"
	"evalstore/tsdb"
)

// Sample is one sample a rule writes: a float, or a native histogram when
// H is set (a recording rule over histograms records histograms, as in
// Prometheus).
type Sample struct {
	Labels labels.Labels
	T      int64 // Unix ms
	V      float64
	H      *histogram.FloatHistogram
}

// Storage is what the manager reads rules' inputs from and writes their
// results to.
type Storage interface {
	query.Queryable
	// Append writes samples in one batch. Samples storage refuses (out of
	// order, duplicate) are skipped and reported in the error; the rest
	// are written.
	Append(samples []Sample) error
}

// TSDBStorage adapts a *tsdb.DB: reads through its Querier, writes
// through one Appender commit per evaluation.
func TSDBStorage(db *tsdb.DB) Storage { return tsdbStorage{db} }

type tsdbStorage struct{ *tsdb.DB }

func (s tsdbStorage) Append(samples []Sample) error {
	app := s.Appender()
	var errs []error
	for _, smp := range samples {
		var err error
		if smp.H != nil {
			err = app.AddHistogram(smp.Labels, smp.T, smp.H)
		} else {
			err = app.AddFloat(smp.Labels, smp.T, smp.V)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := app.Commit(); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// MemStorage adapts a *query.MemStorage (rule unit tests, examples).
// Samples must come in time order per series.
func MemStorage(m *query.MemStorage) Storage { return memStorage{m} }

type memStorage struct{ *query.MemStorage }

func (s memStorage) Append(samples []Sample) error {
	var errs []error
	for _, smp := range samples {
		var err error
		if smp.H != nil {
			err = s.AddHistogram(smp.Labels, query.HPoint{T: smp.T, H: smp.H})
		} else {
			err = s.AddFloat(smp.Labels, query.FPoint{T: smp.T, F: smp.V})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("series %s: %w", smp.Labels, err))
		}
	}
	return errors.Join(errs...)
}
