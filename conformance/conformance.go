// Package conformance verifies files in the mls-implementations test-vector
// format (https://github.com/mlswg/mls-implementations, test-vectors.md)
// against this module's protocol packages.
//
// A vector file is a JSON array of cases (tree-math.json, key-schedule.json,
// ...). VerifyFile detects the kind of a file from its name or, failing that,
// from the fields of its first case, and verifies every case. A case passes
// only when every check the format prescribes succeeds; a kind this module
// cannot verify yet fails all its cases with a one-line reason, so an
// unsupported file never counts as passed.
package conformance

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mlsengine/mlsengine/internal/vectors"
)

// Kind names a test-vector format after its canonical file name.
type Kind string

// ErrUnknownKind is returned when neither the file name nor the contents
// identify a known vector kind.
var ErrUnknownKind = errors.New("conformance: unknown test-vector kind")

// ErrMismatch is wrapped by every failed check of a case.
var ErrMismatch = errors.New("conformance: mismatch")

// CaseFailure records why one case failed.
type CaseFailure struct {
	Index int
	Err   error
}

// FileResult is the outcome of verifying one file.
type FileResult struct {
	Path     string
	Kind     Kind
	Passed   int
	Failed   int
	Failures []CaseFailure
}

// kindSpec describes one vector kind: how to recognise it and how to verify
// one of its cases. verify is nil for a kind that is recognised but not yet
// supported; its cases then fail with notYet as the reason.
type kindSpec struct {
	kind   Kind
	fields []string // fields that identify a case of this kind
	verify func(raw json.RawMessage) error
	notYet string
}

// specs lists every kind. It is a function, not a package variable, so that
// the table cannot be mutated.
func specs() []kindSpec {
	return []kindSpec{
		{kind: "tree-math", fields: []string{"n_leaves", "n_nodes", "sibling"}, verify: verifyTreeMath},
		{kind: "crypto-basics", fields: []string{"ref_hash", "expand_with_label"}, verify: verifyCryptoBasics},
		{kind: "deserialization", fields: []string{"vlbytes_header", "length"}, verify: verifyDeserialization},
		{kind: "messages", fields: []string{"mls_welcome", "mls_group_info", "private_message"}, verify: verifyMessages},
		{kind: "secret-tree", fields: []string{"sender_data", "encryption_secret", "leaves"}, verify: verifySecretTree},
		{kind: "key-schedule", fields: []string{"initial_init_secret", "epochs"}, verify: verifyKeySchedule},
		{kind: "transcript-hashes", fields: []string{"authenticated_content", "interim_transcript_hash_before"}, verify: verifyTranscriptHashes},
		{kind: "psk_secret", fields: []string{"psks", "psk_secret"}, verify: verifyPSKSecret},
		{kind: "message-protection", fields: []string{"proposal_pub", "commit_priv", "application_priv"}, verify: verifyMessageProtection},
		{kind: "welcome", fields: []string{"init_priv", "signer_pub", "key_package", "welcome"}, verify: verifyWelcome},
		{kind: "tree-operations", fields: []string{"tree_before", "proposal", "tree_after"}, verify: verifyTreeOperations},
		{kind: "tree-validation", fields: []string{"tree", "resolutions", "tree_hashes"}, verify: verifyTreeValidation},
		{kind: "treekem", fields: []string{"ratchet_tree", "leaves_private", "update_paths"}, verify: verifyTreeKEM},
		{kind: "passive-client", fields: []string{"initial_epoch_authenticator", "epochs"}, verify: verifyPassiveClient},
	}
}

func specFor(k Kind) (kindSpec, bool) {
	for _, s := range specs() {
		if s.kind == k {
			return s, true
		}
	}
	return kindSpec{}, false
}

// DetectKind identifies the kind of a vector file from its base name (with
// or without ".json"; "passive-client-*" names map to the passive-client
// kind) or else from the fields of its first case.
func DetectKind(name string, data []byte) (Kind, error) {
	base := strings.TrimSuffix(filepath.Base(name), ".json")
	if strings.HasPrefix(base, "passive-client") {
		return "passive-client", nil
	}
	if _, ok := specFor(Kind(base)); ok {
		return Kind(base), nil
	}
	var cases []map[string]json.RawMessage
	if err := json.Unmarshal(data, &cases); err != nil || len(cases) == 0 {
		return "", fmt.Errorf("%w: %s is not a non-empty JSON array of cases", ErrUnknownKind, name)
	}
	first := cases[0]
	for _, s := range specs() {
		if slices.ContainsFunc(s.fields, func(f string) bool { _, ok := first[f]; return !ok }) {
			continue
		}
		return s.kind, nil
	}
	return "", fmt.Errorf("%w: %s", ErrUnknownKind, name)
}

// VerifyFile reads, detects and verifies one vector file.
func VerifyFile(path string) (FileResult, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return FileResult{Path: path}, err
	}
	kind, err := DetectKind(path, data)
	if err != nil {
		return FileResult{Path: path}, err
	}
	res, err := Verify(kind, data)
	res.Path = path
	return res, err
}

// CheckFile verifies one vector file and returns an error unless every
// case of it passed (and there was at least one): the file's error, or
// one line per failed case.
func CheckFile(path string) error {
	res, err := VerifyFile(path)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range res.Failures {
		errs = append(errs, fmt.Errorf("%s: case %d: %w", path, c.Index, c.Err))
	}
	if n := res.Passed + res.Failed; res.Passed == 0 || res.Passed != n {
		errs = append(errs, fmt.Errorf("%s: %d of %d cases passed", path, res.Passed, n))
	}
	return errors.Join(errs...)
}

// Verify verifies every case of data as vectors of the given kind.
func Verify(kind Kind, data []byte) (FileResult, error) {
	res := FileResult{Kind: kind}
	spec, ok := specFor(kind)
	if !ok {
		return res, fmt.Errorf("%w: %q", ErrUnknownKind, kind)
	}
	var cases []json.RawMessage
	if err := json.Unmarshal(data, &cases); err != nil {
		return res, fmt.Errorf("conformance: %s: %w", kind, err)
	}
	for i, c := range cases {
		var err error
		switch {
		case spec.verify == nil:
			err = errors.New(spec.notYet)
		default:
			err = runCase(spec.verify, c)
		}
		if err != nil {
			res.Failed++
			res.Failures = append(res.Failures, CaseFailure{Index: i, Err: err})
		} else {
			res.Passed++
		}
	}
	return res, nil
}

// runCase turns a panic in a verifier into a failed case, so that one bad
// vector cannot stop the run; the protocol packages themselves must not
// panic on input, and their own tests check that.
func runCase(verify func(json.RawMessage) error, raw json.RawMessage) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("internal error: panic: %v", p)
		}
	}()
	return verify(raw)
}

// HexBytes is a byte string written in hex in the vector files (null is
// nil).
type HexBytes = vectors.Hex

// decodeCase unmarshals a case strictly: unknown fields are not an error
// (generators add fields), but malformed hex is.
func decodeCase(raw json.RawMessage, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decoding case: %w", err)
	}
	return nil
}

// expectEqual fails with ErrMismatch naming the field; it never prints the
// values, which may be secrets.
func expectEqual(field string, got, want []byte) error {
	if string(got) != string(want) {
		return fmt.Errorf("%w: %s", ErrMismatch, field)
	}
	return nil
}
