package block

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"evalstore/tsdb/series"
)

// seedChunks returns the framed chunks of a small block, as fuzz seeds.
func seedChunks(t testing.TB) (string, [][]byte) {
	r := rand.New(rand.NewPCG(31, 32))
	b := writeBlock(t, t.TempDir(), minute, randomSeries(t, r, allFormats, 6, 1, 0, 20*minute, minute))
	seg, err := os.ReadFile(filepath.Join(b.Dir(), segmentName(1)))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for off := segHeaderSize; off < len(seg); {
		_, n, err := parseChunk(seg[off:])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, seg[off:off+n])
		off += n
	}
	return b.Dir(), out
}

// decodeChunk decodes everything in a framed chunk, as a reader would.
func decodeChunk(data []byte) int {
	h, _, err := parseChunk(data)
	if err != nil {
		return 0
	}
	raw, err := h.rawPayload(nil)
	if err != nil {
		return 0
	}
	n := 0
	if h.kind == series.KindSketch {
		var c sketchCursor
		if c.init(&h, raw) != nil {
			return 0
		}
		for _, st, ok := c.next(); ok; _, st, ok = c.next() {
			n += len(st)
		}
		return n
	}
	chk, err := sampleChunk(&h, raw, false)
	if err != nil {
		return 0
	}
	it := chk.Iterator(nil)
	for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
		if vt == chunkenc.ValFloatHistogram {
			_, fh := it.AtFloatHistogram(nil)
			n += len(fh.PositiveBuckets)
		}
		n++
	}
	return n
}

func FuzzChunk(f *testing.F) {
	_, seeds := seedChunks(f)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		decodeChunk(data)
		// Also with a valid frame around the bytes, so the decoders past
		// the checksum see arbitrary input.
		if len(data) < 3 {
			return
		}
		h := chunkHeader{kind: series.Kind(1 + data[0]%3), format: 0, count: 1 + int(data[1]), mint: int64(data[2]), maxt: int64(data[2]) + int64(len(data))}
		if h.kind == series.KindSketch {
			h.format, h.width = 1, 1
		}
		framed, err := appendChunk(nil, h, data[3:], nil)
		if err != nil {
			t.Fatal(err)
		}
		decodeChunk(framed)
	})
}

func FuzzBlockOpen(f *testing.F) {
	dir, seeds := seedChunks(f)
	seg, _ := os.ReadFile(filepath.Join(dir, segmentName(1)))
	meta, _ := os.ReadFile(filepath.Join(dir, metaFilename))
	f.Add(seg, false, []byte(nil))
	f.Add(seg[:len(seg)/2], false, []byte(nil))
	f.Add(append([]byte(nil), seeds[0]...), false, []byte(nil))
	f.Add([]byte(nil), true, meta)
	f.Add(seg, true, []byte(`{"version":1,"id":"x","resolution":1,"files":[{"name":"index","size":1}]}`))
	var mf metaFile
	if err := json.Unmarshal(meta, &mf); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, segment []byte, rawMeta bool, metaBytes []byte) {
		if len(segment)+len(metaBytes) > 1<<16 {
			return
		}
		d := copyBlock(t, dir)
		if err := os.WriteFile(filepath.Join(d, segmentName(1)), segment, 0o644); err != nil {
			t.Fatal(err)
		}
		mb := metaBytes
		if !rawMeta {
			// Keep meta.json valid with the new segment size, so Open gets
			// past the size check and reads the fuzzed bytes.
			m := mf
			m.Files = append([]fileInfo(nil), mf.Files...)
			for i := range m.Files {
				if m.Files[i].Name == segmentName(1) {
					m.Files[i].Size = int64(len(segment))
				}
			}
			mb, _ = json.Marshal(m)
		}
		if err := os.WriteFile(filepath.Join(d, metaFilename), mb, 0o644); err != nil {
			t.Fatal(err)
		}
		_ = readBack(t, d)
		_ = queryErr(t, d)
	})
}

// TestFuzzSeedsDecode keeps the fuzz helpers honest: every seed chunk
// decodes to something.
func TestFuzzSeedsDecode(t *testing.T) {
	_, seeds := seedChunks(t)
	for i, s := range seeds {
		if decodeChunk(s) == 0 {
			t.Fatalf("seed %d does not decode", i)
		}
	}
	if len(seeds) < 2 {
		t.Fatal("too few seeds")
	}
}
