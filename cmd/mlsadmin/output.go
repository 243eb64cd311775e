package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Group ids and identities are byte strings. On the command line and in
// output they are their text when it is printable UTF-8 that does not
// begin with "hex:", and "hex:" and their hex digits otherwise.

const hexPrefix = "hex:"

// showID renders a byte string as text or hex:<hex>.
func showID(b []byte) string {
	s := string(b)
	if len(b) == 0 || strings.HasPrefix(s, hexPrefix) || !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return hexPrefix + hex.EncodeToString(b)
	}
	return s
}

// parseID reverses showID.
func parseID(s string) ([]byte, error) {
	if h, ok := strings.CutPrefix(s, hexPrefix); ok {
		b, err := hex.DecodeString(h)
		if err != nil {
			return nil, usageErr(fmt.Errorf("group id %q: %w", s, err))
		}
		return b, nil
	}
	return []byte(s), nil
}

// fingerprint is the first 8 bytes of a value's SHA-256, in hex: enough to
// compare two values by eye, nothing about a secret value.
func fingerprint(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes aligned columns.
func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

// errUsage: the command line asks for something the command cannot do as
// given (exit 2, like kong's parse errors).
var errUsage = errors.New("usage")

type usageError struct{ error }

func (e usageError) Is(target error) bool { return target == errUsage }
func (e usageError) Unwrap() error        { return e.error }

func usageErr(err error) error { return usageError{err} }

// isTerminal reports whether w is a terminal.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress shows how far a long command is: a bar on w, only when w is a
// terminal; otherwise nothing.
type progress struct {
	bar *progressbar.ProgressBar
}

func newProgress(w io.Writer, total int, what string) *progress {
	if !isTerminal(w) || total <= 0 {
		return &progress{}
	}
	return &progress{bar: progressbar.NewOptions(total, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(), progressbar.OptionClearOnFinish(), progressbar.OptionSetWidth(30),
		progressbar.OptionSetRenderBlankState(true))}
}

func (p *progress) add(n int) {
	if p.bar != nil {
		p.bar.Add(n)
	}
}

// println prints a line above the bar (or just the line); w is the
// bar's writer or another one.
func (p *progress) println(w io.Writer, line string) {
	if p.bar == nil {
		fmt.Fprintln(w, line)
		return
	}
	p.bar.Clear()
	fmt.Fprintln(w, line)
	p.bar.Add(0)
}

// done clears the bar; it may be called again.
func (p *progress) done() {
	if p.bar != nil {
		p.bar.Finish()
		p.bar = nil
	}
}

// plural is "1 group", "2 groups".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}
