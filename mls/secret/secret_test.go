package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestRedaction(t *testing.T) {
	raw := []byte("very-secret-bytes")
	s := Copy(raw)
	type holder struct {
		S Secret
		p Secret
	}
	h := holder{S: s, p: s}
	outs := []string{
		fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %x %X %q", s, s, s, s, s, s, s),
		fmt.Sprintf("%v %+v %#v", h, h, &h), fmt.Sprintf("%v", []Secret{s}),
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "s", s)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "s", s)
	outs = append(outs, buf.String())
	j, _ := json.Marshal(h)
	outs = append(outs, string(j))
	for _, o := range outs {
		if strings.Contains(o, "very-secret") || strings.Contains(o, fmt.Sprintf("%x", raw)) ||
			strings.Contains(o, strings.Trim(fmt.Sprint(raw), "[]")) {
			t.Errorf("secret leaked: %s", o)
		}
	}
}

func TestClearAndCompare(t *testing.T) {
	b := []byte{1, 2, 3}
	s := New(b)
	if !s.Equal(Copy([]byte{1, 2, 3})) || s.Equal(Copy([]byte{1, 2})) || !s.EqualBytes([]byte{1, 2, 3}) {
		t.Fatal("Equal")
	}
	s.Clear()
	if !s.IsZero() || !bytes.Equal(b, []byte{0, 0, 0}) {
		t.Fatalf("Clear left %v / %v", s.Len(), b)
	}
	if Zero(4).Len() != 4 {
		t.Fatal("Zero")
	}
}
