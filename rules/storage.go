package rules

import (
	"errors"
	"fmt"

	"github.com/prometheus/prometheus/model/labels"

	"evalstore/query"
	"evalstore/tsdb"
)

// Sample is one float sample a rule writes.
type Sample struct {
	Labels labels.Labels
	T      int64 // Unix ms
	V      float64
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
		if err := app.AddFloat(smp.Labels, smp.T, smp.V); err != nil {
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
		if err := s.AddFloat(smp.Labels, query.FPoint{T: smp.T, F: smp.V}); err != nil {
			errs = append(errs, fmt.Errorf("series %s: %w", smp.Labels, err))
		}
	}
	return errors.Join(errs...)
}
