package block

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"evalstore/sketch"
	"evalstore/tsdb/series"
)

// Block format versions written to meta.json; Open refuses others.
const (
	// FormatVersion is written for blocks of sketch and float series.
	FormatVersion = 1
	// FormatVersionHistograms is written for blocks holding native
	// histogram series (chunk kind 3); the layout is otherwise the same.
	FormatVersionHistograms = 2
)

const (
	metaFilename   = "meta.json"
	indexFilename  = "index"
	chunksDirname  = "chunks"
	tmpSuffix      = ".tmp"
	defaultLevel   = 1
	segmentNameFmt = "%06d"
)

// Meta describes a block. MinT and MaxT are the smallest and largest bucket
// start or sample timestamp in it (Unix ms, inclusive). Resolution is the
// width of its sketch buckets in ms. Level is 1 for a block Write made and
// 1 + the largest input level for a Compact result; Sources are the IDs of
// the Write blocks whose data it holds.
type Meta struct {
	ID         string   `json:"id"`
	MinT       int64    `json:"minTime"`
	MaxT       int64    `json:"maxTime"`
	Resolution int64    `json:"resolution"`
	Stats      Stats    `json:"stats"`
	Level      int      `json:"level"`
	Sources    []string `json:"sources"`
	Version    int      `json:"version"`
}

// Stats counts a block's contents. NumBuckets counts sketch buckets,
// NumSamples float and histogram samples; Bytes is the size of all its
// files.
type Stats struct {
	NumSeries  uint64 `json:"numSeries"`
	NumBuckets uint64 `json:"numBuckets"`
	NumSamples uint64 `json:"numSamples"`
	NumChunks  uint64 `json:"numChunks"`
	Bytes      int64  `json:"bytes"`
}

// fileInfo records a block file's size so that Open detects truncation
// without reading the file.
type fileInfo struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

type metaFile struct {
	Meta
	Files []fileInfo `json:"files"`
}

// newID returns a 32-hex-digit block ID: 48 bits of Unix milliseconds then
// 80 random bits, so IDs sort by creation time.
func newID() string {
	var b [16]byte
	ms := uint64(time.Now().UnixMilli())
	binary.BigEndian.PutUint64(b[:8], ms<<16)
	_, _ = rand.Read(b[6:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// readMeta reads and validates dir/meta.json.
func readMeta(dir string) (metaFile, error) {
	var m metaFile
	b, err := os.ReadFile(filepath.Join(dir, metaFilename))
	if errors.Is(err, fs.ErrNotExist) {
		return m, fmt.Errorf("%w: %s has no %s", ErrNotBlock, dir, metaFilename)
	}
	if err != nil {
		return m, fmt.Errorf("block %s: %w", dir, err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, &CorruptError{Dir: dir, File: metaFilename, Offset: -1, Err: err}
	}
	bad := func(format string, args ...any) (metaFile, error) {
		return m, corruptf(dir, metaFilename, -1, format, args...)
	}
	switch {
	case m.Version != FormatVersion && m.Version != FormatVersionHistograms:
		return bad("unsupported format version %d", m.Version)
	case m.ID == "":
		return bad("no id")
	case m.MinT > m.MaxT:
		return bad("minTime %d after maxTime %d", m.MinT, m.MaxT)
	case m.Resolution <= 0:
		return bad("resolution %d", m.Resolution)
	}
	seen := map[string]bool{}
	for _, f := range m.Files {
		if f.Size < 0 || !validFileName(f.Name) || seen[f.Name] {
			return bad("bad file entry %q (%d bytes)", f.Name, f.Size)
		}
		seen[f.Name] = true
	}
	if !seen[indexFilename] {
		return bad("no index file listed")
	}
	return m, nil
}

// validFileName accepts the names a block holds: index and chunk segments.
func validFileName(name string) bool {
	if name == indexFilename {
		return true
	}
	var n int
	if _, err := fmt.Sscanf(name, chunksDirname+"/"+segmentNameFmt, &n); err != nil || n < 1 {
		return false
	}
	return name == segmentName(n)
}

func segmentName(n int) string { return chunksDirname + "/" + fmt.Sprintf(segmentNameFmt, n) }

// seriesInfo packs a series' kind and format into the first index chunk
// word.
func seriesInfo(kind series.Kind, f sketch.Format) uint64 { return uint64(kind)<<8 | uint64(f) }
