package index

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// FuzzBlockIndex feeds arbitrary bytes to the block index reader. Opening
// must fail with ErrCorrupt or succeed; whatever opens (also with the
// checksums skipped, so mutations reach the decoders) must answer every
// query without panicking, and every error must wrap ErrCorrupt.
func FuzzBlockIndex(f *testing.F) {
	var seed bytes.Buffer
	var in []BlockSeries
	for i := range 12 {
		in = append(in, BlockSeries{
			Labels: labels.FromStrings("__name__", []string{"accuracy", "up"}[i%2], "model", fmt.Sprint("m", i%3), "slice", []string{"eu", "us", "all", "apac"}[i%4]),
			Chunks: []uint64{uint64(i), uint64(i) << 40},
		})
	}
	if err := WriteBlockIndex(&seed, in); err != nil {
		f.Fatal(err)
	}
	f.Add(seed.Bytes())
	f.Add(seed.Bytes()[:len(seed.Bytes())/2])
	f.Add([]byte{})
	f.Add(make([]byte, headerSize+tocSize))
	var empty bytes.Buffer
	if err := WriteBlockIndex(&empty, nil); err != nil {
		f.Fatal(err)
	}
	f.Add(empty.Bytes())

	ms := []*labels.Matcher{
		labels.MustNewMatcher(labels.MatchEqual, "__name__", "accuracy"),
		labels.MustNewMatcher(labels.MatchRegexp, "slice", "eu|us"),
		labels.MustNewMatcher(labels.MatchRegexp, "model", "m.*"),
		labels.MustNewMatcher(labels.MatchRegexp, "model", ".*1"),
		labels.MustNewMatcher(labels.MatchNotEqual, "slice", "all"),
		labels.MustNewMatcher(labels.MatchNotRegexp, "model", "m1|m2"),
		labels.MustNewMatcher(labels.MatchEqual, "nope", ""),
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		bi, err := OpenBlockIndex(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("OpenBlockIndex error %v does not wrap ErrCorrupt", err)
			}
		} else {
			exercise(t, bi, ms)
		}
		if bi, err := openBlockIndex(data, false); err == nil {
			exercise(t, bi, ms)
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("openBlockIndex error %v does not wrap ErrCorrupt", err)
		}
	})
}

// exercise runs every query on bi, bounded so that large claimed sizes
// cannot make one input slow.
func exercise(t *testing.T, bi *BlockIndex, ms []*labels.Matcher) {
	ok := func(err error) bool {
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error %v does not wrap ErrCorrupt", err)
		}
		return err == nil
	}
	drain := func(p Postings, err error) {
		if !ok(err) {
			return
		}
		for n := 0; n < 1000 && p.Next(); n++ {
			_, _, err := bi.Series(p.At(), nil)
			ok(err)
		}
		ok(p.Err())
	}
	names, err := bi.LabelNames()
	ok(err)
	for i, name := range names {
		if i == 8 {
			break
		}
		vals, err := bi.LabelValues(name)
		ok(err)
		for j, v := range vals {
			if j == 8 {
				break
			}
			drain(bi.Select(labels.MustNewMatcher(labels.MatchEqual, name, v)))
		}
	}
	for i, m := range ms {
		drain(bi.Select(m))
		drain(bi.Select(m, ms[(i+1)%len(ms)]))
		_, err := bi.LabelNames(m)
		ok(err)
		_, err = bi.LabelValues("model", m)
		ok(err)
	}
	for ref := range SeriesRef(min(bi.NumSeries(), 200)) {
		_, _, err := bi.Series(ref, nil)
		ok(err)
	}
}
