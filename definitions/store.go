package definitions

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultHistoryLimit is how many applied versions a Store keeps when
// StoreConfig.HistoryLimit is 0.
const DefaultHistoryLimit = 100

// HistoryFile is the name of the history file in StoreConfig.Dir, and
// ArchiveDir the directory (under Dir) holding a copy of each applied file
// still in the history, named <hash>.yaml.
const (
	HistoryFile = "history.json"
	ArchiveDir  = "versions"
)

// StoreConfig configures a Store.
type StoreConfig struct {
	// Path is the definitions file Reload reads. Empty: Reload fails and
	// only Apply can set definitions.
	Path string
	// Dir, when set, persists the version history (Dir/history.json) and a
	// copy of every applied file (Dir/versions/<hash>.yaml), so that which
	// definitions produced a result survives restarts. It is created if
	// needed.
	Dir string
	// HistoryLimit bounds the versions kept (DefaultHistoryLimit if 0).
	HistoryLimit int
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

// Store holds the definitions in force and the history of applied
// versions. Readers (Current, Version, History) never block: they load an
// atomic pointer. Reload and Apply are serialized among themselves.
type Store struct {
	cfg   StoreConfig
	mu    sync.Mutex // serializes Apply
	state atomic.Pointer[storeState]
}

type storeState struct {
	defs    *Definitions
	history []Version // oldest first; never mutated once published
}

type historyDoc struct {
	Format   int       `json:"format"`
	Versions []Version `json:"versions"`
}

// NewStore returns a Store with empty definitions in force and the
// history restored from cfg.Dir, if any. Call Reload to apply cfg.Path.
func NewStore(cfg StoreConfig) (*Store, error) {
	if cfg.HistoryLimit <= 0 {
		cfg.HistoryLimit = DefaultHistoryLimit
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Store{cfg: cfg}
	st := &storeState{defs: Empty()}
	if cfg.Dir != "" {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, ArchiveDir), 0o755); err != nil {
			return nil, fmt.Errorf("definitions store: %w", err)
		}
		data, err := os.ReadFile(filepath.Join(cfg.Dir, HistoryFile))
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("definitions store: %w", err)
		default:
			var doc historyDoc
			if err := json.Unmarshal(data, &doc); err != nil {
				return nil, fmt.Errorf("definitions store: %s: %w", filepath.Join(cfg.Dir, HistoryFile), err)
			}
			if doc.Format != 1 {
				return nil, fmt.Errorf("definitions store: %s: unsupported format %d", filepath.Join(cfg.Dir, HistoryFile), doc.Format)
			}
			h := doc.Versions
			if len(h) > cfg.HistoryLimit {
				h = h[len(h)-cfg.HistoryLimit:]
			}
			st.history = h
		}
	}
	s.state.Store(st)
	return s, nil
}

// Current returns the definitions in force (never nil).
func (s *Store) Current() *Definitions { return s.state.Load().defs }

// Version returns the version in force (zero before any file is applied).
func (s *Store) Version() Version { return s.state.Load().defs.version }

// History returns the applied versions, oldest first, including versions
// restored from a previous process.
func (s *Store) History() []Version { return slices.Clone(s.state.Load().history) }

// Lookup returns the most recent applied version with the given hash.
func (s *Store) Lookup(hash string) (Version, bool) {
	h := s.state.Load().history
	for i := len(h) - 1; i >= 0; i-- {
		if h[i].Hash == hash {
			return h[i], true
		}
	}
	return Version{}, false
}

// Archived returns the bytes of an applied file still in the history, by
// hash (needs StoreConfig.Dir).
func (s *Store) Archived(hash string) ([]byte, error) {
	if s.cfg.Dir == "" {
		return nil, errors.New("definitions store: no directory configured")
	}
	if _, err := hex.DecodeString(hash); err != nil || len(hash) != 2*sha256.Size {
		return nil, fmt.Errorf("definitions store: %q is not a sha256 hash", hash)
	}
	return os.ReadFile(filepath.Join(s.cfg.Dir, ArchiveDir, hash+".yaml"))
}

// Reload reads StoreConfig.Path and applies it (see Apply). This is what
// SIGHUP and POST /api/v1/definitions/reload call.
func (s *Store) Reload() (Version, error) {
	if s.cfg.Path == "" {
		return s.Version(), errors.New("definitions store: no definitions file configured")
	}
	data, err := os.ReadFile(s.cfg.Path)
	if err != nil {
		return s.Version(), err
	}
	return s.Apply(s.cfg.Path, data)
}

// Apply parses data and, when it is valid, puts it in force as a new
// version and returns it. When it is invalid (an *Error) or cannot be
// recorded, the definitions in force stay, and Apply returns their version
// with the error. A file identical to the last applied one is not a new
// version: Apply returns that version (with its original LoadedAt), which
// is also what happens when a restarted process reloads an unchanged file.
func (s *Store) Apply(source string, data []byte) (Version, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.state.Load()
	d, err := Parse(source, data)
	if err != nil {
		return old.defs.version, err
	}
	if n := len(old.history); n > 0 && old.history[n-1].Hash == d.version.Hash {
		if old.defs.version.Hash == d.version.Hash {
			return old.defs.version, nil
		}
		d.version = old.history[n-1]
		s.state.Store(&storeState{defs: d, history: old.history})
		return d.version, nil
	}
	d.version.LoadedAt = s.cfg.Now().UTC()
	history := append(slices.Clone(old.history), d.version)
	var dropped []Version
	if len(history) > s.cfg.HistoryLimit {
		k := len(history) - s.cfg.HistoryLimit
		dropped, history = history[:k], history[k:]
	}
	if s.cfg.Dir != "" {
		if err := s.persist(d.version.Hash, data, history, dropped); err != nil {
			return old.defs.version, err
		}
	}
	s.state.Store(&storeState{defs: d, history: history})
	return d.version, nil
}

// persist writes the applied file's copy and the history, each atomically,
// then removes the copies no longer referenced.
func (s *Store) persist(hash string, data []byte, history, dropped []Version) error {
	arch := filepath.Join(s.cfg.Dir, ArchiveDir)
	copyPath := filepath.Join(arch, hash+".yaml")
	newCopy := false
	if _, err := os.Stat(copyPath); err != nil {
		if err := writeFileAtomic(copyPath, data); err != nil {
			return fmt.Errorf("definitions store: %w", err)
		}
		newCopy = true
	}
	doc, err := json.MarshalIndent(historyDoc{Format: 1, Versions: history}, "", "  ")
	if err == nil {
		err = writeFileAtomic(filepath.Join(s.cfg.Dir, HistoryFile), append(doc, '\n'))
	}
	if err != nil {
		if newCopy {
			_ = os.Remove(copyPath)
		}
		return fmt.Errorf("definitions store: %w", err)
	}
	for _, v := range dropped {
		if !slices.ContainsFunc(history, func(h Version) bool { return h.Hash == v.Hash }) {
			_ = os.Remove(filepath.Join(arch, v.Hash+".yaml"))
		}
	}
	return nil
}

// writeFileAtomic writes path via a temporary file in the same directory:
// write, fsync, rename, fsync the directory.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
