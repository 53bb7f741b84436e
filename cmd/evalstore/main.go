package main

import (
	"context"
	"evalstore/rules"
	"fmt"
	"io"
	"os"
)

// Build information, set at build time with -ldflags "-X main.version=...".
var (
	version   = "0.1.0-dev"
	revision  = ""
	branch    = ""
	buildUser = ""
	buildDate = ""
)

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
		return serve(context.Background(), args, stdout, stderr)
	case "query":
		return queryCmd(args, stdout, stderr)
	case "import":
		return importCmd(args, stdout, stderr)
	case "demo":
		return demoCmd(args, stdout, stderr)
	case "rules":
		return rules.Command(args, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "evalstore: unknown command %q (known: serve, query, import, demo, rules, version)\n", cmd)
		return 2
	}
}
