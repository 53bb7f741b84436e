package sketch

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestReaderRoundTrip(t *testing.T) {
	var b []byte
	b = append(b, byte(FormatMoments))
	b = appendUvarint(b, 300)
	b = appendVarint(b, -7)
	b = appendFloat64(b, math.Pi)
	b = appendUvarint(b, 3)
	b = append(b, 'a', 'b', 'c')
	b = append(b, 9)

	r := newReader(b)
	r.format(FormatMoments)
	if got := r.uvarint("u"); got != 300 {
		t.Errorf("uvarint = %d", got)
	}
	if got := r.varint("v"); got != -7 {
		t.Errorf("varint = %d", got)
	}
	if got := r.float64("f"); got != math.Pi {
		t.Errorf("float64 = %v", got)
	}
	n := r.count("n", 1)
	if got := string(r.bytes(uint64(n), "s")); got != "abc" {
		t.Errorf("bytes = %q", got)
	}
	if got := r.byte("b"); got != 9 {
		t.Errorf("byte = %d", got)
	}
	if err := r.done(); err != nil {
		t.Fatal(err)
	}
}

func TestReaderErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		read func(r *reader)
		want error
	}{
		{"empty", nil, func(r *reader) { r.format(FormatMoments) }, ErrCorrupt},
		{"wrong format", []byte{byte(FormatTDigest)}, func(r *reader) { r.format(FormatMoments) }, ErrFormat},
		{"short float", []byte{1, 2, 3}, func(r *reader) { r.float64("f") }, ErrCorrupt},
		{"bad varint", []byte{0x80}, func(r *reader) { r.uvarint("u") }, ErrCorrupt},
		{"bad zigzag", []byte{0x80}, func(r *reader) { r.varint("v") }, ErrCorrupt},
		{"huge count", []byte{0xff, 0xff, 0x03, 0}, func(r *reader) { r.count("n", 8) }, ErrCorrupt},
		{"short bytes", []byte{5, 'a'}, func(r *reader) { r.bytes(uint64(r.count("n", 1)), "s") }, ErrCorrupt},
		{"missing byte", nil, func(r *reader) { r.byte("b") }, ErrCorrupt},
		{"trailing", []byte{1, 2}, func(r *reader) { r.byte("b") }, ErrCorrupt},
		{"invalid", []byte{1}, func(r *reader) { r.byte("b"); r.invalid("bad %s", "thing") }, ErrCorrupt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newReader(tc.in)
			tc.read(&r)
			err := r.done()
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if r.err() == nil && tc.name != "trailing" {
				t.Errorf("err() = nil after a failed read")
			}
		})
	}
}

func TestFormatOf(t *testing.T) {
	if _, err := FormatOf(nil); !errors.Is(err, ErrCorrupt) {
		t.Errorf("FormatOf(nil) err = %v", err)
	}
	f, err := FormatOf([]byte{byte(FormatCategorical), 0})
	if err != nil || f != FormatCategorical {
		t.Errorf("FormatOf = %v, %v", f, err)
	}
	if s := Format(0xee).String(); s != "format(0xee)" {
		t.Errorf("String = %q", s)
	}
	for f := FormatConfusion; f <= FormatCategorical; f++ {
		if s := f.String(); strings.HasPrefix(s, "format(") {
			t.Errorf("format %d has no name: %q", f, s)
		}
	}
}
