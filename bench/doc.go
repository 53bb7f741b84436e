// Package bench holds benchmarks that measure evalstore against real peers.
package bench
