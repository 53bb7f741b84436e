package tsdb

import "evalstore/tsdb/series"

// blockStore is the block layer as the DB uses it: the real one wraps
// package tsdb/block; tests may substitute their own.
type blockStore interface {
	// write writes set as a new block directory parent/<id> and returns
	// id, or "" (and no directory) when set holds no data.
	write(parent string, resolution int64, set series.SeriesSet) (id string, err error)
	// open opens the block directory dir.
	open(dir string) (blockHandle, error)
}

// blockHandle is an open block.
type blockHandle interface {
	id() string
	timeRange() (mint, maxt int64)
	querier(mint, maxt int64) (series.Querier, error)
	size() int64
	close() error
}
