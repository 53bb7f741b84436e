package manifest

import (
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"sync"
)

// memFS is an in-memory file system with a crash model: file contents are
// durable only up to their last Sync, directory entries (creations, renames,
// removals) only up to the last SyncDir. crash() returns the file system a
// restarted process would see, either losing everything not yet durable or
// (keepVolatile) keeping what the page cache held, like a process crash
// without an OS crash.
type memFS struct {
	mu      sync.Mutex
	cur     map[string]*memFile // directory entries as the running process sees them
	durable map[string]*memFile // directory entries after the last SyncDir

	// failAt makes the n-th mutating operation (1-based; create, write,
	// sync, close, rename, syncdir) fail; 0 disables. A failing write
	// stores half of its bytes first, like a short write before ENOSPC.
	failAt int
	ops    int
	trace  []string
}

type memFile struct {
	data   []byte
	synced []byte
}

var errInjected = errors.New("injected failure")

func newMemFS() *memFS {
	return &memFS{cur: map[string]*memFile{}, durable: map[string]*memFile{}}
}

func (m *memFS) step(name string) bool {
	m.ops++
	m.trace = append(m.trace, name)
	return m.failAt != 0 && m.ops == m.failAt
}

func (m *memFS) ReadFile(name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.cur[filepath.Base(name)]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return slices.Clone(f.data), nil
}

func (m *memFS) Create(name string) (writeFile, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.step("create") {
		return nil, errInjected
	}
	f := &memFile{}
	m.cur[filepath.Base(name)] = f
	return &memHandle{fs: m, f: f}, nil
}

func (m *memFS) Rename(oldpath, newpath string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.step("rename") {
		return errInjected
	}
	o, n := filepath.Base(oldpath), filepath.Base(newpath)
	f, ok := m.cur[o]
	if !ok {
		return fs.ErrNotExist
	}
	delete(m.cur, o)
	m.cur[n] = f
	return nil
}

func (m *memFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.cur, filepath.Base(name))
	return nil
}

func (m *memFS) SyncDir(string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.step("syncdir") {
		return errInjected
	}
	m.durable = make(map[string]*memFile, len(m.cur))
	for k, v := range m.cur {
		m.durable[k] = v
	}
	return nil
}

// crash returns what a restarted process finds.
func (m *memFS) crash(keepVolatile bool) *memFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := newMemFS()
	entries := m.durable
	if keepVolatile {
		entries = m.cur
	}
	for k, f := range entries {
		data := f.synced
		if keepVolatile {
			data = f.data
		}
		out.cur[k] = &memFile{data: slices.Clone(data), synced: slices.Clone(data)}
		out.durable[k] = out.cur[k]
	}
	return out
}

type memHandle struct {
	fs *memFS
	f  *memFile
}

func (h *memHandle) Write(p []byte) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.fs.step("write") {
		h.f.data = append(h.f.data, p[:len(p)/2]...)
		return len(p) / 2, errInjected
	}
	h.f.data = append(h.f.data, p...)
	return len(p), nil
}

func (h *memHandle) Sync() error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.fs.step("sync") {
		return errInjected
	}
	h.f.synced = slices.Clone(h.f.data)
	return nil
}

func (h *memHandle) Close() error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.fs.step("close") {
		return errInjected
	}
	return nil
}
