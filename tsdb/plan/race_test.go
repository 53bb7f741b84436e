//go:build race

package plan

// raceEnabled trims the simulation under the race detector, which makes it
// several times slower; the logic is single-goroutine, so -race adds no
// coverage there.
const raceEnabled = true
