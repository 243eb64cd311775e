package conformance

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// unsupported lists the kinds this module cannot verify yet; every other
// kind must pass every case. When a kind is implemented it is removed here
// and its file must then pass completely.
var unsupported = map[Kind]bool{}

func TestOfficialVectors(t *testing.T) {
	files, err := filepath.Glob("../testdata/vectors/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no vector files: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			res, err := VerifyFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if res.Passed+res.Failed == 0 {
				t.Fatal("no cases")
			}
			if unsupported[res.Kind] {
				// Honesty check: an unsupported kind never counts as passed.
				if res.Passed != 0 {
					t.Fatalf("%s: %d cases passed without an implementation", res.Kind, res.Passed)
				}
				return
			}
			for _, c := range res.Failures {
				t.Errorf("case %d: %v", c.Index, c.Err)
			}
			t.Logf("%s: %d passed, %d failed", res.Kind, res.Passed, res.Failed)
		})
	}
}

// TestDetectKindFromContents renames every vector file so that only its
// contents can identify it.
func TestDetectKindFromContents(t *testing.T) {
	files, _ := filepath.Glob("../testdata/vectors/*.json")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		byName, err := DetectKind(f, nil)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		byContents, err := DetectKind("renamed.json", data)
		if err != nil {
			t.Fatalf("%s by contents: %v", f, err)
		}
		if byName != byContents {
			t.Errorf("%s: by name %q, by contents %q", f, byName, byContents)
		}
	}
	if _, err := DetectKind("x.json", []byte(`[{"foo":1}]`)); !errors.Is(err, ErrUnknownKind) {
		t.Errorf("unknown contents: %v", err)
	}
	if _, err := DetectKind("x.json", []byte(`{}`)); !errors.Is(err, ErrUnknownKind) {
		t.Errorf("not an array: %v", err)
	}
}

// TestTamperedCasesFail flips one hex digit in one field of a case of each
// supported kind and expects the case to fail: a verifier that cannot fail
// proves nothing.
func TestTamperedCasesFail(t *testing.T) {
	tamper := map[string]string{
		"crypto-basics.json":          "derive_secret.out",
		"key-schedule.json":           "initial_init_secret",
		"psk_secret.json":             "psk_secret",
		"secret-tree.json":            "encryption_secret",
		"transcript-hashes.json":      "interim_transcript_hash_after",
		"welcome.json":                "signer_pub",
		"message-protection.json":     "membership_key",
		"messages.json":               "commit",
		"tree-validation.json":        "group_id",
		"tree-operations.json":        "tree_hash_after",
		"treekem.json":                "confirmed_transcript_hash",
		"passive-client-welcome.json": "initial_epoch_authenticator",
	}
	for file, field := range tamper {
		data, err := os.ReadFile(filepath.Join("../testdata/vectors", file))
		if err != nil {
			t.Fatal(err)
		}
		kind, err := DetectKind(file, data)
		if err != nil {
			t.Fatal(err)
		}
		bad, err := tamperFirstCase(data, field)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		res, err := Verify(kind, bad)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Failures) == 0 || res.Failures[0].Index != 0 {
			t.Errorf("%s: tampered %s still passes", file, field)
		}
	}
}

func TestCheckFile(t *testing.T) {
	good := filepath.Join("..", "testdata", "vectors", "tree-math.json")
	if err := CheckFile(good); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	var cases []map[string]any
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	cases[0]["n_nodes"] = 12345
	bad, _ := json.Marshal(cases)
	path := filepath.Join(t.TempDir(), "tree-math.json")
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CheckFile(path); err == nil || !strings.Contains(err.Error(), "case 0") {
		t.Fatalf("tampered file: %v", err)
	}
	if err := CheckFile(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Fatal("missing file passed")
	}
}
