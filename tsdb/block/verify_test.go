package block

import (
	"math/rand/v2"
	"testing"

	"evalstore/sketch"
	"evalstore/tsdb/series"
)

// TestVerifyUncompressedThenCompressed is a regression test: Verify once
// reused an uncompressed chunk's payload, which aliases the read-only
// mapping, as the scratch buffer of the next zstd decode, and the process
// died with SIGSEGV. The first series' single tiny bucket does not shrink
// under zstd (stored raw); the second's equal buckets do, and the third's
// random buckets keep enough bytes after them in the mapping that the raw
// payload's capacity covers the second chunk's decompressed size.
func TestVerifyUncompressedThenCompressed(t *testing.T) {
	const w = 60_000
	tiny := sketch.NewConfusion()
	tiny.Add(1, 0)
	rep := sketch.NewConfusion()
	for i := range 40 {
		rep.AddN(i%3, (i+1)%3, int64(100+i))
	}
	ss := []*memSeries{
		{meta: series.Meta{Labels: lbls("a_tiny"), Kind: series.KindSketch, Format: sketch.FormatConfusion},
			buckets: []bucket{{t: 0, w: w, state: tiny.AppendBinary(nil)}}},
		{meta: series.Meta{Labels: lbls("b_repetitive"), Kind: series.KindSketch, Format: sketch.FormatConfusion}},
	}
	state := rep.AppendBinary(nil)
	for i := range 100 {
		ss[1].buckets = append(ss[1].buckets, bucket{t: int64(i) * w, w: w, state: state})
	}
	rng := rand.New(rand.NewPCG(1, 2))
	noisy := &memSeries{meta: series.Meta{Labels: lbls("c_noisy"), Kind: series.KindSketch, Format: sketch.FormatConfusion}}
	for i := range 2000 {
		c := sketch.NewConfusion()
		for range 8 {
			c.AddN(rng.IntN(4), rng.IntN(4), rng.Int64N(1<<40))
		}
		noisy.buckets = append(noisy.buckets, bucket{t: int64(i) * w, w: w, state: c.AppendBinary(nil)})
	}
	ss = append(ss, noisy)
	dir := t.TempDir()
	b := writeBlock(t, dir, w, ss)
	var flags []byte
	for _, data := range b.segs {
		for off := segHeaderSize; off < len(data); {
			h, n, err := parseChunk(data[off:])
			if err != nil {
				t.Fatal(err)
			}
			flags = append(flags, h.flags&flagZstd)
			off += n
		}
	}
	if len(flags) < 3 || flags[0] != 0 || flags[1] == 0 {
		t.Fatalf("chunk compression flags %v: the test needs a raw chunk followed by a compressed one", flags)
	}
	if err := b.Verify(); err != nil {
		t.Fatal(err)
	}
}
