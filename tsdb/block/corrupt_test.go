package block

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"evalstore/sketch"
)

// readBack opens dir and reads everything; it returns the first error.
func readBack(t testing.TB, dir string) error {
	t.Helper()
	b, err := Open(dir, Options{})
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.Verify(); err != nil {
		return err
	}
	q, err := b.Querier(b.Meta().MinT, b.Meta().MaxT)
	if err != nil {
		return err
	}
	defer q.Close()
	ss := q.Select(t.Context(), hintsAll(b))
	for ss.Next() {
		s := ss.At()
		it := s.Buckets(nil)
		for it.Next() {
			_, _, st := it.At()
			if _, err := sketch.Decode(st); err != nil {
				return err
			}
		}
		if err := it.Err(); err != nil {
			return err
		}
		si := s.Samples(nil)
		for si.Next() != 0 {
		}
		if err := si.Err(); err != nil {
			return err
		}
	}
	return ss.Err()
}

// queryErr reads every series of an opened-fine block without Verify, to
// check that lazy checksums catch what Verify would.
func queryErr(t testing.TB, dir string) error {
	t.Helper()
	b, err := Open(dir, Options{})
	if err != nil {
		return err
	}
	defer b.Close()
	q, _ := b.Querier(b.Meta().MinT, b.Meta().MaxT)
	defer q.Close()
	ss := q.Select(t.Context(), hintsAll(b))
	for ss.Next() {
		s := ss.At()
		it := s.Buckets(nil)
		for it.Next() {
		}
		if err := it.Err(); err != nil {
			return err
		}
		si := s.Samples(nil)
		for si.Next() != 0 {
		}
		if err := si.Err(); err != nil {
			return err
		}
	}
	return ss.Err()
}

func copyBlock(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestCorruptionDetected(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	src := writeBlock(t, t.TempDir(), minute, randomSeries(t, r, allFormats, 6, 2, 0, 3*hour, minute)).Dir()
	if err := readBack(t, src); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{indexFilename, segmentName(1)} {
		orig, err := os.ReadFile(filepath.Join(src, file))
		if err != nil {
			t.Fatal(err)
		}
		t.Run("flip "+file, func(t *testing.T) {
			dir := copyBlock(t, src)
			path := filepath.Join(dir, file)
			stride := max(1, len(orig)/400)
			for off := 0; off < len(orig); off += stride {
				b := []byte(string(orig))
				b[off] ^= 1 << (off % 8)
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
				for name, err := range map[string]error{"open+verify+read": readBack(t, dir), "read": queryErr(t, dir)} {
					if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), file) {
						t.Fatalf("flip at %d of %d: %s gave %v", off, len(orig), name, err)
					}
				}
			}
		})
		t.Run("truncate "+file, func(t *testing.T) {
			dir := copyBlock(t, src)
			for _, n := range []int{0, 1, len(orig) / 2, len(orig) - 1} {
				if err := os.WriteFile(filepath.Join(dir, file), orig[:n], 0o644); err != nil {
					t.Fatal(err)
				}
				if err := readBack(t, dir); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), file) {
					t.Fatalf("truncated to %d: %v", n, err)
				}
			}
			if err := os.Remove(filepath.Join(dir, file)); err != nil {
				t.Fatal(err)
			}
			if err := readBack(t, dir); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), file) {
				t.Fatalf("missing: %v", err)
			}
		})
	}
	t.Run("meta", func(t *testing.T) {
		dir := copyBlock(t, src)
		orig, _ := os.ReadFile(filepath.Join(dir, metaFilename))
		for _, b := range [][]byte{orig[:len(orig)/2], []byte("{}"), []byte(strings.Replace(string(orig), fmt.Sprintf(`"version": %d`, FormatVersionHistograms), `"version": 9`, 1))} {
			_ = os.WriteFile(filepath.Join(dir, metaFilename), b, 0o644)
			if err := readBack(t, dir); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), metaFilename) {
				t.Fatalf("meta %q: %v", b, err)
			}
		}
		var m metaFile
		_ = json.Unmarshal(orig, &m)
		m.Stats.NumSeries++
		b, _ := json.Marshal(m)
		_ = os.WriteFile(filepath.Join(dir, metaFilename), b, 0o644)
		if err := readBack(t, dir); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("series count mismatch: %v", err)
		}
		_ = os.Remove(filepath.Join(dir, metaFilename))
		if err := readBack(t, dir); !errors.Is(err, ErrNotBlock) {
			t.Fatalf("missing meta: %v", err)
		}
	})
	t.Run("error names offset", func(t *testing.T) {
		dir := copyBlock(t, src)
		path := filepath.Join(dir, segmentName(1))
		b, _ := os.ReadFile(path)
		b[len(b)-1] ^= 0xff // the last chunk's CRC
		_ = os.WriteFile(path, b, 0o644)
		err := readBack(t, dir)
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.File != segmentName(1) || ce.Offset < segHeaderSize || ce.Offset >= int64(len(b)) {
			t.Fatalf("%v", err)
		}
	})
}
