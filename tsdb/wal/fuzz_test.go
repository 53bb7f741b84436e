package wal

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

// FuzzWALSegment treats arbitrary bytes as a segment file, as the last
// segment and as a middle one. Reading and opening never panic; they yield
// records or an error wrapping ErrCorrupt (or ErrUnsupportedVersion); what
// Open keeps of a last segment is exactly what a Reader returns, and stays
// appendable.
func FuzzWALSegment(f *testing.F) {
	h := segmentHeader()
	valid := h[:]
	for _, rec := range [][]byte{[]byte("hello"), nil, bytes.Repeat([]byte{0xab}, 300)} {
		valid = appendRecord(valid, rec, crcTable())
	}
	f.Add(valid)
	f.Add(valid[:len(valid)-3])
	f.Add(append(bytes.Clone(valid), make([]byte, 20)...))
	f.Add(h[:])
	f.Add(h[:5])
	f.Add([]byte{})
	f.Add([]byte("EVWL\x02\x00\x00\x00"))
	bad := bytes.Clone(valid)
	bad[segmentHeaderSize+recordHeaderSize+1] ^= 1
	f.Add(bad)

	f.Fuzz(fuzzSegment)
}

func fuzzSegment(t *testing.T, data []byte) {
	{
		h := segmentHeader()
		okErr := func(err error) bool {
			return errors.Is(err, ErrCorrupt) || errors.Is(err, ErrUnsupportedVersion)
		}

		// As the last (only) segment.
		dir := t.TempDir()
		if err := os.WriteFile(segmentPath(dir, 0), data, 0o644); err != nil {
			t.Fatal(err)
		}
		pos, rerr := readDir(t, dir)
		if rerr != nil && !okErr(rerr) {
			t.Fatalf("Reader: unexpected error %v", rerr)
		}
		w, err := Open(dir, Options{Sync: SyncNever, syncFile: noSync})
		if (err != nil) != (rerr != nil) {
			t.Fatalf("Open error %v, Reader error %v", err, rerr)
		}
		if err == nil {
			got, err := replayAll(t, w)
			if err != nil {
				t.Fatalf("Replay after Open: %v", err)
			}
			want := recsOf(pos)
			equalRecords(t, got, want)
			logT(t, w, []byte("appended"))
			closeT(t, w)
			w = openT(t, dir, Options{Sync: SyncNever, syncFile: noSync})
			got, err = replayAll(t, w)
			if err != nil {
				t.Fatalf("Replay after append: %v", err)
			}
			equalRecords(t, got, append(want, []byte("appended")))
			closeT(t, w)
		}

		// As a middle segment: no torn tail allowed.
		dir = t.TempDir()
		if err := os.WriteFile(segmentPath(dir, 0), data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(segmentPath(dir, 1), h[:], 0o644); err != nil {
			t.Fatal(err)
		}
		strict, serr := readDir(t, dir)
		if serr != nil && !okErr(serr) {
			t.Fatalf("Reader: unexpected error %v", serr)
		}
		w, err = Open(dir, Options{Sync: SyncNever, Repair: true, syncFile: noSync})
		if err != nil {
			if !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("Open with Repair: %v", err)
			}
			return
		}
		got, err := replayAll(t, w)
		if err != nil {
			t.Fatalf("Replay after Repair: %v", err)
		}
		equalRecords(t, got, recsOf(strict)) // the prefix before the damage
		closeT(t, w)
	}
}
