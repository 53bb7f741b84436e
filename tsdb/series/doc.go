// Package series defines the read vocabulary shared by the TSDB's head, its
// blocks and the query engine: series metadata, bucket and sample iterators,
// series sets and queriers.
package series
