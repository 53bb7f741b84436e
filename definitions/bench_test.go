package definitions

import (
	"fmt"
	"testing"
)

// benchRecord is a record with 20 features and 3 attributes held in maps,
// as the ingest layer holds a decoded prediction.
func benchRecord() *MapRecord {
	f := map[string]Value{}
	for i := range 14 {
		f[fmt.Sprintf("num_%02d", i)] = NumberValue(float64(i * 7))
	}
	for i, v := range []string{"de", "ios", "basic", "web", "en", "organic"} {
		f[[]string{"country", "device", "plan", "channel", "language", "source"}[i]] = StringValue(v)
	}
	return &MapRecord{
		Model: "churn", Version: "v2", Features: f,
		Attributes: map[string]Value{"cohort": StringValue("beta"), "region": StringValue("emea"), "tier": StringValue("gold")},
	}
}

const benchDefs = `
models:
  churn:
    task: binary
    classes: [0, 1]
    positive_class: 1
slices:
  eu: country in ("de", "fr", "it", "es", "nl", "be", "at", "pl", "se", "dk")
  mobile_new: device in ("ios", "android") and num_03 < 30 and plan != "enterprise"
  beta_heavy: (attributes.cohort == "beta" or tier == "platinum") and num_10 >= 50 and source is not missing
`

// BenchmarkSliceMatch routes one record (20 features) through 3 slices,
// as ingest does per prediction: ns/op is the cost per record.
func BenchmarkSliceMatch(b *testing.B) {
	d, err := Parse("bench.yaml", []byte(benchDefs))
	if err != nil {
		b.Fatal(err)
	}
	r := benchRecord()
	dst := make([]string, 0, 8)
	b.ReportAllocs()
	for b.Loop() {
		dst = d.SlicesFor("churn", r, dst[:0])
	}
	if len(dst) != 4 {
		b.Fatalf("slices %v", dst)
	}
}

// BenchmarkPredicateMatch is one slice's predicate alone.
func BenchmarkPredicateMatch(b *testing.B) {
	p, err := ParsePredicate(`device in ("ios", "android") and num_03 < 30 and plan != "enterprise"`)
	if err != nil {
		b.Fatal(err)
	}
	r := benchRecord()
	b.ReportAllocs()
	for b.Loop() {
		p.Match(r)
	}
}

// BenchmarkParse parses, validates and compiles a small definitions file.
func BenchmarkParse(b *testing.B) {
	data := []byte(benchDefs)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("bench.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}
