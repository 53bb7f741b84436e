package rules

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"evalstore/tsdb"
)

// restartRig runs a manager over a real DB with a fake clock, and can
// restart both (close and reopen the DB, a new manager) to test restore.
type restartRig struct {
	t     *testing.T
	dir   string
	rules string
	now   atomic.Int64
	db    *tsdb.DB
	m     *Manager
}

func newRestartRig(t *testing.T, rule string) *restartRig {
	r := &restartRig{t: t, dir: t.TempDir(), rules: writeRules(t, "groups:\n  - name: g\n    interval: 1m\n    rules:\n"+rule)}
	r.start()
	t.Cleanup(func() { r.db.Close() })
	return r
}

func (r *restartRig) start() {
	r.t.Helper()
	db, err := tsdb.Open(r.dir, tsdb.Options{Now: func() time.Time { return time.UnixMilli(r.now.Load()) }})
	if err != nil {
		r.t.Fatal(err)
	}
	r.db = db
	r.m = NewManager(Options{Storage: TSDBStorage(db)})
	if err := r.m.Load(r.rules); err != nil {
		r.t.Fatal(err)
	}
}

func (r *restartRig) restart() {
	r.t.Helper()
	if err := r.db.Close(); err != nil {
		r.t.Fatal(err)
	}
	r.start()
}

// run writes x=2 and evaluates at each minute in [from, to], returning the
// alert state after each evaluation.
func (r *restartRig) run(from, to int) map[int]Alert {
	r.t.Helper()
	out := map[int]Alert{}
	for m := from; m <= to; m++ {
		r.now.Store(minute(m).UnixMilli())
		app := r.db.Appender()
		if err := app.AddFloat(labels.FromStrings("__name__", "x", "job", "a"), minute(m).UnixMilli(), 2); err != nil {
			r.t.Fatal(err)
		}
		if err := app.Commit(); err != nil {
			r.t.Fatal(err)
		}
		r.m.Eval(context.Background(), minute(m))
		ar := r.m.Groups()[0].Rules()[0].(*AlertingRule)
		if h := ar.Health(); h.Health != HealthOK {
			r.t.Fatalf("minute %d: %v", m, h.LastError)
		}
		if as := ar.Alerts(); len(as) == 1 {
			out[m] = as[0]
		}
	}
	return out
}

// firstFiring is the first minute the alert is firing.
func firstFiring(states map[int]Alert, from, to int) int {
	for m := from; m <= to; m++ {
		if a, ok := states[m]; ok && a.State == StateFiring {
			return m
		}
	}
	return -1
}

func TestRestoreForState(t *testing.T) {
	for _, c := range []struct {
		name         string
		forDur       string
		upTo         int // last evaluation before the restart
		restartAt    int
		wantActiveAt int // ActiveAt after the restart's first evaluation
		wantFire     int
	}{
		// 10m of a 30m `for` done before a 10m outage: the progress is kept,
		// shifted by the outage.
		{"pending progress kept", "30m", 10, 20, 10, 40},
		// Already firing before the outage: fires again one evaluation after
		// the restart (restore runs after the first one, as in Prometheus).
		{"firing before restart", "15m", 20, 30, 0, 31},
		// 3m left of the `for`: the 10m grace period applies.
		{"near firing gets the grace period", "15m", 12, 30, 25, 40},
		// A `for` shorter than the grace period is not restored.
		{"short for not restored", "5m", 3, 10, 10, 15},
		// Down longer than the outage tolerance (1h): nothing to restore.
		{"outage beyond tolerance", "30m", 10, 80, 80, 110},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRestartRig(t, "      - alert: High\n        expr: x > 1\n        for: "+c.forDur+"\n")
			before := r.run(0, c.upTo)
			if a, ok := before[c.upTo]; !ok || !a.ActiveAt.Equal(minute(0)) {
				t.Fatalf("before restart: %+v", before[c.upTo])
			}
			r.restart()
			after := r.run(c.restartAt, c.restartAt+40)
			if a := after[c.restartAt]; !a.ActiveAt.Equal(minute(c.wantActiveAt)) {
				t.Fatalf("activeAt after restore %v, want minute %d", a.ActiveAt.Sub(t0), c.wantActiveAt)
			}
			if got := firstFiring(after, c.restartAt, c.restartAt+40); got != c.wantFire {
				t.Fatalf("fired at minute %d, want %d", got, c.wantFire)
			}
		})
	}
}

func TestReloadKeepsStateAndRefusesBadFiles(t *testing.T) {
	r := newRestartRig(t, "      - alert: High\n        expr: x > 1\n        for: 5m\n")
	r.run(0, 6)
	// A bad file is refused and the previous rules (and state) stay.
	bad := writeRules(t, "groups:\n  - name: g\n    rules:\n      - alert: High\n        expr: x >\n")
	if err := r.m.Load(bad); err == nil {
		t.Fatal("bad file loaded")
	}
	if a := r.m.Groups()[0].Rules()[0].(*AlertingRule).Alerts(); len(a) != 1 || a[0].State != StateFiring {
		t.Fatalf("state lost after a refused load: %+v", a)
	}
	// Reloading the same file keeps the firing alert.
	if err := r.m.Reload(); err != nil {
		t.Fatal(err)
	}
	if a := r.m.Groups()[0].Rules()[0].(*AlertingRule).Alerts(); len(a) != 1 || a[0].State != StateFiring || !a[0].ActiveAt.Equal(minute(0)) {
		t.Fatalf("state lost on reload: %+v", a)
	}
	st := r.run(7, 7)
	if st[7].State != StateFiring {
		t.Fatalf("after reload: %+v", st[7])
	}
}
