// Package ingesttest generates the prediction workload of the ingest
// benchmarks, shared by the ingest package's benchmarks and the server's
// end-to-end HTTP benchmark so both measure the same records.
package ingesttest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strconv"
)

// Definitions declares the benchmark model "bench" (binary; five
// categorical features) and three slices: eu (≈ 60 % of records), mobile
// (≈ 33 %) and heavy (≈ 98 %).
const Definitions = `
models:
  bench:
    task: binary
    classes: [0, 1]
    positive_class: 1
    features:
      c0: categorical
      c1: categorical
      c2: categorical
      c3: categorical
      c4: categorical
slices:
  eu:
    where: c0 in ("de", "fr", "it")
  mobile:
    where: attributes.device == "ios"
  heavy:
    where: n0 > 0.2
`

// WriteBatch writes n NDJSON predictions of model "bench" to buf, with ids
// prefix0 … prefix(n−1), timestamp ts (Unix seconds), 20 features (15
// numeric, 5 categorical), a score, one attribute and one measure.
func WriteBatch(buf *bytes.Buffer, rng *rand.Rand, prefix string, n int, ts int64) {
	countries := []string{"de", "fr", "it", "us", "br"}
	devices := []string{"ios", "android", "web"}
	for i := 0; i < n; i++ {
		buf.WriteString(`{"model":"bench","version":"v1","id":"`)
		buf.WriteString(prefix)
		buf.WriteString(strconv.Itoa(i))
		buf.WriteString(`","timestamp":`)
		buf.WriteString(strconv.FormatInt(ts, 10))
		buf.WriteString(`,"features":{`)
		for f := 0; f < 15; f++ {
			fmt.Fprintf(buf, `"n%d":%.4f,`, f, rng.Float64()*10)
		}
		for f := 0; f < 5; f++ {
			fmt.Fprintf(buf, `"c%d":"%s"`, f, countries[rng.IntN(len(countries))])
			if f < 4 {
				buf.WriteByte(',')
			}
		}
		s := rng.Float64()
		fmt.Fprintf(buf, `},"score":%.4f,"attributes":{"device":"%s"},"measures":{"latency_ms":%.2f}}`+"\n", s, devices[rng.IntN(3)], 5+rng.Float64()*50)
	}
}

// Batches returns n NDJSON bodies of size predictions each, from a fixed
// seed, with ids 0 … size−1 and timestamp ts (Unix seconds).
func Batches(n, size int, ts int64) [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	bodies := make([][]byte, n)
	for i := range bodies {
		var buf bytes.Buffer
		WriteBatch(&buf, rng, "", size, ts)
		bodies[i] = buf.Bytes()
	}
	return bodies
}

// FreshIDs returns a copy of body with every id prefixed by prefix, so that
// a request sending a body again still brings new predictions.
func FreshIDs(body []byte, prefix string) []byte {
	return bytes.ReplaceAll(body, []byte(`"id":"`), []byte(`"id":"`+prefix))
}
