package api

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"evalstore/definitions"
	"evalstore/tsdb/series"
)

const truncatedWarning = "results truncated due to limit"

func errorParsingForm(err error) error { return fmt.Errorf("error parsing form values: %w", err) }

// rangeParams reads the limit, start and end parameters shared by the
// metadata endpoints.
func rangeParams(r *http.Request) (limit int, mint, maxt int64, res *result) {
	limit, err := parseLimit(r.FormValue("limit"))
	if err != nil {
		e := invalidParam(err, "limit")
		return 0, 0, 0, &e
	}
	start, err := parseTimeParam(r, "start", minTime)
	if err != nil {
		e := invalidParam(err, "start")
		return 0, 0, 0, &e
	}
	end, err := parseTimeParam(r, "end", maxTime)
	if err != nil {
		e := invalidParam(err, "end")
		return 0, 0, 0, &e
	}
	return limit, start.UnixMilli(), end.UnixMilli(), nil
}

// labelSets collects the answer of fn over every matcher set (one call
// with no matchers when there are none), sorted and deduplicated.
func labelSets(sets [][]*labels.Matcher, fn func(ms ...*labels.Matcher) ([]string, error)) ([]string, error) {
	if len(sets) == 0 {
		sets = [][]*labels.Matcher{nil}
	}
	var out []string
	for _, ms := range sets {
		vals, err := fn(ms...)
		if err != nil {
			return nil, err
		}
		out = append(out, vals...)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if out == nil {
		out = []string{}
	}
	return out, nil
}

func truncate(vals []string, limit int) ([]string, []string) {
	if limit > 0 && len(vals) > limit {
		return vals[:limit], []string{truncatedWarning}
	}
	return vals, nil
}

func (a *API) labelNames(r *http.Request, b *Backend) result {
	limit, mint, maxt, bad := rangeParams(r)
	if bad != nil {
		return *bad
	}
	sets, err := parseMatchers(r.Form["match[]"])
	if err != nil {
		return badData(err)
	}
	q, err := b.Queryable.Querier(mint, maxt)
	if err != nil {
		return errResult(errorInternal, err)
	}
	defer a.closeQuerier(q)
	names, err := labelSets(sets, func(ms ...*labels.Matcher) ([]string, error) {
		return q.LabelNames(r.Context(), ms...)
	})
	if err != nil {
		return errResult(errorExec, err)
	}
	names, warn := truncate(names, limit)
	return result{data: names, warnings: warn}
}

func (a *API) labelValues(r *http.Request, b *Backend) result {
	name := r.PathValue("name")
	if strings.HasPrefix(name, "U__") {
		name = model.UnescapeName(name, model.ValueEncodingEscaping)
	}
	if !model.UTF8Validation.IsValidLabelName(name) {
		return badData(fmt.Errorf("invalid label name: %q", name))
	}
	limit, mint, maxt, bad := rangeParams(r)
	if bad != nil {
		return *bad
	}
	sets, err := parseMatchers(r.Form["match[]"])
	if err != nil {
		return badData(err)
	}
	q, err := b.Queryable.Querier(mint, maxt)
	if err != nil {
		return errResult(errorInternal, err)
	}
	defer a.closeQuerier(q)
	vals, err := labelSets(sets, func(ms ...*labels.Matcher) ([]string, error) {
		return q.LabelValues(r.Context(), name, ms...)
	})
	if err != nil {
		return errResult(errorExec, err)
	}
	vals, warn := truncate(vals, limit)
	return result{data: vals, warnings: warn}
}

func (a *API) series(r *http.Request, b *Backend) result {
	if len(r.Form["match[]"]) == 0 {
		return badData(errors.New("no match[] parameter provided"))
	}
	limit, mint, maxt, bad := rangeParams(r)
	if bad != nil {
		return *bad
	}
	sets, err := parseMatchers(r.Form["match[]"])
	if err != nil {
		return invalidParam(err, "match[]")
	}
	q, err := b.Queryable.Querier(mint, maxt)
	if err != nil {
		return errResult(errorInternal, err)
	}
	defer a.closeQuerier(q)
	var out []labels.Labels
	for _, ms := range sets {
		ss := q.Select(r.Context(), series.Hints{Mint: mint, Maxt: maxt}, ms...)
		for ss.Next() {
			out = append(out, ss.At().Meta().Labels.Copy())
		}
		if err := ss.Err(); err != nil {
			if ctxErr := r.Context().Err(); ctxErr != nil {
				return errResult(errorCanceled, ctxErr)
			}
			return errResult(errorExec, err)
		}
	}
	if len(sets) > 1 {
		slices.SortFunc(out, labels.Compare)
		out = slices.CompactFunc(out, labels.Equal)
	}
	if out == nil {
		out = []labels.Labels{}
	}
	var warn []string
	if limit > 0 && len(out) > limit {
		out, warn = out[:limit], []string{truncatedWarning}
	}
	return result{data: out, warnings: warn}
}

// metadata answers an empty map: remote-written metadata is not stored and
// sketch families have no Prometheus type. Grafana treats {} as "no help
// text".
func (a *API) metadata(r *http.Request, _ *Backend) result {
	for _, p := range []string{"limit", "limit_per_metric"} {
		if s := r.FormValue(p); s != "" {
			if _, err := strconv.Atoi(s); err != nil {
				return badData(fmt.Errorf("%s must be a number", p))
			}
		}
	}
	return result{data: map[string]any{}}
}

// rules and alerts come from the rule manager; without one they are empty,
// as in a Prometheus with no rule files.
func (a *API) rules(r *http.Request, b *Backend) result {
	if _, err := parseMatchersOptional(r.Form["match[]"]); err != nil {
		return badData(err)
	}
	if b.Rules == nil {
		return result{data: map[string]any{"groups": []any{}}}
	}
	data, err := b.Rules.RulesData(r.Form)
	if err != nil {
		return badData(err)
	}
	return result{data: data}
}

func parseMatchersOptional(ss []string) ([][]*labels.Matcher, error) {
	if len(ss) == 0 {
		return nil, nil
	}
	return parseMatchers(ss)
}

func (a *API) alerts(_ *http.Request, b *Backend) result {
	if b.Rules == nil {
		return result{data: map[string]any{"alerts": []any{}}}
	}
	return result{data: b.Rules.AlertsData()}
}

func (a *API) buildInfo(*http.Request, *Backend) result { return result{data: a.opts.BuildInfo} }

func (a *API) config(*http.Request, *Backend) result {
	return result{data: map[string]string{"yaml": a.opts.ConfigYAML}}
}

func (a *API) flags(*http.Request, *Backend) result { return result{data: a.opts.Flags} }

// runtimeInfo is Prometheus's RuntimeInfo.
type runtimeInfo struct {
	StartTime           time.Time `json:"startTime"`
	CWD                 string    `json:"CWD"`
	Hostname            string    `json:"hostname"`
	ServerTime          time.Time `json:"serverTime"`
	ReloadConfigSuccess bool      `json:"reloadConfigSuccess"`
	LastConfigTime      time.Time `json:"lastConfigTime"`
	CorruptionCount     int64     `json:"corruptionCount"`
	GoroutineCount      int       `json:"goroutineCount"`
	GOMAXPROCS          int       `json:"GOMAXPROCS"`
	GOMEMLIMIT          int64     `json:"GOMEMLIMIT"`
	GOGC                string    `json:"GOGC"`
	GODEBUG             string    `json:"GODEBUG"`
	StorageRetention    string    `json:"storageRetention"`
}

func (a *API) runtimeInfo(*http.Request, *Backend) result {
	cwd, _ := os.Getwd()
	host, _ := os.Hostname()
	ri := runtimeInfo{
		StartTime:           a.started,
		CWD:                 cwd,
		Hostname:            host,
		ServerTime:          a.opts.Now().UTC(),
		ReloadConfigSuccess: !a.reloadErr.Load(),
		LastConfigTime:      a.started,
		GoroutineCount:      runtime.NumGoroutine(),
		GOMAXPROCS:          runtime.GOMAXPROCS(0),
		GOMEMLIMIT:          debug.SetMemoryLimit(-1),
		GOGC:                os.Getenv("GOGC"),
		GODEBUG:             os.Getenv("GODEBUG"),
		StorageRetention:    a.opts.StorageRetention,
	}
	if a.opts.Definitions != nil {
		if v := a.opts.Definitions.Version(); !v.LoadedAt.IsZero() {
			ri.LastConfigTime = v.LoadedAt
		}
	}
	return result{data: ri}
}

func (a *API) noDefinitions() result {
	return errResult(errorNotFound, errors.New("no definitions store configured"))
}

func (a *API) definitions(*http.Request, *Backend) result {
	if a.opts.Definitions == nil {
		return a.noDefinitions()
	}
	return result{data: a.opts.Definitions.Current().View()}
}

// reloadDefinitions re-reads the definitions file (as SIGHUP does). An
// invalid file is bad_data whose data lists every problem; the definitions
// in force are unchanged.
func (a *API) reloadDefinitions(*http.Request, *Backend) result {
	if a.opts.Definitions == nil {
		return a.noDefinitions()
	}
	v, err := a.ReloadDefinitions()
	if err != nil {
		var de *definitions.Error
		if errors.As(err, &de) {
			return result{err: &apiError{errorBadData, err}, data: map[string]any{"problems": de.Problems}}
		}
		return badData(err)
	}
	return result{data: map[string]any{"version": v}}
}

// ReloadDefinitions re-reads the definitions file, logs and counts the
// outcome. SIGHUP and POST /api/v1/definitions/reload call it.
func (a *API) ReloadDefinitions() (definitions.Version, error) {
	if a.opts.Definitions == nil {
		return definitions.Version{}, errors.New("no definitions store configured")
	}
	v, err := a.opts.Definitions.Reload()
	a.reloadErr.Store(err != nil)
	a.metrics.reload(err)
	if err != nil {
		a.log.Error("definitions reload failed; the previous definitions stay in force", "err", err)
		return v, err
	}
	a.log.Info("definitions loaded", "hash", v.Hash, "source", v.Source)
	return v, nil
}

// modelInfo is one entry of /api/v1/models.
type modelInfo struct {
	Name     string   `json:"name"`
	Declared bool     `json:"declared"`
	Task     string   `json:"task,omitempty"`
	Versions []string `json:"versions"`
}

// models lists the models of the definitions and every model with data,
// with the versions seen in storage.
func (a *API) models(r *http.Request, b *Backend) result {
	q, err := b.Queryable.Querier(minTime.UnixMilli(), maxTime.UnixMilli())
	if err != nil {
		return errResult(errorInternal, err)
	}
	defer a.closeQuerier(q)
	byName := map[string]*modelInfo{}
	get := func(n string) *modelInfo {
		if m, ok := byName[n]; ok {
			return m
		}
		m := &modelInfo{Name: n, Versions: []string{}}
		byName[n] = m
		return m
	}
	if a.opts.Definitions != nil {
		for _, m := range a.opts.Definitions.Current().Models() {
			mi := get(m.Name)
			mi.Declared, mi.Task = true, string(m.Task)
		}
	}
	names, err := q.LabelValues(r.Context(), "model")
	if err != nil {
		return errResult(errorExec, err)
	}
	for _, n := range names {
		mi := get(n)
		vs, err := q.LabelValues(r.Context(), "version", labels.MustNewMatcher(labels.MatchEqual, "model", n))
		if err != nil {
			return errResult(errorExec, err)
		}
		mi.Versions = append(mi.Versions[:0], vs...)
	}
	out := make([]*modelInfo, 0, len(byName))
	for _, m := range byName {
		out = append(out, m)
	}
	slices.SortFunc(out, func(x, y *modelInfo) int { return strings.Compare(x.Name, y.Name) })
	return result{data: out}
}

// sliceInfo is one entry of /api/v1/slices.
type sliceInfo struct {
	Name     string   `json:"name"`
	Declared bool     `json:"declared"`
	Where    string   `json:"where,omitempty"`
	Models   []string `json:"models"`
}

// slices lists the slices of the definitions and every slice with data.
func (a *API) slices(r *http.Request, b *Backend) result {
	q, err := b.Queryable.Querier(minTime.UnixMilli(), maxTime.UnixMilli())
	if err != nil {
		return errResult(errorInternal, err)
	}
	defer a.closeQuerier(q)
	byName := map[string]*sliceInfo{}
	if a.opts.Definitions != nil {
		for _, s := range a.opts.Definitions.Current().Slices() {
			ms := slices.Clone(s.Models)
			if ms == nil {
				ms = []string{}
			}
			byName[s.Name] = &sliceInfo{Name: s.Name, Declared: true, Where: s.Where, Models: ms}
		}
	}
	names, err := q.LabelValues(r.Context(), "slice")
	if err != nil {
		return errResult(errorExec, err)
	}
	for _, n := range names {
		if _, ok := byName[n]; !ok {
			byName[n] = &sliceInfo{Name: n, Models: []string{}}
		}
	}
	out := make([]*sliceInfo, 0, len(byName))
	for _, s := range byName {
		out = append(out, s)
	}
	slices.SortFunc(out, func(x, y *sliceInfo) int { return strings.Compare(x.Name, y.Name) })
	return result{data: out}
}

// closeQuerier releases a querier after a response is computed; a failure
// cannot change the response any more, so it is logged.
func (a *API) closeQuerier(q series.Querier) {
	if err := q.Close(); err != nil {
		a.log.Warn("closing storage querier", "err", err)
	}
}
