package vectors

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestHexAndLoad(t *testing.T) {
	var c struct {
		A Hex `json:"a"`
		B Hex `json:"b"`
	}
	if err := json.Unmarshal([]byte(`{"a":"0aff","b":null}`), &c); err != nil || !bytes.Equal(c.A, []byte{0x0a, 0xff}) || c.B != nil {
		t.Fatalf("%v %x %x", err, c.A, c.B)
	}
	if err := json.Unmarshal([]byte(`{"a":"0g"}`), &c); err == nil {
		t.Fatal("bad hex accepted")
	}
	dir := t.TempDir()
	empty, cases := filepath.Join(dir, "empty.json"), filepath.Join(dir, "cases.json")
	os.WriteFile(empty, []byte(`[]`), 0o644)
	os.WriteFile(cases, []byte(`[{"a":"01"},{"a":"02"}]`), 0o644)
	if _, err := Load[map[string]Hex](empty); err == nil {
		t.Fatal("empty file accepted")
	}
	got, err := Load[map[string]Hex](cases)
	if err != nil || len(got) != 2 || !bytes.Equal(got[1]["a"], []byte{2}) {
		t.Fatalf("%v %v", err, got)
	}
}
