package remotewrite

import (
	"fmt"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"evalstore/sketch"
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
			in := nativeInput[prompb.BucketSpan](d, hp, isFloat)
			if reason := d.addHistogram(&in); reason != "" {
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
			in := nativeInput[writev2.BucketSpan](d, hp, isFloat)
			if reason := d.addHistogram(&in); reason != "" {
				d.problem(Problem{Series: series(), Item: "histogram", Index: j, Timestamp: hp.Timestamp, Reason: reason})
			}
		}
		d.addSeries(lset, f0, h0)
	}
	return nil
}

// nativeIn is a native histogram sample of either protocol version.
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

// nativeInput converts either protocol's histogram message to nativeIn;
// the spans go to the decoder's scratch slices, valid until the next call.
func nativeInput[S any, P interface {
	*S
	GetOffset() int32
	GetLength() uint32
}](d *decoder, hp protoHistogram[S], isFloat bool) nativeIn {
	in := nativeIn{
		t: hp.GetTimestamp(), sum: hp.GetSum(), schema: hp.GetSchema(), zt: hp.GetZeroThreshold(),
		posDeltas: hp.GetPositiveDeltas(), negDeltas: hp.GetNegativeDeltas(),
		posCounts: hp.GetPositiveCounts(), negCounts: hp.GetNegativeCounts(),
		custom: len(hp.GetCustomValues()), isFloat: isFloat,
	}
	if isFloat {
		in.countFloat, in.zeroFloat = hp.GetCountFloat(), hp.GetZeroCountFloat()
	} else {
		in.countInt, in.zeroInt = hp.GetCountInt(), hp.GetZeroCountInt()
	}
	spans := func(dst []sketch.Span, src []S) []sketch.Span {
		for i := range src {
			sp := P(&src[i])
			dst = append(dst, sketch.Span{Offset: sp.GetOffset(), Length: sp.GetLength()})
		}
		return dst
	}
	d.posSp = spans(d.posSp[:0], hp.GetPositiveSpans())
	d.negSp = spans(d.negSp[:0], hp.GetNegativeSpans())
	in.posSpans, in.negSpans = d.posSp, d.negSp
	return in
}

type nativeIn struct {
	t                    int64
	isFloat              bool
	countInt, zeroInt    uint64
	countFloat           float64
	zeroFloat            float64
	sum                  float64
	schema               int32
	zt                   float64
	posSpans, negSpans   []sketch.Span
	posDeltas, negDeltas []int64
	posCounts, negCounts []float64
	custom               int
}

// addHistogram converts a native histogram sample into an encoded
// LogHistogram state appended to d.states, or returns why it cannot.
func (d *decoder) addHistogram(in *nativeIn) string {
	if value.IsStaleNaN(in.sum) {
		d.hists = append(d.hists, histPoint{t: in.t, stale: true})
		return ""
	}
	switch {
	case in.schema == histogram.CustomBucketsSchema:
		return "custom-bucket histograms (NHCB, schema -53) are not supported: their bounds are arbitrary and cannot be stored losslessly as a log histogram"
	case in.schema < histogram.ExponentialSchemaMin || in.schema > histogram.ExponentialSchemaMaxReserved:
		return fmt.Sprintf("invalid schema %d: must be in [%d, %d] (exponential) or %d (custom buckets)",
			in.schema, histogram.ExponentialSchemaMin, histogram.ExponentialSchemaMaxReserved, histogram.CustomBucketsSchema)
	case in.custom > 0:
		return fmt.Sprintf("exponential schema %d with %d custom bucket bounds", in.schema, in.custom)
	case in.isFloat && (len(in.posDeltas) > 0 || len(in.negDeltas) > 0):
		return "float histogram with integer bucket deltas"
	case !in.isFloat && (len(in.posCounts) > 0 || len(in.negCounts) > 0):
		return "integer histogram with float bucket counts"
	}
	if in.schema > histogram.ExponentialSchemaMax {
		if r := reduceToMaxSchema(in); r != "" {
			return r
		}
	}
	// An empty histogram gets a state of its own schema and zero
	// threshold, which merging into the reused (Reset) state would not
	// preserve; the reused state keeps conversion allocation-free.
	empty := in.countInt == 0 && in.countFloat == 0 && in.zeroInt == 0 && in.zeroFloat == 0 &&
		len(in.posDeltas)+len(in.negDeltas)+len(in.posCounts)+len(in.negCounts) == 0
	h := &d.lh
	if empty {
		if eh, err := sketch.NewLogHistogramWithZeroThreshold(in.schema, in.zt); err == nil {
			h = eh
		}
	}
	h.Reset()
	var err error
	if in.isFloat {
		err = h.MergeNativeFloat(sketch.NativeFloatHistogram{
			Schema: in.schema, ZeroThreshold: in.zt, ZeroCount: in.zeroFloat, Count: in.countFloat, Sum: in.sum,
			PositiveSpans: in.posSpans, PositiveCounts: in.posCounts, NegativeSpans: in.negSpans, NegativeCounts: in.negCounts,
		})
	} else {
		err = h.MergeNative(sketch.NativeHistogram{
			Schema: in.schema, ZeroThreshold: in.zt, ZeroCount: in.zeroInt, Count: in.countInt, Sum: in.sum,
			PositiveSpans: in.posSpans, PositiveDeltas: in.posDeltas, NegativeSpans: in.negSpans, NegativeDeltas: in.negDeltas,
		})
	}
	if err != nil {
		return err.Error()
	}
	off := len(d.states)
	d.states = h.AppendBinary(d.states)
	d.hists = append(d.hists, histPoint{t: in.t, off: off, end: len(d.states)})
	return ""
}

// reduceToMaxSchema lowers a schema in (8, 52], which Prometheus accepts
// and reduces on ingestion, to 8 with Prometheus's own bucket merging.
func reduceToMaxSchema(in *nativeIn) (reason string) {
	// Spans must agree with the bucket counts before Prometheus's
	// reduction walks them.
	for _, side := range []struct {
		spans []sketch.Span
		n     int
	}{{in.posSpans, len(in.posDeltas) + len(in.posCounts)}, {in.negSpans, len(in.negDeltas) + len(in.negCounts)}} {
		var want uint64
		for k, sp := range side.spans {
			if k > 0 && sp.Offset < 0 {
				return fmt.Sprintf("span %d has negative offset %d", k, sp.Offset)
			}
			want += uint64(sp.Length)
		}
		if want != uint64(side.n) {
			return fmt.Sprintf("spans need %d buckets, got %d", want, side.n)
		}
	}
	defer func() {
		if p := recover(); p != nil {
			reason = fmt.Sprintf("cannot reduce schema %d to %d: %v", in.schema, histogram.ExponentialSchemaMax, p)
		}
	}()
	toProm := func(sp []sketch.Span) []histogram.Span {
		out := make([]histogram.Span, len(sp))
		for i, s := range sp {
			out[i] = histogram.Span{Offset: s.Offset, Length: s.Length}
		}
		return out
	}
	fromProm := func(sp []histogram.Span) []sketch.Span {
		out := make([]sketch.Span, len(sp))
		for i, s := range sp {
			out[i] = sketch.Span{Offset: s.Offset, Length: s.Length}
		}
		return out
	}
	if in.isFloat {
		fh := &histogram.FloatHistogram{
			Schema: in.schema, ZeroThreshold: in.zt, ZeroCount: in.zeroFloat, Count: in.countFloat, Sum: in.sum,
			PositiveSpans: toProm(in.posSpans), PositiveBuckets: append([]float64(nil), in.posCounts...),
			NegativeSpans: toProm(in.negSpans), NegativeBuckets: append([]float64(nil), in.negCounts...),
		}
		if err := fh.ReduceResolution(histogram.ExponentialSchemaMax); err != nil {
			return fmt.Sprintf("cannot reduce schema %d to %d: %v", in.schema, histogram.ExponentialSchemaMax, err)
		}
		in.schema, in.posSpans, in.negSpans, in.posCounts, in.negCounts = fh.Schema, fromProm(fh.PositiveSpans), fromProm(fh.NegativeSpans), fh.PositiveBuckets, fh.NegativeBuckets
		return ""
	}
	h := &histogram.Histogram{
		Schema: in.schema, ZeroThreshold: in.zt, ZeroCount: in.zeroInt, Count: in.countInt, Sum: in.sum,
		PositiveSpans: toProm(in.posSpans), PositiveBuckets: append([]int64(nil), in.posDeltas...),
		NegativeSpans: toProm(in.negSpans), NegativeBuckets: append([]int64(nil), in.negDeltas...),
	}
	if err := h.ReduceResolution(histogram.ExponentialSchemaMax); err != nil {
		return fmt.Sprintf("cannot reduce schema %d to %d: %v", in.schema, histogram.ExponentialSchemaMax, err)
	}
	in.schema, in.posSpans, in.negSpans, in.posDeltas, in.negDeltas = h.Schema, fromProm(h.PositiveSpans), fromProm(h.NegativeSpans), h.PositiveBuckets, h.NegativeBuckets
	return ""
}
