// Package query parses and evaluates evalstore's PromQL-style language over
// the tsdb read interface.
package query
