// Package ingest turns predictions, feedback, offline runs and remote-written
// Prometheus data into sketch deltas written to the tsdb.
package ingest
