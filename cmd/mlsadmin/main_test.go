package main

import (
	"bytes"
	"context"
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
