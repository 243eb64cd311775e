package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func copyVector(t *testing.T, dir, name, as string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("../../testdata/vectors", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, as), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestVectorsOutputContract(t *testing.T) {
	dir := t.TempDir()
	copyVector(t, dir, "tree-math.json", "tree-math.json")
	// A file whose name says nothing: detected from its contents.
	copyVector(t, dir, "psk_secret.json", "mystery.json")
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"vectors", dir}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errOut.String())
	}
	want := filepath.Join(dir, "mystery.json") + ": 77 passed, 0 failed\n" +
		filepath.Join(dir, "tree-math.json") + ": 10 passed, 0 failed\n" +
		"87 passed, 0 failed\n"
	if out.String() != want {
		t.Fatalf("stdout:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestVectorsFailuresExitNonZero(t *testing.T) {
	dir := t.TempDir()
	copyVector(t, dir, "tree-math.json", "tree-math.json")
	// Corrupt one case so it must fail.
	path := filepath.Join(dir, "tree-math.json")
	data, _ := os.ReadFile(path)
	data = bytes.Replace(data, []byte(`"n_nodes": 1,`), []byte(`"n_nodes": 2,`), 1)
	os.WriteFile(path, data, 0o644)
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"vectors", path}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	last := strings.TrimSpace(out.String())
	last = last[strings.LastIndex(last, "\n")+1:]
	if !regexp.MustCompile(`^9 passed, 1 failed$`).MatchString(last) {
		t.Fatalf("last line %q", last)
	}
	if !strings.Contains(errOut.String(), "mismatch") {
		t.Fatalf("no reason on stderr: %q", errOut.String())
	}
}

func TestVectorsBadInput(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "junk.json"), []byte(`[{"what":1}]`), 0o644)
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"vectors", dir}, &out, &errOut); code != 1 {
		t.Fatalf("unknown kind: exit %d", code)
	}
	if code := run(context.Background(), []string{"vectors", filepath.Join(dir, "missing.json")}, &out, &errOut); code != 1 {
		t.Fatalf("missing file: exit %d", code)
	}
	if code := run(context.Background(), []string{"frobnicate"}, &out, &errOut); code != 2 {
		t.Fatalf("unknown command: exit %d", code)
	}
}

// vectorsCmd runs "mlsadmin vectors args..." and returns the exit code,
// stdout and stderr.
func vectorsCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), append([]string{"vectors"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// lastLine is the totals line of stdout.
func lastLine(out string) string {
	out = strings.TrimSpace(out)
	return out[strings.LastIndex(out, "\n")+1:]
}

// TestVectorsNothingToCheck: a directory without vector files checks
// nothing, and a check that checked nothing must fail, also next to a
// path that passes.
func TestVectorsNothingToCheck(t *testing.T) {
	empty := t.TempDir()
	docs := t.TempDir()
	if err := os.WriteFile(filepath.Join(docs, "README.md"), []byte("not a vector\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(docs, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	good := t.TempDir()
	copyVector(t, good, "tree-math.json", "tree-math.json")
	for _, tc := range []struct {
		name  string
		args  []string
		dir   string
		total string
	}{
		{"empty directory", []string{empty}, empty, "0 passed, 1 failed"},
		{"no .json file", []string{docs}, docs, "0 passed, 1 failed"},
		{"next to a good file", []string{good, empty}, empty, "10 passed, 1 failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := vectorsCmd(t, tc.args...)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if want := "no test-vector files found in " + tc.dir; !strings.Contains(errOut, want) {
				t.Errorf("stderr %q lacks %q", errOut, want)
			}
			if got := lastLine(out); got != tc.total {
				t.Errorf("totals %q, want %q", got, tc.total)
			}
		})
	}
}

// TestVectorsUnloadableFilesCount: a file that cannot be loaded counts as
// a failed case of its own, in its line and the totals, with the reason
// on stderr only.
func TestVectorsUnloadableFilesCount(t *testing.T) {
	dir := t.TempDir()
	copyVector(t, dir, "tree-math.json", "tree-math.json")
	if err := os.WriteFile(filepath.Join(dir, "broken.json"), []byte("[{\"n_leaves\": "), 0o644); err != nil {
		t.Fatal(err)
	}
	// A dangling symlink is unreadable even to root, unlike a mode-000 file.
	if err := os.Symlink(filepath.Join(dir, "gone"), filepath.Join(dir, "dangling.json")); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.json")
	code, out, errOut := vectorsCmd(t, dir, missing)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	want := filepath.Join(dir, "broken.json") + ": 0 passed, 1 failed\n" +
		filepath.Join(dir, "dangling.json") + ": 0 passed, 1 failed\n" +
		filepath.Join(dir, "tree-math.json") + ": 10 passed, 0 failed\n" +
		missing + ": 0 passed, 1 failed\n" +
		"10 passed, 3 failed\n"
	if out != want {
		t.Fatalf("stdout:\n%s\nwant:\n%s", out, want)
	}
	for _, reason := range []string{
		filepath.Join(dir, "broken.json") + ": invalid JSON",
		filepath.Join(dir, "dangling.json") + ": open ",
		missing + ": stat ",
	} {
		if !strings.Contains(errOut, reason) {
			t.Errorf("stderr lacks %q:\n%s", reason, errOut)
		}
	}
}

// TestVectorsParseErrorReason: a truncated or garbage file is reported
// with its parse error, whatever its name; only valid JSON of no
// detectable kind is an unknown kind.
func TestVectorsParseErrorReason(t *testing.T) {
	data, err := os.ReadFile("../../testdata/vectors/key-schedule.json")
	if err != nil {
		t.Fatal(err)
	}
	truncated := data[:1000]
	for _, tc := range []struct {
		name, file string
		data       []byte
		reason     string
	}{
		{"truncated, unknown name", "mystery.json", truncated,
			fmt.Sprintf("invalid JSON: unexpected end of input at offset %d", len(truncated))},
		{"truncated, known name", "key-schedule.json", truncated,
			fmt.Sprintf("invalid JSON: unexpected end of input at offset %d", len(truncated))},
		{"garbage", "mystery.json", []byte("PK\x03\x04 not json"),
			"invalid JSON: invalid character 'P' looking for beginning of value at offset 0"},
		{"empty file", "mystery.json", nil, "invalid JSON: unexpected end of input at offset 0"},
		{"valid JSON, unknown kind", "mystery.json", []byte(`[{"what": 1}]`), "unknown test-vector kind"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tc.file)
			if err := os.WriteFile(path, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			code, out, errOut := vectorsCmd(t, path)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if !strings.HasPrefix(errOut, "  "+path+": ") || !strings.Contains(errOut, tc.reason) {
				t.Errorf("stderr %q lacks %q for %s", errOut, tc.reason, path)
			}
			if strings.HasPrefix(tc.reason, "invalid JSON") && strings.Contains(errOut, "unknown test-vector kind") {
				t.Errorf("malformed JSON reported as an unknown kind: %q", errOut)
			}
			if got := lastLine(out); got != "0 passed, 1 failed" {
				t.Errorf("totals %q", got)
			}
		})
	}
}

// TestVectorsDeletedSectionFails: a case with a whole check section
// deleted fails, with the missing field as the reason.
func TestVectorsDeletedSectionFails(t *testing.T) {
	for _, tc := range []struct {
		file, field string
		cases       int
	}{
		{"key-schedule.json", "epochs", 7},
		{"treekem.json", "update_paths", 77},
		{"crypto-basics.json", "derive_tree_secret", 7},
		{"passive-client-handling-commit.json", "epochs", 91},
	} {
		t.Run(tc.file+" "+tc.field, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("../../testdata/vectors", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var cases []map[string]json.RawMessage
			if err := json.Unmarshal(data, &cases); err != nil {
				t.Fatal(err)
			}
			delete(cases[0], tc.field)
			if data, err = json.Marshal(cases); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), tc.file)
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			code, out, errOut := vectorsCmd(t, path)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if got, want := lastLine(out), fmt.Sprintf("%d passed, 1 failed", tc.cases-1); got != want {
				t.Errorf("totals %q, want %q", got, want)
			}
			if want := "missing field: " + tc.field; !strings.Contains(errOut, want) {
				t.Errorf("stderr %q lacks %q", errOut, want)
			}
		})
	}
}

// TestVectorsOfficial: every official case passes.
func TestVectorsOfficial(t *testing.T) {
	if testing.Short() {
		t.Skip("verifies all official vectors")
	}
	code, out, errOut := vectorsCmd(t, "../../testdata/vectors")
	if code != 0 || lastLine(out) != "784 passed, 0 failed" {
		t.Fatalf("exit %d, totals %q\n%s", code, lastLine(out), errOut)
	}
}
