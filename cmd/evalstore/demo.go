package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// demoDefinitions is the definitions file of the demo workload: two binary
// models a and b and three slices. `evalstore demo -write-definitions FILE`
// writes it; `evalstore serve -definitions FILE` loads it.
const demoDefinitions = `# evalstore demo definitions (written by evalstore demo -write-definitions).
schema: 1

x-features: &features
  country: {type: categorical, importance: 0.5, description: ISO 3166 country code}
  device: {type: categorical, importance: 1}
  tenure_days: {type: numeric, importance: 3, description: days since sign-up}
  monthly_spend: {type: numeric, importance: 2, description: "EUR, last 30 days"}

models:
  a:
    task: binary
    description: Will the visitor buy? (control model)
    classes: [0, 1]
    positive_class: 1
    features: *features
    reference: {dataset: train}
  b:
    task: binary
    description: Will the visitor buy? (challenger model)
    classes: [0, 1]
    positive_class: 1
    features: *features
    reference: {dataset: train}

slices:
  eu:
    where: country in ("de", "fr", "it", "es", "nl")
    description: European Union markets (the drift incident happens here)
  us: country == "us"
  mobile: device in ("ios", "android")
`

// demoSlices are the declared slices of demoDefinitions, and demoSlicesOf
// the same predicates in Go (the tests' oracle and the summary use them).
var demoSlices = []string{"eu", "mobile", "us"}

func demoSlicesOf(country, device string) []string {
	s := []string{"all"}
	if slices.Contains([]string{"de", "fr", "it", "es", "nl"}, country) {
		s = append(s, "eu")
	}
	if device == "ios" || device == "android" {
		s = append(s, "mobile")
	}
	if country == "us" {
		s = append(s, "us")
	}
	return s
}

// demoImportance is each feature's importance in demoDefinitions.
var demoImportance = map[string]float64{"country": 0.5, "device": 1, "tenure_days": 3, "monthly_spend": 2}

// demoConfig configures one demo workload.
type demoConfig struct {
	URL        string
	WriteToken string // bearer token for the write endpoints
	ReadToken  string // bearer token for GET /api/v1/definitions
	Seed       uint64
	Duration   time.Duration // how long sending takes (paced over 60 steps); 0: as fast as possible
	PerModel   int           // online predictions per model over the hour
	Now        time.Time     // zero: time.Now()
	// DefinitionsFile is where the definitions are written when the
	// server lacks them ("evalstore-demo.yaml" in the working directory).
	DefinitionsFile string
	Stderr          io.Writer
	Client          *http.Client
}

// demoRecord is one online prediction the demo sent, with what the
// generator knows about it (for the summary and the tests' oracles).
type demoRecord struct {
	Model, Version, ID string
	Time               time.Time
	Country, Device    string
	Tenure, Spend      float64
	Score              float64
	Predicted, Label   string
	Labelled           bool      // feedback with a label was sent
	LabelAt            time.Time // the feedback's timestamp
	Latency            float64   // measure latency_ms (prediction)
	Revenue            float64   // measure revenue (feedback), when Labelled
	Slices             []string
}

// demoEvalRecord is one record of an offline run.
type demoEvalRecord struct {
	Country, Device  string
	Tenure, Spend    float64
	Score            float64
	Predicted, Label string
	Slices           []string
}

// demoRun is one offline evaluation run.
type demoRun struct {
	Model, Version, Dataset, Run string
	Time                         time.Time
	Records                      []demoEvalRecord
}

// demoData is everything the demo generated and sent.
type demoData struct {
	Start, End     time.Time // online predictions are in [Start, End); End is minute-aligned
	DriftAt        time.Time // the eu slice's monthly_spend shifts from here on
	Records        []demoRecord
	Runs           []demoRun
	RemoteSamples  int
	RemoteInstance string
	Declared       bool // the server had the demo definitions (slices) in force
}

// The demo's remote-written metric names.
const (
	demoLatencyMetric  = "demo_request_duration_seconds"
	demoRequestsMetric = "demo_requests_total"
)

var demoLatencyBuckets = []float64{0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1}

var demoCountries = []struct {
	name   string
	weight float64
}{{"us", 0.3}, {"de", 0.15}, {"fr", 0.12}, {"it", 0.08}, {"es", 0.07}, {"nl", 0.05}, {"gb", 0.13}, {"br", 0.1}}

func demoCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: evalstore demo [flags]

Sends an hour of realistic traffic (timestamps over the past hour) to a running server: two binary
models a and b, slices eu/us/mobile, a drift incident in the eu slice, labels arriving late (some
never), latency and revenue measures, offline runs on datasets train and main, and remote-written
latency histograms. Slices need the demo definitions in force on the server:

  evalstore demo -write-definitions evalstore-demo.yaml
  evalstore serve -definitions evalstore-demo.yaml

`)
		fs.PrintDefaults()
	}
	url := fs.String("url", "http://localhost"+DefaultListen, "evalstore URL")
	dur := fs.Duration("duration", time.Minute, "how long sending takes (0: as fast as possible)")
	seed := fs.Uint64("seed", 1, "random seed (same seed, same workload shape)")
	perModel := fs.Int("predictions", 3000, "online predictions per model")
	token := fs.String("token", os.Getenv("EVALSTORE_WRITE_TOKEN"), "bearer token of the write endpoints (env EVALSTORE_WRITE_TOKEN)")
	readToken := fs.String("read-token", os.Getenv("EVALSTORE_READ_TOKEN"), "bearer token of the read endpoints (env EVALSTORE_READ_TOKEN)")
	writeDefs := fs.String("write-definitions", "", "write the demo definitions file to `FILE` and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 || *perModel < 100 {
		fs.Usage()
		return 2
	}
	if *writeDefs != "" {
		if err := os.WriteFile(*writeDefs, []byte(demoDefinitions), 0o644); err != nil {
			fmt.Fprintf(stderr, "evalstore demo: %v\n", err)
			return 1
		}
		fmt.Fprintf(stderr, "wrote %s; start the server with: evalstore serve -definitions %s\n", *writeDefs, *writeDefs)
		return 0
	}
	d, err := runDemo(context.Background(), demoConfig{
		URL: strings.TrimRight(*url, "/"), WriteToken: *token, ReadToken: *readToken,
		Seed: *seed, Duration: *dur, PerModel: *perModel, Stderr: stderr,
	})
	if err != nil {
		fmt.Fprintf(stderr, "evalstore demo: %v\n", err)
		return 1
	}
	printDemoSummary(stdout, d)
	return 0
}

// runDemo generates the workload and sends it to cfg.URL.
func runDemo(ctx context.Context, cfg demoConfig) (*demoData, error) {
	if cfg.Stderr == nil {
		cfg.Stderr = io.Discard
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: time.Minute}
	}
	if cfg.PerModel <= 0 {
		cfg.PerModel = 3000
	}
	if cfg.Now.IsZero() {
		cfg.Now = time.Now()
	}
	c := demoClient{cfg: cfg}
	if err := c.ready(ctx); err != nil {
		return nil, err
	}
	declared, err := c.declared(ctx)
	if err != nil {
		return nil, err
	}
	if !declared {
		file := cfg.DefinitionsFile
		if file == "" {
			file = "evalstore-demo.yaml"
		}
		hint := "restart the server with `evalstore serve -definitions " + file + "` and run the demo again"
		if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
			if err := os.WriteFile(file, []byte(demoDefinitions), 0o644); err != nil {
				hint = "write them with `evalstore demo -write-definitions FILE`, restart the server with `evalstore serve -definitions FILE` and run the demo again"
			} else {
				hint = "the demo wrote them to " + file + ": " + hint
			}
		}
		fmt.Fprintf(cfg.Stderr, "demo: the server does not have the demo definitions, so every record goes to slice \"all\" only.\n"+
			"      For the eu/us/mobile slices (and the drift incident in eu): %s.\n", hint)
	}
	d := generateDemo(cfg.Seed, cfg.Now, cfg.PerModel)
	d.Declared = declared
	if err := c.send(ctx, d); err != nil {
		return d, err
	}
	return d, nil
}

// generateDemo builds the workload: the online hour [End-1h, End) with
// End = now truncated to the minute, and two offline runs per model shortly
// before it.
func generateDemo(seed uint64, now time.Time, perModel int) *demoData {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	end := now.Truncate(time.Minute)
	start := end.Add(-time.Hour)
	d := &demoData{Start: start, End: end, DriftAt: start.Add(30 * time.Minute),
		RemoteInstance: "demo-" + strconv.FormatUint(seed, 10) + "-" + strconv.FormatInt(now.UnixMilli(), 36)}
	runID := strconv.FormatInt(now.Unix(), 36)
	noise := map[string]float64{"a": 1.1, "b": 0.7}
	latency := map[string]float64{"a": math.Log(0.11), "b": math.Log(0.09)} // seconds, log-normal medians
	basket := map[string]float64{"a": 3.0, "b": 3.15}                       // log of a purchase's revenue

	features := func() (country, device string, tenure, spend float64) {
		u := r.Float64()
		for i, c := range demoCountries {
			if u -= c.weight; u <= 0 || i == len(demoCountries)-1 {
				country = c.name
				break
			}
		}
		switch u := r.Float64(); {
		case u < 0.35:
			device = "ios"
		case u < 0.7:
			device = "android"
		default:
			device = "web"
		}
		tenure = math.Round(math.Exp(4+r.NormFloat64()) + 1)
		spend = math.Round(math.Exp(3.3+0.5*r.NormFloat64())*100) / 100
		return
	}
	// truth: the buy probability; the model sees the (possibly drifted)
	// spend, the truth depends on the spend before the incident.
	logit := func(device string, tenure, spend float64) float64 {
		l := -0.6 + 1.6*(math.Log(spend)-3.3)/0.5 - 0.5*(math.Log(tenure)-4)
		if device == "ios" {
			l += 0.4
		}
		return l
	}
	sigmoid := func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
	bin := func(p float64) string {
		if p >= 0.5 {
			return "1"
		}
		return "0"
	}
	round4 := func(x float64) float64 { return math.Round(x*1e4) / 1e4 }

	// Offline runs: train (slightly optimistic) and main, before the hour.
	for _, m := range []string{"a", "b"} {
		for _, ds := range []struct {
			name  string
			n     int
			noise float64
		}{{"train", 1500, 0.6}, {"main", 1000, 1}} {
			run := demoRun{Model: m, Version: "v1", Dataset: ds.name, Run: ds.name + "-" + runID,
				Time: start.Add(-10 * time.Minute)}
			for range ds.n {
				country, device, tenure, spend := features()
				l := logit(device, tenure, spend)
				score := round4(sigmoid(l + ds.noise*noise[m]*r.NormFloat64()))
				run.Records = append(run.Records, demoEvalRecord{Country: country, Device: device, Tenure: tenure, Spend: spend,
					Score: score, Predicted: bin(score), Label: bin(0.5 + sigmoid(l) - r.Float64()),
					Slices: demoSlicesOf(country, device)})
			}
			d.Runs = append(d.Runs, run)
		}
	}
	// Online traffic: each request goes to a or b.
	n := 2 * perModel
	for i := range n {
		m := "a"
		if i%2 == 1 {
			m = "b"
		}
		ts := start.Add(time.Duration(r.Int64N(int64(time.Hour)/int64(time.Millisecond))) * time.Millisecond)
		country, device, tenure, spend := features()
		seen := spend
		if !ts.Before(d.DriftAt) && slices.Contains(demoSlicesOf(country, device), "eu") {
			seen = math.Round(spend*1.8*100) / 100 // a price change inflates eu spends
		}
		pTrue := sigmoid(logit(device, tenure, spend))
		score := round4(sigmoid(logit(device, tenure, seen) + noise[m]*r.NormFloat64()))
		label := "0"
		if r.Float64() < pTrue {
			label = "1"
		}
		rec := demoRecord{Model: m, Version: "v1", ID: fmt.Sprintf("demo-%s-%s-%05d", runID, m, i/2), Time: ts,
			Country: country, Device: device, Tenure: tenure, Spend: seen, Score: score, Predicted: bin(score),
			Label: label, Latency: round4(math.Exp(latency[m] + 0.4*r.NormFloat64())),
			Slices: demoSlicesOf(country, device)}
		// Labels: 85 % arrive, after minutes (a few after half an hour).
		if r.Float64() < 0.85 {
			rec.Labelled = true
			delay := time.Duration(r.ExpFloat64() * float64(4*time.Minute))
			if r.Float64() < 0.05 {
				delay += time.Duration(r.Int64N(int64(40 * time.Minute)))
			}
			rec.LabelAt = ts.Add(delay).Truncate(time.Millisecond)
			if rec.LabelAt.After(now) {
				rec.LabelAt = now.Truncate(time.Millisecond)
			}
			if label == "1" {
				rec.Revenue = math.Round(math.Exp(basket[m]+0.6*r.NormFloat64())*100) / 100
			}
		}
		d.Records = append(d.Records, rec)
	}
	slices.SortStableFunc(d.Records, func(x, y demoRecord) int { return x.Time.Compare(y.Time) })
	return d
}

// demoClient posts to the server.
type demoClient struct{ cfg demoConfig }

func (c demoClient) do(ctx context.Context, method, path, ctype string, body []byte, token string, hdr map[string]string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.cfg.URL+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.cfg.Client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

func (c demoClient) ready(ctx context.Context) error {
	code, _, err := c.do(ctx, http.MethodGet, "/-/ready", "", nil, "", nil)
	if err != nil {
		return fmt.Errorf("cannot reach the server at %s (start it with `make run` or `evalstore serve`): %w", c.cfg.URL, err)
	}
	if code != http.StatusOK {
		return fmt.Errorf("the server at %s is not ready (%d)", c.cfg.URL, code)
	}
	return nil
}

// declared reports whether the server's definitions declare the demo's
// models and slices.
func (c demoClient) declared(ctx context.Context) (bool, error) {
	code, body, err := c.do(ctx, http.MethodGet, "/api/v1/definitions", "", nil, c.cfg.ReadToken, nil)
	if err != nil {
		return false, err
	}
	if code == http.StatusUnauthorized {
		fmt.Fprintln(c.cfg.Stderr, "demo: cannot read the server's definitions (401: set -read-token); assuming they are not the demo's")
		return false, nil
	}
	if code != http.StatusOK {
		return false, nil
	}
	var resp struct {
		Data struct {
			Models map[string]json.RawMessage `json:"models"`
			Slices map[string]json.RawMessage `json:"slices"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return false, nil
	}
	v := resp.Data
	for _, m := range []string{"a", "b"} {
		if _, ok := v.Models[m]; !ok {
			return false, nil
		}
	}
	for _, s := range demoSlices {
		if _, ok := v.Slices[s]; !ok {
			return false, nil
		}
	}
	return true, nil
}

func (c demoClient) post(ctx context.Context, path string, body []byte, ctype string) error {
	code, resp, err := c.do(ctx, http.MethodPost, path, ctype, body, c.cfg.WriteToken, nil)
	if err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	if code/100 != 2 {
		return fmt.Errorf("POST %s: %d %s", path, code, strings.TrimSpace(string(resp)))
	}
	return nil
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

func (r *demoRecord) predictionJSON() map[string]any {
	return map[string]any{
		"model": r.Model, "version": r.Version, "id": r.ID, "timestamp": unixSeconds(r.Time),
		"features":   map[string]any{"country": r.Country, "device": r.Device, "tenure_days": r.Tenure, "monthly_spend": r.Spend},
		"prediction": r.Predicted, "score": r.Score,
		"attributes": map[string]any{"region": demoRegion(r.Country)},
		"measures":   map[string]float64{"latency_ms": r.latencyMs()},
	}
}

func demoRegion(country string) string {
	switch country {
	case "us", "br":
		return "americas"
	}
	return "europe"
}

func (r *demoRecord) feedbackJSON() map[string]any {
	fb := map[string]any{"model": r.Model, "id": r.ID, "label": r.Label, "timestamp": unixSeconds(r.LabelAt)}
	if r.Revenue > 0 {
		fb["measures"] = map[string]float64{"revenue": r.Revenue}
	}
	return fb
}

// latencyMs is the latency_ms measure as sent.
func (r *demoRecord) latencyMs() float64 { return math.Round(r.Latency * 1000) }

func ndjson(recs []map[string]any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, r := range recs {
		_ = enc.Encode(r) // maps of strings and finite numbers
	}
	return b.Bytes()
}

// send posts the offline runs, then the hour minute by minute: that
// minute's predictions, the labels that have arrived by then (shuffled),
// and the remote-written scrapes; then the late labels.
func (c demoClient) send(ctx context.Context, d *demoData) error {
	w := c.cfg.Stderr
	for _, run := range d.Runs {
		recs := make([]map[string]any, len(run.Records))
		for i, x := range run.Records {
			recs[i] = map[string]any{
				"features":   map[string]any{"country": x.Country, "device": x.Device, "tenure_days": x.Tenure, "monthly_spend": x.Spend},
				"prediction": x.Predicted, "score": x.Score, "label": x.Label,
			}
		}
		body, err := json.Marshal(map[string]any{"model": run.Model, "version": run.Version, "dataset": run.Dataset,
			"run": run.Run, "timestamp": unixSeconds(run.Time), "records": recs})
		if err != nil {
			return err
		}
		if err := c.post(ctx, "/api/v1/evaluations", body, "application/json"); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "demo: %d offline runs sent (datasets train and main of models a and b)\n", len(d.Runs))

	shuffle := rand.New(rand.NewPCG(uint64(d.End.Unix()), 7))
	const steps = 60
	var pause time.Duration
	if c.cfg.Duration > 0 {
		pause = c.cfg.Duration / steps
	}
	byLabel := make([]int, 0, len(d.Records))
	for i := range d.Records {
		if d.Records[i].Labelled {
			byLabel = append(byLabel, i)
		}
	}
	slices.SortStableFunc(byLabel, func(x, y int) int { return d.Records[x].LabelAt.Compare(d.Records[y].LabelAt) })
	rw := newDemoScrapes(d)
	next, nextLabel, labels := 0, 0, 0
	for step := range steps {
		stepEnd := d.Start.Add(time.Duration(step+1) * time.Minute)
		var preds []map[string]any
		for ; next < len(d.Records) && d.Records[next].Time.Before(stepEnd); next++ {
			preds = append(preds, d.Records[next].predictionJSON())
		}
		if len(preds) > 0 {
			if err := c.post(ctx, "/api/v1/predictions", ndjson(preds), "application/x-ndjson"); err != nil {
				return err
			}
		}
		var fb []map[string]any
		for ; nextLabel < len(byLabel) && d.Records[byLabel[nextLabel]].LabelAt.Before(stepEnd); nextLabel++ {
			fb = append(fb, d.Records[byLabel[nextLabel]].feedbackJSON())
		}
		// A label is never earlier than its prediction, so every label
		// due by the step end has had its prediction sent.
		shuffle.Shuffle(len(fb), func(i, j int) { fb[i], fb[j] = fb[j], fb[i] })
		if len(fb) > 0 {
			if err := c.post(ctx, "/api/v1/feedback", ndjson(fb), "application/x-ndjson"); err != nil {
				return err
			}
			labels += len(fb)
		}
		if err := c.remoteWrite(ctx, rw.until(stepEnd)); err != nil {
			return err
		}
		if (step+1)%10 == 0 {
			fmt.Fprintf(w, "demo: %s of the hour sent: %d predictions, %d labels, %d remote-write samples\n",
				time.Duration(step+1)*time.Minute, next, labels, rw.sent)
		}
		if pause > 0 && step < steps-1 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(pause):
			}
		}
	}
	// The labels that arrive after the hour, shuffled.
	var late []map[string]any
	for ; nextLabel < len(byLabel); nextLabel++ {
		late = append(late, d.Records[byLabel[nextLabel]].feedbackJSON())
	}
	shuffle.Shuffle(len(late), func(i, j int) { late[i], late[j] = late[j], late[i] })
	for i := 0; i < len(late); i += 1000 {
		if err := c.post(ctx, "/api/v1/feedback", ndjson(late[i:min(i+1000, len(late))]), "application/x-ndjson"); err != nil {
			return err
		}
	}
	labels += len(late)
	d.RemoteSamples = rw.sent
	fmt.Fprintf(w, "demo: done: %d predictions, %d labels (%d late), %d remote-write samples\n", next, labels, len(late), rw.sent)
	return nil
}

// demoScrapes turns the predictions' latencies into the cumulative
// Prometheus histogram and counter a model server would expose, scraped
// every 15 seconds over the hour.
type demoScrapes struct {
	d        *demoData
	instance string
	next     time.Time // next scrape time
	i        int       // records observed so far
	buckets  map[string][]float64
	sum      map[string]float64
	count    map[string]float64
	sent     int
}

func newDemoScrapes(d *demoData) *demoScrapes {
	return &demoScrapes{d: d, instance: d.RemoteInstance, next: d.Start,
		buckets: map[string][]float64{"a": make([]float64, len(demoLatencyBuckets)), "b": make([]float64, len(demoLatencyBuckets))},
		sum:     map[string]float64{}, count: map[string]float64{}}
}

// until returns the scrapes in [next, t).
func (s *demoScrapes) until(t time.Time) []prompb.TimeSeries {
	series := map[string]*prompb.TimeSeries{}
	var order []string
	add := func(value float64, ts time.Time, kv ...string) {
		key := strings.Join(kv, "\xff")
		x, ok := series[key]
		if !ok {
			x = &prompb.TimeSeries{}
			for i := 0; i < len(kv); i += 2 {
				x.Labels = append(x.Labels, prompb.Label{Name: kv[i], Value: kv[i+1]})
			}
			slices.SortFunc(x.Labels, func(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) })
			series[key] = x
			order = append(order, key)
		}
		x.Samples = append(x.Samples, prompb.Sample{Value: value, Timestamp: ts.UnixMilli()})
		s.sent++
	}
	for ; s.next.Before(t); s.next = s.next.Add(15 * time.Second) {
		for ; s.i < len(s.d.Records) && !s.d.Records[s.i].Time.After(s.next); s.i++ {
			r := &s.d.Records[s.i]
			for k, le := range demoLatencyBuckets {
				if r.Latency <= le {
					s.buckets[r.Model][k]++
				}
			}
			s.sum[r.Model] += r.Latency
			s.count[r.Model]++
		}
		for _, m := range []string{"a", "b"} {
			base := []string{"job", "model-server", "instance", s.instance, "model", m}
			for k, le := range demoLatencyBuckets {
				add(s.buckets[m][k], s.next, append(base, "__name__", demoLatencyMetric+"_bucket", "le", strconv.FormatFloat(le, 'f', -1, 64))...)
			}
			add(s.count[m], s.next, append(base, "__name__", demoLatencyMetric+"_bucket", "le", "+Inf")...)
			add(s.sum[m], s.next, append(base, "__name__", demoLatencyMetric+"_sum")...)
			add(s.count[m], s.next, append(base, "__name__", demoLatencyMetric+"_count")...)
			add(s.count[m], s.next, append(base, "__name__", demoRequestsMetric, "code", "200")...)
		}
	}
	out := make([]prompb.TimeSeries, 0, len(order))
	for _, k := range order {
		out = append(out, *series[k])
	}
	return out
}

// remoteWrite posts one Prometheus remote-write 1.0 request.
func (c demoClient) remoteWrite(ctx context.Context, ts []prompb.TimeSeries) error {
	if len(ts) == 0 {
		return nil
	}
	req := prompb.WriteRequest{Timeseries: ts}
	raw, err := req.Marshal()
	if err != nil {
		return err
	}
	code, resp, err := c.do(ctx, http.MethodPost, "/api/v1/write", "application/x-protobuf", snappy.Encode(nil, raw), c.cfg.WriteToken,
		map[string]string{"Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0"})
	if err != nil {
		return fmt.Errorf("remote write: %w", err)
	}
	if code/100 != 2 {
		return fmt.Errorf("remote write: %d %s", code, strings.TrimSpace(string(resp)))
	}
	return nil
}

// demoQuestions are the four questions of the brief, asked of the demo
// data (docs/query-language.md).
var demoQuestions = []struct{ What, Query string }{
	{"1. importance-weighted drift of model b in the eu slice, last 60 minutes",
		`importance_weighted(psi(evalstore_feature{model="b",slice="eu"}[1h]))`},
	{"2. online accuracy (7 days) minus offline accuracy (train), model b, eu",
		`accuracy<model="b",slice="eu">[7d] - offline(accuracy<model="b">)`},
	{"3. every metric, A minus B, per slice of the main evaluation set",
		`offline(all_metrics{model="a"}, "main") - on (metric, slice) offline(all_metrics{model="b"}, "main")`},
	{"4. business metrics A vs B, last 60 minutes: Welch t-test with a 95 % interval",
		`ttest(sum by (measure) (evalstore_measure_moments{model="a",slice="all"}[1h]), sum by (measure) (evalstore_measure_moments{model="b",slice="all"}[1h]))`},
}

func printDemoSummary(w io.Writer, d *demoData) {
	labelled, perModel := 0, map[string]int{}
	for _, r := range d.Records {
		perModel[r.Model]++
		if r.Labelled {
			labelled++
		}
	}
	evals := 0
	for _, r := range d.Runs {
		evals += len(r.Records)
	}
	fmt.Fprintf(w, "Sent %d predictions (a: %d, b: %d) from %s to %s, %d labels (%.0f %%, delayed; the rest never arrive),\n",
		len(d.Records), perModel["a"], perModel["b"], d.Start.Format(time.TimeOnly), d.End.Format(time.TimeOnly),
		labelled, 100*float64(labelled)/float64(len(d.Records)))
	fmt.Fprintf(w, "%d offline runs (%d records; datasets train and main), %d remote-written samples (%s, %s).\n",
		len(d.Runs), evals, d.RemoteSamples, demoLatencyMetric, demoRequestsMetric)
	fmt.Fprintf(w, "monthly_spend drifts in slice eu from %s on.\n", d.DriftAt.Format(time.TimeOnly))
	if !d.Declared {
		fmt.Fprintln(w, "Slices: only \"all\" (the server has no demo definitions; see `evalstore demo -h`).")
	}
	fmt.Fprintln(w, "\nAsk it (evalstore query '...', or Grafana: docs/grafana.md):")
	for _, q := range demoQuestions {
		fmt.Fprintf(w, "\n# %s\n%s\n", q.What, q.Query)
	}
	fmt.Fprintf(w, "\n# remote-written p95 latency per model\nhistogram_quantile(0.95, sum by (model, le) (rate(%s_bucket[5m])))\n", demoLatencyMetric)
}
