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

// verifyPaths expands directories to their .json files (sorted, recursive)
// and verifies each file. A file that cannot be read or whose kind is
// unknown is reported and makes the run fail, but does not stop it.
func verifyPaths(ctx context.Context, paths []string, verbose bool, stdout, stderr io.Writer) error {
	files, err := expand(paths)
	if err != nil {
		return err
	}
	var passed, failed int
	var broken bool
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		res, err := conformance.VerifyFile(f)
		if err != nil {
			fmt.Fprintf(stdout, "%s: error: %v\n", f, err)
			broken = true
			continue
		}
		fmt.Fprintf(stdout, "%s: %d passed, %d failed\n", f, res.Passed, res.Failed)
		passed += res.Passed
		failed += res.Failed
		reportFailures(stderr, f, res.Failures, verbose)
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", passed, failed)
	if failed > 0 || broken {
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

func expand(paths []string) ([]string, error) {
	var files []string
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			files = append(files, p)
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && strings.HasSuffix(d.Name(), ".json") {
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		slices.Sort(found)
		files = append(files, found...)
	}
	return files, nil
}
