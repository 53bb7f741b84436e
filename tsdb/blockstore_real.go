package tsdb

import (
	"errors"

	"evalstore/tsdb/block"
	"evalstore/tsdb/series"
)

// realBlocks is the block layer: package tsdb/block.
type realBlocks struct{ opts block.Options }

func (realBlocks) write(parent string, resolution int64, set series.SeriesSet) (string, error) {
	m, err := block.Write(parent, resolution, set)
	if errors.Is(err, block.ErrEmpty) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return m.ID, nil
}

func (r realBlocks) open(dir string) (blockHandle, error) {
	b, err := block.Open(dir, r.opts)
	if err != nil {
		return nil, err
	}
	return realBlock{b}, nil
}

type realBlock struct{ b *block.Block }

func (r realBlock) id() string { return r.b.Meta().ID }
func (r realBlock) timeRange() (int64, int64) {
	m := r.b.Meta()
	return m.MinT, m.MaxT
}
func (r realBlock) querier(mint, maxt int64) (series.Querier, error) { return r.b.Querier(mint, maxt) }
func (r realBlock) size() int64                                      { return r.b.Size() }
func (r realBlock) close() error                                     { return r.b.Close() }
