package rules

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// NotifierOptions configure a notifier. Zero values take the defaults noted.
type NotifierOptions struct {
	// URLs are the Alertmanagers' base URLs (http://host:9093); every
	// alert goes to each. The path /api/v2/alerts is appended.
	URLs []string
	// QueueCapacity bounds each Alertmanager's queue of alerts (default
	// 10,000); when it is full the oldest alerts are dropped.
	QueueCapacity int
	// MaxBatch is the most alerts one request carries (default 256).
	MaxBatch int
	// Timeout bounds one request (default 10s).
	Timeout time.Duration
	// MaxAttempts is how many times one batch is tried (default 5), with
	// backoff from MinBackoff (default 200ms) doubling to MaxBackoff
	// (default 10s) between attempts. A batch that fails every attempt is
	// dropped: firing alerts are re-sent every resend interval anyway.
	MaxAttempts            int
	MinBackoff, MaxBackoff time.Duration
	// Client sends the requests (default: http.Client with no timeout of
	// its own).
	Client *http.Client
	Logger *slog.Logger
}

// AlertmanagerNotifier sends alerts to Alertmanagers through their v2 API
// (POST /api/v2/alerts). Send only enqueues: one goroutine per
// Alertmanager posts batches and retries, so rule evaluation never waits
// on the network.
type AlertmanagerNotifier struct {
	opts NotifierOptions
	ams  []*amQueue
	log  *slog.Logger
}

type amQueue struct {
	url    string
	mu     sync.Mutex
	queue  []NotifyAlert
	wake   chan struct{}
	sent   atomic.Uint64
	failed atomic.Uint64
	drop   atomic.Uint64
}

// NewNotifier returns a notifier for opts.URLs; call Run to start sending.
func NewNotifier(opts NotifierOptions) *AlertmanagerNotifier {
	if opts.QueueCapacity <= 0 {
		opts.QueueCapacity = 10_000
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 5
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 200 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 10 * time.Second
	}
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	n := &AlertmanagerNotifier{opts: opts, log: opts.Logger}
	for _, u := range opts.URLs {
		n.ams = append(n.ams, &amQueue{url: strings.TrimRight(u, "/") + "/api/v2/alerts", wake: make(chan struct{}, 1)})
	}
	return n
}

// Send enqueues alerts for every Alertmanager. It never blocks.
func (n *AlertmanagerNotifier) Send(alerts ...NotifyAlert) {
	if len(alerts) == 0 {
		return
	}
	for _, am := range n.ams {
		am.mu.Lock()
		am.queue = append(am.queue, alerts...)
		if over := len(am.queue) - n.opts.QueueCapacity; over > 0 {
			am.drop.Add(uint64(over))
			am.queue = append(am.queue[:0], am.queue[over:]...)
			n.log.Warn("alert queue full, dropped the oldest alerts", "alertmanager", am.url, "dropped", over)
		}
		am.mu.Unlock()
		select {
		case am.wake <- struct{}{}:
		default:
		}
	}
}

// NotifierStats are one Alertmanager's counters.
type NotifierStats struct {
	URL                   string
	Sent, Failed, Dropped uint64
	Queued                int
}

// Stats returns each Alertmanager's counters: alerts sent, alerts in
// batches that failed every attempt, alerts dropped from a full queue.
func (n *AlertmanagerNotifier) Stats() []NotifierStats {
	var out []NotifierStats
	for _, am := range n.ams {
		am.mu.Lock()
		q := len(am.queue)
		am.mu.Unlock()
		out = append(out, NotifierStats{URL: am.url, Sent: am.sent.Load(), Failed: am.failed.Load(), Dropped: am.drop.Load(), Queued: q})
	}
	return out
}

// Run sends queued alerts until ctx is done, then returns.
func (n *AlertmanagerNotifier) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, am := range n.ams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.loop(ctx, am)
		}()
	}
	wg.Wait()
}

func (n *AlertmanagerNotifier) loop(ctx context.Context, am *amQueue) {
	for {
		am.mu.Lock()
		k := min(len(am.queue), n.opts.MaxBatch)
		batch := append([]NotifyAlert(nil), am.queue[:k]...)
		am.queue = append(am.queue[:0], am.queue[k:]...)
		am.mu.Unlock()
		if k == 0 {
			select {
			case <-ctx.Done():
				return
			case <-am.wake:
			}
			continue
		}
		body, err := json.Marshal(postableAlerts(batch))
		if err != nil {
			n.log.Error("encoding alerts", "err", err)
			continue
		}
		backoff := n.opts.MinBackoff
		for attempt := 1; ; attempt++ {
			err = n.post(ctx, am.url, body)
			if err == nil {
				am.sent.Add(uint64(len(batch)))
				break
			}
			if attempt >= n.opts.MaxAttempts || ctx.Err() != nil {
				am.failed.Add(uint64(len(batch)))
				n.log.Error("sending alerts failed", "alertmanager", am.url, "alerts", len(batch), "attempts", attempt, "err", err)
				break
			}
			n.log.Warn("sending alerts failed, retrying", "alertmanager", am.url, "attempt", attempt, "backoff", backoff, "err", err)
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
			backoff = min(2*backoff, n.opts.MaxBackoff)
		}
	}
}

func (n *AlertmanagerNotifier) post(ctx context.Context, url string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, n.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "evalstore")
	resp, err := n.opts.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

// postableAlert is Alertmanager's v2 PostableAlert.
type postableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     *time.Time        `json:"startsAt,omitempty"`
	EndsAt       *time.Time        `json:"endsAt,omitempty"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

func postableAlerts(as []NotifyAlert) []postableAlert {
	out := make([]postableAlert, len(as))
	for i, a := range as {
		p := postableAlert{Labels: a.Labels.Map(), Annotations: a.Annotations.Map(), GeneratorURL: a.GeneratorURL}
		if !a.StartsAt.IsZero() {
			t := a.StartsAt.UTC()
			p.StartsAt = &t
		}
		if !a.EndsAt.IsZero() {
			t := a.EndsAt.UTC()
			p.EndsAt = &t
		}
		out[i] = p
	}
	return out
}
