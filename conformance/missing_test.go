package conformance

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// fieldTest names, for one official vector file, the top-level fields of a
// case that the format (test-vectors.md) lists. Every one not in optional
// is required: deleting it must fail the case. Arrays not in mayBeEmpty
// must have entries: emptying one must fail the case too.
type fieldTest struct {
	file       string
	fields     []string
	optional   []string // optional<T> in the format: null or absent
	mayBeEmpty []string // arrays the format allows to be empty
}

// fieldTests is written from the format, not from the shapes in specs(),
// so that a field left out of a shape is caught here.
func fieldTests() []fieldTest {
	return []fieldTest{
		{file: "tree-math.json", fields: []string{"n_leaves", "n_nodes", "root", "left", "right", "parent", "sibling"}},
		{file: "crypto-basics.json", fields: []string{"cipher_suite", "ref_hash", "expand_with_label", "derive_secret",
			"derive_tree_secret", "sign_with_label", "encrypt_with_label"}},
		{file: "deserialization.json", fields: []string{"vlbytes_header", "length"}},
		{file: "messages.json", fields: []string{"mls_welcome", "mls_group_info", "mls_key_package", "ratchet_tree",
			"group_secrets", "add_proposal", "update_proposal", "remove_proposal", "pre_shared_key_proposal",
			"re_init_proposal", "external_init_proposal", "group_context_extensions_proposal", "commit",
			"public_message_application", "public_message_proposal", "public_message_commit", "private_message"}},
		{file: "secret-tree.json", fields: []string{"cipher_suite", "sender_data", "encryption_secret", "leaves"}},
		{file: "key-schedule.json", fields: []string{"cipher_suite", "group_id", "initial_init_secret", "epochs"}},
		{file: "transcript-hashes.json", fields: []string{"cipher_suite", "confirmation_key", "authenticated_content",
			"interim_transcript_hash_before", "confirmed_transcript_hash_after", "interim_transcript_hash_after"}},
		{file: "psk_secret.json", fields: []string{"cipher_suite", "psks", "psk_secret"}, mayBeEmpty: []string{"psks"}},
		{file: "message-protection.json", fields: []string{"cipher_suite", "group_id", "epoch", "tree_hash",
			"confirmed_transcript_hash", "signature_priv", "signature_pub", "encryption_secret", "sender_data_secret",
			"membership_key", "proposal", "proposal_pub", "proposal_priv", "commit", "commit_pub", "commit_priv",
			"application", "application_priv"}},
		{file: "welcome.json", fields: []string{"cipher_suite", "init_priv", "signer_pub", "key_package", "welcome"}},
		{file: "tree-operations.json", fields: []string{"cipher_suite", "tree_before", "proposal", "proposal_sender",
			"tree_hash_before", "tree_after", "tree_hash_after"}},
		{file: "tree-validation.json", fields: []string{"cipher_suite", "tree", "group_id", "resolutions", "tree_hashes"}},
		{file: "treekem.json", fields: []string{"cipher_suite", "group_id", "epoch", "confirmed_transcript_hash",
			"ratchet_tree", "leaves_private", "update_paths"}},
		{
			file: "passive-client-welcome.json",
			fields: []string{"cipher_suite", "external_psks", "key_package", "signature_priv", "encryption_priv",
				"init_priv", "welcome", "ratchet_tree", "initial_epoch_authenticator", "epochs"},
			optional:   []string{"ratchet_tree"},
			mayBeEmpty: []string{"external_psks", "epochs"},
		},
		{
			file: "passive-client-handling-commit.json",
			fields: []string{"cipher_suite", "external_psks", "key_package", "signature_priv", "encryption_priv",
				"init_priv", "welcome", "ratchet_tree", "initial_epoch_authenticator", "epochs"},
			optional:   []string{"ratchet_tree"},
			mayBeEmpty: []string{"external_psks", "epochs"},
		},
	}
}

// loadCases returns the kind and the cases of an official vector file.
func loadCases(t *testing.T, file string) (Kind, []map[string]json.RawMessage) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("../testdata/vectors", file))
	if err != nil {
		t.Fatal(err)
	}
	kind, err := DetectKind(file, data)
	if err != nil {
		t.Fatal(err)
	}
	var cases []map[string]json.RawMessage
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	return kind, cases
}

// verifyOne verifies c as the only case of a file of the given kind and
// returns its failure, or nil if it passed.
func verifyOne(t *testing.T, kind Kind, c map[string]json.RawMessage) error {
	t.Helper()
	data, err := json.Marshal([]map[string]json.RawMessage{c})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Verify(kind, data)
	if err != nil {
		t.Fatal(err)
	}
	if res.Passed+res.Failed != 1 {
		t.Fatalf("%d cases verified, want 1", res.Passed+res.Failed)
	}
	if res.Failed == 1 {
		return res.Failures[0].Err
	}
	return nil
}

func without(c map[string]json.RawMessage, name string) map[string]json.RawMessage {
	d := make(map[string]json.RawMessage, len(c))
	for k, v := range c {
		if k != name {
			d[k] = v
		}
	}
	return d
}

// TestDeletedFieldsFail deletes each top-level field of the first case of
// every kind in turn: a required one must fail the case, for want of the
// field (not skipped, not passed, not failed by accident); an optional one
// deleted where it is null must leave the case passing.
func TestDeletedFieldsFail(t *testing.T) {
	for _, ft := range fieldTests() {
		t.Run(ft.file, func(t *testing.T) {
			kind, cases := loadCases(t, ft.file)
			c := cases[0]
			if err := verifyOne(t, kind, c); err != nil {
				t.Fatalf("unmodified case fails: %v", err)
			}
			for _, name := range ft.fields {
				if _, ok := c[name]; !ok {
					t.Fatalf("the case has no field %q to delete", name)
				}
			}
			// Every field the case has, not only those listed: a field the
			// format gained is then required until listed as optional.
			for name := range c {
				if slices.Contains(ft.optional, name) {
					continue
				}
				err := verifyOne(t, kind, without(c, name))
				switch {
				case err == nil:
					t.Errorf("%s deleted: the case passes", name)
				case !errors.Is(err, ErrMissingField):
					t.Errorf("%s deleted: the case fails, but not for the missing field: %v", name, err)
				}
			}
			for _, name := range ft.optional {
				i := slices.IndexFunc(cases, func(c map[string]json.RawMessage) bool { return string(c[name]) == "null" })
				if i < 0 {
					continue
				}
				if err := verifyOne(t, kind, without(cases[i], name)); err != nil {
					t.Errorf("optional %s deleted from case %d where it is null: %v", name, i, err)
				}
			}
		})
	}
}

// TestEmptiedArraysFail empties each top-level array of the first case of
// every kind: an array the format requires entries in must then fail the
// case.
func TestEmptiedArraysFail(t *testing.T) {
	for _, ft := range fieldTests() {
		t.Run(ft.file, func(t *testing.T) {
			kind, cases := loadCases(t, ft.file)
			c := cases[0]
			for name, v := range c {
				var entries []json.RawMessage
				if json.Unmarshal(v, &entries) != nil || len(entries) == 0 || slices.Contains(ft.mayBeEmpty, name) {
					continue
				}
				d := without(c, name)
				d[name] = json.RawMessage(`[]`)
				if err := verifyOne(t, kind, d); !errors.Is(err, ErrMissingField) {
					t.Errorf("%s emptied: %v, want a missing field", name, err)
				}
			}
		})
	}
}

// TestDeletedNestedFieldsFail deletes, one at a time, every field of every
// object nested in the first case of every kind (in the first entry of
// each array): the format lists none of them as optional.
func TestDeletedNestedFieldsFail(t *testing.T) {
	for _, ft := range fieldTests() {
		t.Run(ft.file, func(t *testing.T) {
			kind, cases := loadCases(t, ft.file)
			raw, err := json.Marshal(cases[0])
			if err != nil {
				t.Fatal(err)
			}
			var c map[string]any
			if err := json.Unmarshal(raw, &c); err != nil {
				t.Fatal(err)
			}
			var n int
			for name, v := range c {
				for _, path := range nestedFields(v, name) {
					n++
					d := deleteAt(t, raw, path)
					if err := verifyOne(t, kind, d); !errors.Is(err, ErrMissingField) {
						t.Errorf("%v deleted: %v, want a missing field", path, err)
					}
				}
			}
			t.Logf("%d nested fields deleted", n)
		})
	}
}

// nestedFields lists the paths of the object fields inside v, found at
// path; an array stands for its first entry (index 0).
func nestedFields(v any, path ...any) [][]any {
	var out [][]any
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			p := append(slices.Clip(path), k)
			out = append(out, p)
			out = append(out, nestedFields(e, p...)...)
		}
	case []any:
		if len(v) > 0 {
			out = append(out, nestedFields(v[0], append(slices.Clip(path), 0)...)...)
		}
	}
	return out
}

// deleteAt returns the case raw with the field at path deleted.
func deleteAt(t *testing.T, raw []byte, path []any) map[string]json.RawMessage {
	t.Helper()
	var root any
	if err := json.Unmarshal(raw, &root); err != nil {
		t.Fatal(err)
	}
	cur := root
	for _, p := range path[:len(path)-1] {
		switch p := p.(type) {
		case string:
			cur = cur.(map[string]any)[p]
		case int:
			cur = cur.([]any)[p]
		}
	}
	delete(cur.(map[string]any), path[len(path)-1].(string))
	b, err := json.Marshal(root)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]json.RawMessage
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestFileErrors checks that a file that is not JSON reports where its
// syntax breaks, not that its kind is unknown; that valid JSON of no known
// kind does report an unknown kind; and that a file with no cases is an
// error, not an empty success.
func TestFileErrors(t *testing.T) {
	good, err := os.ReadFile("../testdata/vectors/tree-math.json")
	if err != nil {
		t.Fatal(err)
	}
	truncated := good[:len(good)/2]
	tests := []struct {
		name, file string
		data       []byte
		want       error
		msg        string
	}{
		{"truncated, unknown name", "mystery.json", truncated, ErrInvalidJSON,
			fmt.Sprintf("invalid JSON: unexpected end of input at offset %d", len(truncated))},
		{"truncated, known name", "tree-math.json", truncated, ErrInvalidJSON,
			fmt.Sprintf("invalid JSON: unexpected end of input at offset %d", len(truncated))},
		{"empty file", "mystery.json", nil, ErrInvalidJSON, "invalid JSON: unexpected end of input at offset 0"},
		{"garbage", "mystery.json", []byte("\x00\x01garbage"), ErrInvalidJSON,
			"invalid JSON: invalid character '\\x00' looking for beginning of value at offset 0"},
		{"bad byte", "mystery.json", []byte(`[{"n_leaves": 1,}]`), ErrInvalidJSON,
			"invalid JSON: invalid character '}' looking for beginning of object key string at offset 16"},
		{"trailing data", "tree-math.json", append(slices.Clone(good), " x"...), ErrInvalidJSON,
			fmt.Sprintf("invalid JSON: invalid character 'x' after top-level value at offset %d", len(good)+1)},
		{"valid JSON, unknown kind", "mystery.json", []byte(`[{"what": 1}]`), ErrUnknownKind, ""},
		{"valid JSON, not an array", "mystery.json", []byte(`{"n_leaves": 1}`), ErrUnknownKind, ""},
		{"not an array, known name", "tree-math.json", []byte(`{"n_leaves": 1}`), ErrNotCases, ""},
		{"no cases", "tree-math.json", []byte(`[]`), ErrNoCases, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tt.file)
			if err := os.WriteFile(path, tt.data, 0o644); err != nil {
				t.Fatal(err)
			}
			res, err := VerifyFile(path)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v (%d passed), want %v", err, res.Passed, tt.want)
			}
			if errors.Is(tt.want, ErrInvalidJSON) && errors.Is(err, ErrUnknownKind) {
				t.Fatalf("malformed JSON reported as an unknown kind: %v", err)
			}
			if tt.msg != "" && err.Error() != tt.msg {
				t.Fatalf("got %q, want %q", err, tt.msg)
			}
		})
	}
}
