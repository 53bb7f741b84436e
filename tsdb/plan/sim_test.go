package plan

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// simBlock is a block of the simulated store: exact counts per bucket start
// at the block's resolution.
type simBlock struct {
	Block
	counts map[int64]int64
	cum    prefix
}

// prefix answers range sums over sorted bucket starts in O(log n).
type prefix struct {
	keys []int64
	sums []int64 // sums[i] = total of keys[:i]
}

func newPrefix(counts map[int64]int64) prefix {
	p := prefix{keys: slices.Sorted(maps.Keys(counts))}
	p.sums = make([]int64, len(p.keys)+1)
	for i, k := range p.keys {
		p.sums[i+1] = p.sums[i] + counts[k]
	}
	return p
}

func (p prefix) sum(lo, hi int64) int64 {
	if lo > hi {
		return 0
	}
	i, _ := slices.BinarySearch(p.keys, lo)
	j, found := slices.BinarySearch(p.keys, hi)
	if found {
		j++
	}
	if j <= i {
		return 0
	}
	return p.sums[j] - p.sums[i]
}

// sim is a store driven only by plan: the head collects late and on-time
// writes, flushes them as flush blocks, and every job is applied like the DB
// would (compact the inputs per output, then one atomic edit). truth is the
// oracle: every write ever made, per raw bucket.
type sim struct {
	t      *testing.T
	r      *rand.Rand
	opts   Options
	now    int64
	blocks map[string]*simBlock
	truth  map[int64]int64
	head   map[int64]int64
	nextID int
	jobs   int
	kinds  map[Kind]int
	// flushMode: 0 one block per flush, Created unknown; 1 one block per
	// flush, Created set; 2 one block per owned partition (Owner), Created
	// set.
	flushMode int
	ingested  int64 // buckets written by flushes
	written   int64 // buckets written by compaction outputs
}

func newSim(t *testing.T, seed uint64, opts Options, start int64) *sim {
	return &sim{t: t, r: rand.New(rand.NewPCG(seed, 7)), opts: opts, now: start,
		blocks: map[string]*simBlock{}, truth: map[int64]int64{}, head: map[int64]int64{}, kinds: map[Kind]int{}}
}

func (s *sim) id() string { s.nextID++; return fmt.Sprintf("b%05d", s.nextID) }

func (s *sim) list() []Block {
	out := make([]Block, 0, len(s.blocks))
	for _, b := range s.blocks {
		out = append(out, b.Block)
	}
	return out
}

// write adds n observations: most near now, some up to maxLate in the past
// (but inside retention, as the DB refuses older writes).
func (s *sim) write(n int, maxLate int64) {
	for range n {
		age := s.r.Int64N(2 * Hour)
		if s.r.IntN(3) == 0 {
			age = s.r.Int64N(maxLate)
		}
		if s.opts.Retention > 0 {
			age = min(age, s.opts.Retention-Hour)
		}
		b := alignDown(s.now-age, s.opts.RawResolution)
		c := 1 + s.r.Int64N(5)
		s.truth[b] += c
		s.head[b] += c
	}
}

func (s *sim) flush() {
	if len(s.head) == 0 {
		return
	}
	groups := map[int64]map[int64]int64{}
	for t, c := range s.head {
		key := int64(0)
		if s.flushMode == 2 {
			p, err := Owner(t, s.now, s.opts)
			if err != nil {
				s.t.Fatal(err)
			}
			key = p.MinT
		}
		if groups[key] == nil {
			groups[key] = map[int64]int64{}
		}
		groups[key][t] = c
	}
	for _, key := range slices.Sorted(maps.Keys(groups)) {
		id := s.id()
		b := &simBlock{Block: Block{ID: id, Resolution: s.opts.RawResolution, Level: 1, Sources: []string{id}}, counts: groups[key]}
		if s.flushMode > 0 {
			b.Created = s.now
		}
		s.seal(b)
		s.blocks[id] = b
		s.ingested += int64(len(b.counts))
	}
	s.head = map[int64]int64{}
}

// seal sets MinT, MaxT and Bytes from the counts.
func (s *sim) seal(b *simBlock) {
	b.cum = newPrefix(b.counts)
	keys := b.cum.keys
	b.MinT, b.MaxT = keys[0], keys[len(keys)-1]
	b.Bytes = 64 + 8*int64(len(keys))
}

// apply runs one job: every output computed from its inputs' counts, then
// the edit (add outputs, remove Job.Inputs) at once.
func (s *sim) apply(j Job) {
	t := s.t
	s.jobs++
	s.kinds[j.Kind]++
	for _, id := range j.Inputs {
		if s.blocks[id] == nil {
			t.Fatalf("job %v removes %s, which is not live", j.Kind, id)
		}
	}
	added := make([]*simBlock, len(j.Outputs))
	for i, out := range j.Outputs {
		level := 0
		var sources []string
		nb := &simBlock{counts: map[int64]int64{}}
		for _, id := range out.Inputs {
			in := s.blocks[id]
			if in == nil || !slices.Contains(j.Inputs, id) {
				t.Fatalf("output %d reads %s, which is not a removed input", i, id)
			}
			if out.Resolution%in.Resolution != 0 {
				t.Fatalf("output resolution %d not a multiple of input %s's %d", out.Resolution, id, in.Resolution)
			}
			level = max(level, in.Level)
			sources = append(sources, in.Sources...)
			for b, c := range in.counts {
				if b >= out.MinT && b <= out.MaxT {
					nb.counts[alignDown(b, out.Resolution)] += c
				}
			}
		}
		slices.Sort(sources)
		sources = slices.Compact(sources)
		if out.Expect.Level != level+1 || !slices.Equal(out.Expect.Sources, sources) || out.Expect.Resolution != out.Resolution {
			t.Fatalf("output %d expected meta %+v; inputs give level %d sources %v", i, out.Expect, level+1, sources)
		}
		if len(nb.counts) == 0 {
			if out.RollupOf >= 0 && added[out.RollupOf] != nil {
				t.Fatalf("rollup output %d empty but its base is not", i)
			}
			continue
		}
		nb.ID, nb.Resolution, nb.Level, nb.Sources = s.id(), out.Resolution, level+1, sources
		if out.RollupOf >= 0 {
			base := added[out.RollupOf]
			if base == nil {
				t.Fatalf("rollup output %d has data but its base is empty", i)
			}
			nb.RollupOf = base.ID
		}
		s.seal(nb)
		s.written += int64(len(nb.counts))
		added[i] = nb
	}
	for _, id := range j.Inputs {
		delete(s.blocks, id)
	}
	for _, b := range added {
		if b != nil {
			s.blocks[b.ID] = b
		}
	}
}

// compact plans and applies; with crash, only a random prefix of the first
// plan is applied before planning again (a restart between jobs), and the
// second plan must then finish the work.
func (s *sim) compact(crash bool) {
	for round := 0; ; round++ {
		jobs := Compactions(s.list(), s.now, s.opts)
		if len(jobs) == 0 {
			return
		}
		if round >= 2 {
			s.t.Fatalf("plans do not converge at %d: still %d jobs: %+v", s.now, len(jobs), jobs)
		}
		n := len(jobs)
		if crash && round == 0 {
			n = s.r.IntN(len(jobs) + 1)
		}
		for _, j := range jobs[:n] {
			s.apply(j)
		}
		if n == len(jobs) {
			// Idempotence: after a whole plan, nothing is left to do.
			if again := Compactions(s.list(), s.now, s.opts); len(again) != 0 {
				s.t.Fatalf("re-planning after applying a whole plan at %d: %+v", s.now, again)
			}
			return
		}
	}
}

// readSum sums what a query over [mint, maxt] reads via Read.
func (s *sim) readSum(mint, maxt, res int64) int64 {
	var sum int64
	parts := Read(s.list(), mint, maxt, res)
	seen := map[string][][2]int64{}
	for _, p := range parts {
		b := s.blocks[p.BlockID]
		if b == nil {
			s.t.Fatalf("part of unknown block %s", p.BlockID)
		}
		if p.MinT < mint || p.MaxT > maxt || p.MinT > p.MaxT {
			s.t.Fatalf("part %+v outside window [%d, %d]", p, mint, maxt)
		}
		if res > 0 && b.Resolution > res && b.RollupOf != "" {
			s.t.Fatalf("part %+v reads a rollup coarser than %d", p, res)
		}
		// A coarse bucket of a rollup must lie wholly inside the window.
		if b.RollupOf != "" && (p.MinT%b.Resolution != 0 && alignDown(p.MinT, b.Resolution) < p.MinT) {
			s.t.Fatalf("rollup part %+v starts inside a bucket", p)
		}
		key := b.ID
		if b.RollupOf != "" {
			key = b.RollupOf
		}
		for _, r := range seen[key] {
			if p.MinT <= r[1] && r[0] <= p.MaxT {
				s.t.Fatalf("versions of %s read twice over [%d, %d]", key, max(p.MinT, r[0]), min(p.MaxT, r[1]))
			}
		}
		seen[key] = append(seen[key], [2]int64{p.MinT, p.MaxT})
		sum += b.cum.sum(p.MinT, p.MaxT)
	}
	return sum
}

// baseSum reads every non-rollup block in full over the window: the
// reference Read must equal (rollups only replace equal data).
func (s *sim) baseSum(mint, maxt int64) int64 {
	var sum int64
	for _, b := range s.blocks {
		if b.RollupOf != "" && s.blocks[b.RollupOf] != nil {
			continue
		}
		sum += b.cum.sum(mint, maxt)
	}
	return sum
}

// check verifies, after a step: rollups equal their bases; reads count
// every point once; totals equal the oracle where the layout allows an
// exact oracle.
func (s *sim) check(exactTotals bool) {
	t := s.t
	for _, b := range s.blocks {
		if b.RollupOf == "" {
			continue
		}
		base := s.blocks[b.RollupOf]
		if base == nil {
			t.Fatalf("rollup %s of missing %s", b.ID, b.RollupOf)
		}
		want := map[int64]int64{}
		for k, c := range base.counts {
			want[alignDown(k, b.Resolution)] += c
		}
		if !maps.Equal(want, b.counts) {
			t.Fatalf("rollup %s differs from its base %s", b.ID, base.ID)
		}
	}
	coarsest := s.opts.RawResolution
	for _, l := range s.opts.Levels {
		coarsest = max(coarsest, l.Resolution)
	}
	lo := s.now - 60*Day
	if s.opts.Retention > 0 {
		lo = s.now - s.opts.Retention
	}
	// The raw-owned region: here every stored bucket is 1m wide outside
	// rollups, so a minute-aligned window has an exact oracle.
	p := planner{lv: s.opts.levels(), now: s.now}
	rawFrom := alignDown(s.now, s.opts.PartitionRaw)
	for {
		if lvl, _ := p.own(rawFrom - 1); lvl != 0 {
			break
		}
		rawFrom -= s.opts.PartitionRaw
	}
	truth := newPrefix(s.truth)
	resolutions := []int64{0, s.opts.RawResolution, Hour, Day, 0}
	for range 6 {
		res := resolutions[s.r.IntN(len(resolutions))]
		// Any window: exactly once against reading bases only.
		a, b := lo+s.r.Int64N(s.now-lo), lo+s.r.Int64N(s.now-lo)
		mint, maxt := min(a, b), max(a, b)
		if got, want := s.readSum(mint, maxt, res), s.baseSum(mint, maxt); got != want {
			t.Fatalf("now %d window [%d, %d] res %d: read %d, bases hold %d", s.now, mint, maxt, res, got, want)
		}
		if !exactTotals {
			continue
		}
		// Windows aligned to the coarsest resolution, inside retention:
		// equal to the oracle.
		first := alignDown(lo, coarsest) + coarsest
		if first < s.now {
			n := (s.now - first) / coarsest
			i, k := s.r.Int64N(n+1), s.r.Int64N(n+1)
			mint, maxt := first+min(i, k)*coarsest, first+(max(i, k)+1)*coarsest-1
			if got, want := s.readSum(mint, maxt, res), truth.sum(mint, maxt); got != want {
				t.Fatalf("now %d aligned window [%d, %d] res %d: read %d, oracle %d", s.now, mint, maxt, res, got, want)
			}
		}
		// Minute windows in the raw-owned region.
		a, b = rawFrom+s.r.Int64N(s.now-rawFrom+1), rawFrom+s.r.Int64N(s.now-rawFrom+1)
		mint, maxt = alignDown(min(a, b), s.opts.RawResolution), alignDown(max(a, b), s.opts.RawResolution)+s.opts.RawResolution-1
		if got, want := s.readSum(mint, maxt, res), truth.sum(mint, maxt); got != want {
			t.Fatalf("now %d raw window [%d, %d] res %d: read %d, oracle %d", s.now, mint, maxt, res, got, want)
		}
	}
}

func (s *sim) run(days int64, step int64, exactTotals bool) {
	end := s.now + days*Day
	maxLate := 35 * Day
	if s.opts.Retention > 0 {
		maxLate = s.opts.Retention // capped at Retention-1h by write
	}
	for s.now < end {
		s.write(30, maxLate)
		s.now += step / 2
		s.write(10, maxLate)
		s.flush()
		s.now += step / 2
		s.compact(s.r.IntN(3) == 0)
		s.check(exactTotals)
	}
	// Everything settles: no flush blocks left once time has passed.
	s.now += s.opts.FlushSettle + s.opts.RawResolution
	s.compact(false)
	s.check(exactTotals)
	for _, b := range s.blocks {
		if b.Level <= 1 {
			s.t.Fatalf("flush block %s left after settling: %+v", b.ID, b.Block)
		}
	}
}

// scaledOptions makes every rule fire within 60 simulated days.
func scaledOptions() Options {
	return Options{
		RawResolution: Minute,
		PartitionRaw:  Day,
		Levels: []Level{
			{Resolution: Hour, After: 3 * Day, Partition: 3 * Day, Rollup: true},
			{Resolution: Day, After: 15 * Day, Partition: 6 * Day, Rollup: true},
		},
		Retention:   40 * Day,
		FlushSettle: 3 * Hour,
	}
}

func TestSimulation(t *testing.T) {
	cases := []struct {
		name  string
		opts  func() Options
		start int64
		exact bool
		mode  int
	}{
		{"scaled", scaledOptions, 20_000 * Day, true, 0},
		{"scaled/created", scaledOptions, 20_000 * Day, true, 1},
		{"scaled/partitioned-flush", scaledOptions, 20_000 * Day, true, 2},
		{"scaled/negative-times", scaledOptions, -30 * Day, true, 2},
		{"scaled/no-rollups", func() Options {
			o := scaledOptions()
			o.Levels[0].Rollup, o.Levels[1].Rollup = false, false
			return o
		}, 20_000 * Day, true, 0},
		{"defaults/retention-30d", func() Options {
			o := DefaultOptions()
			o.Retention = 30 * Day
			return o
		}, 20_000*Day + 5*Hour, true, 2},
		{"scaled/size-retention", func() Options {
			o := scaledOptions()
			o.RetentionBytes = 60_000
			return o
		}, 20_000 * Day, false, 1},
		{"scaled/settle-0", func() Options {
			o := scaledOptions()
			o.FlushSettle = 0
			return o
		}, 20_000 * Day, true, 2},
	}
	seeds := uint64(2)
	if raceEnabled {
		seeds = 1
	}
	for i, c := range cases {
		for seed := uint64(1); seed <= seeds; seed++ {
			t.Run(fmt.Sprintf("%s/seed=%d", c.name, seed), func(t *testing.T) {
				s := newSim(t, seed*100+uint64(i), c.opts(), c.start)
				s.flushMode = c.mode
				days := int64(60)
				if c.name == "defaults/retention-30d" {
					days = 40 // enough for 1h downsampling and retention
				}
				s.run(days, 6*Hour, c.exact)
				if s.kinds[Merge] == 0 || s.kinds[Delete] == 0 || s.kinds[Downsample] == 0 {
					t.Fatalf("a rule never fired: %v", s.kinds)
				}
				t.Logf("jobs %v; compaction wrote %.1f buckets per flushed bucket", s.kinds, float64(s.written)/float64(s.ingested))
			})
		}
	}
}
