package ingest

import (
	"encoding/binary"
	"hash/maphash"
	"slices"
	"strings"
	"unsafe"

	"evalstore/definitions"
)

// pendingMap holds the join store's pending predictions by join key. It is
// built so that the garbage collector has nothing to trace per pending
// prediction: a GC cycle comes every few batches at a high ingest rate, and
// with a map of string keys and *entry values it marked two or more objects
// per pending prediction (millions of them). Here the index maps a key's
// 64-bit hash to a slot (both integers), slots are pointer-free structs,
// key bytes live in a byte arena (a few large chunks), and the few pointer fields of an entry
// are interned (version, label text, slice list) or, when present at all
// (multiclass scores, observed feedback measures), kept in a side map.
//
// Hash collisions are exact: slots with the same hash are chained and a
// key matches only by its bytes. Not safe for concurrent use (the join
// store is used under the ingester lock).
type pendingMap struct {
	seed maphash.Seed
	// mask is applied to key hashes (all ones; tests narrow it to force
	// collisions), compactAt is the least dead key space worth
	// rewriting the arena (compactKeysBytes; tests lower it).
	mask      uint64
	compactAt int
	index     map[uint64]uint32 // key hash → 1 + first slot with that hash
	// slots are in chunks of slotChunk, and key bytes in chunks of (at
	// least) pendingKeyChunk, so that growing allocates only the new chunk.
	slots  [][]pendingSlot
	nslots int      // slots used (live or free)
	free   []uint32 // deleted slots, reused first
	keys   [][]byte // key bytes of every slot (deleted ones until compaction)
	size   int      // bytes in keys' chunks
	dead   int      // of which not live keys (deleted, or a chunk's unused tail)
	n      int
	// gen changes whenever a key is added or removed: a membership test
	// made at one gen holds while gen is unchanged (see precheck).
	gen uint64

	strs   []string // interned versions and label texts; strs[0] = ""
	strID  map[string]uint32
	lists  [][]string // interned slice lists; lists[0] = none
	listID map[string]uint32
	// recent caches ids of recently packed slice lists by identity (the
	// entries of a batch share a few lists, see router.sliceList).
	recent  [8]listRef
	nrecent int
	scratch []byte
	extra   map[uint32]entryExtra // by slot: only entries with scores or measures
}

type listRef struct {
	first *string
	n     int
	id    uint32
}

// pendingSlot is one pending prediction without pointers (see entry).
type pendingSlot struct {
	t, labelAt      int64
	score, pred     float64
	labelNum        float64 // number label, or 1/0 for a boolean one
	keyChunk        uint32  // index in keys
	keyOff, keyLen  uint32
	next            uint32 // 1 + next slot with the same key hash, 0 none
	version, slices uint32 // ids in strs and lists
	labelStr        uint32 // id in strs of a string label
	predClass       int32
	task            taskCode
	flags           uint8
	labelKind       definitions.Kind
}

const (
	slotLive uint8 = 1 << iota
	slotHasScore
	slotHasLabel
)

// entryExtra is what an entry holds beyond its slot.
type entryExtra struct {
	scores   []ClassScore
	measures []string
}

// compactKeysBytes is the least dead key space worth rewriting the arena.
const compactKeysBytes = 1 << 20

const (
	slotChunkBits   = 12
	slotChunk       = 1 << slotChunkBits
	pendingKeyChunk = 64 << 10
)

func newPendingMap() *pendingMap {
	return &pendingMap{
		seed:      maphash.MakeSeed(),
		mask:      ^uint64(0),
		compactAt: compactKeysBytes,
		index:     make(map[uint64]uint32),
		strs:      []string{""},
		strID:     map[string]uint32{"": 0},
		lists:     [][]string{nil},
		listID:    map[string]uint32{"": 0},
		extra:     make(map[uint32]entryExtra),
	}
}

func (m *pendingMap) len() int { return m.n }

func (m *pendingMap) hash(key string) uint64 { return maphash.String(m.seed, key) & m.mask }

func (m *pendingMap) slot(i uint32) *pendingSlot {
	return &m.slots[i>>slotChunkBits][i&(slotChunk-1)]
}

func (m *pendingMap) key(s *pendingSlot) []byte {
	return m.keys[s.keyChunk][s.keyOff : s.keyOff+s.keyLen]
}

// storeKey appends key to the arena and records where in s.
func (m *pendingMap) storeKey(s *pendingSlot, key string) {
	n := len(m.keys)
	if n == 0 || len(m.keys[n-1])+len(key) > cap(m.keys[n-1]) {
		if n > 0 {
			m.dead += cap(m.keys[n-1]) - len(m.keys[n-1])
		}
		c := make([]byte, 0, max(pendingKeyChunk, len(key)))
		m.keys = append(m.keys, c)
		m.size += cap(c)
		n++
	}
	c := m.keys[n-1]
	s.keyChunk, s.keyOff, s.keyLen = uint32(n-1), uint32(len(c)), uint32(len(key))
	m.keys[n-1] = append(c, key...)
}

// find returns the slot of key.
func (m *pendingMap) find(key string, h uint64) (uint32, bool) {
	for i := m.index[h]; i != 0; i = m.slot(i - 1).next {
		s := m.slot(i - 1)
		if int(s.keyLen) == len(key) && string(m.key(s)) == key {
			return i - 1, true
		}
	}
	return 0, false
}

func (m *pendingMap) has(key string) bool {
	_, ok := m.find(key, m.hash(key))
	return ok
}

// get returns a copy of key's entry (its measures may not be appended to
// in place), or nil.
func (m *pendingMap) get(key string) *entry {
	i, ok := m.find(key, m.hash(key))
	if !ok {
		return nil
	}
	e := new(entry)
	m.unpack(i, e)
	return e
}

// put inserts or replaces key's entry. The map keeps e.scores and
// e.measures: the caller must not change them afterwards.
func (m *pendingMap) put(key string, e *entry) {
	h := m.hash(key)
	if i, ok := m.find(key, h); ok {
		m.pack(i, e)
		return
	}
	m.insert(key, h, e)
}

// putNew is put for a key known not to be in m.
func (m *pendingMap) putNew(key string, e *entry) { m.insert(key, m.hash(key), e) }

// insert adds key (hash h, not in m) with e in a free or new slot.
func (m *pendingMap) insert(key string, h uint64, e *entry) {
	var i uint32
	if n := len(m.free); n > 0 {
		i, m.free = m.free[n-1], m.free[:n-1]
	} else {
		if m.nslots == len(m.slots)*slotChunk {
			m.slots = append(m.slots, make([]pendingSlot, slotChunk))
		}
		i = uint32(m.nslots)
		m.nslots++
	}
	s := m.slot(i)
	*s = pendingSlot{next: m.index[h]}
	m.storeKey(s, key)
	m.index[h] = i + 1
	m.n++
	m.gen++
	m.pack(i, e)
}

// del removes key's entry; false when it was not there.
func (m *pendingMap) del(key string) bool {
	h := m.hash(key)
	i, ok := m.find(key, h)
	if !ok {
		return false
	}
	m.remove(i, h)
	return true
}

// remove unlinks slot i (of hash h) and frees it.
func (m *pendingMap) remove(i uint32, h uint64) {
	s := m.slot(i)
	if head := m.index[h]; head == i+1 {
		if s.next == 0 {
			delete(m.index, h)
		} else {
			m.index[h] = s.next
		}
	} else {
		p := head
		for m.slot(p-1).next != i+1 {
			p = m.slot(p - 1).next
		}
		m.slot(p - 1).next = s.next
	}
	m.dead += int(s.keyLen)
	delete(m.extra, i)
	*s = pendingSlot{}
	m.free = append(m.free, i)
	m.n--
	m.gen++
	if m.dead >= m.compactAt && m.dead > m.size/2 {
		m.compact()
	}
}

// compact rewrites the key arena without the keys of deleted slots.
func (m *pendingMap) compact() {
	old := m.keys
	m.keys, m.size, m.dead = nil, 0, 0
	for i := range m.nslots {
		s := m.slot(uint32(i))
		if s.flags&slotLive == 0 {
			continue
		}
		k := old[s.keyChunk][s.keyOff : s.keyOff+s.keyLen]
		m.storeKey(s, unsafe.String(unsafe.SliceData(k), len(k)))
	}
}

// expire removes the entries whose prediction time is before cut, calling
// gone with each one's key.
func (m *pendingMap) expire(cut int64, gone func(key string)) {
	for i := range m.nslots {
		s := m.slot(uint32(i))
		if s.flags&slotLive == 0 || s.t >= cut {
			continue
		}
		key := string(m.key(s))
		m.remove(uint32(i), m.hash(key))
		gone(key)
	}
}

// each calls fn with every entry. key and e are only valid during the call
// (key is a view of the arena; e is reused).
func (m *pendingMap) each(fn func(key string, e *entry)) {
	var e entry
	for i := range m.nslots {
		s := m.slot(uint32(i))
		if s.flags&slotLive == 0 {
			continue
		}
		m.unpack(uint32(i), &e)
		k := m.key(s)
		fn(unsafe.String(unsafe.SliceData(k), len(k)), &e)
	}
}

func (m *pendingMap) intern(s string) uint32 {
	if id, ok := m.strID[s]; ok {
		return id
	}
	s = strings.Clone(s) // not a view of a request's buffer
	id := uint32(len(m.strs))
	m.strs = append(m.strs, s)
	m.strID[s] = id
	return id
}

// list interns a slice list (names in order).
func (m *pendingMap) list(names []string) uint32 {
	if len(names) == 0 {
		return 0
	}
	for _, r := range m.recent {
		if r.first == &names[0] && r.n == len(names) {
			return r.id
		}
	}
	b := m.scratch[:0]
	for _, n := range names {
		b = binary.AppendUvarint(b, uint64(len(n)))
		b = append(b, n...)
	}
	m.scratch = b
	id, ok := m.listID[string(b)]
	if !ok {
		id = uint32(len(m.lists))
		l := make([]string, len(names))
		for i, n := range names {
			l[i] = m.strs[m.intern(n)]
		}
		m.lists = append(m.lists, l)
		m.listID[string(b)] = id
	}
	m.recent[m.nrecent%len(m.recent)] = listRef{&names[0], len(names), id}
	m.nrecent++
	return id
}

func (m *pendingMap) pack(i uint32, e *entry) {
	s := m.slot(i)
	s.t, s.labelAt, s.score, s.pred = e.t, e.labelAt, e.score, e.pred
	s.version = m.intern(e.version)
	s.slices = m.list(e.slices)
	s.predClass, s.task = e.predClass, e.task
	s.flags = slotLive
	if e.hasScore {
		s.flags |= slotHasScore
	}
	if e.hasLabel {
		s.flags |= slotHasLabel
	}
	s.labelKind, s.labelNum, s.labelStr = e.label.Kind(), 0, 0
	switch s.labelKind {
	case definitions.KindString:
		s.labelStr = m.intern(e.label.Str())
	case definitions.KindNumber:
		s.labelNum = e.label.Num()
	case definitions.KindBool:
		if e.label.Bool() {
			s.labelNum = 1
		}
	}
	if len(e.scores) > 0 || len(e.measures) > 0 {
		m.extra[i] = entryExtra{scores: e.scores, measures: e.measures}
	} else {
		delete(m.extra, i)
	}
}

func (m *pendingMap) unpack(i uint32, e *entry) {
	s := m.slot(i)
	*e = entry{t: s.t, labelAt: s.labelAt, score: s.score, pred: s.pred,
		version: m.strs[s.version], slices: m.lists[s.slices], predClass: s.predClass, task: s.task,
		hasScore: s.flags&slotHasScore != 0, hasLabel: s.flags&slotHasLabel != 0}
	switch s.labelKind {
	case definitions.KindString:
		e.label = definitions.StringValue(m.strs[s.labelStr])
	case definitions.KindNumber:
		e.label = definitions.NumberValue(s.labelNum)
	case definitions.KindBool:
		e.label = definitions.BoolValue(s.labelNum != 0)
	}
	if x, ok := m.extra[i]; ok {
		e.scores = x.scores
		e.measures = slices.Clip(x.measures) // an append copies
	}
}
