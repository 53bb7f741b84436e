package wal

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
)

// writeLog fills a fresh directory with n random records over several
// small segments and returns it with the records' positions.
func writeLog(t *testing.T, seed uint64, n, maxLen int) (string, []recordPos) {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(seed, 99))
	w := openT(t, dir, Options{SegmentSize: 1 << 10, Sync: SyncNever, syncFile: noSync})
	recs := randRecords(rng, n, maxLen)
	for len(recs) > 0 {
		k := min(len(recs), 1+rng.IntN(5))
		logT(t, w, recs[:k]...)
		recs = recs[k:]
	}
	closeT(t, w)
	pos, err := readDir(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	if pos[len(pos)-1].seg < 3 {
		t.Fatalf("only %d segments", pos[len(pos)-1].seg+1)
	}
	return dir, pos
}

// copyLog copies the segments of src into a new directory.
func copyLog(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	segs, err := listSegments(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range segs {
		b, err := os.ReadFile(segmentPath(src, s))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(segmentPath(dst, s), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestTornTail cuts the last segment at many points, sometimes appending
// garbage or zeros (a crash mid-write, a file extended but not written), and
// checks Open repairs it: exactly the records wholly before the cut replay,
// and the log is appendable after the repaired tail.
func TestTornTail(t *testing.T) {
	src, pos := writeLog(t, 1, 80, 60)
	last := pos[len(pos)-1].seg
	seg, err := os.ReadFile(segmentPath(src, last))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(2, 2))
	cuts := []int{0, 3, segmentHeaderSize, len(seg)}
	for len(cuts) < 100 {
		cuts = append(cuts, rng.IntN(len(seg)+1))
	}
	for i, cut := range cuts {
		var tail []byte
		switch i % 3 {
		case 1:
			tail = make([]byte, 1+rng.IntN(64))
			for j := range tail {
				tail[j] = byte(rng.Uint32())
			}
		case 2:
			tail = make([]byte, 1+rng.IntN(64))
		}
		t.Run(fmt.Sprintf("cut=%d/tail=%d", cut, len(tail)), func(t *testing.T) {
			dir := copyLog(t, src)
			damaged := append(bytes.Clone(seg[:cut]), tail...)
			if err := os.WriteFile(segmentPath(dir, last), damaged, 0o644); err != nil {
				t.Fatal(err)
			}
			var want [][]byte
			validEnd := int64(0)
			for _, p := range pos {
				if p.seg < last || p.end() <= int64(cut) {
					want = append(want, p.rec)
				}
				if p.seg == last && p.end() <= int64(cut) {
					validEnd = p.end()
				}
			}
			// Zeros after a cut inside the header can restore its reserved bytes.
			h := segmentHeader()
			if len(damaged) >= segmentHeaderSize && bytes.Equal(damaged[:segmentHeaderSize], h[:]) {
				validEnd = max(validEnd, segmentHeaderSize)
			}

			got, err := readDir(t, dir) // a Reader stops cleanly at the torn tail
			if err != nil {
				t.Fatalf("Reader: %v", err)
			}
			equalRecords(t, recsOf(got), want)

			opts := Options{Sync: SyncNever, syncFile: noSync}
			w := openT(t, dir, opts)
			if s := w.Stats(); s.RepairedBytes != int64(len(damaged))-validEnd {
				t.Errorf("RepairedBytes = %d, want %d", s.RepairedBytes, int64(len(damaged))-validEnd)
			}
			replayed, err := replayAll(t, w)
			if err != nil {
				t.Fatal(err)
			}
			equalRecords(t, replayed, want)
			more := [][]byte{[]byte("after repair 1"), {}, []byte("after repair 2")}
			logT(t, w, more...)
			closeT(t, w)

			w = openT(t, dir, opts)
			if s := w.Stats(); s.RepairedBytes != 0 {
				t.Errorf("second reopen repaired %d bytes", s.RepairedBytes)
			}
			replayed, err = replayAll(t, w)
			if err != nil {
				t.Fatal(err)
			}
			equalRecords(t, replayed, append(want, more...))
			closeT(t, w)
		})
	}
}

// TestCorruption damages one byte of a record header field, a payload or a
// segment header before the tail, and checks that Open or Replay reports
// ErrCorrupt at the right segment and offset, and that Options.Repair cuts
// the log exactly there.
func TestCorruption(t *testing.T) {
	src, pos := writeLog(t, 3, 150, 60)
	last := pos[len(pos)-1].seg
	// A record in the middle of segment 1 and one in the middle of the last
	// segment (with valid records after it).
	pick := func(seg int) int {
		var idx []int
		for i, p := range pos {
			if p.seg == seg {
				idx = append(idx, i)
			}
		}
		if len(idx) < 3 {
			t.Fatalf("segment %d holds %d records", seg, len(idx))
		}
		return idx[len(idx)/2]
	}
	firstOf := func(seg int) int {
		for i, p := range pos {
			if p.seg == seg {
				return i
			}
		}
		return -1
	}
	type damage struct {
		name   string
		rec    int   // index of the first lost record
		seg    int   // damaged segment
		off    int64 // reported offset
		at     int64 // byte flipped
		inLast bool
	}
	var cases []damage
	for _, inLast := range []bool{false, true} {
		seg := 1
		if inLast {
			seg = last
		}
		i := pick(seg)
		p := pos[i]
		for _, f := range []struct {
			name string
			at   int64
		}{
			{"crc", p.off + 1},
			{"length", p.off + 5},
			{"type", p.off + 8},
			{"payload", p.off + recordHeaderSize + int64(len(p.rec))/2},
		} {
			if f.name == "payload" && len(p.rec) == 0 {
				continue
			}
			cases = append(cases, damage{fmt.Sprintf("seg=%d/%s", seg, f.name), i, seg, p.off, f.at, inLast})
		}
	}
	cases = append(cases, damage{"seg=2/header", firstOf(2), 2, 0, 1, false})

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyLog(t, src)
			path := segmentPath(dir, c.seg)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b[c.at] ^= 0xff
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			want := recsOf(pos[:c.rec])

			checkErr := func(err error) {
				t.Helper()
				var ce *CorruptionError
				if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) {
					t.Fatalf("got %v, want a *CorruptionError", err)
				}
				if ce.Segment != c.seg || ce.Offset != c.off {
					t.Fatalf("corruption reported at segment %d offset %d, want %d/%d", ce.Segment, ce.Offset, c.seg, c.off)
				}
				if msg := err.Error(); !strings.Contains(msg, segmentName(c.seg)) || !strings.Contains(msg, fmt.Sprintf("offset %d", c.off)) {
					t.Fatalf("message %q does not name the segment and offset", msg)
				}
			}
			if c.inLast {
				_, err := Open(dir, Options{syncFile: noSync})
				checkErr(err)
			} else {
				w := openT(t, dir, Options{syncFile: noSync})
				got, err := replayAll(t, w)
				checkErr(err)
				equalRecords(t, got, want) // every record before the damage was delivered
				closeT(t, w)
			}
			_, err = readDir(t, dir)
			checkErr(err)

			w := openT(t, dir, Options{Repair: true, syncFile: noSync})
			if _, l, _ := w.Segments(); l != c.seg {
				t.Fatalf("after repair the last segment is %d, want %d", l, c.seg)
			}
			if s := w.Stats(); s.RepairedBytes <= 0 || s.SegmentsRemoved != uint64(last-c.seg) {
				t.Fatalf("stats after repair %+v", s)
			}
			got, err := replayAll(t, w)
			if err != nil {
				t.Fatal(err)
			}
			equalRecords(t, got, want)
			logT(t, w, []byte("after repair"))
			closeT(t, w)

			w = openT(t, dir, Options{syncFile: noSync})
			got, err = replayAll(t, w)
			if err != nil {
				t.Fatal(err)
			}
			equalRecords(t, got, append(want, []byte("after repair")))
			closeT(t, w)
		})
	}
}

// TestCorruptLastRecord: damage to the very last record cannot be told
// from a torn write, so Open repairs it without Options.Repair.
func TestCorruptLastRecord(t *testing.T) {
	src, pos := writeLog(t, 4, 150, 60)
	dir := copyLog(t, src)
	p := pos[len(pos)-1]
	b, err := os.ReadFile(segmentPath(dir, p.seg))
	if err != nil {
		t.Fatal(err)
	}
	b[p.off] ^= 1
	if err := os.WriteFile(segmentPath(dir, p.seg), b, 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	w := openT(t, dir, Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	got, err := replayAll(t, w)
	if err != nil {
		t.Fatal(err)
	}
	equalRecords(t, got, recsOf(pos[:len(pos)-1]))
	if s := w.Stats(); s.RepairedBytes != p.end()-p.off {
		t.Errorf("RepairedBytes = %d, want %d", s.RepairedBytes, p.end()-p.off)
	}
	if !strings.Contains(log.String(), "torn tail") || !strings.Contains(log.String(), fmt.Sprintf("offset=%d", p.off)) {
		t.Errorf("repair not logged: %q", log.String())
	}
	closeT(t, w)
}

func TestUnsupportedVersion(t *testing.T) {
	for _, repair := range []bool{false, true} {
		dir := t.TempDir()
		h := segmentHeader()
		h[4] = formatVersion + 1
		if err := os.WriteFile(segmentPath(dir, 0), h[:], 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(dir, Options{Repair: repair}); !errors.Is(err, ErrUnsupportedVersion) {
			t.Fatalf("Open(Repair=%v) = %v, want ErrUnsupportedVersion", repair, err)
		}
		if b, _ := os.ReadFile(segmentPath(dir, 0)); !bytes.Equal(b, h[:]) {
			t.Fatal("the newer segment was modified")
		}
	}
}

func TestSegmentGap(t *testing.T) {
	dir := t.TempDir()
	h := segmentHeader()
	for _, s := range []int{4, 5, 7} {
		if err := os.WriteFile(segmentPath(dir, s), h[:], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(dir+"/notes.txt", []byte("ignored"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open = %v, want ErrCorrupt for the missing segment 6", err)
	}
	if err := os.Remove(segmentPath(dir, 7)); err != nil {
		t.Fatal(err)
	}
	w := openT(t, dir, Options{})
	if f, l, _ := w.Segments(); f != 4 || l != 5 {
		t.Fatalf("Segments = %d, %d", f, l)
	}
	closeT(t, w)
}
