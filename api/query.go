package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"evalstore/query"
)

// queryData is the data of a query answer.
type queryData struct {
	ResultType query.ValueType `json:"resultType"`
	Result     query.Value     `json:"result"`
}

func (a *API) query(r *http.Request, b *Backend) result {
	limit, err := parseLimit(r.FormValue("limit"))
	if err != nil {
		return invalidParam(err, "limit")
	}
	ts, err := parseTimeParam(r, "time", a.opts.Now())
	if err != nil {
		return invalidParam(err, "time")
	}
	ctx, cancel, aerr := withTimeout(r)
	if aerr != nil {
		return result{err: aerr}
	}
	defer cancel()

	start := time.Now()
	res, err := a.opts.Engine.Instant(ctx, b.Queryable, r.FormValue("query"), ts)
	a.metrics.observeQuery("instant", start, err)
	if err != nil {
		return result{err: queryError(err)}
	}
	return queryResult(res, limit)
}

func (a *API) queryRange(r *http.Request, b *Backend) result {
	limit, err := parseLimit(r.FormValue("limit"))
	if err != nil {
		return invalidParam(err, "limit")
	}
	start, err := parseTime(r.FormValue("start"))
	if err != nil {
		return invalidParam(err, "start")
	}
	end, err := parseTime(r.FormValue("end"))
	if err != nil {
		return invalidParam(err, "end")
	}
	if end.Before(start) {
		return invalidParam(errors.New("end timestamp must not be before start time"), "end")
	}
	step, err := parseDuration(r.FormValue("step"))
	if err != nil {
		return invalidParam(err, "step")
	}
	if step <= 0 {
		return invalidParam(errors.New("zero or negative query resolution step widths are not accepted. Try a positive integer"), "step")
	}
	if end.Sub(start)/step > maxPoints {
		return badData(errors.New("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"))
	}
	ctx, cancel, aerr := withTimeout(r)
	if aerr != nil {
		return result{err: aerr}
	}
	defer cancel()

	t0 := time.Now()
	res, err := a.opts.Engine.Range(ctx, b.Queryable, r.FormValue("query"), start, end, step)
	a.metrics.observeQuery("range", t0, err)
	if err != nil {
		return result{err: queryError(err)}
	}
	return queryResult(res, limit)
}

func withTimeout(r *http.Request) (context.Context, context.CancelFunc, *apiError) {
	d, aerr := queryTimeout(r)
	if aerr != nil {
		return nil, nil, aerr
	}
	if d > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		return ctx, cancel, nil
	}
	return r.Context(), func() {}, nil
}

// queryResult applies the limit parameter as Prometheus's truncateResults
// does (series of a vector or matrix) and builds the answer.
func queryResult(res query.Result, limit int) result {
	warnings := res.Warnings
	v := res.Value
	if limit > 0 {
		truncated := false
		switch x := v.(type) {
		case query.Vector:
			if len(x) > limit {
				v, truncated = x[:limit], true
			}
		case query.Matrix:
			if len(x) > limit {
				v, truncated = x[:limit], true
			}
		}
		if truncated {
			warnings = append(warnings, "results truncated due to limit")
		}
	}
	return result{data: &queryData{ResultType: v.Type(), Result: v}, warnings: warnings}
}

// queryExemplars checks its parameters like Prometheus and answers an empty
// list: evalstore validates remote-written exemplars but does not store them.
func (a *API) queryExemplars(r *http.Request, _ *Backend) result {
	start, err := parseTimeMillisOK(r, "start", minTime)
	if err != nil {
		return invalidParam(err, "start")
	}
	end, err := parseTimeMillisOK(r, "end", maxTime)
	if err != nil {
		return invalidParam(err, "end")
	}
	if end.Before(start) {
		return badData(errors.New("end timestamp must not be before start timestamp"))
	}
	if _, _, err := query.Check(r.FormValue("query")); err != nil {
		return badData(err)
	}
	return result{data: []struct{}{}}
}

func (a *API) formatQuery(r *http.Request, _ *Backend) result {
	expr, _, err := query.Check(r.FormValue("query"))
	if err != nil {
		return invalidParam(err, "query")
	}
	return result{data: fmt.Sprint(expr)}
}
