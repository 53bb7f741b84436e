package rules

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"evalstore/query"
)

// alertmanagerBinary finds a real Alertmanager: $EVALSTORE_ALERTMANAGER,
// then alertmanager or prometheus-alertmanager (Debian) on PATH. Without
// one the test skips, or fails when $EVALSTORE_REQUIRE_ALERTMANAGER is set
// (CI sets it, so a missing install cannot pass as a skip).
func alertmanagerBinary(t *testing.T) string {
	if p := os.Getenv("EVALSTORE_ALERTMANAGER"); p != "" {
		return p
	}
	for _, name := range []string{"alertmanager", "prometheus-alertmanager"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("EVALSTORE_REQUIRE_ALERTMANAGER") != "" {
		t.Fatal("EVALSTORE_REQUIRE_ALERTMANAGER is set but no alertmanager or prometheus-alertmanager is on PATH")
	}
	t.Skip("no Alertmanager binary: install Debian's prometheus-alertmanager (apt-get install prometheus-alertmanager) " +
		"or set EVALSTORE_ALERTMANAGER to run the integration test against a real Alertmanager")
	return ""
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startAlertmanager runs a real Alertmanager on a free loopback port with
// its data in a temp dir and returns its base URL.
func startAlertmanager(t *testing.T) string {
	bin := alertmanagerBinary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte("route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin,
		"--config.file="+cfg,
		"--storage.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port),
		"--cluster.listen-address=", // no gossip port
	)
	logf, err := os.Create(filepath.Join(dir, "alertmanager.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("alertmanager log:\n%s", b)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("alertmanager at %s not ready: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// gettableAlert is the part of Alertmanager's v2 GettableAlert we check.
type gettableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Status       struct {
		State string `json:"state"`
	} `json:"status"`
}

func amAlerts(t *testing.T, url string) []gettableAlert {
	resp, err := http.Get(url + "/api/v2/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var as []gettableAlert
	if err := json.NewDecoder(resp.Body).Decode(&as); err != nil {
		t.Fatal(err)
	}
	return as
}

// TestAlertmanagerIntegration: a rule fires, the alert appears in a real
// Alertmanager's /api/v2/alerts with its labels and annotations, and
// leaves it (resolved) when the data recovers. Evaluation times are
// injected, close to the real clock Alertmanager judges endsAt by.
func TestAlertmanagerIntegration(t *testing.T) {
	url := startAlertmanager(t)
	down := fmt.Sprintf("http://127.0.0.1:%d", freePort(t)) // a second, unreachable Alertmanager

	now := time.Now().Truncate(time.Second)
	at := func(m int) time.Time { return now.Add(time.Duration(m) * time.Minute) }
	st := query.NewMemStorage()
	// Accuracy of model b in slice eu (a float series): 0.8 from -6m to
	// -3m (below the 0.85 threshold), recovered to 0.92 from -2m.
	ls := labels.FromStrings("__name__", "online_accuracy", "model", "b", "slice", "eu")
	var pts []query.FPoint
	for m := -6; m <= 0; m++ {
		v := 0.8
		if m >= -2 {
			v = 0.92
		}
		pts = append(pts, query.FPoint{T: at(m).UnixMilli(), F: v})
	}
	if err := st.AddFloat(ls, pts...); err != nil {
		t.Fatal(err)
	}
	n := NewNotifier(NotifierOptions{URLs: []string{down, url}, MinBackoff: 10 * time.Millisecond, MaxAttempts: 2})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	m := NewManager(Options{Storage: MemStorage(st), Notifier: n, ExternalLabels: map[string]string{"env": "test"}})
	err := m.Load(writeRules(t, `groups:
  - name: quality
    rules:
      - alert: AccuracyLow
        expr: online_accuracy{slice="eu"} < 0.85
        for: 1m
        labels: {severity: page}
        annotations:
          summary: "accuracy of {{ $labels.model }} in {{ $labels.slice }} is {{ $value | humanizePercentage }}"
`))
	if err != nil {
		t.Fatal(err)
	}
	// Alertmanager judges endsAt (4 intervals after a firing evaluation)
	// by its own clock: the alert must fire within the last 4 minutes.
	m.Eval(ctx, at(-4)) // pending
	m.Eval(ctx, at(-3)) // firing: sent
	var got gettableAlert
	waitFor(t, "the alert in Alertmanager", func() bool {
		as := amAlerts(t, url)
		if len(as) == 1 {
			got = as[0]
		}
		return len(as) == 1
	})
	wantLabels := map[string]string{"alertname": "AccuracyLow", "model": "b", "slice": "eu", "severity": "page", "env": "test"}
	if fmt.Sprint(got.Labels) != fmt.Sprint(wantLabels) {
		t.Errorf("labels %v, want %v", got.Labels, wantLabels)
	}
	if got.Annotations["summary"] != "accuracy of b in eu is 80%" {
		t.Errorf("annotations %v", got.Annotations)
	}
	if !got.StartsAt.Equal(at(-3)) || got.Status.State != "active" || got.GeneratorURL == "" {
		t.Errorf("alert %+v", got)
	}

	m.Eval(ctx, at(-2)) // recovered: resolved notification, endsAt -2m
	waitFor(t, "the alert to resolve in Alertmanager", func() bool { return len(amAlerts(t, url)) == 0 })
	waitFor(t, "the unreachable Alertmanager's batches to fail", func() bool { return n.Stats()[0].Failed >= 2 })
	if st := n.Stats(); st[1].Sent < 2 || st[0].Sent != 0 {
		t.Errorf("notifier stats %+v: the live Alertmanager should get both, the dead one none", st)
	}
}
