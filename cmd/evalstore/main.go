package main

import (
	"flag"
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches a subcommand and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "version":
		fmt.Fprintf(stdout, "evalstore %s\n", version)
		return 0
	case "serve":
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(stderr)
		dataDir := fs.String("data-dir", "./data", "directory that holds all of evalstore's data")
		if err := fs.Parse(args); err != nil {
			return 2
		}
		// The HTTP server arrives with the storage engine and API issues;
		// until then serve reports what it would serve and exits cleanly.
		fmt.Fprintf(stdout, "evalstore %s (data dir %s): the server is not built yet; see docs/\n", version, *dataDir)
		return 0
	default:
		fmt.Fprintf(stderr, "evalstore: unknown command %q (known: serve, version)\n", cmd)
		return 2
	}
}
