// Command mlsadmin inspects mlsengine state. For now it has one subcommand:
//
//	mlsadmin vectors PATH...
//
// verifies files in the mls-implementations test-vector format (a file, or
// every .json file under a directory). It prints "<file>: N passed, M failed"
// per file and a final "N passed, M failed" over all files, with the reasons
// for failures on standard error, and exits 1 if anything failed. A path
// that could not be verified at all (missing, unreadable, not JSON, of an
// unknown kind, or a directory with no .json file under it) counts as one
// failed case: a run that checked nothing does not pass.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: mlsadmin <command> [arguments]

commands:
  vectors [-v] PATH...   verify test-vector files or directories of them
`

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "vectors":
		return runVectors(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "mlsadmin: unknown command %q\n%s", args[0], usage)
		return 2
	}
}

func runVectors(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vectors", flag.ContinueOnError)
	fs.SetOutput(stderr)
	verbose := fs.Bool("v", false, "print every failing case, not only distinct reasons")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprint(stderr, "mlsadmin vectors: no PATH given\n")
		return 2
	}
	err := verifyPaths(ctx, fs.Args(), *verbose, stdout, stderr)
	switch {
	case errors.Is(err, errFailed):
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "mlsadmin vectors: %v\n", err)
		return 1
	}
	return 0
}
