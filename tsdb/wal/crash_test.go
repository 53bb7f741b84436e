package wal

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	crashDirEnv   = "EVALSTORE_WAL_CRASH_DIR"
	crashStartEnv = "EVALSTORE_WAL_CRASH_START"
	crashStreams  = 3
	crashSegSize  = 4 << 10
)

// crashRecord is stream (1 byte), sequence number (8 bytes) and padding
// whose length depends on the sequence number.
func crashRecord(stream int, seq uint64) []byte {
	b := make([]byte, 9, 9+seq%97)
	b[0] = byte(stream)
	binary.LittleEndian.PutUint64(b[1:], seq)
	for i := range int(seq % 97) {
		b = append(b, byte(seq)+byte(i))
	}
	return b
}

func parseCrashRecord(b []byte) (stream int, seq uint64, err error) {
	if len(b) < 9 {
		return 0, 0, fmt.Errorf("short record %x", b)
	}
	stream, seq = int(b[0]), binary.LittleEndian.Uint64(b[1:])
	if !bytes.Equal(b, crashRecord(stream, seq)) {
		return 0, 0, fmt.Errorf("record %x is not stream %d seq %d", b, stream, seq)
	}
	return stream, seq, nil
}

// TestHelperProcess is the writer that TestCrashKill9 kills. It runs only
// when re-executed with crashDirEnv set: crashStreams goroutines log numbered
// batches under SyncAlways and print "ack <stream> <seq>" once Log returned
// for a batch whose last record is seq.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process of TestCrashKill9")
	}
	var start [crashStreams]uint64
	for i, f := range strings.Split(os.Getenv(crashStartEnv), ",") {
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil || i >= crashStreams {
			fmt.Fprintf(os.Stderr, "bad %s: %q\n", crashStartEnv, os.Getenv(crashStartEnv))
			os.Exit(2)
		}
		start[i] = n
	}
	w, err := Open(dir, Options{SegmentSize: crashSegSize})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var out sync.Mutex
	var wg sync.WaitGroup
	for s := range crashStreams {
		wg.Go(func() {
			for seq := start[s]; ; {
				n := 1 + seq%5
				recs := make([][]byte, n)
				for i := range recs {
					recs[i] = crashRecord(s, seq+uint64(i))
				}
				if err := w.Log(recs...); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				seq += n
				out.Lock()
				fmt.Printf("ack %d %d\n", s, seq-1) // os.Stdout is unbuffered: one write(2)
				out.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestCrashKill9 runs TestHelperProcess in a child process, kill -9s it
// after a random number of acknowledgements (so at a random point of its
// write/fsync cycle), and checks after each kill that every acknowledged
// record is in the log, each stream in order and exactly once, and that the
// log takes new records.
func TestCrashKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(9, 9))
	var next [crashStreams]uint64 // records of each stream in the log
	for iter := range 24 {
		killAfter := rng.IntN(120) // 0: killed during start-up or Open
		acked := runAndKill(t, dir, next, killAfter)

		w := openT(t, dir, Options{SegmentSize: crashSegSize})
		var count [crashStreams]uint64
		err := w.Replay(0, func(rec []byte) error {
			s, seq, err := parseCrashRecord(rec)
			if err != nil {
				return err
			}
			if s >= crashStreams || seq != count[s] {
				return fmt.Errorf("stream %d: seq %d where %d was expected (lost, duplicated or reordered)", s, seq, count[s])
			}
			count[s]++
			return nil
		})
		if err != nil {
			t.Fatalf("iteration %d: %v", iter, err)
		}
		for s := range crashStreams {
			if acked[s] >= 0 && uint64(acked[s]) >= count[s] {
				t.Fatalf("iteration %d: stream %d: seq %d acknowledged, log ends at %d", iter, s, acked[s], count[s])
			}
			if count[s] < next[s] {
				t.Fatalf("iteration %d: stream %d shrank from %d to %d", iter, s, next[s], count[s])
			}
			// Writable after recovery: the next writer continues after this.
			logT(t, w, crashRecord(s, count[s]))
			count[s]++
		}
		closeT(t, w)
		next = count
		t.Logf("iteration %d: killed after %d acks; log holds %v records", iter, killAfter, next)
	}
}

// runAndKill starts the helper, SIGKILLs it after killAfter acks and returns
// the highest acknowledged sequence number per stream (-1: none).
func runAndKill(t *testing.T, dir string, start [crashStreams]uint64, killAfter int) [crashStreams]int64 {
	t.Helper()
	// A watchdog only: a healthy iteration takes milliseconds.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir,
		fmt.Sprintf("%s=%d,%d,%d", crashStartEnv, start[0], start[1], start[2]))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := [crashStreams]int64{-1, -1, -1}
	killed := false
	kill := func() {
		if !killed {
			killed = true
			if err := cmd.Process.Kill(); err != nil {
				t.Errorf("kill: %v", err)
			}
		}
	}
	if killAfter == 0 {
		kill()
	}
	n := 0
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var s int
		var seq int64
		if _, err := fmt.Sscanf(sc.Text(), "ack %d %d", &s, &seq); err != nil {
			continue // test framework output
		}
		acked[s] = max(acked[s], seq)
		if n++; n == killAfter {
			kill()
		}
	}
	err = cmd.Wait()
	if !killed || ctx.Err() != nil {
		t.Fatalf("helper ended on its own (%v) after %d acks; stderr:\n%s", err, n, stderr.String())
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("helper not killed by SIGKILL: %v; stderr:\n%s", err, stderr.String())
	}
	return acked
}
