// Package conformance verifies files in the mls-implementations test-vector
// format (https://github.com/mlswg/mls-implementations, test-vectors.md)
// against this module's protocol packages.
//
// A vector file is a JSON array of cases (tree-math.json, key-schedule.json,
// ...). VerifyFile detects the kind of a file from its name or, failing that,
// from the fields of its first case, and verifies every case. A case passes
// only when every field the format prescribes is present (a deleted field
// or emptied array is a deleted check) and every check the format
// prescribes succeeds; a file that is not JSON or has no cases is an error,
// never an empty success; a kind this module
// cannot verify yet fails all its cases with a one-line reason, so an
// unsupported file never counts as passed.
package conformance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// kindSpec describes one vector kind: how to recognise it, which fields its
// checks read and how to verify one of its cases. verify is nil for a kind
// that is recognised but not yet supported; its cases then fail with notYet
// as the reason.
type kindSpec struct {
	kind   Kind
	fields []string // fields that identify a case of this kind
	shape  []field  // fields a case must have (see shape)
	verify func(raw json.RawMessage) error
	notYet string
}

// specs lists every kind. It is a function, not a package variable, so that
// the table cannot be mutated. The shapes follow the Format sections of
// test-vectors.md; the exceptions to "required and non-empty" are noted
// where they are made.
func specs() []kindSpec {
	return []kindSpec{
		{
			kind:   "tree-math",
			fields: []string{"n_leaves", "n_nodes", "sibling"},
			// left, right, parent and sibling entries are optional<uint32>:
			// null means the relation is undefined for that node.
			shape: fields(values("n_leaves", "n_nodes", "root"), []field{
				named("left", arrayOf(nullable())),
				named("right", arrayOf(nullable())),
				named("parent", arrayOf(nullable())),
				named("sibling", arrayOf(nullable())),
			}),
			verify: verifyTreeMath,
		},
		{
			kind:   "crypto-basics",
			fields: []string{"ref_hash", "expand_with_label"},
			shape: fields(values("cipher_suite"), []field{
				named("ref_hash", objectOf(values("label", "value", "out")...)),
				named("expand_with_label", objectOf(values("secret", "label", "context", "length", "out")...)),
				named("derive_secret", objectOf(values("secret", "label", "out")...)),
				named("derive_tree_secret", objectOf(values("secret", "label", "generation", "length", "out")...)),
				named("sign_with_label", objectOf(values("priv", "pub", "content", "label", "signature")...)),
				named("encrypt_with_label", objectOf(values("priv", "pub", "label", "context", "plaintext", "kem_output", "ciphertext")...)),
			}),
			verify: verifyCryptoBasics,
		},
		{
			kind:   "deserialization",
			fields: []string{"vlbytes_header", "length"},
			shape:  values("vlbytes_header", "length"),
			verify: verifyDeserialization,
		},
		{
			kind:   "messages",
			fields: []string{"mls_welcome", "mls_group_info", "private_message"},
			shape: values("mls_welcome", "mls_group_info", "mls_key_package", "ratchet_tree", "group_secrets",
				"add_proposal", "update_proposal", "remove_proposal", "pre_shared_key_proposal",
				"re_init_proposal", "external_init_proposal", "group_context_extensions_proposal", "commit",
				"public_message_application", "public_message_proposal", "public_message_commit", "private_message"),
			verify: verifyMessages,
		},
		{
			kind:   "secret-tree",
			fields: []string{"sender_data", "encryption_secret", "leaves"},
			// The generations are a parameter common to all leaves, so a leaf
			// listing none is a check deleted, not a smaller vector.
			shape: fields(values("cipher_suite", "encryption_secret"), []field{
				named("sender_data", objectOf(values("sender_data_secret", "ciphertext", "key", "nonce")...)),
				named("leaves", arrayOf(arrayOf(objectOf(values(
					"generation", "handshake_key", "handshake_nonce", "application_key", "application_nonce")...)))),
			}),
			verify: verifySecretTree,
		},
		{
			kind:   "key-schedule",
			fields: []string{"initial_init_secret", "epochs"},
			shape: fields(values("cipher_suite", "group_id", "initial_init_secret"), []field{
				named("epochs", arrayOf(objectOf(fields(values(
					"tree_hash", "commit_secret", "psk_secret", "confirmed_transcript_hash", "group_context",
					"joiner_secret", "welcome_secret", "init_secret", "sender_data_secret", "encryption_secret",
					"exporter_secret", "epoch_authenticator", "external_secret", "confirmation_key",
					"membership_key", "resumption_psk", "external_pub"), []field{
					named("exporter", objectOf(values("label", "context", "length", "secret")...)),
				})...))),
			}),
			verify: verifyKeySchedule,
		},
		{
			kind:   "transcript-hashes",
			fields: []string{"authenticated_content", "interim_transcript_hash_before"},
			shape: values("cipher_suite", "confirmation_key", "authenticated_content",
				"interim_transcript_hash_before", "confirmed_transcript_hash_after", "interim_transcript_hash_after"),
			verify: verifyTranscriptHashes,
		},
		{
			kind:   "psk_secret",
			fields: []string{"psks", "psk_secret"},
			// No PSKs is a case of its own: psk_secret is then all zeros.
			shape: fields(values("cipher_suite", "psk_secret"), []field{
				named("psks", arrayOf0(objectOf(values("psk_id", "psk", "psk_nonce")...))),
			}),
			verify: verifyPSKSecret,
		},
		{
			kind:   "message-protection",
			fields: []string{"proposal_pub", "commit_priv", "application_priv"},
			shape: values("cipher_suite", "group_id", "epoch", "tree_hash", "confirmed_transcript_hash",
				"signature_priv", "signature_pub", "encryption_secret", "sender_data_secret", "membership_key",
				"proposal", "proposal_pub", "proposal_priv", "commit", "commit_pub", "commit_priv",
				"application", "application_priv"),
			verify: verifyMessageProtection,
		},
		{
			kind:   "welcome",
			fields: []string{"init_priv", "signer_pub", "key_package", "welcome"},
			shape:  values("cipher_suite", "init_priv", "signer_pub", "key_package", "welcome"),
			verify: verifyWelcome,
		},
		{
			kind:   "tree-operations",
			fields: []string{"tree_before", "proposal", "tree_after"},
			shape: values("cipher_suite", "tree_before", "proposal", "proposal_sender",
				"tree_hash_before", "tree_after", "tree_hash_after"),
			verify: verifyTreeOperations,
		},
		{
			kind:   "tree-validation",
			fields: []string{"tree", "resolutions", "tree_hashes"},
			// The resolution of a blank node without unmerged leaves is
			// empty.
			shape: fields(values("cipher_suite", "tree", "group_id"), []field{
				named("resolutions", arrayOf(arrayOf0(scalar()))),
				named("tree_hashes", arrayOf(scalar())),
			}),
			verify: verifyTreeValidation,
		},
		{
			kind:   "treekem",
			fields: []string{"ratchet_tree", "leaves_private", "update_paths"},
			// A leaf may know no path secret (no parent of it was set), and
			// update_paths[].path_secrets[j] is null for the sender and for
			// blank leaves.
			shape: fields(values("cipher_suite", "group_id", "epoch", "confirmed_transcript_hash", "ratchet_tree"), []field{
				named("leaves_private", arrayOf(objectOf(fields(values("index", "encryption_priv", "signature_priv"), []field{
					named("path_secrets", arrayOf0(objectOf(values("node", "path_secret")...))),
				})...))),
				named("update_paths", arrayOf(objectOf(fields(values("sender", "update_path", "commit_secret", "tree_hash_after"), []field{
					named("path_secrets", arrayOf(nullable())),
				})...))),
			}),
			verify: verifyTreeKEM,
		},
		{
			kind:   "passive-client",
			fields: []string{"initial_epoch_authenticator", "epochs"},
			// ratchet_tree is null when the Welcome carries the tree; a
			// scenario may use no external PSKs, an epoch no proposals by
			// reference, and passive-client-welcome has no epochs at all
			// (initial_epoch_authenticator is then its check).
			shape: fields(values("cipher_suite", "key_package", "signature_priv", "encryption_priv", "init_priv",
				"welcome", "initial_epoch_authenticator"), []field{
				named("external_psks", arrayOf0(objectOf(values("psk_id", "psk")...))),
				named("ratchet_tree", nullable()),
				named("epochs", arrayOf0(objectOf(fields(values("commit", "epoch_authenticator"), []field{
					named("proposals", arrayOf0(scalar())),
				})...))),
			}),
			verify: verifyPassiveClient,
		},
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
// kind) or else from the fields of its first case. Contents that are not
// JSON give a *JSONError, not ErrUnknownKind: what is wrong with such a
// file is its syntax, whatever its kind.
func DetectKind(name string, data []byte) (Kind, error) {
	base := strings.TrimSuffix(filepath.Base(name), ".json")
	if strings.HasPrefix(base, "passive-client") {
		return "passive-client", nil
	}
	if _, ok := specFor(Kind(base)); ok {
		return Kind(base), nil
	}
	cases, err := parseCases(data)
	var jerr *JSONError
	if errors.As(err, &jerr) {
		return "", err
	}
	if err != nil {
		return "", fmt.Errorf("%w: %s is not a non-empty JSON array of cases", ErrUnknownKind, name)
	}
	var first map[string]json.RawMessage
	if err := json.Unmarshal(cases[0], &first); err != nil {
		return "", fmt.Errorf("%w: %s: the first case is not a JSON object", ErrUnknownKind, name)
	}
	for _, s := range specs() {
		if slices.ContainsFunc(s.fields, func(f string) bool { _, ok := first[f]; return !ok }) {
			continue
		}
		return s.kind, nil
	}
	return "", fmt.Errorf("%w: %s", ErrUnknownKind, name)
}

// VerifyFile reads, detects and verifies one vector file. An error means
// the file could not be verified at all (unreadable, not JSON, no cases,
// unknown kind); callers must count it as a failure.
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

// Verify verifies every case of data as vectors of the given kind. A case
// that lacks a field its checks read fails with ErrMissingField before it
// is verified.
func Verify(kind Kind, data []byte) (FileResult, error) {
	res := FileResult{Kind: kind}
	spec, ok := specFor(kind)
	if !ok {
		return res, fmt.Errorf("%w: %q", ErrUnknownKind, kind)
	}
	cases, err := parseCases(data)
	if err != nil {
		return res, err
	}
	for i, c := range cases {
		var err error
		switch {
		case spec.verify == nil:
			err = errors.New(spec.notYet)
		default:
			err = checkCase(spec.shape, c)
			if err == nil {
				err = runCase(spec.verify, c)
			}
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

// ErrInvalidJSON matches every *JSONError.
var ErrInvalidJSON = errors.New("invalid JSON")

// ErrNotCases is returned for a file that is JSON but not an array of
// cases.
var ErrNotCases = errors.New("conformance: not a JSON array of cases")

// ErrNoCases is returned for a file whose array of cases is empty: a file
// that checks nothing must not pass.
var ErrNoCases = errors.New("conformance: no cases")

// JSONError reports data that is not well-formed JSON.
type JSONError struct {
	// Offset is the byte offset of the first byte that cannot be part of
	// JSON text, or the length of the data if it ends too early.
	Offset int64
	Msg    string
}

func (e *JSONError) Error() string {
	return fmt.Sprintf("invalid JSON: %s at offset %d", e.Msg, e.Offset)
}

// Is makes errors.Is(err, ErrInvalidJSON) hold for every *JSONError.
func (e *JSONError) Is(target error) bool { return target == ErrInvalidJSON }

// parseCases splits data into its cases.
func parseCases(data []byte) ([]json.RawMessage, error) {
	// A RawMessage target makes Unmarshal check the syntax of all of data,
	// trailing bytes included, before any type question arises.
	var whole json.RawMessage
	if err := json.Unmarshal(data, &whole); err != nil {
		return nil, jsonError(data, err)
	}
	var cases []json.RawMessage
	if err := json.Unmarshal(data, &cases); err != nil {
		return nil, ErrNotCases
	}
	if len(cases) == 0 {
		return nil, ErrNoCases
	}
	return cases, nil
}

// jsonError turns the error of unmarshalling malformed data into a
// *JSONError.
func jsonError(data []byte, err error) *JSONError {
	// Unmarshal reports truncated input only in its message; a Decoder
	// reports it as io.EOF or io.ErrUnexpectedEOF.
	var v json.RawMessage
	if derr := json.NewDecoder(bytes.NewReader(data)).Decode(&v); errors.Is(derr, io.EOF) || errors.Is(derr, io.ErrUnexpectedEOF) {
		return &JSONError{Offset: int64(len(data)), Msg: "unexpected end of input"}
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		// SyntaxError.Offset counts the bytes read, the bad one included.
		return &JSONError{Offset: max(se.Offset-1, 0), Msg: se.Error()}
	}
	return &JSONError{Offset: 0, Msg: err.Error()}
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
