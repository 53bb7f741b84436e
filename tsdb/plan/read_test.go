package plan

import (
	"fmt"
	"reflect"
	"testing"
)

func TestReadEdgesAndMiddle(t *testing.T) {
	blocks := []Block{
		part("p1", m, 1*d, 2*d-m, 2), rollup("p1h", "p1", h, 1*d, 2*d-h),
		part("p2", m, 2*d, 3*d-m, 2), rollup("p2h", "p2", h, 2*d, 3*d-h),
		flush("f", 1*d+5*h, 4*d),
	}
	mint, maxt := 1*d+10*h+7*m, 2*d+5*h+30*m
	got := Read(blocks, mint, maxt, 0)
	want := []Part{
		{"f", mint, maxt},               // flush blocks: whole window, raw
		{"p1", mint, 1*d + 11*h - 1},    // left edge: raw up to the first whole hour
		{"p1h", 1*d + 11*h, 1*d + 23*h}, // whole hours of day 1 (last bucket start)
		{"p2h", 2 * d, 2*d + 5*h - 1},   // whole hours of day 2 inside the window
		{"p2", 2*d + 5*h, maxt},         // right edge: raw
	}
	sortParts(want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
	// Resolution limit 1m: no rollup may be read.
	got = Read(blocks, mint, maxt, m)
	want = []Part{{"f", mint, maxt}, {"p1", mint, 2*d - m}, {"p2", 2 * d, maxt}}
	sortParts(want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("resolution 1m: got %v\nwant %v", got, want)
	}
	// A window inside one hour: only raw.
	got = Read(blocks[:2], 1*d+10*h+1*m, 1*d+10*h+50*m, 0)
	if want := []Part{{"p1", 1*d + 10*h + m, 1*d + 10*h + 50*m}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("sub-hour window: %v", got)
	}
	// Empty and reversed windows.
	if got := Read(blocks, 10*d, 11*d, 0); len(got) != 0 {
		t.Fatalf("window without data: %v", got)
	}
	if got := Read(blocks, 2*d, 1*d, 0); got != nil {
		t.Fatalf("reversed window: %v", got)
	}
}

func sortParts(ps []Part) {
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && (ps[j].MinT < ps[j-1].MinT || ps[j].MinT == ps[j-1].MinT && ps[j].BlockID < ps[j-1].BlockID); j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
}

// TestReadCoarseSelection is the benchmark case: a 30-day window
// over raw days that have 1h rollups reads 1h buckets in the middle and at
// most two partial hours of 1m buckets at the edges.
func TestReadCoarseSelection(t *testing.T) {
	var blocks []Block
	for day := int64(0); day < 32; day++ {
		id := fmt.Sprint("d", day)
		blocks = append(blocks, part(id, m, day*d, (day+1)*d-m, 2), rollup(id+"h", id, h, day*d, (day+1)*d-h))
	}
	res := map[string]int64{}
	for _, b := range blocks {
		res[b.ID] = b.Resolution
	}
	buckets := func(ps []Part) (raw, hourly int64) {
		for _, p := range ps {
			n := (p.MaxT-p.MinT)/res[p.BlockID] + 1
			if res[p.BlockID] == m {
				raw += n
			} else {
				hourly += n
			}
		}
		return raw, hourly
	}
	mint := 1*d + 13*m
	maxt := mint + 30*d - 1
	raw, hourly := buckets(Read(blocks, mint, maxt, 0))
	// Left edge 13m..59m = 47 raw buckets; right edge 0m..12m = 13; the 30
	// days minus that one split hour are 719 whole hours.
	if raw != 47+13 || hourly != 30*24-1 {
		t.Fatalf("read %d raw and %d hourly buckets, want 60 and 719", raw, hourly)
	}
	raw, hourly = buckets(Read(blocks, mint, maxt, m))
	if raw != 30*24*60 || hourly != 0 {
		t.Fatalf("resolution 1m read %d raw, %d hourly", raw, hourly)
	}
	// A 1h level partition with a 1d rollup: whole days come from the rollup.
	blocks = []Block{part("w", h, 0, 7*d-h, 3), rollup("wd", "w", d, 0, 6*d)}
	got := Read(blocks, 12*h, 5*d+3*h, 0)
	want := []Part{{"w", 12 * h, d - 1}, {"wd", d, 5*d - 1}, {"w", 5 * d, 5*d + 3*h}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("1d rollup: %v", got)
	}
	// With a resolution limit between the two, only the base.
	if got := Read(blocks, 12*h, 5*d+3*h, 2*h); !reflect.DeepEqual(got, []Part{{"w", 12 * h, 5*d + 3*h}}) {
		t.Fatalf("limit 2h: %v", got)
	}
}
