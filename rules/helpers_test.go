package rules

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"evalstore/query"
)

// writeRules writes a rule file into a temp dir and returns its path.
func writeRules(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// fakeNotifier records every alert sent.
type fakeNotifier struct {
	mu   sync.Mutex
	sent [][]NotifyAlert
}

func (f *fakeNotifier) Send(as ...NotifyAlert) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, as)
}

func (f *fakeNotifier) take() []NotifyAlert {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []NotifyAlert
	for _, b := range f.sent {
		out = append(out, b...)
	}
	f.sent = nil
	return out
}

// minute returns the time of minute m of the test timeline.
var t0 = time.Unix(1_700_000_000, 0).Truncate(time.Hour)

func minute(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }

// gauge adds a float series with one value per minute from minute 0:
// vals[i] at minute i; NaN entries are skipped (no sample).
func gauge(t *testing.T, st *query.MemStorage, ls labels.Labels, vals ...float64) {
	t.Helper()
	var pts []query.FPoint
	for i, v := range vals {
		if v != v {
			continue
		}
		pts = append(pts, query.FPoint{T: minute(i).UnixMilli(), F: v})
	}
	if err := st.AddFloat(ls, pts...); err != nil {
		t.Fatal(err)
	}
}

func repeat(v float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func concat(parts ...[]float64) []float64 {
	var out []float64
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
