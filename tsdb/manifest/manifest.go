package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// File names inside the manifest's directory.
const (
	// FileName is the manifest file.
	FileName = "MANIFEST"
	// TempFileName is where the next generation is written before the rename.
	TempFileName = FileName + ".tmp"
	// Magic identifies a manifest file.
	Magic = "evalstore-manifest"
	// FormatVersion is the layout version written by this package.
	FormatVersion = 1
	// MaxIDLength bounds a block ID (it is a directory name).
	MaxIDLength = 200
)

// Sentinel errors; every returned error wraps one of them or an I/O error.
var (
	// ErrCorrupt means the MANIFEST file exists but is damaged: bad JSON,
	// wrong magic, checksum mismatch or contents that violate its invariants.
	ErrCorrupt = errors.New("manifest: corrupt")
	// ErrUnsupportedVersion means the file was written by a newer format.
	ErrUnsupportedVersion = errors.New("manifest: unsupported format version")
	// ErrInvalid reports an edit that does not apply to the current state.
	ErrInvalid = errors.New("manifest: invalid edit")
)

// Edit is one atomic change of the live set.
type Edit struct {
	// Add lists block IDs that become live. They must not be live already.
	Add []string
	// Remove lists live block IDs that stop being live.
	Remove []string
	// Rollups maps a block ID added by this edit to the live (or added) block
	// it is a coarser copy of: the same data at a coarser resolution. The read
	// planner reads exactly one of them for any time range. Removing a block
	// requires removing its rollups in the same edit.
	Rollups map[string]string
	// WALCheckpoint, if set, becomes the new checkpoint: every WAL segment
	// numbered ≤ it is fully contained in the live blocks after this edit. It
	// may not move backwards.
	WALCheckpoint *int
}

// state is one generation; it is never mutated once published.
type state struct {
	generation    uint64
	blocks        []string          // sorted, unique
	rollups       map[string]string // rollup ID → base ID; both in blocks
	walCheckpoint int
}

// Manifest is the in-memory copy of the newest durable generation.
type Manifest struct {
	dir string
	fs  fileSystem

	mu  sync.Mutex // serializes Apply
	st  state      // guarded by mu
	err error      // poison: set when the disk state is unknown
}

// Load reads dir/MANIFEST. A missing file (or directory) gives an empty
// manifest at generation 0. Apply needs dir to exist.
func Load(dir string) (*Manifest, error) { return load(dir, osFS{}) }

func load(dir string, fsys fileSystem) (*Manifest, error) {
	m := &Manifest{dir: dir, fs: fsys, st: state{walCheckpoint: -1}}
	b, err := fsys.ReadFile(filepath.Join(dir, FileName))
	if errors.Is(err, fs.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, fmt.Errorf("manifest: read %s: %w", filepath.Join(dir, FileName), err)
	}
	st, err := decode(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, FileName), err)
	}
	m.st = st
	return m, nil
}

// Dir is the directory holding the MANIFEST file.
func (m *Manifest) Dir() string { return m.dir }

// Generation is the generation of the state in memory (0: no file yet).
func (m *Manifest) Generation() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.generation
}

// WALCheckpoint is the last WAL segment fully contained in live blocks, or
// -1 if none is.
func (m *Manifest) WALCheckpoint() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.walCheckpoint
}

// Live returns the live block IDs, sorted. The slice is the caller's.
func (m *Manifest) Live() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.st.blocks)
}

// Rollups returns a copy of the rollup → base mapping of live blocks.
func (m *Manifest) Rollups() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]string, len(m.st.rollups))
	for k, v := range m.st.rollups {
		out[k] = v
	}
	return out
}

// Garbage returns, sorted, the entries of the blocks directory that must be
// deleted at startup: everything not live (unfinished ".tmp" directories,
// outputs of compactions that crashed before their edit, inputs of edits
// whose deletion did not finish). The manifest's own file names are never
// returned. At generation 0 (no MANIFEST yet) only ".tmp" entries are
// returned: without a manifest nothing proves a finished block is garbage,
// and deleting it could destroy data (for example after a lost MANIFEST).
func (m *Manifest) Garbage(dirEntries []string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, e := range dirEntries {
		if e == FileName || e == TempFileName || e == "" {
			continue
		}
		if m.st.generation == 0 {
			if strings.HasSuffix(e, ".tmp") {
				out = append(out, e)
			}
			continue
		}
		if _, ok := slices.BinarySearch(m.st.blocks, e); !ok {
			out = append(out, e)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Apply validates e against the current state, writes the next generation
// durably and only then makes it the state in memory. See the package
// documentation for what an error means.
func (m *Manifest) Apply(e Edit) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	next, err := m.st.apply(e)
	if err != nil {
		return err
	}
	if err := m.write(encode(next)); err != nil {
		return err
	}
	m.st = next
	return nil
}

// write replaces the MANIFEST file with b: temp file, fsync, rename, fsync
// of the directory. It poisons m when the outcome on disk is unknown.
func (m *Manifest) write(b []byte) error {
	tmp := filepath.Join(m.dir, TempFileName)
	dst := filepath.Join(m.dir, FileName)
	fail := func(step string, err error) error {
		// Before the rename the old generation is intact; the temp file is
		// only litter (the next Apply truncates it).
		_ = m.fs.Remove(tmp)
		return fmt.Errorf("manifest: %s %s: %w", step, tmp, err)
	}
	f, err := m.fs.Create(tmp)
	if err != nil {
		return fail("create", err)
	}
	if n, err := f.Write(b); err != nil || n != len(b) {
		_ = f.Close()
		if err == nil {
			err = fmt.Errorf("short write %d of %d bytes", n, len(b))
		}
		return fail("write", err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fail("fsync", err)
	}
	if err := f.Close(); err != nil {
		return fail("close", err)
	}
	if err := m.fs.Rename(tmp, dst); err != nil {
		m.err = fmt.Errorf("manifest: rename %s: %w (state on disk unknown; reload)", dst, err)
		return m.err
	}
	if err := m.fs.SyncDir(m.dir); err != nil {
		m.err = fmt.Errorf("manifest: fsync dir %s: %w (state on disk unknown; reload)", m.dir, err)
		return m.err
	}
	return nil
}

func (s state) apply(e Edit) (state, error) {
	bad := func(format string, args ...any) (state, error) {
		return state{}, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
	}
	live := make(map[string]bool, len(s.blocks)+len(e.Add))
	for _, id := range s.blocks {
		live[id] = true
	}
	removed := make(map[string]bool, len(e.Remove))
	for _, id := range e.Remove {
		if !live[id] {
			return bad("remove %q: not live", id)
		}
		if removed[id] {
			return bad("remove %q: listed twice", id)
		}
		removed[id] = true
	}
	added := make(map[string]bool, len(e.Add))
	for _, id := range e.Add {
		if err := ValidID(id); err != nil {
			return bad("add: %v", err)
		}
		if live[id] {
			return bad("add %q: already live", id)
		}
		if added[id] {
			return bad("add %q: listed twice", id)
		}
		added[id] = true
	}
	next := state{generation: s.generation + 1, walCheckpoint: s.walCheckpoint, rollups: map[string]string{}}
	for _, id := range s.blocks {
		if !removed[id] {
			next.blocks = append(next.blocks, id)
		}
	}
	next.blocks = append(next.blocks, e.Add...)
	slices.Sort(next.blocks)
	for r, b := range s.rollups {
		if removed[r] {
			continue
		}
		if removed[b] {
			return bad("remove %q: its rollup %q stays live", b, r)
		}
		next.rollups[r] = b
	}
	for r, b := range e.Rollups {
		if !added[r] {
			return bad("rollup %q: not added by this edit", r)
		}
		next.rollups[r] = b
	}
	if err := checkRollups(next.blocks, next.rollups); err != nil {
		return bad("%v", err)
	}
	if e.WALCheckpoint != nil {
		if *e.WALCheckpoint < s.walCheckpoint {
			return bad("WAL checkpoint %d before current %d", *e.WALCheckpoint, s.walCheckpoint)
		}
		next.walCheckpoint = *e.WALCheckpoint
	}
	return next, nil
}

// checkRollups checks that every rollup and its base are live, distinct, and
// that a base is not itself a rollup (no chains: a chain would let the read
// planner see two copies without a common base).
func checkRollups(blocks []string, rollups map[string]string) error {
	for r, b := range rollups {
		if _, ok := slices.BinarySearch(blocks, r); !ok {
			return fmt.Errorf("rollup %q is not live", r)
		}
		if _, ok := slices.BinarySearch(blocks, b); !ok {
			return fmt.Errorf("rollup %q: base %q is not live", r, b)
		}
		if r == b {
			return fmt.Errorf("rollup %q is its own base", r)
		}
		if _, ok := rollups[b]; ok {
			return fmt.Errorf("rollup %q: base %q is itself a rollup", r, b)
		}
	}
	return nil
}

// ValidID reports whether id can name a block directory: 1 to MaxIDLength
// bytes of [0-9A-Za-z_-], so it is never a path, a hidden or temporary name
// or one of the manifest's own files.
func ValidID(id string) error {
	if id == "" || len(id) > MaxIDLength {
		return fmt.Errorf("block ID %q: length %d not in [1, %d]", id, len(id), MaxIDLength)
	}
	if id == FileName {
		return fmt.Errorf("block ID %q: reserved", id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '-') {
			return fmt.Errorf("block ID %q: byte %d (%q) not in [0-9A-Za-z_-]", id, i, c)
		}
	}
	return nil
}

// fileJSON is the on-disk envelope. Body is kept as raw bytes so the
// checksum covers exactly what is stored.
type fileJSON struct {
	Magic   string          `json:"magic"`
	Version int             `json:"version"`
	CRC32C  string          `json:"crc32c"`
	Body    json.RawMessage `json:"body"`
}

type bodyJSON struct {
	Generation    uint64            `json:"generation"`
	WALCheckpoint int               `json:"walCheckpoint"`
	Blocks        []string          `json:"blocks"`
	Rollups       map[string]string `json:"rollups"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func checksum(b []byte) string {
	return fmt.Sprintf("%08x", crc32.Checksum(b, castagnoli))
}

func encode(s state) []byte {
	blocks := s.blocks
	if blocks == nil {
		blocks = []string{}
	}
	rollups := s.rollups
	if rollups == nil {
		rollups = map[string]string{}
	}
	// Marshal of these types cannot fail; map keys are emitted sorted, so
	// the encoding is canonical.
	body, _ := json.Marshal(bodyJSON{Generation: s.generation, WALCheckpoint: s.walCheckpoint, Blocks: blocks, Rollups: rollups})
	var buf bytes.Buffer
	buf.WriteString(`{"magic":"` + Magic + `","version":` + strconv.Itoa(FormatVersion) + `,"crc32c":"`)
	buf.WriteString(checksum(body))
	buf.WriteString(`","body":`)
	buf.Write(body)
	buf.WriteString("}\n")
	return buf.Bytes()
}

func decode(b []byte) (state, error) {
	corrupt := func(format string, args ...any) (state, error) {
		return state{}, fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
	}
	var f fileJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return corrupt("envelope: %v", err)
	}
	if dec.More() {
		return corrupt("trailing data after the envelope")
	}
	if f.Magic != Magic {
		return corrupt("magic %q, want %q", f.Magic, Magic)
	}
	if f.Version > FormatVersion {
		return state{}, fmt.Errorf("%w: version %d, newest known %d", ErrUnsupportedVersion, f.Version, FormatVersion)
	}
	if f.Version != FormatVersion {
		return corrupt("version %d", f.Version)
	}
	if got := checksum(f.Body); got != f.CRC32C {
		return corrupt("body checksum %s, stored %q", got, f.CRC32C)
	}
	var body bodyJSON
	bdec := json.NewDecoder(bytes.NewReader(f.Body))
	bdec.DisallowUnknownFields()
	if err := bdec.Decode(&body); err != nil {
		return corrupt("body: %v", err)
	}
	if body.Generation == 0 {
		return corrupt("generation 0 (a written manifest starts at 1)")
	}
	if body.WALCheckpoint < -1 {
		return corrupt("walCheckpoint %d below -1", body.WALCheckpoint)
	}
	for i, id := range body.Blocks {
		if err := ValidID(id); err != nil {
			return corrupt("blocks[%d]: %v", i, err)
		}
		if i > 0 && body.Blocks[i-1] >= id {
			return corrupt("blocks not sorted and unique at index %d", i)
		}
	}
	if err := checkRollups(body.Blocks, body.Rollups); err != nil {
		return corrupt("%v", err)
	}
	st := state{generation: body.Generation, walCheckpoint: body.WALCheckpoint, blocks: body.Blocks, rollups: body.Rollups}
	if st.rollups == nil {
		st.rollups = map[string]string{}
	}
	// Only the canonical encoding is accepted, so every byte of the file is
	// significant (encoding/json alone would accept re-cased keys, spaces).
	if !bytes.Equal(encode(st), b) {
		return corrupt("not in canonical form")
	}
	return st, nil
}
