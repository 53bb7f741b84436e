package ingest

import (
	"github.com/prometheus/prometheus/model/labels"
)

// Series families written by ingest: the contract with the query engine,
// documented in docs/ingest.md. Every sketch series carries the
// labels model, version, slice and source ("online" | "offline"); offline
// series add dataset and run. Family-specific labels: feature, measure, class.
const (
	// FamilyPredictions is a Moments of 1s per prediction: its count is the
	// number of predictions (the denominator of label coverage).
	FamilyPredictions = "evalstore_predictions"
	// FamilyPredictedClass is a Categorical of the predicted class.
	FamilyPredictedClass = "evalstore_predicted_class"
	// FamilyScore is a LogHistogram of the binary score; for multiclass one
	// per class (label class) of that class's probability.
	FamilyScore = "evalstore_score"
	// FamilyScoreHist is a ScoreHistogram of labelled scores: binary (score,
	// label is the positive class) or, per class (label class), multiclass
	// one-vs-rest (scores[class], label == class).
	FamilyScoreHist = "evalstore_score_hist"
	// FamilyConfusion is a Confusion of labelled classifications; indices
	// are the model's class indices (see FamilyClassIndex).
	FamilyConfusion = "evalstore_confusion"
	// FamilyPrediction is a LogHistogram of numeric (regression) predictions.
	FamilyPrediction = "evalstore_prediction"
	// FamilyRegression is a Regression of labelled (label, prediction) pairs.
	FamilyRegression = "evalstore_regression"
	// FamilyRegressionRetracted is a Regression of the pairs that label
	// corrections took back: the regression state of a window is
	// merge(FamilyRegression).Subtract(merge(FamilyRegressionRetracted)).
	// (Regression counts are unsigned, so a retraction cannot be a
	// negative delta of FamilyRegression itself.)
	FamilyRegressionRetracted = "evalstore_regression_retracted"
	// FamilyFeature (label feature) is a LogHistogram of a numeric feature
	// or a Categorical of a categorical one.
	FamilyFeature = "evalstore_feature"
	// FamilyMeasure (label measure) is a LogHistogram of a measure.
	FamilyMeasure = "evalstore_measure"
	// FamilyMeasureMoments (label measure) is a Moments of a measure (t-tests).
	FamilyMeasureMoments = "evalstore_measure_moments"
	// FamilyLabelDelay is a LogHistogram of the seconds from prediction to
	// its first label; its count is the number of labelled predictions
	// (online; the numerator of label coverage).
	FamilyLabelDelay = "evalstore_label_delay_seconds"
	// FamilyClassIndex is a float series {model, class}: the confusion
	// index of class, written once when the index is assigned.
	FamilyClassIndex = "evalstore_class_index"
	// FamilyIngestCommit is a float series without other labels: the
	// sequence number of the last join-store batch, written in the same
	// tsdb commit as the batch's deltas (crash recovery, see ingest-join.md).
	FamilyIngestCommit = "evalstore_ingest_commit"
)

// Label names and values.
const (
	metricName = "__name__"

	LabelModel   = "model"
	LabelVersion = "version"
	LabelSlice   = "slice"
	LabelSource  = "source"
	LabelDataset = "dataset"
	LabelRun     = "run"
	LabelFeature = "feature"
	LabelMeasure = "measure"
	LabelClass   = "class"

	SourceOnline  = "online"
	SourceOffline = "offline"
)

var commitMarker = labels.FromStrings(metricName, FamilyIngestCommit)

// CommitMarker returns the labels of the FamilyIngestCommit series.
func CommitMarker() labels.Labels { return commitMarker }
