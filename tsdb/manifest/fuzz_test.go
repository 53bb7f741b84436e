package manifest

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzManifest loads arbitrary bytes as a MANIFEST: never a panic; an error
// wraps ErrCorrupt or ErrUnsupportedVersion; a successful load re-encodes to
// a manifest that loads to the same state.
func FuzzManifest(f *testing.F) {
	f.Add(encode(state{generation: 1, walCheckpoint: -1}))
	f.Add(encode(state{generation: 7, walCheckpoint: 3, blocks: []string{"a", "b", "c"}, rollups: map[string]string{"c": "a"}}))
	f.Add([]byte(`{"magic":"evalstore-manifest","version":1,"crc32c":"00000000","body":{}}`))
	f.Add([]byte{})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, FileName), b, 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := Load(dir)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("error wraps neither sentinel: %v", err)
			}
			return
		}
		enc := encode(m.st)
		st, err := decode(enc)
		if err != nil {
			t.Fatalf("re-encoded manifest does not load: %v", err)
		}
		if !bytes.Equal(encode(st), enc) {
			t.Fatal("encoding not stable")
		}
	})
}
