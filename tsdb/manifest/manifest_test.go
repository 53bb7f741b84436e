package manifest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

func intp(i int) *int { return &i }

func TestLoadMissingIsEmpty(t *testing.T) {
	for _, dir := range []string{t.TempDir(), filepath.Join(t.TempDir(), "absent")} {
		m, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if m.Generation() != 0 || m.WALCheckpoint() != -1 || len(m.Live()) != 0 || len(m.Rollups()) != 0 {
			t.Fatalf("empty manifest: gen %d ckpt %d live %v", m.Generation(), m.WALCheckpoint(), m.Live())
		}
	}
}

func TestApplyAndReload(t *testing.T) {
	dir := t.TempDir()
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		edit    Edit
		live    []string
		rollups map[string]string
		ckpt    int
	}{
		{Edit{Add: []string{"f1"}, WALCheckpoint: intp(3)}, []string{"f1"}, map[string]string{}, 3},
		{Edit{Add: []string{"f2"}}, []string{"f1", "f2"}, map[string]string{}, 3},
		{Edit{Add: []string{"p1", "p1h"}, Remove: []string{"f1", "f2"}, Rollups: map[string]string{"p1h": "p1"}}, []string{"p1", "p1h"}, map[string]string{"p1h": "p1"}, 3},
		{Edit{Add: []string{"q"}, Remove: []string{"p1", "p1h"}, WALCheckpoint: intp(7)}, []string{"q"}, map[string]string{}, 7},
	}
	for i, s := range steps {
		if err := m.Apply(s.edit); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		for _, mm := range []*Manifest{m, mustLoad(t, dir)} {
			if got := mm.Live(); !slices.Equal(got, s.live) {
				t.Fatalf("step %d: live %v, want %v", i, got, s.live)
			}
			if got := mm.Rollups(); !reflect.DeepEqual(got, s.rollups) {
				t.Fatalf("step %d: rollups %v, want %v", i, got, s.rollups)
			}
			if mm.WALCheckpoint() != s.ckpt || mm.Generation() != uint64(i+1) {
				t.Fatalf("step %d: ckpt %d gen %d", i, mm.WALCheckpoint(), mm.Generation())
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, TempFileName)); !os.IsNotExist(err) {
		t.Fatalf("temp file left behind: %v", err)
	}
}

func mustLoad(t *testing.T, dir string) *Manifest {
	t.Helper()
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestApplyInvalid(t *testing.T) {
	dir := t.TempDir()
	m := mustLoad(t, dir)
	if err := m.Apply(Edit{Add: []string{"a", "b", "r"}, Rollups: map[string]string{"r": "a"}, WALCheckpoint: intp(5)}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		edit Edit
	}{
		{"add live", Edit{Add: []string{"a"}}},
		{"add twice", Edit{Add: []string{"c", "c"}}},
		{"add empty id", Edit{Add: []string{""}}},
		{"add path", Edit{Add: []string{"../x"}}},
		{"add tmp", Edit{Add: []string{"x.tmp"}}},
		{"add manifest name", Edit{Add: []string{FileName}}},
		{"remove missing", Edit{Remove: []string{"zz"}}},
		{"remove twice", Edit{Remove: []string{"b", "b"}}},
		{"remove base keeps rollup", Edit{Remove: []string{"a"}}},
		{"rollup of old block", Edit{Rollups: map[string]string{"b": "a"}}},
		{"rollup base missing", Edit{Add: []string{"c"}, Rollups: map[string]string{"c": "zz"}}},
		{"rollup of rollup", Edit{Add: []string{"c"}, Rollups: map[string]string{"c": "r"}}},
		{"rollup self", Edit{Add: []string{"c"}, Rollups: map[string]string{"c": "c"}}},
		{"checkpoint backwards", Edit{WALCheckpoint: intp(4)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before, _ := os.ReadFile(filepath.Join(dir, FileName))
			err := m.Apply(c.edit)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err %v, want ErrInvalid", err)
			}
			after, _ := os.ReadFile(filepath.Join(dir, FileName))
			if string(before) != string(after) || m.Generation() != 1 || !slices.Equal(m.Live(), []string{"a", "b", "r"}) {
				t.Fatal("invalid edit changed state")
			}
		})
	}
	// Removing base and rollup together is fine.
	if err := m.Apply(Edit{Remove: []string{"a", "r"}}); err != nil {
		t.Fatal(err)
	}
}

func TestCorruption(t *testing.T) {
	good := encode(state{generation: 4, walCheckpoint: 2, blocks: []string{"a", "b", "r"}, rollups: map[string]string{"r": "a"}})
	if _, err := decode(good); err != nil {
		t.Fatalf("good manifest: %v", err)
	}
	// Every single-byte flip is detected: in the body by the checksum, in
	// the envelope by the JSON, field and canonical-form checks.
	for i := range good {
		for _, x := range []byte{0x01, 0x20, 0x80} {
			b := slices.Clone(good)
			b[i] ^= x
			if _, err := decode(b); err == nil {
				t.Fatalf("flip 0x%02x at %d (%q) not detected", x, i, b)
			} else if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("flip at %d: %v does not wrap ErrCorrupt", i, err)
			}
		}
	}
	for n := range len(good) - 1 {
		if _, err := decode(good[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
	body := `{"generation":1,"walCheckpoint":-1,"blocks":[],"rollups":{}}`
	envelope := func(version int, body string) string {
		return fmt.Sprintf(`{"magic":%q,"version":%d,"crc32c":%q,"body":%s}`+"\n", Magic, version, checksum([]byte(body)), body)
	}
	invalid := map[string]string{
		"generation 0":   envelope(1, `{"generation":0,"walCheckpoint":-1,"blocks":[],"rollups":{}}`),
		"ckpt -2":        envelope(1, `{"generation":1,"walCheckpoint":-2,"blocks":[],"rollups":{}}`),
		"unsorted":       envelope(1, `{"generation":1,"walCheckpoint":-1,"blocks":["b","a"],"rollups":{}}`),
		"duplicate":      envelope(1, `{"generation":1,"walCheckpoint":-1,"blocks":["a","a"],"rollups":{}}`),
		"bad id":         envelope(1, `{"generation":1,"walCheckpoint":-1,"blocks":["a/b"],"rollups":{}}`),
		"dangling":       envelope(1, `{"generation":1,"walCheckpoint":-1,"blocks":["a"],"rollups":{"a":"b"}}`),
		"unknown field":  envelope(1, `{"generation":1,"walCheckpoint":-1,"blocks":[],"rollups":{},"x":1}`),
		"version 0":      envelope(0, body),
		"wrong magic":    strings.Replace(envelope(1, body), Magic, "other", 1),
		"trailing":       envelope(1, body) + "{}",
		"no newline":     strings.TrimSuffix(envelope(1, body), "\n"),
		"spaces":         strings.Replace(envelope(1, body), `,"body"`, `, "body"`, 1),
		"recased key":    strings.Replace(envelope(1, body), `"magic"`, `"Magic"`, 1),
		"not json":       "MANIFEST",
		"empty":          "",
		"body not obj":   envelope(1, `[1]`),
		"negative gen":   envelope(1, `{"generation":-1,"walCheckpoint":-1,"blocks":[],"rollups":{}}`),
		"crc wrong case": strings.Replace(envelope(1, body), checksum([]byte(body)), strings.ToUpper(checksum([]byte(body)))+"x", 1),
	}
	for name, s := range invalid {
		if _, err := decode([]byte(s)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
	if _, err := decode([]byte(envelope(2, body))); !errors.Is(err, ErrUnsupportedVersion) {
		t.Errorf("version 2: %v", err)
	}
	// Through Load: the error names the file.
	dir := t.TempDir()
	b := slices.Clone(good)
	b[len(b)-10] ^= 1
	if err := os.WriteFile(filepath.Join(dir, FileName), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), FileName) {
		t.Fatalf("Load corrupt: %v", err)
	}
}

func TestGarbage(t *testing.T) {
	dir := t.TempDir()
	m := mustLoad(t, dir)
	entries := []string{"a", "b.tmp", "old", FileName, TempFileName, "c"}
	if got := m.Garbage(entries); !slices.Equal(got, []string{"b.tmp"}) {
		t.Fatalf("generation 0 garbage %v: only temp dirs may go", got)
	}
	if err := m.Apply(Edit{Add: []string{"a", "c"}}); err != nil {
		t.Fatal(err)
	}
	if got := m.Garbage(entries); !slices.Equal(got, []string{"b.tmp", "old"}) {
		t.Fatalf("garbage %v", got)
	}
}

// TestCrashAtEveryStep fails each file-system operation of an Apply in turn,
// then simulates a crash (losing or keeping what was not yet durable) and
// reloads: the result is exactly the old or exactly the new generation.
func TestCrashAtEveryStep(t *testing.T) {
	oldEdit := Edit{Add: []string{"a", "b"}, WALCheckpoint: intp(1)}
	newEdit := Edit{Add: []string{"c", "ch"}, Remove: []string{"a", "b"}, Rollups: map[string]string{"ch": "c"}, WALCheckpoint: intp(9)}
	type snap struct {
		gen     uint64
		live    []string
		rollups map[string]string
		ckpt    int
	}
	snapOf := func(m *Manifest) snap {
		return snap{m.Generation(), m.Live(), m.Rollups(), m.WALCheckpoint()}
	}
	oldSnap := snap{1, []string{"a", "b"}, map[string]string{}, 1}
	newSnap := snap{2, []string{"c", "ch"}, map[string]string{"ch": "c"}, 9}

	// Count the operations of one Apply.
	probe := newMemFS()
	pm, _ := load("d", probe)
	if err := pm.Apply(oldEdit); err != nil {
		t.Fatal(err)
	}
	probe.ops, probe.trace = 0, nil
	if err := pm.Apply(newEdit); err != nil {
		t.Fatal(err)
	}
	steps := slices.Clone(probe.trace)
	if want := []string{"create", "write", "sync", "close", "rename", "syncdir"}; !slices.Equal(steps, want) {
		t.Fatalf("operations %v, want %v", steps, want)
	}
	for failAt := 0; failAt <= len(steps); failAt++ {
		for _, keep := range []bool{false, true} {
			name := "none"
			if failAt > 0 {
				name = steps[failAt-1]
			}
			t.Run(fmt.Sprintf("fail=%s/keepVolatile=%v", name, keep), func(t *testing.T) {
				fsys := newMemFS()
				m, err := load("d", fsys)
				if err != nil {
					t.Fatal(err)
				}
				if err := m.Apply(oldEdit); err != nil {
					t.Fatal(err)
				}
				fsys.ops, fsys.failAt = 0, failAt
				err = m.Apply(newEdit)
				if (err != nil) != (failAt > 0) {
					t.Fatalf("Apply: %v", err)
				}
				mem := snapOf(m)
				poisoned := name == "rename" || name == "syncdir"
				switch {
				case failAt == 0:
					if !reflect.DeepEqual(mem, newSnap) {
						t.Fatalf("memory %+v", mem)
					}
				case !reflect.DeepEqual(mem, oldSnap):
					// Memory is updated only after success.
					t.Fatalf("memory after failure %+v", mem)
				case poisoned:
					if err := m.Apply(Edit{}); err == nil {
						t.Fatal("Apply after a failed rename/dir fsync succeeded; want poisoned")
					}
				}
				after := fsys.crash(keep)
				rm, err := load("d", after)
				if err != nil {
					t.Fatalf("reload after crash: %v", err)
				}
				got := snapOf(rm)
				if !reflect.DeepEqual(got, oldSnap) && !reflect.DeepEqual(got, newSnap) {
					t.Fatalf("reloaded %+v: neither old nor new generation", got)
				}
				if failAt == 0 && !reflect.DeepEqual(got, newSnap) {
					t.Fatalf("acknowledged Apply lost after crash: %+v", got)
				}
				if failAt > 0 && !poisoned && !reflect.DeepEqual(got, oldSnap) {
					t.Fatalf("failed Apply before the rename changed the disk: %+v", got)
				}
				if failAt > 0 && !poisoned {
					// Without a crash, a retry works and reaches generation 2.
					if err := m.Apply(Edit{}); err != nil || m.Generation() != 2 {
						t.Fatalf("retry: %v, generation %d", err, m.Generation())
					}
				}
				// The reloaded manifest accepts edits again.
				if err := rm.Apply(Edit{Add: []string{"z"}}); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// TestCrashWithoutSyncLosesNothingAcknowledged checks the crash model itself
// catches a missing fsync: writing without Sync before the rename would leave
// an empty MANIFEST after a crash that kept the rename.
func TestCrashModelDetectsMissingSync(t *testing.T) {
	fsys := newMemFS()
	h, _ := fsys.Create("d/" + TempFileName)
	_, _ = h.Write(encode(state{generation: 1, walCheckpoint: -1}))
	_ = fsys.Rename("d/"+TempFileName, "d/"+FileName)
	_ = fsys.SyncDir("d")
	if _, err := load("d", fsys.crash(false)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("unsynced file survived the crash model: %v", err)
	}
}

func TestConcurrentApply(t *testing.T) {
	dir := t.TempDir()
	m := mustLoad(t, dir)
	const workers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := fmt.Sprintf("w%d-%d", w, i)
				ck := w*each + i
				if err := m.Apply(Edit{Add: []string{id}}); err != nil {
					errs <- err
					return
				}
				// Checkpoints from racing workers may arrive out of order;
				// a backwards one must be refused, never applied.
				if err := m.Apply(Edit{WALCheckpoint: &ck}); err != nil && !errors.Is(err, ErrInvalid) {
					errs <- err
				}
				_ = m.Live()
				_ = m.Garbage([]string{id, "x"})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	live := m.Live()
	if len(live) != workers*each {
		t.Fatalf("%d live blocks, want %d", len(live), workers*each)
	}
	re := mustLoad(t, dir)
	if !slices.Equal(re.Live(), live) || re.Generation() != m.Generation() || re.WALCheckpoint() != m.WALCheckpoint() {
		t.Fatal("reloaded manifest differs from memory")
	}
}
