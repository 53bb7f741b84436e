package sketch

import (
	"bytes"
	"errors"
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

// decodeRoundTrip is the shared body of the decode fuzz targets: it decodes
// data into fresh(); a refusal must wrap ErrCorrupt or ErrFormat and yields
// nil; an accepted state must re-encode to bytes that decode into fresh()
// and re-encode identically. It returns the decoded state.
func decodeRoundTrip(t *testing.T, data []byte, fresh func() Sketch) Sketch {
	t.Helper()
	s := fresh()
	if err := s.UnmarshalBinary(data); err != nil {
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrFormat) {
			t.Fatalf("error %v wraps neither ErrCorrupt nor ErrFormat", err)
		}
		return nil
	}
	enc := s.AppendBinary(nil)
	s2 := fresh()
	if err := s2.UnmarshalBinary(enc); err != nil {
		t.Fatalf("re-decoding % x: %v", enc, err)
	}
	if enc2 := s2.AppendBinary(nil); !bytes.Equal(enc, enc2) {
		t.Fatalf("re-encoding unstable: % x then % x", enc, enc2)
	}
	return s
}
