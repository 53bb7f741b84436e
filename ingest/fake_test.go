package ingest

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"evalstore/definitions"
	"evalstore/sketch"
)

// memStorage is an in-memory Storage that merges deltas exactly per
// (labels, bucket), like the tsdb head.
type memStorage struct {
	mu      sync.Mutex
	sketch  map[string]map[int64]sketch.Sketch
	lsets   map[string]labels.Labels
	floats  map[string][]fpoint
	commits int
	appends int
	// failCommit, when set, fails the next Commit.
	failCommit error
	noDecode   bool // benchmarks: merge without validating
}

type fpoint struct {
	t int64
	v float64
}

func newMemStorage() *memStorage {
	return &memStorage{sketch: map[string]map[int64]sketch.Sketch{}, lsets: map[string]labels.Labels{}, floats: map[string][]fpoint{}}
}

type staged struct {
	lset  labels.Labels
	t     int64
	delta []byte
	float bool
	v     float64
}

type memApp struct {
	s   *memStorage
	buf []staged
}

func (s *memStorage) Appender() Appender { return &memApp{s: s} }

func (a *memApp) AddSketch(lset labels.Labels, t int64, delta []byte) error {
	if !a.s.noDecode {
		if _, err := sketch.Decode(delta); err != nil {
			return fmt.Errorf("bad delta for %s: %w", lset, err)
		}
	}
	a.buf = append(a.buf, staged{lset: lset.Copy(), t: t, delta: append([]byte(nil), delta...)})
	return nil
}

func (a *memApp) AddFloat(lset labels.Labels, t int64, v float64) error {
	a.buf = append(a.buf, staged{lset: lset.Copy(), t: t, float: true, v: v})
	return nil
}

func (a *memApp) Rollback() { a.buf = nil }

func (a *memApp) Commit() error {
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failCommit != nil {
		err := s.failCommit
		s.failCommit = nil
		return err
	}
	s.commits++
	for _, st := range a.buf {
		s.apply(st)
	}
	a.buf = nil
	return nil
}

func (s *memStorage) apply(st staged) {
	k := st.lset.String()
	if st.float {
		s.floats[k] = append(s.floats[k], fpoint{st.t, st.v})
		s.lsets[k] = st.lset
		return
	}
	s.appends++
	bs := s.sketch[k]
	if bs == nil {
		bs = map[int64]sketch.Sketch{}
		s.sketch[k] = bs
		s.lsets[k] = st.lset
	}
	cur := bs[st.t]
	if cur == nil {
		f, _ := sketch.FormatOf(st.delta)
		cur, _ = sketch.New(f)
		bs[st.t] = cur
	}
	if err := cur.DecodeAndMerge(st.delta); err != nil {
		panic(fmt.Sprintf("merge %s: %v", k, err))
	}
}

func (s *memStorage) LastFloat(lset labels.Labels) (float64, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pts := s.floats[lset.String()]
	if len(pts) == 0 {
		return 0, false, nil
	}
	return pts[len(pts)-1].v, true, nil
}

// match returns the series keys of family whose labels include want.
func (s *memStorage) match(family string, want map[string]string) []string {
	var out []string
	for k, ls := range s.lsets {
		if ls.Get(metricName) != family {
			continue
		}
		ok := true
		for n, v := range want {
			if ls.Get(n) != v {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// merged merges every bucket of every series of family matching want.
func (s *memStorage) merged(t testing.TB, family string, want map[string]string) sketch.Sketch {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out sketch.Sketch
	for _, k := range s.match(family, want) {
		for _, sk := range s.sketch[k] {
			b := sk.AppendBinary(nil)
			if out == nil {
				f, _ := sketch.FormatOf(b)
				out, _ = sketch.New(f)
			}
			if err := out.DecodeAndMerge(b); err != nil {
				t.Fatalf("merge %s: %v", k, err)
			}
		}
	}
	return out
}

// bucketSketch returns the state of one exact series (all labels) in one bucket.
func (s *memStorage) bucketSketch(lset labels.Labels, t int64) sketch.Sketch {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sketch[lset.String()][t]
}

func (s *memStorage) seriesNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.sketch {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// clock is an injected, settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }
func (c *clock) Now() time.Time   { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const testDefs = `
schema: 1
models:
  churn:
    task: binary
    classes: [0, 1]
    positive_class: 1
    features:
      country: categorical
      tenure: numeric
  intent:
    task: multiclass
    classes: [browse, buy, support]
  eta:
    task: regression
slices:
  eu:
    where: country in ("de", "fr")
  mobile:
    where: attributes.device == "ios"
  long: tenure >= 100
`

func mustDefs(t testing.TB, src string) *definitions.Definitions {
	t.Helper()
	d, err := definitions.Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

type env struct {
	t     testing.TB
	dir   string
	st    *memStorage
	clk   *clock
	defs  *definitions.Definitions
	in    *Ingester
	tweak func(*Config)
}

func newEnv(t testing.TB, tweak func(*Config)) *env {
	e := &env{t: t, dir: t.TempDir(), st: newMemStorage(), clk: newClock(t0), defs: mustDefs(t, testDefs), tweak: tweak}
	e.open()
	t.Cleanup(func() {
		if e.in != nil {
			e.in.Close()
		}
	})
	return e
}

func (e *env) config() Config {
	cfg := Config{Dir: e.dir, Storage: e.st, Now: e.clk.Now, Definitions: func() *definitions.Definitions { return e.defs }}
	if e.tweak != nil {
		e.tweak(&cfg)
	}
	return cfg
}

func (e *env) open() {
	in, err := Open(e.config())
	if err != nil {
		e.t.Fatal(err)
	}
	e.in = in
}

func (e *env) reopen() {
	if err := e.in.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.open()
}

func ndjson(lines ...string) Body {
	return Body{ContentType: "application/x-ndjson", Reader: strings.NewReader(strings.Join(lines, "\n"))}
}

func jsonBody(s string) Body {
	return Body{ContentType: "application/json", Reader: strings.NewReader(s)}
}
