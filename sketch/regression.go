package sketch

import (
	"fmt"
	"math"
	"unsafe"
)

// Regression accumulates the error statistics of a regression model from
// (label y, prediction ŷ) pairs. The error is e = ŷ − y, so a positive Bias
// means the model over-predicts.
//
// It keeps n, Σe, Σ|e|, Σe² and the label's mean and M2 = Σ(y−ȳ)² (Welford
// and Chan form, for a stable R² denominator). Every field is a sum or a
// moment that can be taken back out, so pairs can be retracted with Remove
// when a label is corrected, and whole states with Subtract. There is
// deliberately no min or max: those cannot be retracted.
//
// The zero value is an empty state ready to use.
type Regression struct {
	n         uint64
	sumErr    float64
	sumAbsErr float64
	sumSqErr  float64
	meanY     float64
	m2Y       float64
}

var _ Sketch = (*Regression)(nil)

// NewRegression returns an empty state.
func NewRegression() *Regression { return &Regression{} }

// regressionPair returns the state of the single pair (y, ŷ), refusing values
// that are NaN, ±Inf or beyond MaxMomentValue. Zeros are stored as +0 so
// that equal states encode equally whatever the sign of their zeros; with
// both inputs +0-normalised, e = ŷ − y is never −0 either.
func regressionPair(y, yhat float64) (Regression, error) {
	if err := checkMomentValue("label", y); err != nil {
		return Regression{}, err
	}
	if err := checkMomentValue("prediction", yhat); err != nil {
		return Regression{}, err
	}
	y, yhat = y+0, yhat+0
	e := yhat - y
	return Regression{n: 1, sumErr: e, sumAbsErr: math.Abs(e), sumSqErr: e * e, meanY: y}, nil
}

// Add records one (label, prediction) pair. Values that are NaN, ±Inf or
// larger than MaxMomentValue in magnitude are refused with ErrInvalid and
// leave the state unchanged.
func (r *Regression) Add(y, yhat float64) error {
	p, err := regressionPair(y, yhat)
	if err != nil {
		return err
	}
	if r.n == math.MaxUint64 {
		return fmt.Errorf("%w: regression count would overflow", ErrInvalid)
	}
	r.merge(&p)
	return nil
}

// Remove retracts a pair previously added, for example when a label is
// corrected (Remove the old pair, Add the new one). It cannot verify that
// the pair was added: retracting one that was not gives meaningless
// metrics. It fails with ErrInvalid, leaving the state unchanged, for an
// invalid value, an empty state, or a result no sequence of Adds could
// produce. Removing the last pair returns exactly the empty state; in
// between, metrics match a state that never saw the pair up to rounding.
func (r *Regression) Remove(y, yhat float64) error {
	p, err := regressionPair(y, yhat)
	if err != nil {
		return err
	}
	return r.subtract(&p)
}

// Merge folds o into r. o may be r itself. As for Moments, a merged count
// above 2^64−1 would wrap; DecodeAndMerge refuses it.
func (r *Regression) Merge(o *Regression) { r.merge(o) }

// Subtract retracts the pairs of o, which must have been merged into r
// (r = x merged with o, then r.Subtract(o) leaves x up to rounding); this
// turns cumulative states into window states. It fails with ErrInvalid,
// leaving r unchanged, if o holds more pairs than r or the result is a
// state no sequence of Adds could produce.
func (r *Regression) Subtract(o *Regression) error { return r.subtract(o) }

func (r *Regression) merge(o *Regression) {
	if o.n == 0 {
		return
	}
	if r.n == 0 {
		*r = *o
		return
	}
	r.meanY, r.m2Y = combineMoments(float64(r.n), r.meanY, r.m2Y, float64(o.n), o.meanY, o.m2Y)
	r.n += o.n
	r.sumErr += o.sumErr
	r.sumAbsErr += o.sumAbsErr
	r.sumSqErr += o.sumSqErr
}

func (r *Regression) subtract(o *Regression) error {
	switch {
	case o.n > r.n:
		return fmt.Errorf("%w: cannot retract %d pairs from a regression state of %d", ErrInvalid, o.n, r.n)
	case o.n == 0:
		return nil
	case o.n == r.n:
		r.Reset()
		return nil
	}
	t := Regression{n: r.n - o.n}
	t.meanY, t.m2Y = splitMoments(float64(r.n), r.meanY, r.m2Y, float64(o.n), o.meanY, o.m2Y)
	t.sumErr = r.sumErr - o.sumErr
	// Rounding can leave a sum of non-negative terms slightly below zero
	// once its large terms are gone.
	t.sumAbsErr = math.Max(r.sumAbsErr-o.sumAbsErr, 0)
	t.sumSqErr = math.Max(r.sumSqErr-o.sumSqErr, 0)
	if err := t.validate(); err != nil {
		return fmt.Errorf("%w: retraction leaves an impossible state, so the pairs were not all added (%v)", ErrInvalid, err)
	}
	*r = t
	return nil
}

// Count returns the number of pairs.
func (r *Regression) Count() float64 { return float64(r.n) }

// ratio returns sum/n, NaN for an empty state.
func (r *Regression) ratio(sum float64) float64 {
	if r.n == 0 {
		return math.NaN()
	}
	return sum / float64(r.n)
}

// MAE returns the mean absolute error Σ|ŷ−y|/n, NaN for an empty state.
func (r *Regression) MAE() float64 { return r.ratio(r.sumAbsErr) }

// MSE returns the mean squared error Σ(ŷ−y)²/n, NaN for an empty state.
func (r *Regression) MSE() float64 { return r.ratio(r.sumSqErr) }

// RMSE returns the square root of MSE, NaN for an empty state.
func (r *Regression) RMSE() float64 { return math.Sqrt(r.MSE()) }

// Bias returns the mean error Σ(ŷ−y)/n: positive when the model
// over-predicts. NaN for an empty state.
func (r *Regression) Bias() float64 { return r.ratio(r.sumErr) }

// MeanLabel returns the mean of y, NaN for an empty state.
func (r *Regression) MeanLabel() float64 {
	if r.n == 0 {
		return math.NaN()
	}
	return r.meanY
}

// MeanPrediction returns the mean of ŷ, derived as mean(y) + mean(ŷ−y).
// NaN for an empty state.
func (r *Regression) MeanPrediction() float64 { return r.MeanLabel() + r.Bias() }

// R2 returns the coefficient of determination 1 − SSE/SST with
// SSE = Σ(ŷ−y)² and SST = Σ(y−ȳ)², as sklearn's r2_score. When SST is 0
// (fewer than two pairs, or constant labels) R² is undefined and R2 returns
// NaN, where sklearn by default substitutes 1.0 or 0.0 (docs/sketches.md
// explains the choice).
func (r *Regression) R2() float64 {
	if r.m2Y == 0 {
		return math.NaN()
	}
	return 1 - r.sumSqErr/r.m2Y
}

// Format returns FormatRegression.
func (r *Regression) Format() Format { return FormatRegression }

// AppendBinary appends the canonical encoding (docs/format.md): format id,
// uvarint count, then for a non-empty state Σe, Σ|e|, Σe², mean(y) and
// M2(y) as float64s.
func (r *Regression) AppendBinary(dst []byte) []byte {
	dst = append(dst, byte(FormatRegression))
	dst = appendUvarint(dst, r.n)
	if r.n == 0 {
		return dst
	}
	dst = appendFloat64(dst, r.sumErr)
	dst = appendFloat64(dst, r.sumAbsErr)
	dst = appendFloat64(dst, r.sumSqErr)
	dst = appendFloat64(dst, r.meanY)
	dst = appendFloat64(dst, r.m2Y)
	return dst
}

// DecodeAndMerge merges the encoded state src into r. On error r is
// unchanged.
func (r *Regression) DecodeAndMerge(src []byte) error {
	var o Regression
	if err := o.decode(src); err != nil {
		return err
	}
	if r.n+o.n < r.n {
		return fmt.Errorf("%w: regression count %d plus %d overflows", ErrCorrupt, r.n, o.n)
	}
	r.merge(&o)
	return nil
}

// UnmarshalBinary replaces r with the encoded state src. On error r is
// unchanged.
func (r *Regression) UnmarshalBinary(src []byte) error {
	var o Regression
	if err := o.decode(src); err != nil {
		return err
	}
	*r = o
	return nil
}

// decode fills the zero value r from src.
func (r *Regression) decode(src []byte) error {
	rd := newReader(src)
	rd.format(FormatRegression)
	o := Regression{n: rd.uvarint("regression count")}
	if o.n == 0 {
		return rd.done()
	}
	o.sumErr = rd.float64("regression sum of errors")
	o.sumAbsErr = rd.float64("regression sum of absolute errors")
	o.sumSqErr = rd.float64("regression sum of squared errors")
	o.meanY = rd.float64("regression label mean")
	o.m2Y = rd.float64("regression label m2")
	if err := rd.done(); err != nil {
		return err
	}
	if err := o.validate(); err != nil {
		return err
	}
	*r = o
	return nil
}

// validate checks a state with n >= 1 against bounds that any state built
// from pairs within ±MaxMomentValue meets with room to spare for rounding
// (each |e| <= 2L and, by Popoviciu's inequality, M2(y) <= n·L²), so that
// decoded states stay finite when merged.
func (r *Regression) validate() error {
	const l = MaxMomentValue
	fn := float64(r.n)
	if err := checkDecodedMoment("regression sum of errors", r.sumErr, -4*l*fn, 4*l*fn); err != nil {
		return err
	}
	if err := checkDecodedMoment("regression sum of absolute errors", r.sumAbsErr, 0, 4*l*fn); err != nil {
		return err
	}
	if err := checkDecodedMoment("regression sum of squared errors", r.sumSqErr, 0, 8*l*l*fn); err != nil {
		return err
	}
	if err := checkDecodedMoment("regression label mean", r.meanY, -2*l, 2*l); err != nil {
		return err
	}
	m2Max := 4 * l * l * fn
	if r.n == 1 {
		m2Max = 0 // one label has no spread
	}
	return checkDecodedMoment("regression label m2", r.m2Y, 0, m2Max)
}

// Reset empties the state.
func (r *Regression) Reset() { *r = Regression{} }

// MemSize returns the size of the struct; Regression holds no other memory.
func (r *Regression) MemSize() int { return int(unsafe.Sizeof(*r)) }
