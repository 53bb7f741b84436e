package tsdb

import (
	"context"
	"encoding/hex"
	"math"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"evalstore/tsdb/series"
)

// blockStore is the block layer as the DB uses it: the real one wraps
// package tsdb/block; tests may substitute their own.
type blockStore interface {
	// write writes set as a new block directory parent/<id> and returns
	// id, or "" (and no directory) when set holds no data.
	write(parent string, resolution int64, set series.SeriesSet) (id string, err error)
	// compact merges inputs into a new block parent/<id> at resolution,
	// keeping bucket starts and sample times in [mint, maxt] (block.Compact);
	// "" (and no directory) when nothing lies in range.
	compact(parent string, inputs []blockHandle, resolution, mint, maxt int64) (id string, err error)
	// open opens the block directory dir.
	open(dir string) (blockHandle, error)
}

// blockMeta is what the DB and the planners need to know about a block.
type blockMeta struct {
	id         string
	dir        string
	mint, maxt int64
	resolution int64
	level      int
	sources    []string
	buckets    uint64 // sketch buckets
}

// blockHandle is an open block. close waits for its queriers.
type blockHandle interface {
	meta() blockMeta
	querier(mint, maxt int64) (series.Querier, error)
	size() int64
	// verify checks every chunk's checksum (before a compaction output
	// replaces its inputs).
	verify() error
	close() error
}

// idTime returns the creation time (Unix ms) a tsdb/block ID carries in
// its first 48 bits (docs/format.md: 32 hex digits, 48 bits of creation
// time then 80 random bits), or 0 for another kind of ID.
func idTime(id string) int64 {
	if len(id) != 32 {
		return 0
	}
	b, err := hex.DecodeString(id[:12])
	if err != nil {
		return 0
	}
	var ms int64
	for _, c := range b {
		ms = ms<<8 | int64(c)
	}
	return ms
}

// readAll reads every bucket and float sample of b, returning the first
// error (a corrupt chunk).
func readAll(b blockHandle) (err error) {
	q, err := b.querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := q.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	set := q.Select(context.Background(), series.Hints{Mint: math.MinInt64, Maxt: math.MaxInt64},
		labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	var bit series.BucketIterator
	var sit chunkenc.Iterator
	for set.Next() {
		s := set.At()
		bit = s.Buckets(bit)
		for bit.Next() {
		}
		if err := bit.Err(); err != nil {
			return err
		}
		sit = s.Samples(sit)
		for sit.Next() != chunkenc.ValNone {
		}
		if err := sit.Err(); err != nil {
			return err
		}
	}
	return set.Err()
}
