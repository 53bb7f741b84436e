package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"evalstore/ingest/remotewrite"
)

// remoteWrite answers as Prometheus's receiver does: 204 once the batch is
// durable, the 2.0 *-Written headers, plain-text errors with the
// receiver's status (400, 413, 415, 500, 503).
func (a *API) remoteWrite(w http.ResponseWriter, r *http.Request) {
	b := a.backend.Load()
	if b.RemoteWrite == nil {
		http.Error(w, "remote-write is not enabled", http.StatusNotImplemented)
		return
	}
	written, err := b.RemoteWrite.Write(r.Context(), r.Header.Get("Content-Type"), r.Header.Get("Content-Encoding"), r.Body)
	written.SetHeaders(w.Header())
	a.metrics.remoteWritten(written, err)
	if err != nil {
		code := remotewrite.StatusCode(err)
		if code >= 500 {
			a.log.Warn("remote-write failed", "status", code, "err", err)
		}
		http.Error(w, err.Error(), code)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type ingestFunc func(Ingester, context.Context, string, string, io.Reader) (any, error)

// ingestHandler serves one JSON/NDJSON ingest endpoint: the body is bounded
// (413 beyond limit, before anything is decoded when Content-Length says
// so), the answer is the Prometheus envelope with the ingester's result or
// its classified error.
func (a *API) ingestHandler(name string, limit int64, f ingestFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := a.backend.Load()
		if b.Ingest == nil {
			writeJSON(w, a.log, http.StatusNotImplemented, &response{Status: "error", ErrorType: string(errorUnavailable),
				Error: name + " ingest is not enabled in this server"})
			return
		}
		if r.ContentLength > limit {
			a.metrics.ingest(name, http.StatusRequestEntityTooLarge)
			writeJSON(w, a.log, http.StatusRequestEntityTooLarge, &response{Status: "error", ErrorType: string(errorBadData),
				Error: fmt.Sprintf("request body of %d bytes exceeds the limit of %d bytes", r.ContentLength, limit)})
			return
		}
		body := http.MaxBytesReader(w, r.Body, limit)
		data, err := f(b.Ingest, r.Context(), r.Header.Get("Content-Type"), r.Header.Get("Content-Encoding"), body)
		if err != nil {
			code, detail := a.classify(b, err)
			a.metrics.ingest(name, code)
			typ := errorBadData
			switch {
			case code == http.StatusServiceUnavailable:
				typ = errorUnavailable
			case code >= 500:
				typ = errorInternal
				a.log.Warn("ingest failed", "endpoint", name, "status", code, "err", err)
			}
			writeJSON(w, a.log, code, &response{Status: "error", Data: detail, ErrorType: string(typ), Error: err.Error()})
			return
		}
		a.metrics.ingest(name, http.StatusOK)
		if data == nil {
			data = struct{}{}
		}
		writeJSON(w, a.log, http.StatusOK, &response{Status: "success", Data: data})
	})
}

func (a *API) classify(b *Backend, err error) (int, any) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge, nil
	}
	if b.ClassifyIngest != nil {
		return b.ClassifyIngest(err)
	}
	var sc StatusCoder
	if errors.As(err, &sc) {
		code := sc.StatusCode()
		if code == http.StatusBadRequest {
			return code, sc
		}
		return code, nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return http.StatusServiceUnavailable, nil
	}
	return http.StatusInternalServerError, nil
}
