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
// drives a scenario through a running worker's subjects (see the README)
// and ends with what inspect shows of one of its hosted members.
//
// The operator commands reach a deployment (its NATS server, subject
// prefix and root key, with the worker's flags and environment variables):
//
//	mlsadmin load MEMBER GROUP          load a group, one-screen summary
//	mlsadmin inspect MEMBER GROUP       a group's state as stored, no secret
//	mlsadmin groups [--member M]        the registry's groups and hosted members
//	mlsadmin members MEMBER GROUP       the MLS members as MEMBER sees them
//	mlsadmin history GROUP              the group's inputs and events, in order
//	mlsadmin delete MEMBER GROUP        forget a group (through the log)
//	mlsadmin keypackage MEMBER          make key packages
//	mlsadmin backup MEMBER --out FILE   a member's whole state, age-encrypted
//	mlsadmin restore FILE [--as NEW]    into a member that does not exist yet
//
// --json (anywhere) prints JSON with snake_case fields instead of tables.
// Exit codes: 0 done, 1 failed (the reason on standard error), 2 the
// command line is wrong. A group id is its text, or hex:<hex digits>.
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
	stdin          *os.File
	json           bool // --json
}

// stdin is the commands' standard input (tests replace it).
var stdin = os.Stdin

type cli struct {
	JSON bool `name:"json" help:"Print JSON (stable snake_case fields) instead of tables."`

	Vectors    vectorsCommand `cmd:"" help:"Verify test-vector files or directories of them."`
	Demo       demoCmd        `cmd:"" help:"Drive a scenario through a running worker: hosted members and an outside client create a group, add each other, talk, update and remove; then inspect a member."`
	Load       loadCmd        `cmd:"" help:"Load a hosted member's group through its store and summarize it."`
	Inspect    inspectCmd     `cmd:"" help:"Show a hosted member's group as stored: members, tree, extensions, proposals, past epochs, key material counts (never values), version, last applied log sequence."`
	Groups     groupsCmd      `cmd:"" help:"List the groups of the registry with their hosted members."`
	Members    membersCmd     `cmd:"" help:"List the MLS members of a group as a hosted member sees them."`
	History    historyCmd     `cmd:"" help:"Show a group's inputs (log stream) and events (events stream) in order, one line each."`
	Delete     deleteCmd      `cmd:"" help:"Delete a hosted member's group, irrevocably, through the log."`
	KeyPackage keyPackageCmd  `cmd:"" name:"keypackage" help:"Make key packages for a hosted member."`
	Backup     backupCmd      `cmd:"" help:"Write a hosted member's whole state to an age-encrypted file."`
	Restore    restoreCmd     `cmd:"" help:"Restore a member from a backup into a member that does not exist yet."`
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
		kong.ExplicitGroups([]kong.Group{{Key: "connection", Title: "Connection (the worker's flags and environment variables):"}}),
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
	if err := kctx.Run(&env{ctx: ctx, stdout: stdout, stderr: stderr, stdin: stdin, json: c.JSON}); err != nil {
		if !errors.Is(err, errFailed) {
			fmt.Fprintf(stderr, "mlsadmin: %v\n", err)
		}
		if errors.Is(err, errUsage) {
			return 2
		}
		return 1
	}
	return 0
}
