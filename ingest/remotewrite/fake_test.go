package remotewrite

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
)

var (
	errOutOfOrder = errors.New("out of order sample")
	errDuplicate  = errors.New("duplicate sample for timestamp")
)

type fakeFloat struct {
	T int64
	V float64
}

type fakeHist struct {
	T int64
	H *histogram.FloatHistogram // a copy of what was added
}

// fakeStore is an in-memory storage with the write rules the receiver
// needs for idempotent retries: a point (series, t) that already holds the
// identical value (float bits or state bytes) is a no-op wherever it lies
// in the series; another value at an existing t is a duplicate; a new t
// older than the series' newest is out of order (strictOrder: any t not
// above the newest is, which is Prometheus's in-order head). It records
// exactly what was committed.
type fakeStore struct {
	mu         sync.Mutex
	floats     map[string][]fakeFloat
	hists      map[string][]fakeHist
	sketches   int
	commits    int
	rollbacks  int
	failAdd    error // returned by every Add
	failCommit error
	noHist     bool // appenders do not implement HistogramAppender
	strict     bool // only the newest point answers a same-timestamp write
}

func newFakeStore() *fakeStore {
	return &fakeStore{floats: map[string][]fakeFloat{}, hists: map[string][]fakeHist{}}
}

func (s *fakeStore) appender(context.Context) Appender {
	tx := &fakeTx{s: s, floats: map[string][]fakeFloat{}, hists: map[string][]fakeHist{}}
	if s.noHist {
		return struct{ Appender }{tx}
	}
	return tx
}

func (s *fakeStore) empty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.floats) == 0 && len(s.hists) == 0 && s.sketches == 0
}

type fakeTx struct {
	s      *fakeStore
	floats map[string][]fakeFloat
	hists  map[string][]fakeHist
}

func (tx *fakeTx) AddSketch(labels.Labels, int64, []byte) error {
	return errors.New("remote-write must not merge sketches")
}

func (tx *fakeTx) AddFloat(lset labels.Labels, t int64, v float64) error {
	if tx.s.failAdd != nil {
		return tx.s.failAdd
	}
	k := lset.String()
	if _, ok := tx.hists[k]; ok {
		return errors.New("float write to a histogram series")
	}
	tx.s.mu.Lock()
	all := append(append([]fakeFloat(nil), tx.s.floats[k]...), tx.floats[k]...)
	strict := tx.s.strict
	tx.s.mu.Unlock()
	same := func(p fakeFloat) bool { return math.Float64bits(p.V) == math.Float64bits(v) }
	if err := checkPoint(all, t, strict, func(p fakeFloat) int64 { return p.T }, same); err != nil || len(all) > 0 && t <= all[len(all)-1].T {
		return err
	}
	tx.floats[k] = append(tx.floats[k], fakeFloat{t, v})
	return nil
}

// checkPoint applies the write rules; a nil error with t not above the
// newest point means "no-op".
func checkPoint[P any](all []P, t int64, strict bool, ts func(P) int64, same func(P) bool) error {
	if len(all) == 0 || t > ts(all[len(all)-1]) {
		return nil
	}
	if strict {
		last := all[len(all)-1]
		switch {
		case t < ts(last):
			return fmt.Errorf("%w: %d before %d", errOutOfOrder, t, ts(last))
		case same(last):
			return nil
		}
		return errDuplicate
	}
	for _, p := range all {
		if ts(p) == t {
			if same(p) {
				return nil
			}
			return errDuplicate
		}
	}
	return fmt.Errorf("%w: %d before %d", errOutOfOrder, t, ts(all[len(all)-1]))
}

func (tx *fakeTx) AddHistogram(lset labels.Labels, t int64, h *histogram.FloatHistogram) error {
	if tx.s.failAdd != nil {
		return tx.s.failAdd
	}
	k := lset.String()
	tx.s.mu.Lock()
	all := append(append([]fakeHist(nil), tx.s.hists[k]...), tx.hists[k]...)
	strict := tx.s.strict
	tx.s.mu.Unlock()
	same := func(p fakeHist) bool { return p.H.Equals(h) }
	if err := checkPoint(all, t, strict, func(p fakeHist) int64 { return p.T }, same); err != nil || len(all) > 0 && t <= all[len(all)-1].T {
		return err
	}
	tx.hists[k] = append(tx.hists[k], fakeHist{t, h.Copy()})
	return nil
}

func (tx *fakeTx) Commit() error {
	tx.s.mu.Lock()
	defer tx.s.mu.Unlock()
	if tx.s.failCommit != nil {
		return tx.s.failCommit
	}
	for k, p := range tx.floats {
		tx.s.floats[k] = append(tx.s.floats[k], p...)
	}
	for k, p := range tx.hists {
		tx.s.hists[k] = append(tx.s.hists[k], p...)
	}
	tx.s.commits++
	return nil
}

func (tx *fakeTx) Rollback() {
	tx.s.mu.Lock()
	tx.s.rollbacks++
	tx.s.mu.Unlock()
}

// nopAppender accepts everything and keeps nothing (benchmarks).
type nopAppender struct{}

func (nopAppender) AddSketch(labels.Labels, int64, []byte) error { return nil }
func (nopAppender) AddFloat(labels.Labels, int64, float64) error { return nil }
func (nopAppender) AddHistogram(labels.Labels, int64, *histogram.FloatHistogram) error {
	return nil
}
func (nopAppender) Commit() error { return nil }
func (nopAppender) Rollback()     {}
