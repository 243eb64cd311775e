// Command mlsadmin operates mlsengine: it verifies the official test
// vectors, and drives and inspects hosted members through NATS.
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
//
//	mlsadmin demo [--nats URL]
//
// drives a scenario through a running worker's subjects (see the README).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/alecthomas/kong"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// env is what commands run with.
type env struct {
	ctx            context.Context
	stdout, stderr io.Writer
}

type cli struct {
	Vectors vectorsCommand `cmd:"" help:"Verify test-vector files or directories of them."`
	Demo    demoCmd        `cmd:"" help:"Drive a scenario through a running worker: hosted members and an outside client create a group, add each other, talk, update and remove."`
}

type vectorsCommand struct {
	Verbose bool     `short:"v" help:"Print every failing case, not only distinct reasons."`
	Paths   []string `arg:"" name:"path" help:"Test-vector files or directories."`
}

// errFailed: the command ran and found failures (exit 1, reasons printed).
func (c *vectorsCommand) Run(e *env) error {
	err := verifyPaths(e.ctx, c.Paths, c.Verbose, e.stdout, e.stderr)
	if err != nil && !errors.Is(err, errFailed) {
		fmt.Fprintf(e.stderr, "mlsadmin vectors: %v\n", err)
		return errFailed
	}
	return err
}

// exit carries kong's exit code out of a parse.
type exit int

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
	var c cli
	parser, err := kong.New(&c, kong.Name("mlsadmin"), kong.Description("Operates mlsengine."),
		kong.Writers(stdout, stderr), kong.Exit(func(n int) { panic(exit(n)) }))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	defer func() {
		if r := recover(); r != nil {
			n, ok := r.(exit)
			if !ok {
				panic(r)
			}
			code = int(n)
		}
	}()
	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "mlsadmin: %v\n", err)
		if len(args) == 0 {
			parser.Stderr = stderr
		}
		return 2
	}
	if err := kctx.Run(&env{ctx: ctx, stdout: stdout, stderr: stderr}); err != nil {
		if !errors.Is(err, errFailed) {
			fmt.Fprintf(stderr, "mlsadmin: %v\n", err)
		}
		return 1
	}
	return 0
}
