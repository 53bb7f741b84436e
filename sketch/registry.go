package sketch

import "fmt"

// New returns an empty state of the type that format f encodes, with that
// type's default configuration (its encoding carries its own configuration,
// so decoding into it adopts the encoded one).
func New(f Format) (Sketch, error) {
	switch f {
	case FormatConfusion:
		return NewConfusion(), nil
	case FormatScoreHistogram:
		return NewDefaultScoreHistogram(), nil
	case FormatMoments:
		return NewMoments(), nil
	case FormatRegression:
		return NewRegression(), nil
	case FormatLogHistogram:
		return NewDefaultLogHistogram(), nil
	case FormatTDigest:
		return NewDefaultTDigest(), nil
	case FormatCategorical:
		return NewCategorical(DefaultCategoricalCapacity), nil
	}
	return nil, fmt.Errorf("%w: %v", ErrFormat, f)
}

// Decode returns the state encoded in src, whatever its type.
func Decode(src []byte) (Sketch, error) {
	f, err := FormatOf(src)
	if err != nil {
		return nil, err
	}
	s, err := New(f)
	if err != nil {
		return nil, err
	}
	if err := s.UnmarshalBinary(src); err != nil {
		return nil, fmt.Errorf("decode %v: %w", f, err)
	}
	return s, nil
}
