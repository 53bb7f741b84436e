// Package api serves evalstore's HTTP API: Prometheus's query API to the
// letter (so Grafana and Prometheus clients work unchanged), the write
// endpoints (remote-write, predictions, feedback, evaluations), the
// definitions endpoints, /metrics, health and readiness, behind optional
// per-role authentication and request body limits.
//
// The API starts not ready: every /api/v1 endpoint answers 503 until
// SetBackend hands it the opened storage, so the listener can be up (and
// /-/healthy answer) while the write-ahead log replays. docs/api.md
// lists the endpoints and every decision.
package api
