package plan

import (
	"cmp"
	"math"
	"slices"
	"strings"
)

// Compactions returns the jobs that bring blocks to the target layout at
// time now. It is deterministic (the order of blocks does not matter) and
// idempotent: applying every returned job and planning again at the same now
// returns no jobs. The jobs have disjoint inputs, so they may run in any
// order or concurrently, and a crash after any subset of them is safe.
// Invalid options (see Options.Validate) yield no jobs.
//
// Target layout (rules in docs/operations.md):
//   - time is owned by the coarsest level whose partition containing it is
//     wholly older than that level's After (raw otherwise);
//   - every owned partition with data is exactly one block at its level's
//     resolution, plus one rollup at the next level's resolution if that
//     level has Rollup;
//   - no settled flush block (FlushSettle after Created) remains: it is cut
//     into the owned partitions its range overlaps, all in one job, and each
//     partition rewritten takes every flush block overlapping it, settled or
//     not, so one rewrite batches them;
//   - partitions wholly older than now-Retention are deleted (one that
//     straddles the cut is kept whole until it is wholly expired), then the
//     oldest partitions while the total size exceeds RetentionBytes.
func Compactions(blocks []Block, now int64, opts Options) []Job {
	if opts.Validate() != nil {
		return nil
	}
	p := planner{lv: opts.levels(), now: now, opts: opts}
	return p.plan(blocks)
}

type planner struct {
	lv   []level
	now  int64
	opts Options
}

// own returns the level owning time t and the start of its partition there.
func (p *planner) own(t int64) (int, int64) {
	for i := len(p.lv) - 1; i >= 1; i-- {
		s := alignDown(t, p.lv[i].part)
		if satAdd(s, p.lv[i].part-1) < satAdd(p.now, -p.lv[i].after) {
			return i, s
		}
	}
	return 0, alignDown(t, p.lv[0].part)
}

func (p *planner) levelOfRes(res int64) int {
	for i, l := range p.lv {
		if l.res == res {
			return i
		}
	}
	return -1
}

// classify sets the role of g: flush block, partition base, or loose.
func (p *planner) classify(g *group) {
	b := g.b
	if b.Level <= 1 && b.RollupOf == "" {
		g.flush = true
		return
	}
	if i := p.levelOfRes(b.Resolution); i >= 0 && b.MinT <= b.MaxT &&
		floorDiv(b.MinT, p.lv[i].part) == floorDiv(b.MaxT, p.lv[i].part) {
		g.lvl, g.start = i, alignDown(b.MinT, p.lv[i].part)
	}
}

type tkey struct {
	lvl   int
	start int64
}

// target is one owned partition with blocks to consider.
type target struct {
	tkey
	bases   []*group // partition bases inside it (its own and finer levels')
	folds   []*group // flush and loose blocks overlapping it
	settled bool     // one of folds must be folded now
}

func (p *planner) plan(blocks []Block) []Job {
	gs := groups(blocks)
	for _, g := range gs {
		p.classify(g)
	}

	// Retention by age, then by size.
	cut := int64(math.MinInt64)
	if p.opts.Retention > 0 {
		cut = satAdd(p.now, -p.opts.Retention)
	}
	deleted := map[*group]bool{}
	expire := func() {
		for _, g := range gs {
			if !deleted[g] && g.end(p.lv) < cut {
				deleted[g] = true
			}
		}
	}
	expire()
	if p.opts.RetentionBytes > 0 {
		var total int64
		var cands []*group
		for _, g := range gs {
			if !deleted[g] {
				total += g.bytes()
				if !g.flush {
					cands = append(cands, g)
				}
			}
		}
		slices.SortStableFunc(cands, func(a, b *group) int {
			if c := cmp.Compare(a.first(), b.first()); c != 0 {
				return c
			}
			return strings.Compare(a.b.ID, b.b.ID)
		})
		for _, g := range cands {
			if total <= p.opts.RetentionBytes {
				break
			}
			deleted[g] = true
			total -= g.bytes()
			cut = max(cut, satAdd(g.end(p.lv), 1))
		}
		expire()
	}
	var jobs []Job
	if len(deleted) > 0 {
		del := Job{Kind: Delete, MinT: math.MaxInt64, MaxT: math.MinInt64}
		for _, g := range gs {
			if deleted[g] {
				del.Inputs = append(del.Inputs, g.ids()...)
				del.MinT = min(del.MinT, g.b.MinT)
				del.MaxT = max(del.MaxT, g.b.MaxT)
			}
		}
		slices.Sort(del.Inputs)
		jobs = append(jobs, del)
	}

	// Map bases and foldable blocks to the owned partitions they belong to.
	targets := map[tkey]*target{}
	get := func(k tkey) *target {
		t := targets[k]
		if t == nil {
			t = &target{tkey: k}
			targets[k] = t
		}
		return t
	}
	var folds []*group
	for _, g := range gs {
		switch {
		case deleted[g]:
		case g.lvl >= 0:
			j, s := p.own(g.start)
			if j < g.lvl {
				// Coarser than the owner (the clock or the options went
				// back): it is read in full and left alone.
				continue
			}
			t := get(tkey{j, s})
			t.bases = append(t.bases, g)
		default:
			folds = append(folds, g)
		}
	}
	// foldTargets lists the owned partitions a flush or loose block's data
	// range falls in; nil if one of them is finer than the block (it cannot
	// be cut into it, so the block stays as it is and is read in full).
	foldTargets := func(g *group) []tkey {
		var ks []tkey
		t := max(g.b.MinT, cut)
		for t <= g.b.MaxT {
			j, s := p.own(t)
			if g.b.Resolution <= 0 || p.lv[j].res%g.b.Resolution != 0 {
				return nil
			}
			ks = append(ks, tkey{j, s})
			next := satAdd(s, p.lv[j].part)
			if next <= t {
				break
			}
			t = next
		}
		return ks
	}
	// Union-find over targets: a folded block links all its partitions into
	// one job, because it may only be removed together with all outputs.
	parent := map[tkey]tkey{}
	var find func(k tkey) tkey
	find = func(k tkey) tkey {
		pk, ok := parent[k]
		if !ok || pk == k {
			parent[k] = k
			return k
		}
		r := find(pk)
		parent[k] = r
		return r
	}
	union := func(a, b tkey) {
		ra, rb := find(a), find(b)
		if ra != rb {
			if less(rb, ra) {
				ra, rb = rb, ra
			}
			parent[rb] = ra
		}
	}
	for _, g := range folds {
		ks := foldTargets(g)
		settled := !g.flush || p.settled(g.b)
		for i, k := range ks {
			t := get(k)
			t.folds = append(t.folds, g)
			t.settled = t.settled || settled
			if i > 0 {
				union(ks[0], k)
			}
		}
	}

	// A component is rewritten as a whole if any of its partitions has
	// work: every flush block in it goes (settled or not, so one rewrite
	// batches them all), and with it every partition it touches.
	comps := map[tkey][]*target{}
	work := map[tkey]bool{}
	for k, t := range targets {
		r := find(k)
		comps[r] = append(comps[r], t)
		if !p.done(t) {
			work[r] = true
		}
	}
	var merges []Job
	for r, ts := range comps {
		if work[r] {
			merges = append(merges, p.job(ts))
		}
	}
	slices.SortFunc(merges, func(a, b Job) int {
		if c := cmp.Compare(a.MinT, b.MinT); c != 0 {
			return c
		}
		return slices.Compare(a.Inputs, b.Inputs)
	})
	return append(jobs, merges...)
}

func (p *planner) wantRollup(lvl int) bool { return lvl+1 < len(p.lv) && p.lv[lvl+1].rollup }

// settled reports whether a flush block must be folded now: FlushSettle
// after it was created, or, if that is unknown, after its newest bucket
// ended.
func (p *planner) settled(b Block) bool {
	since := b.Created
	if since == 0 {
		since = satAdd(b.MaxT, max(b.Resolution, 1))
	}
	return satAdd(since, p.opts.FlushSettle) <= p.now
}

// done reports whether t needs no rewrite: no settled block to fold in and
// at most one base, at its level, with the right rollup.
func (p *planner) done(t *target) bool {
	if t.settled || len(t.bases) > 1 {
		return false
	}
	if len(t.bases) == 0 {
		return true
	}
	g := t.bases[0]
	if g.lvl != t.lvl {
		return false
	}
	if !p.wantRollup(t.lvl) {
		return len(g.rollups) == 0
	}
	return len(g.rollups) == 1 && g.rollups[0].Resolution == p.lv[t.lvl+1].res
}

func (p *planner) job(ts []*target) Job {
	slices.SortFunc(ts, func(a, b *target) int {
		if less(a.tkey, b.tkey) {
			return -1
		}
		if less(b.tkey, a.tkey) {
			return 1
		}
		return 0
	})
	job := Job{Kind: Merge, MinT: math.MaxInt64, MaxT: math.MinInt64, Resolution: math.MaxInt64}
	removed := map[string]bool{}
	for _, t := range ts {
		lv := p.lv[t.lvl]
		end := satAdd(t.start, lv.part-1)
		var inputs, sources []string
		level := 0
		add := func(g *group) {
			inputs = append(inputs, g.b.ID)
			sources = append(sources, g.b.Sources...)
			level = max(level, g.b.Level)
			for _, id := range g.ids() {
				removed[id] = true
			}
		}
		for _, g := range t.bases {
			if g.lvl < t.lvl {
				job.Kind = Downsample
			}
			add(g)
		}
		for _, g := range t.folds {
			add(g)
		}
		slices.Sort(inputs)
		inputs = slices.Compact(inputs)
		slices.Sort(sources)
		sources = slices.Compact(sources)
		base := len(job.Outputs)
		out := Output{Inputs: inputs, Resolution: lv.res, MinT: t.start, MaxT: end, RollupOf: -1,
			Expect: Block{MinT: t.start, MaxT: end, Resolution: lv.res, Level: level + 1, Sources: sources}}
		job.Outputs = append(job.Outputs, out)
		if p.wantRollup(t.lvl) {
			r := out
			r.Inputs = slices.Clone(inputs)
			r.Resolution = p.lv[t.lvl+1].res
			r.RollupOf = base
			r.Expect.Resolution = r.Resolution
			r.Expect.Sources = slices.Clone(sources)
			job.Outputs = append(job.Outputs, r)
		}
		job.MinT = min(job.MinT, t.start)
		job.MaxT = max(job.MaxT, end)
		job.Resolution = min(job.Resolution, lv.res)
	}
	for id := range removed {
		job.Inputs = append(job.Inputs, id)
	}
	slices.Sort(job.Inputs)
	return job
}

func less(a, b tkey) bool {
	if a.start != b.start {
		return a.start < b.start
	}
	return a.lvl < b.lvl
}
