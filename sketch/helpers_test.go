package sketch

import (
	"bytes"
	"sync"
	"testing"
)

// checkReadOnly runs reads once, then from several goroutines at once
// (the package is tested with -race), and checks the encoding never moved.
func checkReadOnly(t *testing.T, s Sketch, reads func()) {
	t.Helper()
	before := s.AppendBinary(nil)
	reads()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				reads()
				_ = s.AppendBinary(nil)
				_ = s.MemSize()
				_ = s.Format()
			}
		})
	}
	wg.Wait()
	if after := s.AppendBinary(nil); !bytes.Equal(before, after) {
		t.Errorf("reading mutated the state:\nbefore % x\n after % x", before, after)
	}
}
