package rules

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// amServer is a fake Alertmanager: it records the bodies posted to
// /api/v2/alerts and fails the first failFirst requests.
type amServer struct {
	*httptest.Server
	mu        sync.Mutex
	bodies    [][]postableAlert
	calls     atomic.Int32
	failFirst int32
	block     chan struct{}
}

func newAMServer(t *testing.T, failFirst int32) *amServer {
	s := &amServer{failFirst: failFirst}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.block != nil {
			<-s.block
		}
		if r.URL.Path != "/api/v2/alerts" || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad request "+r.Method+" "+r.URL.Path, http.StatusNotFound)
			return
		}
		if s.calls.Add(1) <= s.failFirst {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		b, _ := io.ReadAll(r.Body)
		var as []postableAlert
		if err := json.Unmarshal(b, &as); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.bodies = append(s.bodies, as)
		s.mu.Unlock()
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *amServer) received() []postableAlert {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []postableAlert
	for _, b := range s.bodies {
		out = append(out, b...)
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testAlert(name string, ends time.Time) NotifyAlert {
	return NotifyAlert{Labels: labels.FromStrings("alertname", name, "job", "a"), Annotations: labels.FromStrings("summary", "s"),
		StartsAt: minute(0), EndsAt: ends, GeneratorURL: "http://x/graph"}
}

func TestNotifierSendsToEveryAlertmanagerWithRetries(t *testing.T) {
	ok := newAMServer(t, 0)
	flaky := newAMServer(t, 2) // fails twice, then accepts
	n := NewNotifier(NotifierOptions{URLs: []string{ok.URL, flaky.URL + "/"}, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	n.Send(testAlert("A", minute(10)))
	waitFor(t, "both alertmanagers", func() bool { return len(ok.received()) == 1 && len(flaky.received()) == 1 })
	got := flaky.received()[0]
	if got.Labels["alertname"] != "A" || got.Annotations["summary"] != "s" || !got.StartsAt.Equal(minute(0)) ||
		!got.EndsAt.Equal(minute(10)) || got.GeneratorURL != "http://x/graph" {
		t.Fatalf("posted %+v", got)
	}
	if c := flaky.calls.Load(); c != 3 {
		t.Fatalf("flaky alertmanager called %d times, want 3", c)
	}
	waitFor(t, "the counters", func() bool { st := n.Stats(); return st[0].Sent == 1 && st[1].Sent == 1 })
	if st := n.Stats(); st[1].Failed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestNotifierGivesUpAfterMaxAttempts(t *testing.T) {
	down := newAMServer(t, 1000)
	n := NewNotifier(NotifierOptions{URLs: []string{down.URL}, MaxAttempts: 3, MinBackoff: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	n.Send(testAlert("A", minute(10)), testAlert("B", minute(10)))
	waitFor(t, "the batch to fail", func() bool { return n.Stats()[0].Failed == 2 })
	if c := down.calls.Load(); c != 3 {
		t.Fatalf("%d attempts, want 3", c)
	}
}

func TestNotifierSendNeverBlocksAndQueueIsBounded(t *testing.T) {
	stuck := newAMServer(t, 0)
	stuck.block = make(chan struct{})
	n := NewNotifier(NotifierOptions{URLs: []string{stuck.URL}, QueueCapacity: 10, MaxBatch: 1})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	// The first alert is taken by the sender, which hangs on the server.
	n.Send(testAlert("first", minute(1)))
	waitFor(t, "the first request", func() bool { return n.Stats()[0].Queued == 0 })
	began := time.Now()
	for i := range 1000 {
		n.Send(testAlert("A"+string(rune('a'+i%26)), minute(1)))
	}
	if d := time.Since(began); d > time.Second {
		t.Fatalf("Send blocked for %v", d)
	}
	st := n.Stats()[0]
	if st.Queued != 10 || st.Dropped != 990 {
		t.Fatalf("stats %+v, want 10 queued, 990 dropped", st)
	}
	close(stuck.block)
	waitFor(t, "the queue to drain", func() bool { return n.Stats()[0].Sent == 11 })
	cancel()
	<-done
}
