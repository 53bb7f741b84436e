package rules

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCollector(t *testing.T) {
	m := apiRig(t) // two evaluations; High firing, Broken failing
	n := NewNotifier(NotifierOptions{URLs: []string{"http://127.0.0.1:1"}})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(Collector(m, n))
	f := m.Groups()[0].File()
	want := `
# HELP evalstore_rule_alerts Pending and firing alerts.
# TYPE evalstore_rule_alerts gauge
evalstore_rule_alerts{file="F",group="g",state="firing"} 1
evalstore_rule_alerts{file="F",group="g",state="pending"} 0
evalstore_rule_alerts{file="F",group="h",state="firing"} 0
evalstore_rule_alerts{file="F",group="h",state="pending"} 0
# HELP evalstore_rule_evaluation_failures_total Rule evaluations that failed.
# TYPE evalstore_rule_evaluation_failures_total counter
evalstore_rule_evaluation_failures_total{file="F",group="g"} 2
evalstore_rule_evaluation_failures_total{file="F",group="h"} 0
# HELP evalstore_rule_group_evaluations_total Evaluations of a rule group.
# TYPE evalstore_rule_group_evaluations_total counter
evalstore_rule_group_evaluations_total{file="F",group="g"} 2
evalstore_rule_group_evaluations_total{file="F",group="h"} 2
# HELP evalstore_notifications_queue_length Alerts waiting to be sent.
# TYPE evalstore_notifications_queue_length gauge
evalstore_notifications_queue_length{alertmanager="http://127.0.0.1:1/api/v2/alerts"} 0
`
	want = strings.ReplaceAll(want, `file="F"`, `file="`+f+`"`)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "evalstore_rule_alerts", "evalstore_rule_evaluation_failures_total",
		"evalstore_rule_group_evaluations_total", "evalstore_notifications_queue_length"); err != nil {
		t.Fatal(err)
	}
}
