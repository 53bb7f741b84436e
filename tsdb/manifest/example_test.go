package manifest_test

import (
	"fmt"
	"os"
	"path/filepath"

	"evalstore/tsdb/manifest"
)

// A flush adds its block and advances the WAL checkpoint in one edit; a
// compaction job swaps inputs for outputs (with the rollup relation) in one
// edit. The file after the second edit is shown.
func ExampleManifest_Apply() {
	dir, _ := os.MkdirTemp("", "manifest-example")
	defer os.RemoveAll(dir)
	m, err := manifest.Load(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	ckpt := 41
	if err := m.Apply(manifest.Edit{Add: []string{"01JF3Q"}, WALCheckpoint: &ckpt}); err != nil {
		fmt.Println(err)
		return
	}
	if err := m.Apply(manifest.Edit{
		Add:     []string{"01JF4A", "01JF4B"},
		Remove:  []string{"01JF3Q"},
		Rollups: map[string]string{"01JF4B": "01JF4A"},
	}); err != nil {
		fmt.Println(err)
		return
	}
	b, _ := os.ReadFile(filepath.Join(dir, manifest.FileName))
	fmt.Print(string(b))
	fmt.Println(m.Live(), m.WALCheckpoint(), m.Garbage([]string{"01JF3Q", "01JF4A", "01JF4B", "01JF4C.tmp"}))
	// Output:
	// {"magic":"evalstore-manifest","version":1,"crc32c":"d973ec30","body":{"generation":2,"walCheckpoint":41,"blocks":["01JF4A","01JF4B"],"rollups":{"01JF4B":"01JF4A"}}}
	// [01JF4A 01JF4B] 41 [01JF3Q 01JF4C.tmp]
}
