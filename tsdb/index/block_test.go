package index

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// blockFromIndex writes every series of ix to a block index, with
// deterministic chunk refs derived from the series ref.
func blockFromIndex(t testing.TB, ix *Index) ([]byte, map[string][]uint64) {
	t.Helper()
	var in []BlockSeries
	chunks := map[string][]uint64{}
	for _, ref := range expand(t)(ix.Select()) {
		ls, _ := ix.Labels(ref)
		var chks []uint64
		for i := range int(ref % 4) {
			chks = append(chks, uint64(ref)<<20|uint64(i)*math.MaxUint32)
		}
		chunks[ls.String()] = chks
		in = append(in, BlockSeries{Labels: ls, Chunks: chks})
	}
	// Order must not matter.
	rand.New(rand.NewPCG(1, 1)).Shuffle(len(in), func(i, j int) { in[i], in[j] = in[j], in[i] })
	var buf bytes.Buffer
	if err := WriteBlockIndex(&buf, in); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), chunks
}

// touchAll gives every series data so the Index's time-scoped answers
// equal the block's unscoped ones.
func touchAll(ix *Index) {
	p, _ := ix.Select()
	for p.Next() {
		ix.Touch(p.At(), 0)
	}
}

func TestBlockIndexRoundTrip(t *testing.T) {
	f := newFixture(t, 31, 700)
	victims := []SeriesRef{}
	for ref := range f.series {
		if ref%5 == 0 {
			victims = append(victims, ref)
		}
	}
	f.delete(victims)
	touchAll(f.ix)
	b, chunks := blockFromIndex(t, f.ix)
	bi, err := OpenBlockIndex(b)
	if err != nil {
		t.Fatal(err)
	}
	if bi.NumSeries() != f.ix.NumSeries() {
		t.Fatalf("NumSeries %d, want %d", bi.NumSeries(), f.ix.NumSeries())
	}

	// Every series decodes to its labels and chunks, in label order.
	var prev labels.Labels
	var chks []uint64
	for ref := range SeriesRef(bi.NumSeries()) {
		var ls labels.Labels
		ls, chks, err = bi.Series(ref, chks)
		if err != nil {
			t.Fatal(err)
		}
		if ref > 0 && labels.Compare(prev, ls) >= 0 {
			t.Fatalf("series %d %s not after %s", ref, ls, prev)
		}
		if want := chunks[ls.String()]; !slices.Equal(chks, want) || want == nil && len(chks) != 0 {
			t.Fatalf("series %s chunks %v, want %v", ls, chks, want)
		}
		prev = ls
	}
	if _, _, err := bi.Series(SeriesRef(bi.NumSeries()), nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Series out of range: %v", err)
	}

	pool := matcherPool(t)
	r := rand.New(rand.NewPCG(8, 9))
	names := append([]string{metricName, "nope"}, testNames...)
	check := func(ms []*labels.Matcher) {
		t.Helper()
		// Select: compare the label sets the two indexes select.
		var want []labels.Labels
		for _, ref := range expand(t)(f.ix.Select(ms...)) {
			ls, _ := f.ix.Labels(ref)
			want = append(want, ls)
		}
		slices.SortFunc(want, labels.Compare)
		var got []labels.Labels
		for _, ref := range expand(t)(bi.Select(ms...)) {
			ls, _, err := bi.Series(ref, nil)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, ls)
		}
		if !slices.EqualFunc(got, want, labels.Equal) {
			t.Fatalf("block Select%s: %d series, index %d", fmtMatchers(ms), len(got), len(want))
		}
		gn, err := bi.LabelNames(ms...)
		wn, _ := f.ix.LabelNames(math.MinInt64, math.MaxInt64, ms...)
		if err != nil || !slices.Equal(gn, wn) {
			t.Fatalf("block LabelNames%s = %q, %v; index %q", fmtMatchers(ms), gn, err, wn)
		}
		for _, n := range names {
			gv, err := bi.LabelValues(n, ms...)
			wv, _ := f.ix.LabelValues(n, math.MinInt64, math.MaxInt64, ms...)
			if err != nil || !slices.Equal(gv, wv) {
				t.Fatalf("block LabelValues(%q, %s) = %q, %v; index %q", n, fmtMatchers(ms), gv, err, wv)
			}
		}
	}
	check(nil)
	for _, m := range pool {
		check([]*labels.Matcher{m})
	}
	for range 100 {
		check(randMatchers(r, pool))
	}
	// A regexp matching more values than lazyMergeMax takes the
	// materialising union path in both indexes.
	many := labels.MustNewMatcher(labels.MatchRegexp, "i", ".+")
	ix := New()
	for i := range 3 * lazyMergeMax {
		ix.GetOrCreate(labels.FromStrings("__name__", "m", "i", string(rune('a'+i%26))+string(rune('a'+i/26))))
	}
	touchAll(ix)
	b2, _ := blockFromIndex(t, ix)
	bi2, err := OpenBlockIndex(b2)
	if err != nil {
		t.Fatal(err)
	}
	if got := expand(t)(bi2.Select(many)); len(got) != 3*lazyMergeMax {
		t.Fatalf("block union of many values: %d refs", len(got))
	}
	if got := expand(t)(ix.Select(many)); len(got) != 3*lazyMergeMax {
		t.Fatalf("index union of many values: %d refs", len(got))
	}
}

func TestBlockIndexEmptyAndInvalid(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteBlockIndex(&buf, nil); err != nil {
		t.Fatal(err)
	}
	bi, err := OpenBlockIndex(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if got := expand(t)(bi.Select()); len(got) != 0 {
		t.Fatalf("empty block selects %v", got)
	}
	if n, err := bi.LabelNames(); err != nil || len(n) != 0 {
		t.Fatalf("empty block names %q %v", n, err)
	}
	for name, in := range map[string][]BlockSeries{
		"duplicate":   {{Labels: labels.FromStrings("__name__", "a")}, {Labels: labels.FromStrings("__name__", "a")}},
		"empty value": {{Labels: labels.FromStrings("__name__", "a", "b", "")}},
		"no name":     {{Labels: labels.FromStrings("b", "c")}},
	} {
		buf.Reset()
		if err := WriteBlockIndex(&buf, in); !errors.Is(err, ErrInvalidLabels) || buf.Len() != 0 {
			t.Errorf("%s: err %v, %d bytes written", name, err, buf.Len())
		}
	}
}

// TestBlockIndexCorruption flips every byte of a small index in turn: each
// must be refused with ErrCorrupt (the checksums cover every byte).
func TestBlockIndexCorruption(t *testing.T) {
	f := newFixture(t, 41, 30)
	touchAll(f.ix)
	b, _ := blockFromIndex(t, f.ix)
	for i := range b {
		c := slices.Clone(b)
		c[i] ^= 0x5a
		if _, err := OpenBlockIndex(c); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("byte %d flipped: err %v", i, err)
		}
	}
	for n := range len(b) {
		if _, err := OpenBlockIndex(b[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d: err %v", n, err)
		}
	}
	// Structural damage behind valid checksums is caught by the decoders.
	bi, err := openBlockIndex(b, false)
	if err != nil {
		t.Fatal(err)
	}
	binary.BigEndian.PutUint32(bi.serOffs, math.MaxUint32)
	if _, _, err := bi.Series(0, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("bad series offset: %v", err)
	}
}

// recrc recomputes every checksum of a block index in place, so that
// structural damage reaches the decoders.
func recrc(b []byte) {
	if len(b) < headerSize+tocSize {
		return
	}
	tab := castagnoli()
	toc := b[len(b)-tocSize:]
	for i := range numSections {
		e := toc[i*tocEntrySize:]
		off, n := binary.BigEndian.Uint64(e), binary.BigEndian.Uint64(e[8:])
		if off <= uint64(len(b)) && n <= uint64(len(b))-off {
			binary.BigEndian.PutUint32(e[16:], crc32.Checksum(b[off:off+n], tab))
		}
	}
	binary.BigEndian.PutUint32(toc[tocSize-4:], crc32.Checksum(toc[:tocSize-4], tab))
}

// TestBlockIndexStructuralCorruption damages random bytes and then fixes
// the checksums: opening and every query must either work or fail with
// ErrCorrupt, never panic (a deterministic slice of what FuzzBlockIndex
// explores).
func TestBlockIndexStructuralCorruption(t *testing.T) {
	f := newFixture(t, 51, 40)
	touchAll(f.ix)
	b, _ := blockFromIndex(t, f.ix)
	ms := matcherPool(t)
	r := rand.New(rand.NewPCG(51, 52))
	opened := 0
	for range 300 {
		c := slices.Clone(b)
		for range 1 + r.IntN(3) {
			i := headerSize + r.IntN(len(c)-headerSize-tocSize)
			switch r.IntN(3) {
			case 0:
				c[i] ^= byte(1 << r.IntN(8))
			case 1:
				c[i] = 0xff
			default:
				c[i] = 0
			}
		}
		recrc(c)
		bi, err := OpenBlockIndex(c)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("open: %v", err)
			}
			continue
		}
		opened++
		exercise(t, bi, ms[:8])
	}
	if opened < 100 {
		t.Fatalf("only %d damaged indexes opened; the test exercises little", opened)
	}
}
