package definitions

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestExampleFile(t *testing.T) {
	d, err := Load("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile("testdata/example.yaml")
	if v := d.Version(); v.Source != "testdata/example.yaml" || len(v.Hash) != 64 || !v.LoadedAt.IsZero() {
		t.Fatalf("version %+v", v)
	}
	if d2, _ := Parse("other", data); d2.Version().Hash != d.Version().Hash {
		t.Fatal("hash depends on more than the bytes")
	}

	churn, ok := d.Model("churn")
	if !ok || !churn.Declared || churn.Task != TaskBinary || !slices.Equal(churn.Classes, []string{"0", "1"}) ||
		churn.PositiveClass != "1" || !churn.IsPositive("1") || churn.IsPositive("0") {
		t.Fatalf("churn = %+v", churn)
	}
	if got := churn.FeatureNames; !slices.Equal(got, []string{"country", "device", "monthly_spend", "plan", "tenure_days"}) {
		t.Fatalf("churn features %v", got)
	}
	if f, _ := churn.Feature("country"); f.Type != Categorical || f.Importance != 0.5 || f.Description != "ISO 3166 country code" {
		t.Fatalf("country %+v", f)
	}
	if f, _ := churn.Feature("monthly_spend"); f.Description != "EUR, last 30 days" || f.Importance != 2 || f.Type != Numeric {
		t.Fatalf("monthly_spend %+v", f)
	}
	if churn.Importance("device") != 1 || churn.Importance("tenure_days") != 3 || churn.Importance("undeclared") != DefaultImportance {
		t.Fatal("importance")
	}
	if churn.Reference != (Reference{Dataset: "train", Run: "latest"}) {
		t.Fatalf("reference %+v", churn.Reference)
	}
	if v := churn.Versions["v2"]; v.DeployedAt != time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC) || v.Description != "gradient boosting" {
		t.Fatalf("v2 %+v", v)
	}
	if v := churn.Versions["v1"]; v.DeployedAt != time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC) {
		t.Fatalf("v1 %+v", v)
	}
	intent, _ := d.Model("intent")
	if intent.Task != TaskMulticlass || len(intent.Classes) != 3 || intent.Reference != (Reference{"main", "latest", "v7"}) ||
		!intent.HasClass("buy") || intent.HasClass("sell") {
		t.Fatalf("intent %+v", intent)
	}
	eta, _ := d.Model("eta")
	if eta.Task != TaskRegression || eta.Classes != nil || eta.Features["distance_km"].Importance != 4 || len(eta.Features) != 3 {
		t.Fatalf("eta %+v", eta)
	}
	if names := modelNames(d.Models()); !slices.Equal(names, []string{"churn", "eta", "intent"}) {
		t.Fatalf("models %v", names)
	}

	var sl []string
	for _, s := range d.Slices() {
		sl = append(sl, s.Name)
	}
	if !slices.Equal(sl, []string{"beta_cohort", "eu", "long_trips", "mobile", "new_users", "no_country"}) {
		t.Fatalf("slices %v", sl)
	}
	if s, _ := d.Slice("new_users"); !slices.Equal(s.Models, []string{"churn"}) || s.AppliesTo("eta") || !s.AppliesTo("churn") {
		t.Fatalf("new_users %+v", s)
	}
	if s, _ := d.Slice("eu"); s.Description != "European Union markets" || s.Where != `country in ("de", "fr", "it", "es", "nl")` || !s.AppliesTo("anything") {
		t.Fatalf("eu %+v", s)
	}
	if s, ok := d.Slice("all"); !ok || !s.Implicit() || !s.Match(&MapRecord{}) || s.Predicate() != nil {
		t.Fatal("all")
	}
	if _, ok := d.Slice("nope"); ok {
		t.Fatal("nope")
	}

	if m, _ := d.Metric("conversion_gap"); m.Unit != "ratio" || m.Expr != `accuracy{model="churn",slice="eu"}[7d] - offline(accuracy{model="churn"})` {
		t.Fatalf("conversion_gap %+v", m)
	}
	if m, _ := d.Metric("eu_positive_rate"); m.Expr != `positive_rate{model="churn",slice="eu"}[1h]` || m.Description != "" {
		t.Fatalf("eu_positive_rate %+v", m)
	}
	if len(d.Metrics()) != 2 {
		t.Fatal("metrics")
	}
}

func modelNames(ms []*Model) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

// The full example in the reference documentation is testdata/example.yaml.
func TestDocsExampleIsTested(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "definitions.md"))
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- example: definitions/testdata/example.yaml -->\n```yaml\n", "```\n"
	_, rest, ok := bytes.Cut(doc, []byte(begin))
	if !ok {
		t.Fatal("docs/definitions.md has no example block")
	}
	block, _, ok := bytes.Cut(rest, []byte(end))
	if !ok {
		t.Fatal("unterminated example block")
	}
	want, _ := os.ReadFile("testdata/example.yaml")
	if !bytes.Equal(block, want) {
		t.Fatal("the example in docs/definitions.md differs from definitions/testdata/example.yaml")
	}
}

func TestSlicesFor(t *testing.T) {
	d, err := Load("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r := &MapRecord{
		Model: "churn", Version: "v2",
		Features: map[string]Value{"country": StringValue("de"), "device": StringValue("ios"),
			"tenure_days": NumberValue(3), "plan": StringValue("basic"), "distance_km": NumberValue(40)},
	}
	cases := []struct {
		model string
		want  []string
	}{
		{"churn", []string{"all", "beta_cohort", "eu", "mobile", "new_users"}},
		{"eta", []string{"all", "beta_cohort", "eu", "long_trips", "mobile"}},
		{"intent", []string{"all", "beta_cohort", "eu", "mobile"}},
		{"undeclared", []string{"all", "beta_cohort", "eu", "mobile"}},
	}
	for _, c := range cases {
		if got := d.SlicesFor(c.model, r, nil); !slices.Equal(got, c.want) {
			t.Errorf("SlicesFor(%s) = %v, want %v", c.model, got, c.want)
		}
	}
	r.Attributes = map[string]Value{"cohort": StringValue("alpha")}
	r.Features["country"] = Value{}
	if got := d.SlicesFor("churn", r, []string{"keep"}); !slices.Equal(got, []string{"keep", "all", "mobile", "new_users", "no_country"}) {
		t.Errorf("SlicesFor appended %v", got)
	}
	dst := make([]string, 0, 16)
	if n := testing.AllocsPerRun(100, func() { dst = d.SlicesFor("churn", r, dst[:0]) }); n != 0 {
		t.Fatalf("SlicesFor allocates %v times", n)
	}
	if got := Empty().SlicesFor("m", r, nil); !slices.Equal(got, []string{"all"}) {
		t.Fatalf("empty SlicesFor %v", got)
	}
}

func TestInferModel(t *testing.T) {
	d, _ := Load("testdata/example.yaml")
	if _, ok := d.Model("ranker"); ok {
		t.Fatal("ranker is declared?")
	}
	m := d.ModelOrDefault("ranker")
	if m.Declared || m.Name != "ranker" || m.Task != TaskUnknown || m.Reference != DefaultReference ||
		m.Importance("x") != 1 || m.HasClass("x") != true || m.IsPositive("1") {
		t.Fatalf("defaults %+v", m)
	}
	if m.FeatureType("x", NumberValue(1)) != Numeric || m.FeatureType("x", StringValue("1")) != Categorical ||
		m.FeatureType("x", BoolValue(true)) != Categorical {
		t.Fatal("inferred feature types")
	}
	if churn := d.ModelOrDefault("churn"); churn.FeatureType("tenure_days", StringValue("x")) != Numeric {
		t.Fatal("declared type must win")
	}
	for _, c := range []struct {
		score, scores, num bool
		want               Task
	}{{true, false, false, TaskBinary}, {false, true, true, TaskMulticlass}, {false, false, true, TaskRegression}, {false, false, false, TaskUnknown}} {
		if got := InferTask(c.score, c.scores, c.num); got != c.want {
			t.Errorf("InferTask(%v,%v,%v) = %q", c.score, c.scores, c.num, got)
		}
	}
}

func TestEmptyAndMinimalFiles(t *testing.T) {
	for _, src := range []string{"", "\n", "# nothing\n", "---\n", "models:\nslices:\nmetrics:\n", "schema: 1\nmodels: {}\n", "x-anchors: {a: 1}\n"} {
		d, err := Parse("defs.yaml", []byte(src))
		if err != nil {
			t.Errorf("%q: %v", src, err)
			continue
		}
		if len(d.Models()) != 0 || len(d.Slices()) != 0 || len(d.Metrics()) != 0 {
			t.Errorf("%q: not empty", src)
		}
	}
}

func TestShorthandsAndMerges(t *testing.T) {
	src := `
x-base: &base
  task: binary
  classes: [no, yes]
  positive_class: yes
x-f1: &f1 {a: numeric}
x-f2: &f2 {a: categorical, b: categorical}
models:
  m1:
    <<: *base
    description: merged
  m2:
    <<: *base
    positive_class: no
    features:
      <<: [*f1, *f2]
      c: {type: numeric}
  m3:
    task: multiclass
slices:
  s1: "a > 1"
metrics:
  q: "count{model=\"m1\"}[1h]"
`
	d, err := Parse("defs.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	m1, _ := d.Model("m1")
	if m1.Task != TaskBinary || m1.PositiveClass != "yes" || m1.Description != "merged" {
		t.Fatalf("m1 %+v", m1)
	}
	m2, _ := d.Model("m2")
	if m2.PositiveClass != "no" || m2.Features["a"].Type != Numeric || m2.Features["b"].Type != Categorical || len(m2.Features) != 3 {
		t.Fatalf("m2 %+v %v", m2, m2.Features)
	}
	if m3, _ := d.Model("m3"); len(m3.Classes) != 0 || !m3.HasClass("anything") {
		t.Fatalf("m3 %+v", m3)
	}
	if s, _ := d.Slice("s1"); s.Where != "a > 1" {
		t.Fatalf("s1 %+v", s)
	}
	if m, _ := d.Metric("q"); m.Expr != `count{model="m1"}[1h]` {
		t.Fatalf("q %+v", m)
	}
}

// Every validation error path, with its exact message and position.
func TestBadFiles(t *testing.T) {
	const churnOK = "models:\n  churn: {task: binary, classes: [0, 1], positive_class: 1}\n"
	cases := []struct {
		name, src string
		want      []string
	}{
		{"yaml syntax", "models:\n  churn:\n    task: binary\n   classes: [0, 1]\n",
			[]string{"defs.yaml:4: invalid YAML: did not find expected key"}},
		{"yaml tab", "models:\n  churn:\n\ttask: binary\n",
			[]string{"defs.yaml:3: invalid YAML: found character that cannot start any token"}},
		{"yaml unknown anchor", "models:\n  x: &a {task: regression}\n  y: *b\n",
			[]string{"defs.yaml:3: invalid YAML: unknown anchor 'b' referenced"}},
		{"two documents", "models: {}\n---\nslices: {}\n",
			[]string{"defs.yaml:2:1: the file holds more than one YAML document"}},
		{"top not mapping", "- a\n- b\n",
			[]string{"defs.yaml:1:1: the file must be a mapping with keys schema, models, slices, metrics, found a list"}},
		{"unknown top key", "model:\n  churn: {task: binary}\n",
			[]string{`defs.yaml:1:1: the file has unknown top-level key "model" (did you mean "models"?)`}},
		{"unknown top key far", "zzz: 1\n",
			[]string{`defs.yaml:1:1: the file has unknown top-level key "zzz" (known keys: schema, models, slices, metrics; keys starting with x- are ignored)`}},
		{"schema", "schema: 2\n",
			[]string{"defs.yaml:1:9: schema 2 is not supported (this evalstore reads schema 1)"}},
		{"schema text", "schema: one\n",
			[]string{"defs.yaml:1:9: schema one is not supported (this evalstore reads schema 1)"}},
		{"duplicate key", "models:\n  eta: {task: regression}\n  eta: {task: binary}\n",
			[]string{"defs.yaml:3:3: models.eta is given twice (first at line 2)"}},
		{"models list", "models: [churn]\n",
			[]string{"defs.yaml:1:9: models must be a mapping of model name to model, found a list"}},
		{"model scalar", "models:\n  churn: binary\n",
			[]string{`defs.yaml:2:10: models.churn must be a mapping with keys task, classes, positive_class, features..., found the string "binary"`}},
		{"model empty name", "models:\n  \"\": {task: regression}\n",
			[]string{`defs.yaml:2:3: models[""]: model name is empty`}},
		{"model key not scalar", "models:\n  [a]: {task: regression}\n",
			[]string{`defs.yaml:2:3: models has a key that is a list; keys must be names`}},
		{"model unknown key", "models:\n  churn:\n    task: binary\n    clases: [0, 1]\n    positive_class: 1\n",
			[]string{
				"defs.yaml:2:3: models.churn.classes is required for a binary model (the two class labels, e.g. [0, 1])",
				`defs.yaml:4:5: models.churn has unknown key "clases" (did you mean "classes"?)`,
			}},
		{"task missing", "models:\n  eta:\n    description: x\n",
			[]string{"defs.yaml:2:3: models.eta.task is required (one of binary, multiclass, regression)"}},
		{"task misspelt", "models:\n  eta:\n    task: regresion\n",
			[]string{`defs.yaml:3:11: models.eta.task "regresion" is not one of binary, multiclass, regression (did you mean "regression"?)`}},
		{"bad task does not cascade", "models:\n  eta:\n    task: regresion\nslices:\n  long: {where: d > 1, models: [eta]}\n",
			[]string{`defs.yaml:3:11: models.eta.task "regresion" is not one of binary, multiclass, regression (did you mean "regression"?)`}},
		{"task list", "models:\n  eta:\n    task: [regression]\n",
			[]string{`defs.yaml:3:11: models.eta.task must be one of binary, multiclass, regression, found a list`}},
		{"binary without classes", "models:\n  churn:\n    task: binary\n    positive_class: 1\n",
			[]string{"defs.yaml:2:3: models.churn.classes is required for a binary model (the two class labels, e.g. [0, 1])"}},
		{"binary three classes", "models:\n  churn:\n    task: binary\n    classes: [a, b, c]\n    positive_class: a\n",
			[]string{"defs.yaml:4:14: models.churn.classes of a binary model must list exactly 2 classes, found 3"}},
		{"duplicate class", "models:\n  churn:\n    task: binary\n    classes: [1, 1.0]\n    positive_class: 1\n",
			[]string{`defs.yaml:4:18: models.churn.classes[1] "1" repeats models.churn.classes[0]`}},
		{"empty class", "models:\n  churn:\n    task: binary\n    classes: [\"\", a]\n    positive_class: a\n",
			[]string{`defs.yaml:4:15: models.churn.classes[0] is an empty class label`}},
		{"classes not a list", "models:\n  churn:\n    task: binary\n    classes: \"0,1\"\n    positive_class: 1\n",
			[]string{`defs.yaml:4:14: models.churn.classes must be a list of class labels, found the string "0,1"`}},
		{"class is a mapping", "models:\n  intent:\n    task: multiclass\n    classes: [a, {b: c}]\n",
			[]string{"defs.yaml:4:18: models.intent.classes[1] must be a class label (string, number or boolean), found a mapping"}},
		{"class is null", "models:\n  intent:\n    task: multiclass\n    classes: [a, b, null]\n",
			[]string{"defs.yaml:4:21: models.intent.classes[2] must be a class label (string, number or boolean), found null"}},
		{"positive class not a class", "models:\n  churn:\n    task: binary\n    classes: [0, 1]\n    positive_class: \"yes\"\n",
			[]string{`defs.yaml:5:21: models.churn.positive_class "yes" is not one of classes [0 1]`}},
		{"positive class missing", "models:\n  churn:\n    task: binary\n    classes: [0, 1]\n",
			[]string{"defs.yaml:2:3: models.churn.positive_class is required for a binary model (one of its classes)"}},
		{"positive class on multiclass", "models:\n  intent:\n    task: multiclass\n    classes: [a, b, c]\n    positive_class: a\n",
			[]string{"defs.yaml:5:5: models.intent.positive_class is only allowed for a binary model, and this model is multiclass"}},
		{"classes on regression", "models:\n  eta:\n    task: regression\n    classes: [a, b]\n",
			[]string{"defs.yaml:4:5: models.eta.classes is not allowed for a regression model"}},
		{"multiclass one class", "models:\n  intent:\n    task: multiclass\n    classes: [a]\n",
			[]string{"defs.yaml:4:14: models.intent.classes of a multiclass model must list at least 2 classes, found 1"}},
		{"features list", "models:\n  eta:\n    task: regression\n    features: [a, b]\n",
			[]string{"defs.yaml:4:15: models.eta.features must be a mapping of feature name to feature, found a list"}},
		{"feature unknown key", "models:\n  eta:\n    task: regression\n    features:\n      dist: {type: numeric, weight: 2}\n",
			[]string{`defs.yaml:5:29: models.eta.features.dist has unknown key "weight" (known keys: type, importance, description)`}},
		{"feature type missing", "models:\n  eta:\n    task: regression\n    features:\n      dist: {importance: 2}\n      speed:\n",
			[]string{
				"defs.yaml:5:7: models.eta.features.dist.type is required (numeric or categorical)",
				"defs.yaml:6:7: models.eta.features.speed.type is required (numeric or categorical)",
			}},
		{"feature type bad", "models:\n  eta:\n    task: regression\n    features:\n      dist: numerical\n      zone: {type: category}\n",
			[]string{
				`defs.yaml:5:13: models.eta.features.dist.type "numerical" is not numeric or categorical (did you mean "numeric"?)`,
				`defs.yaml:6:20: models.eta.features.zone.type "category" is not numeric or categorical`,
			}},
		{"feature name with backtick", "models:\n  eta:\n    task: regression\n    features:\n      \"a`b\": numeric\n",
			[]string{"defs.yaml:5:7: models.eta.features[\"a`b\"]: feature name holds a backtick"}},
		{"feature name with control", "models:\n  eta:\n    task: regression\n    features:\n      \"a\\tb\": numeric\n",
			[]string{`defs.yaml:5:7: models.eta.features["a\tb"]: feature name holds a control character`}},
		{"importance negative", "models:\n  eta:\n    task: regression\n    features:\n      dist: {type: numeric, importance: -1}\n",
			[]string{"defs.yaml:5:41: models.eta.features.dist.importance -1 is negative; importance must be ≥ 0"}},
		{"importance string", "models:\n  eta:\n    task: regression\n    features:\n      dist: {type: numeric, importance: high}\n",
			[]string{`defs.yaml:5:41: models.eta.features.dist.importance must be a number ≥ 0, found the string "high"`}},
		{"importance infinite", "models:\n  eta:\n    task: regression\n    features:\n      dist: {type: numeric, importance: .inf}\n",
			[]string{"defs.yaml:5:41: models.eta.features.dist.importance .inf is not a finite number"}},
		{"reference without dataset", "models:\n  eta:\n    task: regression\n    reference: {run: latest}\n",
			[]string{"defs.yaml:4:5: models.eta.reference.dataset is required (the offline dataset, e.g. train)"}},
		{"reference unknown key", "models:\n  eta:\n    task: regression\n    reference: {dataset: train, runs: 3}\n",
			[]string{`defs.yaml:4:33: models.eta.reference has unknown key "runs" (did you mean "run"?)`}},
		{"reference scalar", "models:\n  eta:\n    task: regression\n    reference: train\n",
			[]string{`defs.yaml:4:16: models.eta.reference must be a mapping with keys dataset, run, version, found the string "train"`}},
		{"versions", "models:\n  eta:\n    task: regression\n    versions:\n      v1: {deployed_at: yesterday}\n      v2: {desc: x}\n",
			[]string{
				`defs.yaml:5:25: models.eta.versions.v1.deployed_at "yesterday" is not a time (RFC 3339, e.g. 2026-01-31T12:00:00Z, or YYYY-MM-DD)`,
				`defs.yaml:6:12: models.eta.versions.v2 has unknown key "desc" (known keys: description, deployed_at)`,
			}},
		{"merge of a scalar", "models:\n  eta:\n    <<: 3\n    task: regression\n",
			[]string{"defs.yaml:3:9: models.eta: a << merge needs a mapping or a list of mappings, found the number 3"}},
		{"slices list", "slices: [a, b]\n",
			[]string{"defs.yaml:1:9: slices must be a mapping of slice name to slice, found a list"}},
		{"slice all", "slices:\n  all: country == \"de\"\n",
			[]string{"defs.yaml:2:3: slices.all is implicit (every record) and cannot be redefined"}},
		{"slice name", "slices:\n  \"eu west\": country == \"de\"\n",
			[]string{`defs.yaml:2:3: slices["eu west"]: slice name "eu west" must start with a letter, digit or _ and hold only letters, digits, _ . : -`}},
		{"slice without where", "slices:\n  eu: {description: EU}\n",
			[]string{"defs.yaml:2:3: slices.eu.where is required (the predicate)"}},
		{"slice unknown key", "slices:\n  eu: {were: x == 1}\n",
			[]string{
				"defs.yaml:2:3: slices.eu.where is required (the predicate)",
				`defs.yaml:2:8: slices.eu has unknown key "were" (did you mean "where"?)`,
			}},
		{"slice where list", "slices:\n  eu: {where: [a]}\n",
			[]string{"defs.yaml:2:15: slices.eu.where must be a predicate (text), found a list"}},
		{"slice where empty", "slices:\n  eu: \"\"\n",
			[]string{"defs.yaml:2:8: slices.eu.where: empty predicate"}},
		{"predicate error, plain", "slices:\n  eu: country = \"de\"\n",
			[]string{`defs.yaml:2:15: slices.eu.where: unexpected "=" (use == for equality)`}},
		{"predicate error at end", "slices:\n  eu:\n    where: country in (\"de\", \"fr\"\n",
			[]string{`defs.yaml:3:34: slices.eu.where: expected "," or ")" in the in list, found end of predicate`}},
		{"predicate error, double quoted with escapes", "slices:\n  eu:\n    where: \"country == \\\"d\\\\u00e9\\\" and and\"\n",
			[]string{`defs.yaml:3:41: slices.eu.where: expected a field name, found keyword "and" (quote a field with that name in backticks)`}},
		{"predicate error, single quoted", "slices:\n  eu:\n    where: 'country == ''de'' or or'\n",
			[]string{`defs.yaml:3:34: slices.eu.where: expected a field name, found keyword "or" (quote a field with that name in backticks)`}},
		{"predicate error, literal block", "slices:\n  eu:\n    where: |\n      country == \"de\"\n        and tenure >> 3\n",
			[]string{`defs.yaml:5:21: slices.eu.where: expected a string, number or boolean, found ">"`}},
		{"predicate error, folded block", "slices:\n  eu:\n    where: >\n      country == \"de\"\n      and tenure >> 3\n",
			[]string{`defs.yaml:3:12: slices.eu.where: expected a string, number or boolean, found ">" (at column 29 of the predicate)`}},
		{"slice models undeclared and repeated", churnOK + "slices:\n  eu:\n    where: country == \"de\"\n    models: [chrun, churn, churn]\n",
			[]string{
				`defs.yaml:6:14: slices.eu.models[0]: model "chrun" is not declared in models (did you mean "churn"?)`,
				`defs.yaml:6:28: slices.eu.models[2]: model "churn" is listed twice`,
			}},
		{"slice models empty", churnOK + "slices:\n  eu:\n    where: country == \"de\"\n    models: []\n",
			[]string{"defs.yaml:6:13: slices.eu.models is empty; omit it to keep the slice for every model"}},
		{"slice models scalar", churnOK + "slices:\n  eu:\n    where: country == \"de\"\n    models: churn\n",
			[]string{`defs.yaml:6:13: slices.eu.models must be a list of model names, found the string "churn"`}},
		{"slice literal contradicts feature type",
			"models:\n  churn:\n    task: binary\n    classes: [0, 1]\n    positive_class: 1\n    features:\n      tenure: numeric\n      country: categorical\n" +
				"slices:\n  young: tenure < \"30\"\n  de: country == 49\n  b: features.country in (\"de\", 3)\n  ok: attributes.country == 49\n",
			[]string{
				`defs.yaml:10:19: slices.young.where: feature "tenure" is numeric in model "churn" but is compared (<) with the string "30" (restrict the slice with models: if it is meant for other models)`,
				`defs.yaml:11:18: slices.de.where: feature "country" is categorical in model "churn" but is compared (==) with the number 49; quote it: "49" (restrict the slice with models: if it is meant for other models)`,
				`defs.yaml:12:33: slices.b.where: feature "country" is categorical in model "churn" but is compared (in) with the number 3; quote it: "3" (restrict the slice with models: if it is meant for other models)`,
			}},
		{"metrics list", "metrics: [a]\n",
			[]string{"defs.yaml:1:10: metrics must be a mapping of metric name to metric, found a list"}},
		{"metric name", "metrics:\n  conversion-gap: {expr: x}\n",
			[]string{`defs.yaml:2:3: metrics.conversion-gap: metric name "conversion-gap" must match [a-zA-Z_:][a-zA-Z0-9_:]* (a query-language name)`}},
		{"metric expr", "metrics:\n  gap: {description: x}\n  gap2: {expr: \"  \"}\n  gap3: {expr: x, units: ratio}\n  gap4: {expr: [x]}\n",
			[]string{
				"defs.yaml:2:3: metrics.gap.expr is required (a query-language expression)",
				"defs.yaml:3:16: metrics.gap2.expr is empty",
				`defs.yaml:4:19: metrics.gap3 has unknown key "units" (did you mean "unit"?)`,
				"defs.yaml:5:16: metrics.gap4.expr must be a query-language expression (text), found a list",
			}},
	}
	if len(cases) < 25 {
		t.Fatalf("only %d bad files", len(cases))
	}
	for _, c := range cases {
		d, err := Parse("defs.yaml", []byte(c.src))
		if err == nil {
			t.Errorf("%s: parsed, want errors %q", c.name, c.want)
			continue
		}
		if d != nil {
			t.Errorf("%s: definitions returned with an error", c.name)
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%s: error %T is not *Error", c.name, err)
			continue
		}
		var got []string
		for _, p := range e.Problems {
			got = append(got, p.String())
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s:\n got %s\nwant %s", c.name, strings.Join(got, "\n     "), strings.Join(c.want, "\n     "))
		}
		if err.Error() != strings.Join(c.want, "\n") {
			t.Errorf("%s: Error() = %q", c.name, err.Error())
		}
	}
}

// All problems of a file are reported together, in file order, with paths.
func TestManyErrorsReportedTogether(t *testing.T) {
	src := `schema: 1
models:
  churn:
    task: binary
    classes: [0, 1]
    positive_class: "yes"
    features:
      age: {type: numeric, importance: -2}
  eta:
    task: regresion
slices:
  all: "x == 1"
  eu: country = "de"
metrics:
  bad-name: x
typo: 1
`
	_, err := Parse("defs.yaml", []byte(src))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v", err)
	}
	want := []Problem{
		{File: "defs.yaml", Line: 6, Column: 21, Path: "models.churn.positive_class"},
		{File: "defs.yaml", Line: 8, Column: 40, Path: "models.churn.features.age.importance"},
		{File: "defs.yaml", Line: 10, Column: 11, Path: "models.eta.task"},
		{File: "defs.yaml", Line: 12, Column: 3, Path: "slices.all"},
		{File: "defs.yaml", Line: 13, Column: 15, Path: "slices.eu.where"},
		{File: "defs.yaml", Line: 15, Column: 3, Path: "metrics.bad-name"},
		{File: "defs.yaml", Line: 16, Column: 1, Path: "typo"},
	}
	if len(e.Problems) != len(want) {
		t.Fatalf("got %d problems:\n%v", len(e.Problems), err)
	}
	for i, w := range want {
		g := e.Problems[i]
		if g.File != w.File || g.Line != w.Line || g.Column != w.Column || g.Path != w.Path || (i < 6 && !strings.HasPrefix(g.Message, w.Path)) {
			t.Errorf("problem %d = %+v, want %+v", i, g, w)
		}
	}
	if b, _ := json.Marshal(e.Problems[0]); !strings.Contains(string(b), `"line":6,"column":21,"path":"models.churn.positive_class"`) {
		t.Errorf("problem JSON %s", b)
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v", err)
	}
	path := filepath.Join(t.TempDir(), "defs.yaml")
	os.WriteFile(path, []byte("models: [x]\n"), 0o644)
	if _, err := Load(path); err == nil || !strings.HasPrefix(err.Error(), path+":1:9: ") {
		t.Fatalf("err = %v", err)
	}
}

func TestJSONView(t *testing.T) {
	d, _ := Load("testdata/example.yaml")
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"version", "schema", "models", "slices", "metrics", "defaults"} {
		if _, ok := v[k]; !ok {
			t.Errorf("missing top-level %q in %s", k, b)
		}
	}
	var view View
	if err := json.Unmarshal(b, &view); err != nil {
		t.Fatal(err)
	}
	if view.Version.Hash != d.Version().Hash || view.Schema != 1 {
		t.Fatalf("version %+v", view.Version)
	}
	churn := view.Models["churn"]
	if churn.Task != TaskBinary || churn.PositiveClass != "1" || churn.Features["tenure_days"].Importance != 3 ||
		churn.Versions["v1"].DeployedAt == nil || churn.Reference.Dataset != "train" {
		t.Fatalf("churn view %+v", churn)
	}
	if s := view.Slices["beta_cohort"]; s.Canonical != `attributes.cohort == "beta" or (attributes.cohort is missing and version == "v2")` || len(s.Models) != 0 {
		t.Fatalf("slice view %+v", s)
	}
	if raw, _ := d.MarshalJSON(); !strings.Contains(string(raw), `"where":"features.distance_km >= 25"`) {
		t.Fatal("HTML-escaped predicates in MarshalJSON")
	}
	if view.Metrics["conversion_gap"].Unit != "ratio" || view.Defaults.Importance != 1 || view.Defaults.Reference != DefaultReference {
		t.Fatalf("view %+v", view)
	}
	// Stable: marshalling twice gives the same bytes.
	b2, _ := json.Marshal(d)
	if !bytes.Equal(b, b2) {
		t.Fatal("JSON not stable")
	}
	if b, _ := json.Marshal(Empty()); !strings.Contains(string(b), `"models":{},"slices":{},"metrics":{}`) {
		t.Fatalf("empty JSON %s", b)
	}
}

func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("x-0: &a0 {task: regression}\n")
	for i := 1; i <= 12; i++ {
		fmt.Fprintf(&b, "x-%d: &a%d {<<: [", i, i)
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]}\n")
	}
	b.WriteString("models:\n  m: *a12\n")
	done := make(chan error, 1)
	go func() { _, err := Parse("bomb.yaml", []byte(b.String())); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "expands to more than") {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("alias bomb not bounded")
	}
}
