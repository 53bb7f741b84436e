package api

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"evalstore/query/parser"
)

// minTime and maxTime are Prometheus's defaults for optional ranges (its
// MinTime and MaxTime, including their historical offsets, so the same
// strings round-trip).
var (
	minTime = time.Unix(math.MinInt64/1000+62135596801, 0).UTC()
	maxTime = time.Unix(math.MaxInt64/1000-62135596801, 999999999).UTC()

	minTimeFormatted = minTime.Format(time.RFC3339Nano)
	maxTimeFormatted = maxTime.Format(time.RFC3339Nano)
)

// maxPoints is Prometheus's bound on the steps of a range query.
const maxPoints = 11000

// parseTime accepts Unix seconds with a fraction (rounded to milliseconds)
// or RFC 3339, as Prometheus does.
func parseTime(s string) (time.Time, error) {
	if t, err := strconv.ParseFloat(s, 64); err == nil {
		s, ns := math.Modf(t)
		ns = math.Round(ns*1000) / 1000
		return time.Unix(int64(s), int64(ns*float64(time.Second))).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	switch s {
	case minTimeFormatted:
		return minTime, nil
	case maxTimeFormatted:
		return maxTime, nil
	}
	return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
}

// parseTimeParam reads an optional time parameter.
func parseTimeParam(r *http.Request, name string, def time.Time) (time.Time, error) {
	v := r.FormValue(name)
	if v == "" {
		return def, nil
	}
	t, err := parseTime(v)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid time value for '%s': %w", name, err)
	}
	return t, nil
}

// msThreshold separates Unix seconds from Unix milliseconds in the
// exemplar endpoint: 1e11 seconds is the year 5138, 1e11 ms is 1973.
const msThreshold = 1e11

// parseTimeMillisOK is parseTimeParam that also takes Unix milliseconds
// (Grafana sends them to query_exemplars).
func parseTimeMillisOK(r *http.Request, name string, def time.Time) (time.Time, error) {
	if f, err := strconv.ParseFloat(r.FormValue(name), 64); err == nil && math.Abs(f) >= msThreshold && !math.IsInf(f, 0) {
		return time.UnixMilli(int64(f)).UTC(), nil
	}
	return parseTimeParam(r, name, def)
}

// parseDuration accepts float seconds or a Prometheus duration (5m, 1h30m).
func parseDuration(s string) (time.Duration, error) {
	if d, err := strconv.ParseFloat(s, 64); err == nil {
		ts := d * float64(time.Second)
		if math.IsNaN(ts) || ts >= float64(math.MaxInt64) || ts < float64(math.MinInt64) {
			return 0, fmt.Errorf("cannot parse %q to a valid duration. It overflows int64", s)
		}
		return time.Duration(ts), nil
	}
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	// Go's own syntax (1.5s, 250ms, 1ns) as well: Prometheus's Go client
	// sends the timeout parameter as time.Duration.String().
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	return 0, fmt.Errorf("cannot parse %q to a valid duration", s)
}

// parseLimit returns 0 for no limit.
func parseLimit(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, errors.New("limit must be non-negative")
	}
	return n, nil
}

// parseMatchers parses every match[] selector; each set must have a
// matcher that does not match the empty string, as in Prometheus.
func parseMatchers(ss []string) ([][]*labels.Matcher, error) {
	sets := make([][]*labels.Matcher, 0, len(ss))
	for _, s := range ss {
		ms, err := parser.ParseMatchers(s)
		if err != nil {
			return nil, err
		}
		sets = append(sets, ms)
	}
outer:
	for _, ms := range sets {
		for _, m := range ms {
			if m != nil && !m.Matches("") {
				continue outer
			}
		}
		return nil, errors.New("match[] must contain at least one non-empty matcher")
	}
	return sets, nil
}

// queryTimeout reads the optional per-query timeout parameter.
func queryTimeout(r *http.Request) (time.Duration, *apiError) {
	v := r.FormValue("timeout")
	if v == "" {
		return 0, nil
	}
	d, err := parseDuration(v)
	if err != nil {
		return 0, &apiError{errorBadData, fmt.Errorf("invalid parameter %q: %w", "timeout", err)}
	}
	if d <= 0 {
		return 0, &apiError{errorBadData, fmt.Errorf("invalid parameter %q: timeout must be positive, got %s", "timeout", d)}
	}
	return d, nil
}
