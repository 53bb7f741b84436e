package query

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	promparser "github.com/prometheus/prometheus/promql/parser"

	"evalstore/definitions"
)

// TestScripts runs query/testdata/*.test: promqltest-style scripts with
//
//	load <step>                          then indented series lines
//	clear                                drop all data
//	eval instant at <dur> <expr>         then expected samples: {labels} value, or a bare number for a scalar
//	eval_ordered instant at <dur> <expr> the same, in order
//	eval range from <dur> to <dur> step <dur> <expr>
//	                                     then expected series in series notation (_ = no point)
//	eval_fail instant at <dur> <expr>    then optionally: error <substring>
//	definitions                          then an indented definitions YAML file
//	load_predictions                     then one raw prediction per line:
//	    <time> key=value ...             (see parsePredictionRow), turned into
//	                                     the ingest contract's sketch series
//
// load_predictions replaces the sketch data of the store (rows of every
// load_predictions block since the last clear are kept): put float load
// blocks after it.
//
// Expected values are computed by hand from the loaded data (comments in
// the files show the arithmetic), never from the engine.
func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.test")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) { runScript(t, f) })
	}
}

type scriptCmd struct {
	line   int
	head   string
	body   []string
	bodyAt []int
	raw    []string // body lines with their indentation
}

func parseScript(t *testing.T, path string) []scriptCmd {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cmds []scriptCmd
	for i, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimRight(raw, " \t\r")
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(cmds) == 0 {
				t.Fatalf("%s:%d: indented line outside a command", path, i+1)
			}
			c := &cmds[len(cmds)-1]
			c.body = append(c.body, trimmed)
			c.bodyAt = append(c.bodyAt, i+1)
			c.raw = append(c.raw, line)
			continue
		}
		cmds = append(cmds, scriptCmd{line: i + 1, head: trimmed})
	}
	return cmds
}

func parseDur(t *testing.T, where, s string) time.Duration {
	d, err := model.ParseDuration(s)
	if err != nil {
		t.Fatalf("%s: bad duration %q: %v", where, s, err)
	}
	return time.Duration(d)
}

func runScript(t *testing.T, path string) {
	defs := definitions.Empty()
	e := New(Options{Definitions: func() *definitions.Definitions { return defs }})
	st := NewMemStorage()
	var rows []rawRec
	p := promparser.NewParser(promparser.Options{})
	ctx := context.Background()
	for _, c := range parseScript(t, path) {
		where := fmt.Sprintf("%s:%d", filepath.Base(path), c.line)
		fields := strings.Fields(c.head)
		switch {
		case fields[0] == "clear":
			st = NewMemStorage()
			rows = nil
		case fields[0] == "definitions":
			defs = mustDefs(t, dedent(c.raw))
		case fields[0] == "load_predictions":
			for k, line := range c.body {
				r, err := parsePredictionRow(line)
				if err != nil {
					t.Fatalf("%s:%d: %v", filepath.Base(path), c.bodyAt[k], err)
				}
				rows = append(rows, r)
			}
			sim := newIngestSim(defs)
			sim.add(t, rows...)
			st = sim.store(t, 0)
		case fields[0] == "load":
			step := parseDur(t, where, fields[1])
			for k, line := range c.body {
				if err := addSeriesLine(st, p, line, step); err != nil {
					t.Fatalf("%s:%d: %v", filepath.Base(path), c.bodyAt[k], err)
				}
			}
		case fields[0] == "eval" || fields[0] == "eval_ordered" || fields[0] == "eval_fail":
			var res Result
			var err error
			var expr string
			isRange := fields[1] == "range"
			var start, end, step time.Duration
			if isRange {
				// eval range from A to B step S expr
				if len(fields) < 8 || fields[2] != "from" || fields[4] != "to" || fields[6] != "step" {
					t.Fatalf("%s: want: eval range from A to B step S expr", where)
				}
				start, end, step = parseDur(t, where, fields[3]), parseDur(t, where, fields[5]), parseDur(t, where, fields[7])
				expr = strings.TrimSpace(strings.SplitN(c.head, fields[7], 2)[1])
				res, err = e.Range(ctx, st, expr, ms(start), ms(end), step)
			} else {
				if len(fields) < 5 || fields[1] != "instant" || fields[2] != "at" {
					t.Fatalf("%s: want: eval instant at T expr", where)
				}
				start = parseDur(t, where, fields[3])
				expr = strings.TrimSpace(strings.SplitN(c.head, " "+fields[3]+" ", 2)[1])
				res, err = e.Instant(ctx, st, expr, ms(start))
			}
			if fields[0] == "eval_fail" {
				if err == nil {
					t.Errorf("%s: %s: want an error, got %v", where, expr, res.Value)
				} else if len(c.body) > 0 {
					want := strings.TrimSpace(strings.TrimPrefix(c.body[0], "error"))
					if !strings.Contains(err.Error(), want) {
						t.Errorf("%s: %s: error %q, want it to contain %q", where, expr, err, want)
					}
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: %s: %v", where, expr, err)
				continue
			}
			if msg := checkExpected(p, res, c.body, isRange, start, step, fields[0] == "eval_ordered"); msg != "" {
				t.Errorf("%s: %s: %s", where, expr, msg)
			}
		default:
			t.Fatalf("%s: unknown command %q", where, fields[0])
		}
	}
}

func checkExpected(p promparser.Parser, res Result, body []string, isRange bool, start, step time.Duration, ordered bool) string {
	type exp struct {
		metric string
		pts    []FPoint
		hpts   []HPoint
	}
	var want []exp
	scalar := false
	for _, line := range body {
		if f, err := strconv.ParseFloat(line, 64); err == nil || strings.EqualFold(line, "nan") {
			if err != nil {
				f = math.NaN()
			}
			scalar = true
			want = append(want, exp{"", []FPoint{{T: start.Milliseconds(), F: f}}, nil})
			continue
		}
		lset, vals, err := p.ParseSeriesDesc(line)
		if err != nil {
			return fmt.Sprintf("bad expected line %q: %v", line, err)
		}
		var pts []FPoint
		var hpts []HPoint
		for i, v := range vals {
			if v.Omitted {
				continue
			}
			t := start.Milliseconds()
			if isRange {
				t += int64(i) * step.Milliseconds()
			}
			if v.Histogram != nil {
				hpts = append(hpts, HPoint{T: t, H: v.Histogram})
				continue
			}
			pts = append(pts, FPoint{T: t, F: v.Value})
		}
		want = append(want, exp{lset.String(), pts, hpts})
	}
	var got []exp
	switch v := res.Value.(type) {
	case Scalar:
		if !scalar || len(want) != 1 {
			return fmt.Sprintf("got scalar %v, want %v", v.V, body)
		}
		got = append(got, exp{"", []FPoint{{T: v.T, F: v.V}}, nil})
	case Vector:
		for _, s := range v {
			if s.H != nil {
				got = append(got, exp{s.Metric.String(), nil, []HPoint{{T: s.T, H: s.H}}})
				continue
			}
			got = append(got, exp{s.Metric.String(), []FPoint{{T: s.T, F: s.F}}, nil})
		}
	case Matrix:
		for _, s := range v {
			got = append(got, exp{s.Metric.String(), s.Floats, s.Histograms})
		}
	default:
		return fmt.Sprintf("unexpected value %T", res.Value)
	}
	if !ordered {
		for _, l := range [][]exp{got, want} {
			slices.SortFunc(l, func(a, b exp) int { return strings.Compare(a.metric, b.metric) })
		}
	}
	if len(got) != len(want) {
		return fmt.Sprintf("got %d series %v, want %d %v", len(got), got, len(want), want)
	}
	for i := range got {
		if got[i].metric != want[i].metric {
			return fmt.Sprintf("series %d: got %s, want %s", i, got[i].metric, want[i].metric)
		}
		if len(got[i].pts) != len(want[i].pts) {
			return fmt.Sprintf("%s: got points %v, want %v", got[i].metric, got[i].pts, want[i].pts)
		}
		for j := range got[i].pts {
			g, w := got[i].pts[j], want[i].pts[j]
			if g.T != w.T || !sameFloat(g.F, w.F, 1e-9) {
				return fmt.Sprintf("%s: got points %v, want %v", got[i].metric, got[i].pts, want[i].pts)
			}
		}
		if len(got[i].hpts) != len(want[i].hpts) {
			return fmt.Sprintf("%s: got histograms %v, want %v", got[i].metric, got[i].hpts, want[i].hpts)
		}
		for j := range got[i].hpts {
			g, w := got[i].hpts[j], want[i].hpts[j]
			if g.T != w.T || !histogramsEqual(g.H, w.H) {
				return fmt.Sprintf("%s: got histograms %v, want %v", got[i].metric, got[i].hpts, want[i].hpts)
			}
		}
	}
	return ""
}

// dedent removes the common indentation of lines.
func dedent(lines []string) string {
	ind := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " \t"))
		if ind < 0 || n < ind {
			ind = n
		}
	}
	var b strings.Builder
	for _, l := range lines {
		if len(l) >= ind && ind > 0 {
			l = l[ind:]
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

// parsePredictionRow reads one load_predictions row:
//
//	<time> model=m version=v [slices=eu,us] [label=1] [pred=1] [score=0.9]
//	       [source=offline dataset=train run=r1] [delay=30]
//	       [y=12.5 yhat=11 oldy=19] [f.x=1.5] [c.country=de] [m.revenue=3]
//
// time is a duration from 0 (10m, 2d3h); a row with label (or y) is
// labelled; f.* are numeric features, c.* categorical features, m.*
// measures; yhat makes the row a regression prediction.
func parsePredictionRow(line string) (rawRec, error) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return rawRec{}, fmt.Errorf("want: <time> key=value ..., got %q", line)
	}
	d, err := model.ParseDuration(f[0])
	if err != nil {
		return rawRec{}, err
	}
	r := rawRec{t: time.Duration(d).Milliseconds(), score: math.NaN(), numeric: map[string]float64{}, category: map[string]string{}, measures: map[string]float64{}}
	num := func(k, v string) (float64, error) {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", k, err)
		}
		return x, nil
	}
	for _, kv := range f[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return rawRec{}, fmt.Errorf("want key=value, got %q", kv)
		}
		var err error
		switch {
		case k == "model":
			r.model = v
		case k == "version":
			r.version = v
		case k == "slices":
			r.slices = strings.Split(v, ",")
		case k == "label":
			r.label, r.labelled = v, true
		case k == "pred":
			r.pred = v
		case k == "score":
			r.score, err = num(k, v)
		case k == "source":
			r.source = v
		case k == "dataset":
			r.dataset = v
		case k == "run":
			r.run = v
		case k == "delay":
			r.delay, err = num(k, v)
		case k == "y":
			r.y, err = num(k, v)
			r.labelled = true
		case k == "yhat":
			r.yhat, err = num(k, v)
			r.regression = true
		case k == "oldy":
			var o float64
			o, err = num(k, v)
			r.oldY = append(r.oldY, o)
		case strings.HasPrefix(k, "f."):
			r.numeric[k[2:]], err = num(k, v)
		case strings.HasPrefix(k, "c."):
			r.category[k[2:]] = v
		case strings.HasPrefix(k, "m."):
			r.measures[k[2:]], err = num(k, v)
		default:
			return rawRec{}, fmt.Errorf("unknown key %q", k)
		}
		if err != nil {
			return rawRec{}, err
		}
	}
	return r, nil
}
