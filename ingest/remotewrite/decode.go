package remotewrite

import (
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// checkLabel validates one label of a series whose labels arrive in order.
// It returns "" when the label is fine.
func checkLabel(k int, prev, name, val string) string {
	switch {
	case name == "":
		return fmt.Sprintf("label %d has an empty name", k)
	case k > 0 && name == prev:
		return fmt.Sprintf("duplicate label name %q", name)
	case k > 0 && name < prev:
		return fmt.Sprintf("label names are not sorted: %q after %q", name, prev)
	case !utf8.ValidString(name):
		return fmt.Sprintf("label name %q is not valid UTF-8", name)
	case !utf8.ValidString(val):
		return fmt.Sprintf("value of label %q is not valid UTF-8", name)
	}
	return ""
}

// finishLabels returns the series' labels and, if they are invalid, the
// reason and a printable name for the problem report.
func (d *decoder) finishLabels(i int, reason string) (labels.Labels, string, string) {
	lset := d.sb.Labels()
	if reason == "" && lset.Get(model.MetricNameLabel) == "" {
		reason = "no metric name (__name__ label)"
	}
	if reason == "" {
		return lset, "", ""
	}
	name := seriesName(i)
	if lset.Len() > 0 {
		name += " " + lset.String()
	}
	return lset, reason, name
}

// addSeries records a series with labels already validated. Its float
// samples and histograms must already be in d.floats / d.hists from f0 / h0.
func (d *decoder) addSeries(lset labels.Labels, f0, h0 int) {
	d.series = append(d.series, seriesEntry{lset: lset, f0: f0, f1: len(d.floats), h0: h0, h1: len(d.hists)})
}

func (d *decoder) decodeV1(raw []byte) error {
	req := &d.v1
	req.Timeseries, req.Metadata = req.Timeseries[:0], req.Metadata[:0]
	if err := req.Unmarshal(raw); err != nil {
		return invalid(err, "decoding prometheus.WriteRequest")
	}
	for i := range req.Timeseries {
		ts := &req.Timeseries[i]
		d.sb.Reset()
		reason, prev := "", ""
		for k, l := range ts.Labels {
			if reason == "" {
				reason = checkLabel(k, prev, l.Name, l.Value)
			}
			prev = l.Name
			// An empty value is the same as no label in Prometheus.
			if l.Value != "" {
				d.sb.Add(l.Name, l.Value)
			}
		}
		lset, reason, name := d.finishLabels(i, reason)
		if reason != "" {
			d.problem(Problem{Series: name, Item: "series", Index: -1, Reason: reason})
			continue
		}
		if len(ts.Samples) > 0 && len(ts.Histograms) > 0 {
			d.problem(Problem{Series: lset.String(), Item: "series", Index: -1,
				Reason: "holds both float samples and native histograms; send them as two series"})
			continue
		}
		f0, h0 := len(d.floats), len(d.hists)
		for _, s := range ts.Samples {
			d.floats = append(d.floats, floatPoint{t: s.Timestamp, v: s.Value})
		}
		for j := range ts.Histograms {
			hp := &ts.Histograms[j]
			_, isFloat := hp.Count.(*prompb.Histogram_CountFloat)
			if reason := addHistogram[prompb.BucketSpan](d, hp, isFloat, histogram.CounterResetHint(hp.ResetHint)); reason != "" {
				d.problem(Problem{Series: lset.String(), Item: "histogram", Index: j, Timestamp: hp.Timestamp, Reason: reason})
			}
		}
		d.addSeries(lset, f0, h0)
	}
	return nil
}

// symbol resolves a 2.0 symbol reference.
func symbol(symbols []string, ref uint32) (string, bool) {
	if uint64(ref) >= uint64(len(symbols)) {
		return "", false
	}
	return symbols[ref], true
}

// refLabels validates label references and adds the labels to sb.
func refLabels(sb *labels.ScratchBuilder, symbols []string, refs []uint32) string {
	if len(refs)%2 != 0 {
		return fmt.Sprintf("odd number (%d) of label references", len(refs))
	}
	reason, prev := "", ""
	for k := 0; k < len(refs); k += 2 {
		n, ok1 := symbol(symbols, refs[k])
		v, ok2 := symbol(symbols, refs[k+1])
		if !ok1 || !ok2 {
			return fmt.Sprintf("label reference (%d, %d) outside the %d symbols", refs[k], refs[k+1], len(symbols))
		}
		if reason == "" {
			reason = checkLabel(k/2, prev, n, v)
		}
		prev = n
		if v != "" {
			sb.Add(n, v)
		}
	}
	return reason
}

func (d *decoder) decodeV2(raw []byte) error {
	req := &d.v2
	req.Symbols, req.Timeseries = req.Symbols[:0], req.Timeseries[:0]
	if err := req.Unmarshal(raw); err != nil {
		return invalid(err, "decoding io.prometheus.write.v2.Request")
	}
	syms := req.Symbols
	if len(syms) > 0 && syms[0] != "" {
		return invalid(nil, "the first symbol must be the empty string, got %q", syms[0])
	}
	for i := range req.Timeseries {
		ts := &req.Timeseries[i]
		d.sb.Reset()
		reason := refLabels(&d.sb, syms, ts.LabelsRefs)
		lset, reason, name := d.finishLabels(i, reason)
		if reason != "" {
			d.problem(Problem{Series: name, Item: "series", Index: -1, Reason: reason})
			continue
		}
		series := lset.String
		switch {
		case len(ts.Samples) == 0 && len(ts.Histograms) == 0:
			d.problem(Problem{Series: series(), Item: "series", Index: -1, Reason: "no samples and no histograms"})
			continue
		case len(ts.Samples) > 0 && len(ts.Histograms) > 0:
			d.problem(Problem{Series: series(), Item: "series", Index: -1,
				Reason: "holds both samples and histograms; the 2.0 spec requires separate TimeSeries"})
			continue
		}
		md := ts.Metadata
		if _, ok := symbol(syms, md.HelpRef); !ok {
			d.problem(Problem{Series: series(), Item: "metadata", Index: 0, Reason: fmt.Sprintf("help reference %d outside the %d symbols", md.HelpRef, len(syms))})
		}
		if _, ok := symbol(syms, md.UnitRef); !ok {
			d.problem(Problem{Series: series(), Item: "metadata", Index: 0, Reason: fmt.Sprintf("unit reference %d outside the %d symbols", md.UnitRef, len(syms))})
		}
		if _, ok := writev2.Metadata_MetricType_name[int32(md.Type)]; !ok {
			d.problem(Problem{Series: series(), Item: "metadata", Index: 0, Reason: fmt.Sprintf("unknown metric type %d", md.Type)})
		}
		for j := range ts.Exemplars {
			ex := &ts.Exemplars[j]
			d.exemplarLabels.Reset()
			if r := refLabels(&d.exemplarLabels, syms, ex.LabelsRefs); r != "" {
				d.problem(Problem{Series: series(), Item: "exemplar", Index: j, Reason: r})
			}
		}
		f0, h0 := len(d.floats), len(d.hists)
		for _, s := range ts.Samples {
			d.floats = append(d.floats, floatPoint{t: s.Timestamp, v: s.Value})
		}
		for j := range ts.Histograms {
			hp := &ts.Histograms[j]
			_, isFloat := hp.Count.(*writev2.Histogram_CountFloat)
			if reason := addHistogram[writev2.BucketSpan](d, hp, isFloat, histogram.CounterResetHint(hp.ResetHint)); reason != "" {
				d.problem(Problem{Series: series(), Item: "histogram", Index: j, Timestamp: hp.Timestamp, Reason: reason})
			}
		}
		d.addSeries(lset, f0, h0)
	}
	return nil
}

// protoHistogram is what the 1.0 (prompb) and 2.0 (writev2) histogram
// messages have in common; S is their bucket-span type.
type protoHistogram[S any] interface {
	GetTimestamp() int64
	GetSum() float64
	GetSchema() int32
	GetZeroThreshold() float64
	GetPositiveDeltas() []int64
	GetNegativeDeltas() []int64
	GetPositiveCounts() []float64
	GetNegativeCounts() []float64
	GetCustomValues() []float64
	GetCountFloat() float64
	GetZeroCountFloat() float64
	GetCountInt() uint64
	GetZeroCountInt() uint64
	GetPositiveSpans() []S
	GetNegativeSpans() []S
}

// addHistogram converts either protocol's histogram message into a
// FloatHistogram appended to d.hists, in memory the decoder reuses across
// requests, or returns why the message is invalid. isFloat says which of
// the count oneofs is set; hint is the message's reset hint (both protocol
// enums number their values as histogram.CounterResetHint does).
func addHistogram[S any, P interface {
	*S
	GetOffset() int32
	GetLength() uint32
}](d *decoder, hp protoHistogram[S], isFloat bool, hint histogram.CounterResetHint) string {
	fh := d.nextHistogram()
	t := hp.GetTimestamp()
	if value.IsStaleNaN(hp.GetSum()) {
		// Prometheus's own staleness marker: only Sum matters.
		*fh = histogram.FloatHistogram{Sum: hp.GetSum(), PositiveSpans: fh.PositiveSpans[:0], NegativeSpans: fh.NegativeSpans[:0],
			PositiveBuckets: fh.PositiveBuckets[:0], NegativeBuckets: fh.NegativeBuckets[:0]}
		d.hists = append(d.hists, histPoint{t: t, h: fh})
		return ""
	}
	schema := hp.GetSchema()
	custom := hp.GetCustomValues()
	switch {
	case schema != histogram.CustomBucketsSchema && (schema < histogram.ExponentialSchemaMin || schema > histogram.ExponentialSchemaMaxReserved):
		return fmt.Sprintf("invalid schema %d: must be in [%d, %d] (exponential) or %d (custom buckets)",
			schema, histogram.ExponentialSchemaMin, histogram.ExponentialSchemaMaxReserved, histogram.CustomBucketsSchema)
	case schema != histogram.CustomBucketsSchema && len(custom) > 0:
		return fmt.Sprintf("exponential schema %d with %d custom bucket bounds", schema, len(custom))
	case isFloat && (len(hp.GetPositiveDeltas()) > 0 || len(hp.GetNegativeDeltas()) > 0):
		return "float histogram with integer bucket deltas"
	case !isFloat && (len(hp.GetPositiveCounts()) > 0 || len(hp.GetNegativeCounts()) > 0):
		return "integer histogram with float bucket counts"
	case hint > histogram.GaugeType:
		return fmt.Sprintf("unknown reset hint %d", hint)
	}
	spans := func(dst []histogram.Span, src []S) []histogram.Span {
		for i := range src {
			sp := P(&src[i])
			dst = append(dst, histogram.Span{Offset: sp.GetOffset(), Length: sp.GetLength()})
		}
		return dst
	}
	*fh = histogram.FloatHistogram{
		CounterResetHint: hint,
		Schema:           schema,
		ZeroThreshold:    hp.GetZeroThreshold(),
		Sum:              hp.GetSum(),
		PositiveSpans:    spans(fh.PositiveSpans[:0], hp.GetPositiveSpans()),
		NegativeSpans:    spans(fh.NegativeSpans[:0], hp.GetNegativeSpans()),
		PositiveBuckets:  fh.PositiveBuckets[:0],
		NegativeBuckets:  fh.NegativeBuckets[:0],
		CustomValues:     fh.CustomValues[:0],
	}
	if isFloat {
		fh.Count, fh.ZeroCount = hp.GetCountFloat(), hp.GetZeroCountFloat()
		fh.PositiveBuckets = append(fh.PositiveBuckets, hp.GetPositiveCounts()...)
		fh.NegativeBuckets = append(fh.NegativeBuckets, hp.GetNegativeCounts()...)
	} else {
		count, zero := hp.GetCountInt(), hp.GetZeroCountInt()
		fh.Count, fh.ZeroCount = float64(count), float64(zero)
		var pos, neg int64
		fh.PositiveBuckets, pos = appendAbsolute(fh.PositiveBuckets, hp.GetPositiveDeltas())
		fh.NegativeBuckets, neg = appendAbsolute(fh.NegativeBuckets, hp.GetNegativeDeltas())
		// Integer counts are exact, so Prometheus holds them to the rule
		// float histograms are spared: the buckets add up to Count unless
		// NaN was observed (then Count also counts the NaNs).
		if inBuckets := uint64(pos) + uint64(neg) + zero; pos >= 0 && neg >= 0 &&
			(inBuckets > count || inBuckets != count && !math.IsNaN(fh.Sum)) {
			return fmt.Sprintf("%d observations found in buckets, but the Count field is %d", inBuckets, count)
		}
	}
	if schema == histogram.CustomBucketsSchema {
		fh.CustomValues = append(fh.CustomValues, custom...)
	}
	// Prometheus accepts schemas up to 52 and reduces them to 8 on
	// ingestion; so do we, with its own bucket merging, once the layout
	// is known to be valid (which does not depend on the schema).
	if schema > histogram.ExponentialSchemaMax {
		fh.Schema = histogram.ExponentialSchemaMax
	}
	if err := fh.Validate(); err != nil {
		return err.Error()
	}
	if schema > histogram.ExponentialSchemaMax {
		fh.Schema = schema
		if err := fh.ReduceResolution(histogram.ExponentialSchemaMax); err != nil {
			return fmt.Sprintf("cannot reduce schema %d to %d: %v", schema, histogram.ExponentialSchemaMax, err)
		}
	}
	d.hists = append(d.hists, histPoint{t: t, h: fh})
	return ""
}

// appendAbsolute appends the absolute bucket counts of an integer
// histogram's delta-encoded buckets and returns their sum, or -1 if a
// count is negative (left for Validate to name).
func appendAbsolute(dst []float64, deltas []int64) ([]float64, int64) {
	var c, sum int64
	negative := false
	for _, d := range deltas {
		c += d
		negative = negative || c < 0
		sum += c
		dst = append(dst, float64(c))
	}
	if negative {
		return dst, -1
	}
	return dst, sum
}

// nextHistogram returns the decoder's next reusable histogram. Its slices
// keep their capacity from earlier requests.
func (d *decoder) nextHistogram() *histogram.FloatHistogram {
	n := len(d.hists)
	if n == len(d.fhs) {
		d.fhs = append(d.fhs, &histogram.FloatHistogram{})
	}
	return d.fhs[n]
}
