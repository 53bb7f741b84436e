package index

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
)

// Block index layout constants; docs/format.md ("Block index format") is the
// authoritative description.
const (
	blockMagic   uint32 = 0x45534958 // "ESIX"
	blockVersion byte   = 1
	headerSize          = 8

	secSymbols    = 0
	secSeries     = 1
	secPostings   = 2
	secLabelIndex = 3
	numSections   = 4

	tocEntrySize = 8 + 8 + 4 // offset, length, CRC-32C
	tocSize      = numSections*tocEntrySize + 4

	nameEntrySize  = 12 // name symbol, first value entry, value count
	valueEntrySize = 8  // value symbol, postings offset
)

func castagnoli() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) } // cached by crc32

// BlockSeries is one series given to WriteBlockIndex: its label set and the
// opaque chunk references (for example file offsets) a reader gets back from
// BlockIndex.Series, in the order given.
type BlockSeries struct {
	Labels labels.Labels
	Chunks []uint64
}

// WriteBlockIndex encodes series as a block index and writes it to w.
//
// Series may come in any order; the index stores them sorted by label set,
// and BlockIndex refs are their ordinals in that order. Label sets must be
// valid as the Index stores them (a metric name, sorted unique non-empty
// names, no empty values, valid UTF-8) and pairwise distinct; otherwise
// the error wraps ErrInvalidLabels and nothing is written. The encoding is
// built in memory before it is written, so peak memory is about the size of
// the output. Limits: 2^32-1 series and symbols, 4 GiB per section.
//
// WriteBlockIndex does not retain series; it may run concurrently with
// other calls.
func WriteBlockIndex(w io.Writer, series []BlockSeries) error {
	if len(series) > math.MaxUint32 {
		return fmt.Errorf("block index: %d series exceed the limit of %d", len(series), uint32(math.MaxUint32))
	}
	for i := range series {
		ls := series[i].Labels
		if !labels.Equal(ls.WithoutEmpty(), ls) {
			return fmt.Errorf("%w: series %d %s has an empty label value", ErrInvalidLabels, i, ls.String())
		}
		if err := validateLabels(ls); err != nil {
			return fmt.Errorf("series %d: %w", i, err)
		}
	}
	order := make([]int, len(series))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return labels.Compare(series[a].Labels, series[b].Labels) })
	for i := 1; i < len(order); i++ {
		if labels.Equal(series[order[i-1]].Labels, series[order[i]].Labels) {
			return fmt.Errorf("%w: duplicate series %s", ErrInvalidLabels, series[order[i]].Labels.String())
		}
	}

	// Symbols: every name and value, sorted, so symbol order is string order.
	symID := map[string]uint32{}
	for _, s := range series {
		s.Labels.Range(func(l labels.Label) {
			symID[l.Name] = 0
			symID[l.Value] = 0
		})
	}
	if len(symID) > math.MaxUint32 {
		return fmt.Errorf("block index: %d symbols exceed the limit", len(symID))
	}
	syms := make([]string, 0, len(symID))
	for s := range symID {
		syms = append(syms, s)
	}
	slices.Sort(syms)
	for i, s := range syms {
		symID[s] = uint32(i)
	}
	var sections [numSections][]byte
	var err error
	if sections[secSymbols], err = encodeTable(len(syms), func(i int, dst []byte) []byte {
		dst = binary.AppendUvarint(dst, uint64(len(syms[i])))
		return append(dst, syms[i]...)
	}); err != nil {
		return err
	}

	// Series, and the postings of each (name, value) symbol pair.
	type pair struct{ name, value uint32 }
	postings := map[pair][]uint32{}
	if sections[secSeries], err = encodeTable(len(order), func(i int, dst []byte) []byte {
		s := &series[order[i]]
		dst = binary.AppendUvarint(dst, uint64(s.Labels.Len()))
		s.Labels.Range(func(l labels.Label) {
			p := pair{symID[l.Name], symID[l.Value]}
			dst = binary.AppendUvarint(dst, uint64(p.name))
			dst = binary.AppendUvarint(dst, uint64(p.value))
			postings[p] = append(postings[p], uint32(i))
		})
		dst = binary.AppendUvarint(dst, uint64(len(s.Chunks)))
		for _, c := range s.Chunks {
			dst = binary.AppendUvarint(dst, c)
		}
		return dst
	}); err != nil {
		return err
	}

	// Postings lists in (name, value) order, and the label index over them.
	pairs := make([]pair, 0, len(postings))
	for p := range postings {
		pairs = append(pairs, p)
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		if a.name != b.name {
			return cmp.Compare(a.name, b.name)
		}
		return cmp.Compare(a.value, b.value)
	})
	var post, names, values []byte
	nnames := 0
	for i, p := range pairs {
		if uint64(len(post)) > math.MaxUint32 {
			return fmt.Errorf("block index: postings section exceeds 4 GiB")
		}
		if i == 0 || pairs[i-1].name != p.name {
			n := 0
			for j := i; j < len(pairs) && pairs[j].name == p.name; j++ {
				n++
			}
			names = binary.BigEndian.AppendUint32(names, p.name)
			names = binary.BigEndian.AppendUint32(names, uint32(i))
			names = binary.BigEndian.AppendUint32(names, uint32(n))
			nnames++
		}
		values = binary.BigEndian.AppendUint32(values, p.value)
		values = binary.BigEndian.AppendUint32(values, uint32(len(post)))
		list := postings[p]
		post = binary.BigEndian.AppendUint32(post, uint32(len(list)))
		for _, ref := range list {
			post = binary.BigEndian.AppendUint32(post, ref)
		}
	}
	sections[secPostings] = post
	li := make([]byte, 0, 4+len(names)+len(values))
	li = binary.BigEndian.AppendUint32(li, uint32(nnames))
	li = append(li, names...)
	sections[secLabelIndex] = append(li, values...)

	// Header, sections, table of contents.
	tab := castagnoli()
	var hdr [headerSize]byte
	binary.BigEndian.PutUint32(hdr[:], blockMagic)
	hdr[4] = blockVersion
	if _, err := w.Write(hdr[:]); err != nil {
		return fmt.Errorf("block index: write header: %w", err)
	}
	toc := make([]byte, 0, tocSize)
	off := uint64(headerSize)
	for i, sec := range sections {
		toc = binary.BigEndian.AppendUint64(toc, off)
		toc = binary.BigEndian.AppendUint64(toc, uint64(len(sec)))
		toc = binary.BigEndian.AppendUint32(toc, crc32.Checksum(sec, tab))
		if _, err := w.Write(sec); err != nil {
			return fmt.Errorf("block index: write section %d: %w", i, err)
		}
		off += uint64(len(sec))
	}
	toc = binary.BigEndian.AppendUint32(toc, crc32.Checksum(toc, tab))
	if _, err := w.Write(toc); err != nil {
		return fmt.Errorf("block index: write table of contents: %w", err)
	}
	return nil
}

// encodeTable encodes n entries as: count (u32), n entry offsets (u32,
// relative to the first entry), the entries.
func encodeTable(n int, entry func(i int, dst []byte) []byte) ([]byte, error) {
	offs := make([]byte, 4, 4+4*n)
	binary.BigEndian.PutUint32(offs, uint32(n))
	var data []byte
	for i := range n {
		if uint64(len(data)) > math.MaxUint32 {
			return nil, fmt.Errorf("block index: section exceeds 4 GiB")
		}
		offs = binary.BigEndian.AppendUint32(offs, uint32(len(data)))
		data = entry(i, data)
	}
	return append(offs, data...), nil
}
