// Command evalstore is the evaluation store's single binary: it serves the
// HTTP API and offers CLI helpers (query, import, demo, version).
package main
