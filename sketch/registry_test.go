package sketch

import (
	"bytes"
	"errors"
	"testing"
)

// registrySamples returns one non-empty state of every format.
func registrySamples(t *testing.T) []Sketch {
	t.Helper()
	c := NewConfusion()
	c.Add(1, 0)
	sh := NewDefaultScoreHistogram()
	m := NewMoments()
	r := NewRegression()
	lh := NewDefaultLogHistogram()
	td := NewDefaultTDigest()
	cat := NewCategorical(DefaultCategoricalCapacity)
	cat.Add("eu")
	for _, err := range []error{
		sh.Add(0.25, true), m.Add(3), r.Add(1, 1.5), lh.Add(42), td.Add(42),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return []Sketch{c, sh, m, r, lh, td, cat}
}

func TestRegistry(t *testing.T) {
	for _, s := range registrySamples(t) {
		t.Run(s.Format().String(), func(t *testing.T) {
			empty, err := New(s.Format())
			if err != nil {
				t.Fatal(err)
			}
			if empty.Format() != s.Format() {
				t.Fatalf("New(%v).Format() = %v", s.Format(), empty.Format())
			}
			enc := s.AppendBinary(nil)
			if enc[0] != byte(s.Format()) {
				t.Fatalf("encoding starts with 0x%02x, want the format id 0x%02x", enc[0], byte(s.Format()))
			}
			got, err := Decode(enc)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.AppendBinary(nil), enc) {
				t.Fatal("Decode round trip changed the encoding")
			}
			// Merging into a fresh state equals decoding.
			if err := empty.DecodeAndMerge(enc); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(empty.AppendBinary(nil), enc) {
				t.Fatal("DecodeAndMerge into New(format) differs from the encoding")
			}
			// Every other format's bytes are refused with ErrFormat and change nothing.
			for _, o := range registrySamples(t) {
				if o.Format() == s.Format() {
					continue
				}
				if err := empty.DecodeAndMerge(o.AppendBinary(nil)); !errors.Is(err, ErrFormat) {
					t.Errorf("DecodeAndMerge(%v bytes) err = %v, want ErrFormat", o.Format(), err)
				}
			}
			if !bytes.Equal(empty.AppendBinary(nil), enc) {
				t.Fatal("a refused decode changed the state")
			}
		})
	}
	for _, bad := range [][]byte{nil, {0x00}, {0xee, 1, 2}} {
		if _, err := Decode(bad); err == nil {
			t.Errorf("Decode(% x) succeeded", bad)
		}
	}
}

// FuzzDecode feeds arbitrary bytes to the format-dispatching decoder: it
// never panics, and what decodes re-encodes to a stable encoding.
func FuzzDecode(f *testing.F) {
	t := &testing.T{}
	for _, s := range registrySamples(t) {
		f.Add(s.AppendBinary(nil))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v wraps neither ErrCorrupt nor ErrFormat", err)
			}
			return
		}
		enc := s.AppendBinary(nil)
		s2, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-decoding a valid encoding: %v", err)
		}
		if !bytes.Equal(s2.AppendBinary(nil), enc) {
			t.Fatal("encoding not stable")
		}
	})
}
