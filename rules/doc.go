// Package rules loads, evaluates and notifies alerting and recording rules
// written in evalstore's query language, in Prometheus's rule-file format.
//
// ParseFile reads a rule file (groups, interval, rules with alert or
// record, expr, for, keep_firing_for, labels, annotations) and validates
// every expression with query.Check; errors name the file, the group, the
// rule and the position. A Manager evaluates each group on its interval
// through a query.Engine, keeps the pending → firing → resolved state of
// every alert, writes recording-rule results and the ALERTS and
// ALERTS_FOR_STATE series to storage, restores alert state after a restart
// and hands alerts to a Notifier, which posts them to Alertmanager's v2 API
// from its own goroutines with a bounded queue and retries. RulesData and
// AlertsData return /api/v1/rules and /api/v1/alerts in Prometheus's JSON
// shape. CheckCommand and TestCommand are `evalstore rules check|test`
// (promtool's unit-test file format). docs/rules.md is the guide.
package rules
