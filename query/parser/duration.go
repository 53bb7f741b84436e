package parser

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// durationUnits lists the Prometheus duration units in the only order they
// may appear in a duration literal.
var durationUnits = [...]struct {
	name string
	mult time.Duration
}{
	{"y", 365 * 24 * time.Hour},
	{"w", 7 * 24 * time.Hour},
	{"d", 24 * time.Hour},
	{"h", time.Hour},
	{"m", time.Minute},
	{"s", time.Second},
	{"ms", time.Millisecond},
}

// ParseDuration parses a Prometheus duration such as "1h30m", "500ms",
// "2w" or "1y" (a year is 365 days, a week 7 days). Units must appear in
// decreasing order (y w d h m s ms), each at most once; "0" alone is zero.
func ParseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("empty duration string")
	}
	if s == "0" {
		return 0, nil
	}
	var total time.Duration
	next := 0 // index of the smallest unit still allowed
	i := 0
	for i < len(s) {
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i {
			return 0, fmt.Errorf("not a valid duration string: %q", s)
		}
		n, err := strconv.ParseInt(s[i:j], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("duration out of range: %q", s)
		}
		k := j
		for k < len(s) && (s[k] < '0' || s[k] > '9') {
			k++
		}
		unit := s[j:k]
		found := -1
		for u := next; u < len(durationUnits); u++ {
			if durationUnits[u].name == unit {
				found = u
				break
			}
		}
		if found < 0 {
			return 0, fmt.Errorf("not a valid duration string: %q", s)
		}
		mult := durationUnits[found].mult
		if n > math.MaxInt64/int64(mult) {
			return 0, fmt.Errorf("duration out of range: %q", s)
		}
		total += time.Duration(n) * mult
		if total < 0 {
			return 0, fmt.Errorf("duration out of range: %q", s)
		}
		next = found + 1
		i = k
	}
	return total, nil
}

// FormatDuration formats d the way Prometheus prints durations: largest
// units first, years and weeks only when they divide the duration exactly,
// milliseconds as the smallest unit, "0s" for zero. Negative durations get
// a leading "-".
func FormatDuration(d time.Duration) string {
	if d < 0 {
		return "-" + FormatDuration(-d)
	}
	ms := int64(d / time.Millisecond)
	if ms == 0 {
		return "0s"
	}
	var b []byte
	for i, u := range durationUnits {
		mult := int64(u.mult / time.Millisecond)
		if i < 2 && ms%mult != 0 { // y and w only when exact
			continue
		}
		if v := ms / mult; v > 0 {
			b = strconv.AppendInt(b, v, 10)
			b = append(b, u.name...)
			ms -= v * mult
		}
	}
	return string(b)
}

// secondsToDuration converts a number of seconds (Prometheus 3 accepts a
// plain number wherever a duration is expected) into a duration truncated to
// milliseconds, the resolution of PromQL.
func secondsToDuration(f float64) (time.Duration, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) >= float64(math.MaxInt64)/1e9 {
		return 0, fmt.Errorf("duration out of range: %v seconds", f)
	}
	return time.Duration(f*1000) * time.Millisecond, nil
}
