package ingest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"evalstore/definitions"
	"evalstore/tsdb/wal"
)

// The join store: pending predictions and held feedback keyed by (model,
// id), plus the per-model registries (class indices, types of undeclared
// features). It lives in memory; every change is logged to its own WAL
// (Dir/wal) as one record per batch before the batch's tsdb commit, and a
// snapshot (Dir/snapshot) bounds the replay. See docs/ingest.md.

const snapshotFile = "snapshot"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type classMap struct {
	idx   map[string]int32
	names []string
}

type joinStore struct {
	dir     string
	w       *wal.WAL
	pending *pendingMap
	held    map[string]*held
	tombs   map[string]int64 // expired prediction keys -> expiry time (ms)
	classes map[string]*classMap
	// features is also read without the ingester lock (pre-routing), so
	// writes hold regMu too.
	regMu     sync.RWMutex
	features  map[string]map[string]definitions.FeatureType
	seq       uint64
	snapBytes uint64 // WAL bytes written at the last snapshot
	lastSweep int64
}

func newJoinState(dir string) *joinStore {
	return &joinStore{
		dir:      dir,
		pending:  newPendingMap(),
		held:     make(map[string]*held),
		tombs:    make(map[string]int64),
		classes:  make(map[string]*classMap),
		features: make(map[string]map[string]definitions.FeatureType),
	}
}

func encodeMarker(typ byte, seq uint64) []byte {
	b := []byte{typ}
	return binary.AppendUvarint(b, seq)
}

// openJoinStore loads the snapshot, replays the WAL and settles an in-doubt
// last batch with resolve (true: it reached the tsdb).
func openJoinStore(dir string, opts wal.Options, resolve func() (uint64, bool, error), log *slog.Logger) (*joinStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	s := newJoinState(dir)
	from, snapSeq, err := s.loadSnapshot()
	if err != nil {
		return nil, err
	}
	w, err := wal.Open(filepath.Join(dir, "wal"), opts)
	if err != nil {
		return nil, err
	}
	s.w = w
	first, last, err := w.Segments()
	if err != nil {
		w.Close()
		return nil, err
	}
	if from < first {
		from = first
	}
	if from > last+1 {
		from = last + 1
	}
	// Batch records may be in the WAL out of sequence order (concurrent
	// batches log concurrently) but commit to the tsdb strictly in order, so
	// the committed batches are a prefix 1..C of the sequence. Collect,
	// find C, apply 1..C in order, abort the rest.
	batches := make(map[uint64][]byte)
	var maxSeq, through uint64
	type span struct{ from, to uint64 }
	var aborted []span
	err = w.Replay(from, func(rec []byte) error {
		if len(rec) == 0 {
			return nil
		}
		d := dec{b: rec[1:]}
		switch rec[0] {
		case recBatch:
			seq, thr := d.uvarint(), d.uvarint()
			if d.err != nil {
				return d.err
			}
			maxSeq, through = max(maxSeq, seq), max(through, thr)
			if seq > snapSeq {
				batches[seq] = append([]byte(nil), rec...)
			}
		case recAbort:
			from, to := d.uvarint(), d.uvarint()
			if d.err != nil {
				return d.err
			}
			aborted = append(aborted, span{from, to})
			maxSeq = max(maxSeq, to)
		default:
			return fmt.Errorf("ingest: join WAL: unknown record type %d", rec[0])
		}
		return nil
	})
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("ingest: join WAL replay: %w", err)
	}
	isAborted := func(seq uint64) bool {
		for _, a := range aborted {
			if seq >= a.from && seq <= a.to {
				return true
			}
		}
		return false
	}
	var live []uint64
	for seq := range batches {
		if !isAborted(seq) {
			live = append(live, seq)
		}
	}
	sort.Slice(live, func(i, j int) bool { return live[i] < live[j] })
	if len(live) > 0 {
		// Everything up to through is known committed; beyond, ask.
		committed := through
		if live[len(live)-1] > through {
			c, known, err := resolve()
			if err != nil {
				w.Close()
				return nil, fmt.Errorf("ingest: reading the commit marker: %w", err)
			}
			if known {
				committed = max(committed, c)
			}
		}
		n := 0
		for _, seq := range live {
			if seq > committed {
				break
			}
			if err := s.applyBatch(batches[seq]); err != nil {
				w.Close()
				return nil, err
			}
			n++
		}
		if n < len(live) {
			rec := encodeMarker(recAbort, committed+1)
			rec = binary.AppendUvarint(rec, maxSeq)
			if err := w.Log(rec); err != nil {
				w.Close()
				return nil, err
			}
			log.Warn("ingest: join batches that did not reach the tsdb were rolled back", "from", committed+1, "to", maxSeq, "batches", len(live)-n)
		}
	}
	s.seq = max(maxSeq, snapSeq)
	s.snapBytes = 0
	return s, nil
}

// applyBatch applies a recBatch record (replay) to the state.
func (s *joinStore) applyBatch(rec []byte) error {
	d := dec{b: rec[1:]}
	d.uvarint()
	d.uvarint()
	for d.err == nil && len(d.b) > 0 {
		s.applyOp(&d)
	}
	return d.err
}

func (s *joinStore) applyOp(d *dec) {
	switch op := d.byte(); op {
	case opPutEntry:
		k, e := decodeEntry(d)
		if d.err == nil {
			s.pending.put(k, e)
		}
	case opPutHeld:
		k, h := decodeHeld(d)
		if d.err == nil {
			s.held[k] = h
		}
	case opDelHeld:
		k := d.str()
		if d.err == nil {
			delete(s.held, k)
		}
	case opClass:
		model, class, idx := d.str(), d.str(), d.varint()
		if d.err == nil {
			s.setClass(model, class, int32(idx))
		}
	case opFeature:
		model, feat, typ := d.str(), d.str(), d.byte()
		if d.err == nil {
			s.setFeature(model, feat, featureTypeOf(typ))
		}
	default:
		if d.err == nil {
			d.err = fmt.Errorf("ingest: join record: unknown op %d", op)
		}
	}
}

func featureTypeCode(t definitions.FeatureType) byte {
	if t == definitions.Numeric {
		return 1
	}
	return 2
}

func featureTypeOf(b byte) definitions.FeatureType {
	if b == 1 {
		return definitions.Numeric
	}
	return definitions.Categorical
}

func (s *joinStore) setClass(model, class string, idx int32) {
	cm := s.classes[model]
	if cm == nil {
		cm = &classMap{idx: make(map[string]int32)}
		s.classes[model] = cm
	}
	cm.idx[class] = idx
	for int(idx) >= len(cm.names) {
		cm.names = append(cm.names, "")
	}
	cm.names[idx] = class
}

func (s *joinStore) setFeature(model, feat string, t definitions.FeatureType) {
	s.regMu.Lock()
	defer s.regMu.Unlock()
	fm := s.features[model]
	if fm == nil {
		fm = make(map[string]definitions.FeatureType)
		s.features[model] = fm
	}
	fm[feat] = t
}

func (s *joinStore) expired(key string) bool {
	_, ok := s.tombs[key]
	return ok
}

// sweep drops predictions and held feedback older than the join window
// (now − window), keeping a tombstone of each expired prediction for one
// more window so that its late feedback is reported as expired.
func (s *joinStore) sweep(now, window int64, c *counters) {
	s.lastSweep = now
	cut := now - window
	s.pending.expire(cut, func(k string) { s.tombs[k] = now })
	for k, h := range s.held {
		if h.arrived < cut {
			delete(s.held, k)
			c.unknown.Add(1)
		}
	}
	for k, t := range s.tombs {
		if t < cut {
			delete(s.tombs, k)
		}
	}
}

// snapshot writes the whole state to Dir/snapshot and truncates the WAL
// before the segment it starts. Called with the ingester's lock held, so no
// batch is in flight.
func (s *joinStore) snapshot() error {
	next, err := s.w.NextSegment()
	if err != nil {
		return err
	}
	e := enc{b: make([]byte, 0, 64+s.pending.len()*96)}
	e.byte(opSnapshot)
	e.uvarint(s.seq)
	e.uvarint(uint64(next))
	models := make([]string, 0, len(s.classes))
	for m := range s.classes {
		models = append(models, m)
	}
	sort.Strings(models)
	for _, m := range models {
		for i, c := range s.classes[m].names {
			e.byte(opClass)
			e.str(m)
			e.str(c)
			e.varint(int64(i))
		}
	}
	for m, fm := range s.features {
		for f, t := range fm {
			e.byte(opFeature)
			e.str(m)
			e.str(f)
			e.byte(featureTypeCode(t))
		}
	}
	s.pending.each(func(k string, v *entry) { encodeEntry(&e, k, v) })
	for k, h := range s.held {
		encodeHeld(&e, k, h)
	}
	e.b = binary.LittleEndian.AppendUint32(e.b, crc32.Checksum(e.b, castagnoli))
	tmp := filepath.Join(s.dir, snapshotFile+".tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	_, err = f.Write(e.b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(s.dir, snapshotFile))
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	s.snapBytes = s.w.Stats().Bytes
	return s.w.TruncateBefore(next)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}

// loadSnapshot loads Dir/snapshot if any; it returns the WAL segment to
// replay from and the last batch sequence number the snapshot includes.
func (s *joinStore) loadSnapshot() (from int, seq uint64, err error) {
	b, err := os.ReadFile(filepath.Join(s.dir, snapshotFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	if len(b) < 4 || crc32.Checksum(b[:len(b)-4], castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return 0, 0, fmt.Errorf("ingest: join snapshot %s: checksum mismatch", filepath.Join(s.dir, snapshotFile))
	}
	d := dec{b: b[:len(b)-4]}
	if d.byte() != opSnapshot {
		return 0, 0, fmt.Errorf("ingest: join snapshot: bad header")
	}
	seq = d.uvarint()
	from = int(d.uvarint())
	for d.err == nil && len(d.b) > 0 {
		s.applyOp(&d)
	}
	if d.err != nil {
		return 0, 0, fmt.Errorf("ingest: join snapshot: %w", d.err)
	}
	s.seq = seq
	return from, seq, nil
}

// txn is one batch's view of the join store: changes are staged here and
// applied to the store only after the batch committed.
type txn struct {
	s          *joinStore
	maxClasses int
	entries    map[string]*entry
	// fresh are new entries whose keys are known not to be pending nor in
	// entries (putNewEntry): appended without a map.
	fresh      []keyedEntry
	held       map[string]*held // nil value: deleted
	newClasses []classAssign
	classes    map[string]*classMap // staged new classes per model
	features   map[string]map[string]definitions.FeatureType
	newFeats   []featAssign
	added      int // net new keys (entries + held)
}

type classAssign struct {
	model, class string
	idx          int32
}

type featAssign struct {
	model, feature string
	typ            definitions.FeatureType
}

func (s *joinStore) begin(maxClasses int) *txn {
	return &txn{s: s, maxClasses: maxClasses, entries: make(map[string]*entry), held: make(map[string]*held)}
}

func (t *txn) empty() bool {
	return len(t.entries) == 0 && len(t.fresh) == 0 && len(t.held) == 0 && len(t.newClasses) == 0 && len(t.newFeats) == 0
}

func (t *txn) size() int { return t.s.pending.len() + len(t.s.held) + t.added }

// entry returns a copy of key's entry as staged or pending, which the
// caller may change and stage (putEntry), or nil.
func (t *txn) entry(key string) *entry {
	if e, ok := t.entries[key]; ok {
		return e.clone()
	}
	return t.s.pending.get(key)
}

// hasEntry reports whether key has an entry (staged or pending).
func (t *txn) hasEntry(key string) bool {
	if _, ok := t.entries[key]; ok {
		return true
	}
	return t.s.pending.has(key)
}

func (t *txn) putEntry(key string, e *entry) {
	if !t.hasEntry(key) {
		t.added++
	}
	t.entries[key] = e
}

// keyedEntry is a staged new entry and its key.
type keyedEntry struct {
	key string
	e   *entry
}

// putNewEntry stages an entry whose key is neither pending in the store
// nor staged in t; the key must not be looked up (entry) or staged again in
// this transaction.
func (t *txn) putNewEntry(key string, e *entry) {
	t.added++
	t.fresh = append(t.fresh, keyedEntry{key, e})
}

func (t *txn) anyHeld() bool { return len(t.s.held) > 0 || len(t.held) > 0 }

func (t *txn) heldFor(key string) *held {
	if h, ok := t.held[key]; ok {
		return h
	}
	return t.s.held[key]
}

func (t *txn) putHeld(key string, h *held) {
	if t.heldFor(key) == nil {
		t.added++
	}
	t.held[key] = h
}

func (t *txn) delHeld(key string) {
	if t.heldFor(key) != nil {
		t.added--
	}
	t.held[key] = nil
}

// classIndex returns the stable confusion index of class for model,
// assigning the next free index (staged in this batch) to a new class. A
// declared model's classes are assigned first, in declared order.
func (t *txn) classIndex(model string, m *definitions.Model, class string) (int, error) {
	if cm := t.s.classes[model]; cm != nil {
		if i, ok := cm.idx[class]; ok {
			return int(i), nil
		}
	}
	if cm := t.classes[model]; cm != nil {
		if i, ok := cm.idx[class]; ok {
			return int(i), nil
		}
	}
	if t.classes == nil {
		t.classes = make(map[string]*classMap)
	}
	cm := t.classes[model]
	if cm == nil {
		cm = &classMap{idx: make(map[string]int32)}
		t.classes[model] = cm
		if m != nil && len(m.Classes) > 0 && t.s.classes[model] == nil {
			for _, c := range m.Classes {
				t.assign(model, cm, c)
			}
			if i, ok := cm.idx[class]; ok {
				return int(i), nil
			}
		}
	}
	if t.count(model) >= t.maxClasses {
		return 0, fmt.Errorf("model %q has %d classes, the limit", model, t.maxClasses)
	}
	return int(t.assign(model, cm, class)), nil
}

func (t *txn) count(model string) int {
	n := 0
	if cm := t.s.classes[model]; cm != nil {
		n = len(cm.names)
	}
	if cm := t.classes[model]; cm != nil {
		n += len(cm.idx)
	}
	return n
}

func (t *txn) assign(model string, cm *classMap, class string) int32 {
	idx := int32(t.count(model))
	cm.idx[class] = idx
	t.newClasses = append(t.newClasses, classAssign{model, class, idx})
	return idx
}

// featureType returns the type of an undeclared feature: the type first
// seen for it (durable), else the type of v (staged).
func (t *txn) featureType(model, name string, v definitions.Value) definitions.FeatureType {
	if ft, ok := t.s.features[model][name]; ok {
		return ft
	}
	if ft, ok := t.features[model][name]; ok {
		return ft
	}
	ft := definitions.InferFeatureType(v)
	if t.features == nil {
		t.features = make(map[string]map[string]definitions.FeatureType)
	}
	if t.features[model] == nil {
		t.features[model] = make(map[string]definitions.FeatureType)
	}
	t.features[model][name] = ft
	t.newFeats = append(t.newFeats, featAssign{model, name, ft})
	return ft
}

// adoptFeature stages a feature type chosen while pre-routing; false when
// the registry (or this batch) already has another type for it.
func (t *txn) adoptFeature(fa featAssign) bool {
	if ft, ok := t.s.features[fa.model][fa.feature]; ok {
		return ft == fa.typ
	}
	if ft, ok := t.features[fa.model][fa.feature]; ok {
		return ft == fa.typ
	}
	if t.features == nil {
		t.features = make(map[string]map[string]definitions.FeatureType)
	}
	if t.features[fa.model] == nil {
		t.features[fa.model] = make(map[string]definitions.FeatureType)
	}
	t.features[fa.model][fa.feature] = fa.typ
	t.newFeats = append(t.newFeats, fa)
	return true
}

// registeredFeature reads the feature registry without the ingester lock
// (pre-routing).
func (s *joinStore) registeredFeature(model, name string) (definitions.FeatureType, bool) {
	s.regMu.RLock()
	ft, ok := s.features[model][name]
	s.regMu.RUnlock()
	return ft, ok
}

// encode appends the batch record to dst (sorted keys, so equal batches
// encode equally).
func (t *txn) encode(dst []byte, seq, committedThrough uint64) []byte {
	e := enc{b: dst}
	e.byte(recBatch)
	e.uvarint(seq)
	e.uvarint(committedThrough)
	for _, ca := range t.newClasses {
		e.byte(opClass)
		e.str(ca.model)
		e.str(ca.class)
		e.varint(int64(ca.idx))
	}
	for _, fa := range t.newFeats {
		e.byte(opFeature)
		e.str(fa.model)
		e.str(fa.feature)
		e.byte(featureTypeCode(fa.typ))
	}
	// New entries in the batch's order, then updated ones sorted by key
	// (keys are distinct): a batch always encodes the same.
	for _, ke := range t.fresh {
		encodeEntry(&e, ke.key, ke.e)
	}
	if len(t.entries) > 0 {
		ents := make([]keyedEntry, 0, len(t.entries))
		for k, p := range t.entries {
			ents = append(ents, keyedEntry{k, p})
		}
		slices.SortFunc(ents, func(a, b keyedEntry) int { return strings.Compare(a.key, b.key) })
		for _, ke := range ents {
			encodeEntry(&e, ke.key, ke.e)
		}
	}
	keys := make([]string, 0, len(t.held))
	for k := range t.held {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if h := t.held[k]; h != nil {
			encodeHeld(&e, k, h)
		} else {
			e.byte(opDelHeld)
			e.str(k)
		}
	}
	return e.b
}

// apply makes the staged changes the store's.
func (t *txn) apply() {
	for _, ca := range t.newClasses {
		t.s.setClass(ca.model, ca.class, ca.idx)
	}
	for _, fa := range t.newFeats {
		t.s.setFeature(fa.model, fa.feature, fa.typ)
	}
	// The pending map copies entries: the batch's own (router.ents)
	// stay the batch's.
	for k, e := range t.entries {
		t.s.pending.put(k, e)
	}
	for _, ke := range t.fresh {
		t.s.pending.putNew(ke.key, ke.e) // see putNewEntry
	}
	for k, h := range t.held {
		if h == nil {
			delete(t.s.held, k)
		} else {
			t.s.held[k] = h
		}
	}
}
