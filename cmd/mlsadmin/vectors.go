package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mlsengine/mlsengine/conformance"
)

// errFailed reports that verification ran and something failed; the
// details have already been printed.
var errFailed = errors.New("verification failed")

// noVectorFilesError reports a directory argument without a single .json
// file under it: a run that checked nothing must not pass.
type noVectorFilesError struct{ dir string }

func (e *noVectorFilesError) Error() string {
	return "no test-vector files found in " + e.dir
}

// target is one file to verify or, when err is set, a path that could not
// be expanded into files (missing, unreadable, a directory without vector
// files).
type target struct {
	path string
	err  error
}

// verifyPaths expands directories to their .json files (sorted, recursive)
// and verifies each file. A path or file that cannot be verified at all
// (missing, unreadable, not JSON, no cases, unknown kind, a directory
// without vector files) counts as one failed case, with its reason on
// stderr, so that it shows in the totals and the exit code; it does not
// stop the run.
func verifyPaths(ctx context.Context, paths []string, verbose bool, stdout, stderr io.Writer) error {
	var passed, failed int
	for _, t := range expand(paths) {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := t.err
		var res conformance.FileResult
		if err == nil {
			res, err = conformance.VerifyFile(t.path)
		}
		if err != nil {
			fmt.Fprintf(stdout, "%s: 0 passed, 1 failed\n", t.path)
			fmt.Fprintf(stderr, "  %s: %v\n", t.path, err)
			failed++
			continue
		}
		fmt.Fprintf(stdout, "%s: %d passed, %d failed\n", t.path, res.Passed, res.Failed)
		passed += res.Passed
		failed += res.Failed
		reportFailures(stderr, t.path, res.Failures, verbose)
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return errFailed
	}
	return nil
}

// reportFailures prints each failing case in verbose mode, otherwise each
// distinct reason once with the number of cases it covers.
func reportFailures(w io.Writer, file string, fails []conformance.CaseFailure, verbose bool) {
	if verbose {
		for _, c := range fails {
			fmt.Fprintf(w, "  %s case %d: %v\n", file, c.Index, c.Err)
		}
		return
	}
	counts := map[string]int{}
	var order []string
	for _, c := range fails {
		msg := c.Err.Error()
		if counts[msg] == 0 {
			order = append(order, msg)
		}
		counts[msg]++
	}
	for _, msg := range order {
		fmt.Fprintf(w, "  %s: %d case(s): %s\n", file, counts[msg], msg)
	}
}

// expand lists the files to verify for paths: a file as given, a
// directory as the .json files under it, sorted.
func expand(paths []string) []target {
	var targets []target
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			targets = append(targets, target{path: p, err: err})
			continue
		}
		if !info.IsDir() {
			targets = append(targets, target{path: p})
			continue
		}
		var found []target
		// The callback never stops the walk, so WalkDir returns nil.
		_ = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				// An unreadable directory or entry fails in its own name,
				// and the walk goes on with the rest.
				found = append(found, target{path: path, err: err})
				return nil
			}
			if !d.IsDir() && strings.HasSuffix(d.Name(), ".json") {
				found = append(found, target{path: path})
			}
			return nil
		})
		if len(found) == 0 {
			found = append(found, target{path: p, err: &noVectorFilesError{dir: p}})
		}
		slices.SortStableFunc(found, func(a, b target) int { return strings.Compare(a.path, b.path) })
		targets = append(targets, found...)
	}
	return targets
}
