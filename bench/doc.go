// Package bench is the index of evalstore's comparisons against real peers
// (Prometheus's own head, remote-write receiver, parser and engine, run in
// the same benchmark binary); the benchmarks live beside the code they
// measure, and `make bench-peers` runs them all (see README.md here).
package bench
