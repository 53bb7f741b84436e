// Package definitions parses, validates and versions evalstore's definitions
// file (models, slices and derived metrics) and compiles slice predicates.
//
// It imports nothing of evalstore's own: ingest reads it to route records to
// slices, query reads it for positive classes, feature importances and
// named metrics. The file format is documented in
// docs/definitions.md.
package definitions
