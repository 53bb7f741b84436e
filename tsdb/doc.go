// Package tsdb stores one mergeable sketch state per series and time bucket,
// plus plain float samples, durably on local disk.
package tsdb
