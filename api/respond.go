package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"evalstore/query"
)

// errorType is Prometheus's errorType string.
type errorType string

// The error types of the Prometheus HTTP API.
const (
	errorBadData     errorType = "bad_data"
	errorTimeout     errorType = "timeout"
	errorCanceled    errorType = "canceled"
	errorExec        errorType = "execution"
	errorInternal    errorType = "internal"
	errorNotFound    errorType = "not_found"
	errorUnavailable errorType = "unavailable"
)

// statusClientClosedConnection is the code Prometheus answers a canceled
// query with (nginx's convention).
const statusClientClosedConnection = 499

// apiError is an error with the errorType it is reported as.
type apiError struct {
	typ errorType
	err error
}

func (e *apiError) Error() string { return string(e.typ) + ": " + e.err.Error() }

// response is the envelope of every /api/v1 answer, field order and
// omitempty as Prometheus writes it.
type response struct {
	Status    string   `json:"status"`
	Data      any      `json:"data,omitempty"`
	ErrorType string   `json:"errorType,omitempty"`
	Error     string   `json:"error,omitempty"`
	Warnings  []string `json:"warnings,omitempty"`
	Infos     []string `json:"infos,omitempty"`
}

// result is what an endpoint function returns: data or an error, plus
// warnings. Neither data nor err: 204 No Content, as Prometheus does.
type result struct {
	data     any
	err      *apiError
	warnings []string
}

func errResult(typ errorType, err error) result { return result{err: &apiError{typ, err}} }

func badData(err error) result { return errResult(errorBadData, err) }

// invalidParam is Prometheus's invalidParamError.
func invalidParam(err error, param string) result {
	return badData(fmt.Errorf("invalid parameter %q: %w", param, err))
}

// statusOf is Prometheus's getDefaultErrorCode.
func statusOf(t errorType) int {
	switch t {
	case errorBadData:
		return http.StatusBadRequest
	case errorExec:
		return http.StatusUnprocessableEntity
	case errorCanceled:
		return statusClientClosedConnection
	case errorTimeout:
		return http.StatusServiceUnavailable
	case errorInternal:
		return http.StatusInternalServerError
	case errorNotFound:
		return http.StatusNotFound
	case errorUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// queryError maps an engine error as Prometheus's returnAPIError does;
// errors found before evaluation (parse and type errors) are bad_data about
// the query parameter.
func queryError(err error) *apiError {
	switch query.TypeOf(err) {
	case query.ErrBadData:
		return &apiError{errorBadData, fmt.Errorf("invalid parameter %q: %w", "query", err)}
	case query.ErrTimeout:
		return &apiError{errorTimeout, err}
	case query.ErrCanceled:
		return &apiError{errorCanceled, err}
	}
	return &apiError{errorExec, err}
}

func writeJSON(w http.ResponseWriter, log *slog.Logger, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		log.Error("encoding response", "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if _, err := w.Write(b); err != nil && !errors.Is(err, http.ErrHandlerTimeout) {
		log.Debug("writing response", "err", err)
	}
}

func respond(w http.ResponseWriter, log *slog.Logger, r result) {
	if r.err != nil {
		writeJSON(w, log, statusOf(r.err.typ), &response{
			Status:    "error",
			Data:      r.data,
			ErrorType: string(r.err.typ),
			Error:     r.err.err.Error(),
			Warnings:  r.warnings,
		})
		return
	}
	if r.data == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, log, http.StatusOK, &response{Status: "success", Data: r.data, Warnings: r.warnings})
}
