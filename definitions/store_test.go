package definitions

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Minute)
	return c.t
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
}

const (
	defsA = "models:\n  churn: {task: binary, classes: [0, 1], positive_class: 1}\nslices:\n  eu: country == \"de\"\n"
	defsB = defsA + "  us: country == \"us\"\n"
	defsC = "slices:\n  mobile: device in (\"ios\")\n"
	bad   = "models:\n  churn: {task: binary, classes: [0, 1], positive_class: 2}\n"
)

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestStoreReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "defs.yaml")
	clock := newClock()
	s, err := NewStore(StoreConfig{Path: path, Dir: filepath.Join(dir, "state"), Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	if s.Current() == nil || s.Version() != (Version{}) || len(s.History()) != 0 {
		t.Fatal("fresh store not empty")
	}
	if _, err := s.Reload(); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("reload of a missing file: %v", err)
	}

	write(t, path, defsA)
	v1, err := s.Reload()
	if err != nil {
		t.Fatal(err)
	}
	if v1.Source != path || len(v1.Hash) != 64 || !v1.LoadedAt.Equal(time.Date(2026, 11, 26, 12, 1, 0, 0, time.UTC)) {
		t.Fatalf("v1 = %+v", v1)
	}
	if s.Version() != v1 || s.Current().Version() != v1 {
		t.Fatal("v1 not in force")
	}
	if _, ok := s.Current().Slice("eu"); !ok {
		t.Fatal("eu missing")
	}

	// The same bytes again are not a new version.
	if v, err := s.Reload(); err != nil || v != v1 || len(s.History()) != 1 {
		t.Fatalf("same file: %+v %v %d", v, err, len(s.History()))
	}

	// An invalid file is refused and the previous definitions stay.
	write(t, path, bad)
	v, err := s.Reload()
	var e *Error
	if !errors.As(err, &e) || !strings.Contains(err.Error(), path+":2:58: models.churn.positive_class \"2\" is not one of classes [0 1]") {
		t.Fatalf("bad file: %v", err)
	}
	if v != v1 || s.Version() != v1 || len(s.History()) != 1 {
		t.Fatal("an invalid file changed the version")
	}

	write(t, path, defsB)
	v2, err := s.Reload()
	if err != nil || v2.Hash == v1.Hash || !v2.LoadedAt.After(v1.LoadedAt) {
		t.Fatalf("v2 = %+v, %v", v2, err)
	}
	if _, ok := s.Current().Slice("us"); !ok {
		t.Fatal("us missing")
	}
	// Back to A is a new version (A applied again, later).
	write(t, path, defsA)
	v3, _ := s.Reload()
	if v3.Hash != v1.Hash || v3.LoadedAt == v1.LoadedAt {
		t.Fatalf("v3 = %+v", v3)
	}
	if h := s.History(); !slices.Equal(h, []Version{v1, v2, v3}) {
		t.Fatalf("history %+v", h)
	}
	if got, ok := s.Lookup(v1.Hash); !ok || got != v3 {
		t.Fatalf("Lookup = %+v", got)
	}
	if _, ok := s.Lookup("00"); ok {
		t.Fatal("Lookup of an unknown hash")
	}
	if b, err := s.Archived(v2.Hash); err != nil || string(b) != defsB {
		t.Fatalf("Archived = %q, %v", b, err)
	}
	if _, err := s.Archived("../../etc/passwd"); err == nil {
		t.Fatal("Archived accepted a path")
	}

	// A restart restores the history; reloading the unchanged file keeps
	// its version (and time).
	s2, err := NewStore(StoreConfig{Path: path, Dir: filepath.Join(dir, "state"), Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	if h := s2.History(); !slices.Equal(h, []Version{v1, v2, v3}) {
		t.Fatalf("restored history %+v", h)
	}
	if s2.Version() != (Version{}) {
		t.Fatal("restart put definitions in force before Reload")
	}
	if v, err := s2.Reload(); err != nil || v != v3 || len(s2.History()) != 3 {
		t.Fatalf("reload after restart: %+v %v", v, err)
	}
}

func TestStoreApplyWithoutPathOrDir(t *testing.T) {
	s, err := NewStore(StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reload(); err == nil {
		t.Fatal("Reload without a path")
	}
	v, err := s.Apply("inline", []byte(defsC))
	if err != nil || v.Source != "inline" || v.LoadedAt.IsZero() {
		t.Fatalf("%+v %v", v, err)
	}
	if _, err := s.Archived(v.Hash); err == nil {
		t.Fatal("Archived without a directory")
	}
}

func TestStoreHistoryBound(t *testing.T) {
	dir := t.TempDir()
	s, err := NewStore(StoreConfig{Dir: dir, HistoryLimit: 3, Now: newClock().now})
	if err != nil {
		t.Fatal(err)
	}
	var vs []Version
	for i, src := range []string{defsA, defsB, defsC, defsA, "metrics:\n  m: x\n"} {
		v, err := s.Apply("f", []byte(src))
		if err != nil {
			t.Fatal(i, err)
		}
		vs = append(vs, v)
	}
	if h := s.History(); !slices.Equal(h, vs[2:]) {
		t.Fatalf("history %+v", h)
	}
	// defsB dropped out of the history: its copy is gone; defsA's stays.
	if _, err := s.Archived(vs[1].Hash); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("copy of a dropped version: %v", err)
	}
	if _, err := s.Archived(vs[0].Hash); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, ArchiveDir))
	if len(entries) != 3 {
		t.Fatalf("%d archived copies", len(entries))
	}
	// A smaller limit on restart trims the restored history.
	s2, _ := NewStore(StoreConfig{Dir: dir, HistoryLimit: 2})
	if h := s2.History(); !slices.Equal(h, vs[3:]) {
		t.Fatalf("trimmed history %+v", h)
	}
}

func TestStoreCorruptHistory(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, HistoryFile), "{not json")
	if _, err := NewStore(StoreConfig{Dir: dir}); err == nil {
		t.Fatal("corrupt history accepted")
	}
	write(t, filepath.Join(dir, HistoryFile), `{"format": 9, "versions": []}`)
	if _, err := NewStore(StoreConfig{Dir: dir}); err == nil {
		t.Fatal("unknown format accepted")
	}
}

func TestStorePersistFailureKeepsPrevious(t *testing.T) {
	dir := t.TempDir()
	s, _ := NewStore(StoreConfig{Dir: dir, Now: newClock().now})
	v1, err := s.Apply("f", []byte(defsA))
	if err != nil {
		t.Fatal(err)
	}
	// Make the history unwritable (a directory where the file goes); this
	// works even for root.
	os.Remove(filepath.Join(dir, HistoryFile))
	os.Mkdir(filepath.Join(dir, HistoryFile), 0o755)
	os.WriteFile(filepath.Join(dir, HistoryFile, "x"), nil, 0o644)
	if _, err := s.Apply("f", []byte(defsB)); err == nil {
		t.Fatal("apply succeeded although it could not be recorded")
	}
	if s.Version() != v1 || len(s.History()) != 1 {
		t.Fatal("a version that could not be recorded was put in force")
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, ArchiveDir)); len(entries) != 1 {
		t.Fatalf("%d archived copies, want 1 (the failed version's copy is removed)", len(entries))
	}
}

// Readers never block and always see a consistent Definitions while
// reloads (valid and invalid) run; run with -race.
func TestStoreConcurrentReaders(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "defs.yaml")
	write(t, path, defsA)
	s, _ := NewStore(StoreConfig{Path: path, Dir: filepath.Join(dir, "state")})
	if _, err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var reads atomic.Int64
	for range 4 {
		wg.Go(func() {
			r := &MapRecord{Model: "churn", Features: map[string]Value{"country": StringValue("de")}}
			dst := make([]string, 0, 8)
			for !stop.Load() {
				d := s.Current()
				dst = d.SlicesFor("churn", r, dst[:0])
				if len(dst) < 2 || dst[0] != "all" || dst[1] != "eu" {
					t.Errorf("inconsistent slices %v", dst)
					return
				}
				if d.Version().Hash == "" || len(s.History()) == 0 {
					t.Error("no version")
					return
				}
				reads.Add(1)
			}
		})
	}
	srcs := []string{defsB, bad, defsA, "models: [", defsB}
	for i := range 100 {
		write(t, path, srcs[i%len(srcs)])
		s.Reload()
	}
	stop.Store(true)
	wg.Wait()
	if reads.Load() == 0 {
		t.Fatal("no reads")
	}
}
