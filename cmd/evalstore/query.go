package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// queryCmd runs one instant or range query against a running server and
// prints the result as a table (or the server's JSON with -o json).
func queryCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("query", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: evalstore query [flags] 'EXPR'\n\nRuns EXPR at -time (instant) or over -start..-end every -step (range).\n\n")
		fs.PrintDefaults()
	}
	server := fs.String("server", "http://localhost"+DefaultListen, "evalstore URL")
	at := fs.String("time", "", "evaluation time (RFC 3339 or Unix seconds; default now)")
	start := fs.String("start", "", "range start (RFC 3339, Unix seconds, or a duration before -end such as 1h)")
	end := fs.String("end", "", "range end (default now)")
	step := fs.Duration("step", time.Minute, "range step")
	token := fs.String("token", os.Getenv("EVALSTORE_READ_TOKEN"), "bearer token (env EVALSTORE_READ_TOKEN)")
	user := fs.String("user", "", "basic-auth user (password from env EVALSTORE_READ_PASSWORD)")
	output := fs.String("o", "table", "output: table or json")
	timeout := fs.Duration("timeout", time.Minute, "request timeout")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 || (*output != "table" && *output != "json") {
		fs.Usage()
		return 2
	}
	expr := fs.Arg(0)
	now := time.Now()
	endT, err := cliTime(*end, now, now)
	if err != nil {
		fmt.Fprintf(stderr, "evalstore query: -end: %v\n", err)
		return 2
	}
	rt := http.RoundTripper(http.DefaultTransport)
	if *token != "" || *user != "" {
		rt = cliAuth{token: *token, user: *user, password: os.Getenv("EVALSTORE_READ_PASSWORD")}
	}
	c, err := promapi.NewClient(promapi.Config{Address: *server, RoundTripper: rt})
	if err != nil {
		fmt.Fprintf(stderr, "evalstore query: %v\n", err)
		return 2
	}
	api := v1.NewAPI(c)
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	var v model.Value
	var warnings v1.Warnings
	if *start != "" {
		startT, err := cliTime(*start, endT, now)
		if err != nil {
			fmt.Fprintf(stderr, "evalstore query: -start: %v\n", err)
			return 2
		}
		v, warnings, _, err = api.QueryRange(ctx, expr, v1.Range{Start: startT, End: endT, Step: *step})
		if err != nil {
			return queryFailed(stderr, err)
		}
	} else {
		atT, err := cliTime(*at, now, now)
		if err != nil {
			fmt.Fprintf(stderr, "evalstore query: -time: %v\n", err)
			return 2
		}
		v, warnings, _, err = api.Query(ctx, expr, atT)
		if err != nil {
			return queryFailed(stderr, err)
		}
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"resultType": v.Type().String(), "result": v}); err != nil {
			fmt.Fprintf(stderr, "evalstore query: %v\n", err)
			return 1
		}
		return 0
	}
	printTable(stdout, v)
	return 0
}

func queryFailed(stderr io.Writer, err error) int {
	var ae *v1.Error
	if errors.As(err, &ae) && ae.Detail != "" {
		fmt.Fprintf(stderr, "evalstore query: %s: %s\n", ae.Msg, strings.TrimSpace(ae.Detail))
	} else {
		fmt.Fprintf(stderr, "evalstore query: %v\n", err)
	}
	return 1
}

// cliTime reads RFC 3339, Unix seconds, or a duration before ref ("1h").
func cliTime(s string, ref, now time.Time) (time.Time, error) {
	if s == "" {
		return now, nil
	}
	if d, err := model.ParseDuration(s); err == nil {
		return ref.Add(-time.Duration(d)), nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return time.UnixMilli(int64(math.Round(f * 1000))), nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

type cliAuth struct{ token, user, password string }

func (a cliAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if a.token != "" {
		r.Header.Set("Authorization", "Bearer "+a.token)
	} else {
		r.SetBasicAuth(a.user, a.password)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// printTable writes one row per sample: a column per label, then the time
// (range results) and the value.
func printTable(w io.Writer, v model.Value) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	switch x := v.(type) {
	case *model.Scalar:
		fmt.Fprintf(tw, "VALUE\n%s\n", x.Value)
	case *model.String:
		fmt.Fprintf(tw, "VALUE\n%s\n", x.Value)
	case model.Vector:
		metrics := make([]model.Metric, len(x))
		for i, s := range x {
			metrics[i] = s.Metric
		}
		names := labelColumns(metrics)
		fmt.Fprintln(tw, header(names, "VALUE"))
		for _, s := range x {
			fmt.Fprintln(tw, row(s.Metric, names, s.Value.String()))
		}
	case model.Matrix:
		metrics := make([]model.Metric, len(x))
		for i, s := range x {
			metrics[i] = s.Metric
		}
		names := labelColumns(metrics)
		fmt.Fprintln(tw, header(names, "TIME\tVALUE"))
		for _, s := range x {
			for _, p := range s.Values {
				fmt.Fprintln(tw, row(s.Metric, names, p.Timestamp.Time().UTC().Format(time.RFC3339)+"\t"+p.Value.String()))
			}
		}
	}
}

// labelColumns are the label names of the result, the metric name first.
func labelColumns(ms []model.Metric) []string {
	set := map[string]bool{}
	for _, m := range ms {
		for n := range m {
			set[string(n)] = true
		}
	}
	var names []string
	for n := range set {
		if n != model.MetricNameLabel {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	if set[model.MetricNameLabel] {
		names = append([]string{model.MetricNameLabel}, names...)
	}
	return names
}

func header(names []string, tail string) string {
	cols := make([]string, 0, len(names)+1)
	for _, n := range names {
		if n == model.MetricNameLabel {
			n = "METRIC"
		}
		cols = append(cols, strings.ToUpper(n))
	}
	return strings.Join(append(cols, tail), "\t")
}

func row(m model.Metric, names []string, tail string) string {
	cols := make([]string, 0, len(names)+1)
	for _, n := range names {
		v := string(m[model.LabelName(n)])
		if v == "" {
			v = "-"
		}
		cols = append(cols, v)
	}
	return strings.Join(append(cols, tail), "\t")
}
