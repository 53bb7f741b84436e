package rules

import (
	"flag"
	"fmt"
	"io"
)

// CheckCommand is `evalstore rules check FILE...`: it validates each rule
// file as the server would load it and reports, per file, SUCCESS with the
// number of rules or every error with its position. The exit code is 0
// when all files are valid, 1 when one is not, 2 on a usage error.
func CheckCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rules check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, "usage: evalstore rules check FILE...") }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	code := 0
	for _, path := range fs.Args() {
		fmt.Fprintf(stdout, "Checking %s\n", path)
		f, err := ParseFile(path)
		if err != nil {
			code = 1
			fmt.Fprintf(stdout, "  FAILED:\n")
			for _, e := range flatten(err) {
				fmt.Fprintf(stdout, "%s\n", e)
			}
			fmt.Fprintln(stdout)
			continue
		}
		n := 0
		for _, g := range f.Groups {
			n += len(g.Rules)
		}
		fmt.Fprintf(stdout, "  SUCCESS: %d rules found\n\n", n)
	}
	return code
}

// TestCommand is `evalstore rules test FILE...`: it runs rule unit-test
// files in promtool's format and reports each as SUCCESS or FAILED with
// the differences. The exit code is 0 when all pass, 1 when one fails, 2
// on a usage error.
func TestCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rules test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, "usage: evalstore rules test FILE...") }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	code := 0
	for _, path := range fs.Args() {
		fmt.Fprintf(stdout, "Unit Testing: %s\n", path)
		errs := RunUnitTests(path)
		if len(errs) == 0 {
			fmt.Fprintf(stdout, "  SUCCESS\n\n")
			continue
		}
		code = 1
		fmt.Fprintf(stdout, "  FAILED:\n")
		for _, e := range errs {
			for _, x := range flatten(e) {
				fmt.Fprintf(stdout, "%s\n", x)
			}
		}
		fmt.Fprintln(stdout)
	}
	return code
}

// Command is `evalstore rules SUBCOMMAND ...` (check or test).
func Command(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: evalstore rules check|test FILE...")
		return 2
	}
	switch args[0] {
	case "check":
		return CheckCommand(args[1:], stdout, stderr)
	case "test":
		return TestCommand(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "evalstore rules: unknown command %q (known: check, test)\n", args[0])
	return 2
}

// flatten splits errors.Join trees into their leaves.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}
