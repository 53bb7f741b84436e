package plan

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// Test fixtures work at the default options unless a test says otherwise.
const (
	d = Day
	h = Hour
	m = Minute
)

func flush(id string, mint, maxt int64) Block {
	return Block{ID: id, MinT: mint, MaxT: maxt, Resolution: m, Level: 1, Sources: []string{id}, Bytes: 100}
}

func part(id string, res, mint, maxt int64, level int, sources ...string) Block {
	return Block{ID: id, MinT: mint, MaxT: maxt, Resolution: res, Level: level, Sources: sources, Bytes: 1000}
}

func rollup(id, base string, res, mint, maxt int64) Block {
	b := part(id, res, mint, maxt, 2)
	b.RollupOf = base
	b.Bytes = 10
	return b
}

func ids(bs ...string) []string { return bs }

func TestOptionsValidate(t *testing.T) {
	if err := DefaultOptions().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	mod := func(f func(o *Options)) Options { o := DefaultOptions(); f(&o); return o }
	cases := map[string]Options{
		"zero raw":           mod(func(o *Options) { o.RawResolution = 0 }),
		"partition not mult": mod(func(o *Options) { o.PartitionRaw = d + 1 }),
		"res not multiple":   mod(func(o *Options) { o.Levels[0].Resolution = 90*m + 1 }),
		"res not increasing": mod(func(o *Options) { o.Levels[1].Resolution = h }),
		"after not growing":  mod(func(o *Options) { o.Levels[1].After = 7 * d }),
		"partition not nest": mod(func(o *Options) { o.Levels[1].Partition = 30 * d }),
		"rollup not dividing": mod(func(o *Options) {
			o.Levels[0].Partition = 7 * d
			o.Levels[1].Resolution = 2 * d
			o.Levels[1].Partition = 28 * d
		}),
		"negative retention": mod(func(o *Options) { o.Retention = -1 }),
		"negative settle":    mod(func(o *Options) { o.FlushSettle = -1 }),
	}
	for name, o := range cases {
		if err := o.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
		if jobs := Compactions([]Block{flush("f", 0, 0)}, 10*d, o); jobs != nil {
			t.Errorf("%s: invalid options planned %v", name, jobs)
		}
	}
}

func TestOwn(t *testing.T) {
	p := planner{lv: DefaultOptions().levels(), now: 1000 * d}
	cases := []struct {
		t       int64
		lvl     int
		start   int64
		comment string
	}{
		{1000*d - 1, 0, 999 * d, "today's raw partition"},
		{993 * d, 0, 993 * d, "7d partition [987d,994d) ends 994d-1 ≥ now-7d = 993d: still raw"},
		{986*d + 5, 1, 980 * d, "7d partition [980d,987d) ends before 993d: 1h"},
		{900 * d, 1, 896 * d, "28d partition [896d,924d) ends 924d-1 ≥ now-90d = 910d: 1h by week"},
		{895 * d, 2, 868 * d, "28d partition [868d,896d) ends before 910d: 1d"},
		{-1, 2, -28 * d, "negative times floor to the partition below"},
	}
	for _, c := range cases {
		lvl, start := p.own(c.t)
		if lvl != c.lvl || start != c.start {
			t.Errorf("own(%d) = %d, %d; want %d, %d (%s)", c.t, lvl, start, c.lvl, c.start, c.comment)
		}
	}
}

func TestFoldFlushBlock(t *testing.T) {
	o := DefaultOptions()
	now := 1000*d + 20*h
	// Data 10:00-12:00 of day 1000: its newest bucket ended 8h ago > 3h: settled.
	f := flush("f", 1000*d+10*h, 1000*d+12*h)
	got := Compactions([]Block{f}, now, o)
	want := []Job{{
		Kind: Merge, Inputs: ids("f"), Resolution: m, MinT: 1000 * d, MaxT: 1001*d - 1,
		Outputs: []Output{
			{Inputs: ids("f"), Resolution: m, MinT: 1000 * d, MaxT: 1001*d - 1, RollupOf: -1,
				Expect: Block{MinT: 1000 * d, MaxT: 1001*d - 1, Resolution: m, Level: 2, Sources: ids("f")}},
			{Inputs: ids("f"), Resolution: h, MinT: 1000 * d, MaxT: 1001*d - 1, RollupOf: 0,
				Expect: Block{MinT: 1000 * d, MaxT: 1001*d - 1, Resolution: h, Level: 2, Sources: ids("f")}},
		},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	// Not settled: the newest bucket ended less than FlushSettle ago.
	if jobs := Compactions([]Block{flush("f", 1000*d+10*h, now-3*h)}, now, o); len(jobs) != 0 {
		t.Fatalf("unsettled flush block planned: %+v", jobs)
	}
	if jobs := Compactions([]Block{flush("f", 1000*d+10*h, now-3*h-m)}, now, o); len(jobs) != 1 {
		t.Fatalf("settled flush block not planned: %+v", jobs)
	}
}

// A flush block spanning three partitions (one of which exists, with its
// rollup) becomes three outputs plus rollups in ONE job that removes it.
func TestFoldSpanningFlush(t *testing.T) {
	o := DefaultOptions()
	now := 1000*d + 20*h
	blocks := []Block{
		flush("f", 998*d+5*h, 1000*d+h),
		part("p999", m, 999*d, 999*d+100*m, 2, "old"),
		rollup("p999h", "p999", h, 999*d, 999*d+h),
	}
	jobs := Compactions(blocks, now, o)
	if len(jobs) != 1 {
		t.Fatalf("jobs %+v", jobs)
	}
	j := jobs[0]
	if !slices.Equal(j.Inputs, ids("f", "p999", "p999h")) || len(j.Outputs) != 6 || j.Kind != Merge {
		t.Fatalf("job %+v", j)
	}
	for i, day := range []int64{998, 999, 1000} {
		b, r := j.Outputs[2*i], j.Outputs[2*i+1]
		if b.MinT != day*d || b.MaxT != (day+1)*d-1 || b.Resolution != m || b.RollupOf != -1 {
			t.Fatalf("output %d: %+v", 2*i, b)
		}
		if r.Resolution != h || r.RollupOf != 2*i || r.MinT != b.MinT || !slices.Equal(r.Inputs, b.Inputs) {
			t.Fatalf("rollup %d: %+v", 2*i+1, r)
		}
	}
	if in := j.Outputs[2].Inputs; !slices.Equal(in, ids("f", "p999")) {
		t.Fatalf("day 999 inputs %v: want the old partition and the flush block (not the old rollup)", in)
	}
	if e := j.Outputs[2].Expect; e.Level != 3 || !slices.Equal(e.Sources, ids("f", "old")) {
		t.Fatalf("expected meta %+v", e)
	}
}

func TestComponents(t *testing.T) {
	o := DefaultOptions()
	now := 1000 * d
	// f1 and f2 share day 995; f3 is alone in day 985, which the 1h level
	// owns (its 7d partition [980d,987d) ends before now-7d = 993d).
	blocks := []Block{
		flush("f1", 994*d, 995*d+h),
		flush("f2", 995*d+2*h, 996*d),
		flush("f3", 985*d, 985*d+h),
	}
	jobs := Compactions(blocks, now, o)
	if len(jobs) != 2 {
		t.Fatalf("want 2 jobs, got %+v", jobs)
	}
	if !slices.Equal(jobs[0].Inputs, ids("f3")) || jobs[0].Resolution != h || jobs[0].MinT != 980*d || jobs[0].MaxT != 987*d-1 {
		t.Fatalf("late job %+v", jobs[0])
	}
	if r := jobs[0].Outputs[1]; r.Resolution != d || r.RollupOf != 0 {
		t.Fatalf("1h partition's rollup %+v", r)
	}
	if !slices.Equal(jobs[1].Inputs, ids("f1", "f2")) || len(jobs[1].Outputs) != 6 {
		t.Fatalf("recent job %+v", jobs[1])
	}
}

func TestDownsample(t *testing.T) {
	o := DefaultOptions()
	var blocks []Block
	for day := int64(987); day < 994; day++ {
		id := fmt.Sprint("r", day)
		blocks = append(blocks, part(id, m, day*d, day*d+h, 2, "s"+id), rollup(id+"h", id, h, day*d, day*d+h))
	}
	// Partition [987d, 994d) ends at 994d-1: due when 994d-1 < now - 7d.
	if jobs := Compactions(blocks, 1001*d-1, o); len(jobs) != 0 {
		t.Fatalf("downsampled too early: %+v", jobs)
	}
	jobs := Compactions(blocks, 1001*d, o)
	if len(jobs) != 1 || jobs[0].Kind != Downsample {
		t.Fatalf("jobs %+v", jobs)
	}
	j := jobs[0]
	if len(j.Inputs) != 14 || len(j.Outputs) != 2 || len(j.Outputs[0].Inputs) != 7 {
		t.Fatalf("job %+v: want 7 raw partitions and their 7 rollups removed, 7 raw read", j)
	}
	if out := j.Outputs[0]; out.Resolution != h || out.MinT != 987*d || out.MaxT != 994*d-1 || out.Expect.Level != 3 {
		t.Fatalf("output %+v", out)
	}
	if out := j.Outputs[1]; out.Resolution != d || out.RollupOf != 0 {
		t.Fatalf("rollup %+v", out)
	}
	// A flush block with data there joins the downsampling job.
	jobs = Compactions(append(blocks, flush("late", 990*d, 990*d)), 1001*d, o)
	if len(jobs) != 1 || !slices.Contains(jobs[0].Outputs[0].Inputs, "late") {
		t.Fatalf("late data not folded in: %+v", jobs)
	}
}

func TestFinalLayoutIsStable(t *testing.T) {
	o := DefaultOptions()
	now := 1000*d + 12*h
	blocks := []Block{
		part("raw", m, 1000*d, 1000*d+h, 2), rollup("rawh", "raw", h, 1000*d, 1000*d+h),
		part("wk", h, 980*d, 986*d, 3), rollup("wkd", "wk", d, 980*d, 986*d),
		part("old", d, 868*d, 895*d, 4),
		flush("fresh", 1000*d+10*h, 1000*d+12*h),
	}
	if jobs := Compactions(blocks, now, o); len(jobs) != 0 {
		t.Fatalf("final layout replanned: %+v", jobs)
	}
	// A rollup whose base is gone stands alone: a loose 1h block in raw
	// time cannot be cut into 1m partitions, so it stays and is read whole.
	if jobs := Compactions(blocks[1:], now, o); len(jobs) != 0 {
		t.Fatalf("orphan rollup: %+v", jobs)
	}
	// A missing rollup is rebuilt by rewriting the partition.
	noRollup := []Block{part("raw", m, 1000*d, 1000*d+h, 2)}
	jobs := Compactions(noRollup, now, o)
	if len(jobs) != 1 || len(jobs[0].Outputs) != 2 || !slices.Equal(jobs[0].Inputs, ids("raw")) {
		t.Fatalf("missing rollup not rebuilt: %+v", jobs)
	}
	o.Levels[0].Rollup = false
	if jobs := Compactions(noRollup, now, o); len(jobs) != 0 {
		t.Fatalf("rollup disabled: %+v", jobs)
	}
	jobs = Compactions(blocks[:2], now, o)
	if len(jobs) != 1 || len(jobs[0].Outputs) != 1 || !slices.Equal(jobs[0].Inputs, ids("raw", "rawh")) {
		t.Fatalf("rollup disabled, old rollup present: %+v", jobs)
	}
	// Two blocks for one partition (say, after an options change) merge.
	o = DefaultOptions()
	dup := []Block{part("a", m, 1000*d, 1000*d+h, 2), rollup("ah", "a", h, 1000*d, 1000*d), part("b", m, 1000*d+2*h, 1000*d+3*h, 2)}
	jobs = Compactions(dup, now, o)
	if len(jobs) != 1 || !slices.Equal(jobs[0].Inputs, ids("a", "ah", "b")) || !slices.Equal(jobs[0].Outputs[0].Inputs, ids("a", "b")) {
		t.Fatalf("duplicate partitions: %+v", jobs)
	}
}

func TestRetentionByAge(t *testing.T) {
	o := DefaultOptions()
	o.Retention = 100 * d
	now := 1000 * d
	// cut = 900d. 1d-level partitions are 28d: [868d,896d) is wholly
	// expired, [896d,924d) straddles the cut and is kept whole.
	blocks := []Block{
		part("gone", d, 868*d, 895*d, 4), rollup("goneX", "gone", 2*d, 868*d, 894*d),
		part("kept", h, 896*d, 923*d, 4), rollup("keptd", "kept", d, 896*d, 923*d),
		flush("oldflush", 850*d, 899*d),
		flush("mixed", 880*d, 910*d),
	}
	jobs := Compactions(blocks, now, o)
	if len(jobs) == 0 || jobs[0].Kind != Delete || !slices.Equal(jobs[0].Inputs, ids("gone", "goneX", "oldflush")) {
		t.Fatalf("delete job %+v", jobs)
	}
	// "kept" is a 1h block in a 1h-owned partition [896,903)? No: now-90d =
	// 910d, so 28d partition [896,924) is not yet 1d; 7d partitions inside
	// it are 1h-owned. "kept" spans four of them: loose, folded like a flush
	// block together with "mixed" (whose data before 896d is dropped).
	if len(jobs) != 2 {
		t.Fatalf("jobs %+v", jobs)
	}
	m := jobs[1]
	if !slices.Equal(m.Inputs, ids("kept", "keptd", "mixed")) || m.MinT != 896*d {
		t.Fatalf("merge after retention %+v", m)
	}
	for _, out := range m.Outputs {
		if out.MinT < 896*d {
			t.Fatalf("output in expired time: %+v", out)
		}
	}
}

func TestRetentionBySize(t *testing.T) {
	o := DefaultOptions()
	o.RetentionBytes = 2500
	now := 1000*d + 12*h
	blocks := []Block{
		part("d997", m, 997*d, 997*d+h, 2), rollup("d997h", "d997", h, 997*d, 997*d), // 1010 bytes
		part("d998", m, 998*d, 998*d+h, 2), rollup("d998h", "d998", h, 998*d, 998*d),
		part("d999", m, 999*d, 999*d+h, 2), rollup("d999h", "d999", h, 999*d, 999*d),
		flush("f", 1000*d+11*h, 1000*d+12*h), // 100 bytes, never dropped by size
	}
	// Total 3130 > 2500: dropping d997 (1010) leaves 2120.
	jobs := Compactions(blocks, now, o)
	if len(jobs) != 1 || jobs[0].Kind != Delete || !slices.Equal(jobs[0].Inputs, ids("d997", "d997h")) {
		t.Fatalf("jobs %+v", jobs)
	}
	// A settled flush block reaching back into a dropped partition is folded
	// without it.
	blocks = append(blocks, flush("late", 997*d+5*h, 998*d+h))
	jobs = Compactions(blocks, now, o)
	if len(jobs) != 2 || !slices.Equal(jobs[0].Inputs, ids("d997", "d997h")) {
		t.Fatalf("jobs %+v", jobs)
	}
	if j := jobs[1]; j.MinT != 998*d || !slices.Equal(j.Inputs, ids("d998", "d998h", "late")) {
		t.Fatalf("fold %+v", j)
	}
}

func TestDeterministic(t *testing.T) {
	o := DefaultOptions()
	o.Retention = 60 * d
	o.RetentionBytes = 50_000
	r := rand.New(rand.NewPCG(1, 2))
	now := 1000 * d
	var blocks []Block
	for i := range 40 {
		lo := now - r.Int64N(70*d)
		blocks = append(blocks, flush(fmt.Sprint("f", i), lo, lo+r.Int64N(3*d)))
	}
	for day := int64(940); day < 1000; day += 3 {
		id := fmt.Sprint("p", day)
		blocks = append(blocks, part(id, m, day*d, day*d+h, 2), rollup(id+"h", id, h, day*d, day*d))
	}
	want := Compactions(blocks, now, o)
	if len(want) < 3 {
		t.Fatalf("too few jobs to be a test: %d", len(want))
	}
	seen := map[string]bool{}
	for _, j := range want {
		for _, id := range j.Inputs {
			if seen[id] {
				t.Fatalf("block %s in two jobs", id)
			}
			seen[id] = true
		}
	}
	for range 20 {
		r.Shuffle(len(blocks), func(i, j int) { blocks[i], blocks[j] = blocks[j], blocks[i] })
		if got := Compactions(blocks, now, o); !reflect.DeepEqual(got, want) {
			t.Fatal("plan depends on the order of blocks")
		}
	}
}

func created(b Block, at int64) Block { b.Created = at; return b }

// TestSettleAndBatch: with Created known, a late-data flush block waits
// FlushSettle after its creation; when a partition is rewritten, every flush
// block in it goes (settled or not), and so does every partition those
// blocks touch.
func TestSettleAndBatch(t *testing.T) {
	o := DefaultOptions()
	now := 1000*d + 12*h
	late := created(flush("late", 999*d+h, 999*d+2*h), now-h)
	if jobs := Compactions([]Block{late}, now, o); len(jobs) != 0 {
		t.Fatalf("late block created 1h ago folded: %+v", jobs)
	}
	if jobs := Compactions([]Block{created(late, now-3*h)}, now, o); len(jobs) != 1 {
		t.Fatalf("late block created 3h ago not folded: %+v", jobs)
	}
	// Without Created, the data time decides: late data settles at once.
	late.Created = 0
	if jobs := Compactions([]Block{late}, now, o); len(jobs) != 1 {
		t.Fatalf("late block without Created: %+v", jobs)
	}
	blocks := []Block{
		created(flush("s", 998*d+h, 998*d+2*h), now-4*h),  // settled, day 998
		created(flush("u1", 998*d+5*h, 998*d+6*h), now-h), // unsettled, day 998
		created(flush("u2", 997*d+5*h, 998*d+9*h), now-h), // unsettled, days 997-998
		created(flush("u3", 996*d+5*h, 996*d+9*h), now-h), // unsettled, day 996 only
		part("p997", m, 997*d, 997*d+h, 2), rollup("p997h", "p997", h, 997*d, 997*d),
	}
	jobs := Compactions(blocks, now, o)
	if len(jobs) != 1 {
		t.Fatalf("jobs %+v", jobs)
	}
	j := jobs[0]
	if !slices.Equal(j.Inputs, ids("p997", "p997h", "s", "u1", "u2")) || len(j.Outputs) != 4 || j.MinT != 997*d {
		t.Fatalf("batched job %+v: want days 997 and 998 with s, u1, u2; u3 left alone", j)
	}
}

func TestOwner(t *testing.T) {
	o := DefaultOptions()
	now := 1000 * d
	cases := []struct {
		t    int64
		want Partition
	}{
		{now - 1, Partition{0, m, 999 * d, 1000*d - 1}},
		{985 * d, Partition{1, h, 980 * d, 987*d - 1}},
		{870 * d, Partition{2, d, 868 * d, 896*d - 1}},
	}
	for _, c := range cases {
		got, err := Owner(c.t, now, o)
		if err != nil || got != c.want {
			t.Errorf("Owner(%d) = %+v, %v; want %+v", c.t, got, err, c.want)
		}
	}
	if _, err := Owner(0, now, Options{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("zero options: %v", err)
	}
}

// TestTimeline is the example timeline of docs/operations.md, step by step.
func TestTimeline(t *testing.T) {
	o := DefaultOptions()
	flushed := 1000*d + 10*h
	blocks := []Block{
		part("p999", m, 999*d, 999*d+20*h, 2), rollup("p999h", "p999", h, 999*d, 999*d+20*h),
		part("wk", h, 980*d, 986*d, 3), rollup("wkd", "wk", d, 980*d, 986*d),
		created(flush("F1a", 1000*d+8*h, flushed-m), flushed),
		created(flush("F1b", 999*d+3*h, 999*d+4*h), flushed),
		created(flush("F1c", 985*d+h, 985*d+h), flushed),
	}
	if jobs := Compactions(blocks, flushed+3*h-1, o); len(jobs) != 0 {
		t.Fatalf("folded before FlushSettle: %+v", jobs)
	}
	jobs := Compactions(blocks, flushed+3*h, o)
	want := []struct {
		inputs   []string
		min      int64
		res, rup int64
	}{
		{ids("F1c", "wk", "wkd"), 980 * d, h, d},
		{ids("F1b", "p999", "p999h"), 999 * d, m, h},
		{ids("F1a"), 1000 * d, m, h},
	}
	if len(jobs) != len(want) {
		t.Fatalf("jobs %+v", jobs)
	}
	for i, w := range want {
		j := jobs[i]
		if j.Kind != Merge || !slices.Equal(j.Inputs, w.inputs) || j.MinT != w.min || len(j.Outputs) != 2 ||
			j.Outputs[0].Resolution != w.res || j.Outputs[1].Resolution != w.rup {
			t.Fatalf("job %d: %+v", i, j)
		}
	}
	// Day 1098: the 28-day partition [980d, 1008d) moves to the 1d level.
	var weeks []Block
	for w := int64(980); w < 1008; w += 7 {
		id := fmt.Sprint("w", w)
		weeks = append(weeks, part(id, h, w*d, w*d+5*d, 4), rollup(id+"d", id, d, w*d, w*d+5*d))
	}
	if jobs := Compactions(weeks, 1098*d-1, o); len(jobs) != 0 {
		t.Fatalf("1d downsampling too early: %+v", jobs)
	}
	jobs = Compactions(weeks, 1098*d, o)
	if len(jobs) != 1 || jobs[0].Kind != Downsample || len(jobs[0].Inputs) != 8 || len(jobs[0].Outputs) != 1 ||
		jobs[0].Outputs[0].Resolution != d || jobs[0].Outputs[0].MinT != 980*d || jobs[0].Outputs[0].MaxT != 1008*d-1 {
		t.Fatalf("1d downsampling: %+v", jobs)
	}
	// Day 1408: it is wholly older than 400 days.
	old := []Block{part("m", d, 980*d, 1007*d, 5)}
	if jobs := Compactions(old, 1408*d-1, o); len(jobs) != 0 {
		t.Fatalf("deleted too early: %+v", jobs)
	}
	if jobs := Compactions(old, 1408*d, o); len(jobs) != 1 || jobs[0].Kind != Delete {
		t.Fatalf("retention: %+v", jobs)
	}
}
