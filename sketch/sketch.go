package sketch

// Sketch is what the storage engine needs of every state: encode, merge from
// bytes, reset and account for memory. The concrete types add their own
// typed Add, Merge and derived metrics.
//
// A Sketch is not safe for concurrent mutation; readers may share a state
// that no one mutates.
type Sketch interface {
	// Format returns the id that AppendBinary writes first.
	Format() Format
	// AppendBinary appends the encoded state to dst and returns the
	// extended slice. It never mutates the receiver.
	AppendBinary(dst []byte) []byte
	// DecodeAndMerge merges the encoded state src into the receiver
	// without building an intermediate value where the layout allows.
	// On error the receiver is unchanged.
	DecodeAndMerge(src []byte) error
	// UnmarshalBinary replaces the receiver with the encoded state src.
	// On error the receiver is unchanged.
	UnmarshalBinary(src []byte) error
	// Reset returns the state to empty, keeping allocated memory.
	Reset()
	// MemSize estimates the bytes the state holds in memory.
	MemSize() int
}
