package storage_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/mlsengine/mlsengine/storage"
)

var (
	gid    = []byte("group")
	gs     = storage.GroupScope(gid)
	client = storage.ClientScope()
)

func pub(name string) storage.Record {
	return storage.Record{Key: storage.Key{Scope: gs, Class: storage.Public, Name: name}, Value: []byte(name)}
}

func TestValidateAccepts(t *testing.T) {
	many := make([]storage.Record, storage.MaxUnitRecords)
	for i := range many {
		many[i] = pub("n/" + strconv.Itoa(i))
	}
	kp := storage.Key{Scope: client, Class: storage.KeyMaterial, Name: "key-package/abc"}
	units := map[string]*storage.Unit{
		"empty group unit": {Scope: gs},
		"create and use a key package": {Scope: gs, Puts: []storage.Record{pub("context"),
			{Key: storage.Key{Scope: gs, Class: storage.KeyMaterial, Name: "epoch/0/secrets"}, Value: make([]byte, 32)}},
			Deletes: []storage.Key{kp}},
		"same name in both classes and scopes": {Scope: gs, Version: 3, Puts: []storage.Record{pub("a"),
			{Key: storage.Key{Scope: gs, Class: storage.KeyMaterial, Name: "a"}},
			{Key: storage.Key{Scope: client, Class: storage.Public, Name: "a"}},
			{Key: storage.Key{Scope: client, Class: storage.KeyMaterial, Name: "a"}}}},
		"leave":                      {Scope: gs, Version: 9, DeleteGroup: true, Deletes: []storage.Key{kp}},
		"client unit":                {Scope: client, Puts: []storage.Record{{Key: kp, Value: []byte{1}}}},
		"MaxUnitRecords":             {Scope: gs, Version: 1, Puts: many},
		"creating, MaxUnitRecords+1": {Scope: gs, Puts: append(many, pub("one/more"))},
		"MaxValueLen":                {Scope: gs, Puts: []storage.Record{{Key: pub("v").Key, Value: make([]byte, storage.MaxValueLen)}}},
		"empty group id":             {Scope: storage.GroupScope(nil), Puts: []storage.Record{{Key: storage.Key{Scope: storage.GroupScope([]byte{}), Class: storage.Public, Name: "a"}}}},
		"MaxNameLen, all the chars":  {Scope: gs, Puts: []storage.Record{pub("AZaz09-_=/" + strings.Repeat("x", storage.MaxNameLen-10))}},
	}
	for name, u := range units {
		if err := u.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	secret := []byte("TOPSECRET-VALUE")
	big := bytes.Repeat(secret, storage.MaxValueLen/len(secret)+1)
	other := storage.GroupScope([]byte("other"))
	many := make([]storage.Record, 40) // past the pairwise-scan size
	for i := range many {
		many[i] = pub("n/" + strconv.Itoa(i))
	}
	// Values sharing one array: units of many bytes without the memory.
	full := make([]byte, storage.MaxValueLen)
	huge := make([]storage.Record, storage.MaxCreateUnitBytes/storage.MaxValueLen+1)
	for i := range huge {
		huge[i] = storage.Record{Key: pub("h/" + strconv.Itoa(i)).Key, Value: full}
	}
	tooMany := make([]storage.Record, storage.MaxCreateUnitRecords+1)
	for i := range tooMany {
		tooMany[i] = pub("t/" + strconv.Itoa(i))
	}
	cases := []struct {
		name   string
		u      *storage.Unit
		badKey bool
	}{
		{"nil", nil, false},
		{"MaxUnitRecords+1 on an existing group", &storage.Unit{Scope: gs, Version: 1, Puts: tooMany[:storage.MaxUnitRecords+1]}, false},
		{"MaxUnitBytes+1 on an existing group", &storage.Unit{Scope: gs, Version: 1, Puts: huge[:storage.MaxUnitBytes/storage.MaxValueLen+1]}, false},
		{"creating, MaxCreateUnitRecords+1", &storage.Unit{Scope: gs, Puts: tooMany}, false},
		{"creating, MaxCreateUnitBytes+1", &storage.Unit{Scope: gs, Puts: huge}, false},
		{"zero scope", &storage.Unit{}, false},
		{"client version", &storage.Unit{Scope: client, Version: 1}, false},
		{"client DeleteGroup", &storage.Unit{Scope: client, DeleteGroup: true}, false},
		{"foreign put", &storage.Unit{Scope: gs, Puts: []storage.Record{{Key: storage.Key{Scope: other, Class: storage.Public, Name: "a"}}}}, false},
		{"group put in client unit", &storage.Unit{Scope: client, Puts: []storage.Record{pub("a")}}, false},
		{"DeleteGroup and group put", &storage.Unit{Scope: gs, DeleteGroup: true, Puts: []storage.Record{pub("a")}}, false},
		{"duplicate small", &storage.Unit{Scope: gs, Puts: []storage.Record{pub("a")}, Deletes: []storage.Key{pub("a").Key}}, false},
		{"duplicate large", &storage.Unit{Scope: gs, Puts: many, Deletes: []storage.Key{many[39].Key}}, false},
		{"too long", &storage.Unit{Scope: gs, Puts: []storage.Record{{Key: storage.Key{Scope: gs, Class: storage.KeyMaterial, Name: "k"}, Value: big}}}, false},
		{"bad name", &storage.Unit{Scope: gs, Puts: []storage.Record{{Key: storage.Key{Scope: gs, Class: storage.KeyMaterial, Name: "a..b"}, Value: secret}}}, true},
		{"bad class", &storage.Unit{Scope: gs, Deletes: []storage.Key{{Scope: gs, Name: "a"}}}, true},
		{"zero key scope", &storage.Unit{Scope: gs, Deletes: []storage.Key{{Class: storage.Public, Name: "a"}}}, true},
	}
	for _, c := range cases {
		err := c.u.Validate()
		if !errors.Is(err, storage.ErrInvalidUnit) {
			t.Errorf("%s: %v, want ErrInvalidUnit", c.name, err)
			continue
		}
		if got := errors.Is(err, storage.ErrInvalidKey); got != c.badKey {
			t.Errorf("%s: matches ErrInvalidKey = %v, want %v (%v)", c.name, got, c.badKey, err)
		}
		if strings.Contains(err.Error(), string(secret)) || strings.Contains(err.Error(), hex.EncodeToString(secret)) {
			t.Errorf("%s: error shows a value: %v", c.name, err)
		}
	}
}

func TestNames(t *testing.T) {
	valid := []string{"a", "A", "0", "-", "_", "=", "a/b", "tree/node/17", "key-package/q83v_-A=", strings.Repeat("a", storage.MaxNameLen)}
	invalid := []string{"", "/", "a/", "/a", "a//b", ".", "a.b", "*", ">", "a b", "a\tb", "a\x00", "ü", "a\\b", "a:b", strings.Repeat("a", storage.MaxNameLen+1)}
	for _, n := range valid {
		if err := (storage.Key{Scope: client, Class: storage.Public, Name: n}).Validate(); err != nil {
			t.Errorf("%q: %v", n, err)
		}
	}
	for _, n := range invalid {
		if err := (storage.Key{Scope: client, Class: storage.Public, Name: n}).Validate(); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("%q: %v, want ErrInvalidKey", n, err)
		}
	}
	for _, p := range []string{"", "a/", "a/b/", "tree/node/"} {
		if err := storage.ValidateList(client, storage.Public, p); err != nil {
			t.Errorf("prefix %q: %v", p, err)
		}
	}
	for _, p := range []string{"a", "/", "//", "a//", "a/b", "a./"} {
		if err := storage.ValidateList(client, storage.Public, p); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("prefix %q: %v, want ErrInvalidKey", p, err)
		}
	}
}

// FuzzName checks that every name Validate accepts maps onto a NATS subject
// ("/" to "."), the tightest of the key spaces backends are expected to use:
// no empty token, no wildcard, no whitespace or control byte, and that the
// mapping is reversible.
func FuzzName(f *testing.F) {
	for _, s := range []string{"a", "tree/node/17", "a//b", "a.b", "/a", "a/", "*", ">", "a b", strings.Repeat("x", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if (storage.Key{Scope: client, Class: storage.Public, Name: name}).Validate() != nil {
			return
		}
		if len(name) > storage.MaxNameLen {
			t.Fatalf("accepted a name of %d bytes", len(name))
		}
		subject := strings.ReplaceAll(name, "/", ".")
		for _, tok := range strings.Split(subject, ".") {
			if tok == "" || tok == "*" || tok == ">" {
				t.Fatalf("accepted %q: subject %q has token %q", name, subject, tok)
			}
		}
		if strings.ContainsFunc(subject, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
			t.Fatalf("accepted %q with a space, control or non-ASCII byte", name)
		}
		if strings.ReplaceAll(subject, ".", "/") != name {
			t.Fatalf("subject mapping of %q does not reverse", name)
		}
	})
}

func TestScope(t *testing.T) {
	if storage.GroupScope(nil) != storage.GroupScope([]byte{}) {
		t.Error("nil and empty group ids differ")
	}
	if id := storage.GroupScope(nil).GroupID(); id == nil || len(id) != 0 {
		t.Errorf("GroupID of the empty id = %#v, want non-nil empty", id)
	}
	id := []byte{1, 2}
	s := storage.GroupScope(id)
	id[0] = 9
	if got := s.GroupID(); !bytes.Equal(got, []byte{1, 2}) {
		t.Errorf("GroupScope did not copy the id: %x", got)
	}
	s.GroupID()[0] = 9
	if got := s.GroupID(); !bytes.Equal(got, []byte{1, 2}) {
		t.Errorf("GroupID did not copy the id: %x", got)
	}
	if client.GroupID() != nil || !client.IsClient() || client.IsGroup() {
		t.Error("client scope misreports itself")
	}
	var zero storage.Scope
	if zero.IsClient() || zero.IsGroup() || zero == client || zero == storage.GroupScope(nil) {
		t.Error("the zero scope is a valid scope")
	}
	for s, want := range map[storage.Scope]string{
		client:                               "client",
		zero:                                 "invalid",
		storage.GroupScope([]byte{0xab, 1}):  "group:ab01",
		storage.GroupScope(make([]byte, 40)): "group:" + strings.Repeat("00", 32) + "...(40 bytes)",
	} {
		if got := s.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
	for c, want := range map[storage.Class]string{storage.Public: "public", storage.KeyMaterial: "key-material", 0: "Class(0)", 7: "Class(7)"} {
		if got := c.String(); got != want {
			t.Errorf("Class String() = %q, want %q", got, want)
		}
	}
	k := storage.Key{Scope: storage.GroupScope([]byte{0xa}), Class: storage.KeyMaterial, Name: "epoch/1/secrets"}
	if got, want := k.String(), "group:0a/key-material/epoch/1/secrets"; got != want {
		t.Errorf("Key String() = %q, want %q", got, want)
	}
}

func TestOrderAndFind(t *testing.T) {
	keys := []storage.Key{
		{Scope: client, Class: storage.Public, Name: "z"},
		{Scope: client, Class: storage.KeyMaterial, Name: "a"},
		{Scope: storage.GroupScope(nil), Class: storage.Public, Name: "a"},
		{Scope: storage.GroupScope([]byte{0}), Class: storage.Public, Name: "a"},
		{Scope: gs, Class: storage.Public, Name: "a"},
		{Scope: gs, Class: storage.Public, Name: "a/b"},
		{Scope: gs, Class: storage.Public, Name: "b"},
		{Scope: gs, Class: storage.KeyMaterial, Name: "a"},
	}
	for i := range keys {
		for j := range keys {
			if got, want := keys[i].Compare(keys[j]), cmpInt(i, j); got != want {
				t.Errorf("%v.Compare(%v) = %d, want %d", keys[i], keys[j], got, want)
			}
		}
	}
	var rs []storage.Record
	for i := len(keys) - 1; i >= 0; i-- {
		rs = append(rs, storage.Record{Key: keys[i], Value: []byte(strconv.Itoa(i))})
	}
	storage.SortRecords(rs)
	for i := range rs {
		if rs[i].Key != keys[i] {
			t.Fatalf("SortRecords: record %d is %v, want %v", i, rs[i].Key, keys[i])
		}
	}
	g := &storage.GroupRecords{Version: 1, Records: rs[4:]}
	for _, c := range []struct {
		class storage.Class
		name  string
		want  string
	}{{storage.Public, "a", "4"}, {storage.Public, "a/b", "5"}, {storage.Public, "b", "6"}, {storage.KeyMaterial, "a", "7"}, {storage.KeyMaterial, "b", ""}, {storage.Public, "c", ""}} {
		v, ok := g.Find(c.class, c.name)
		if ok != (c.want != "") || string(v) != c.want {
			t.Errorf("Find(%v, %q) = %q, %v; want %q", c.class, c.name, v, ok, c.want)
		}
	}
	km, _ := g.Find(storage.KeyMaterial, "a")
	g.ClearKeyMaterial()
	if km[0] != 0 {
		t.Error("ClearKeyMaterial did not overwrite the value")
	}
	if v, ok := g.Find(storage.Public, "b"); !ok || string(v) != "6" {
		t.Error("ClearKeyMaterial touched a public record")
	}
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestRecordRedaction(t *testing.T) {
	secret := []byte("TOPSECRET")
	r := storage.Record{Key: storage.Key{Scope: gs, Class: storage.KeyMaterial, Name: "epoch/1/secrets"}, Value: secret}
	u := &storage.Unit{Scope: gs, Puts: []storage.Record{r}}
	g := &storage.GroupRecords{Version: 1, Records: []storage.Record{r}}
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		outs = append(outs, fmt.Sprintf(verb, r), fmt.Sprintf(verb, &r), fmt.Sprintf(verb, u), fmt.Sprintf(verb, *u), fmt.Sprintf(verb, g), fmt.Sprintf(verb, u.Puts))
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "record", r, "unit", u)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "record", r)
	outs = append(outs, buf.String(), r.String(), r.GoString())
	for _, o := range outs {
		for _, leak := range []string{string(secret), hex.EncodeToString(secret), strings.ToUpper(hex.EncodeToString(secret)), fmt.Sprint(secret)[1:8]} {
			if strings.Contains(o, leak) {
				t.Errorf("output shows the value: %s", o)
			}
		}
	}
	if got, want := r.String(), "{"+r.Key.String()+" (9 bytes)}"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestErrors(t *testing.T) {
	if !errors.Is(storage.ErrGroupNotFound, storage.ErrNotFound) {
		t.Error("ErrGroupNotFound does not match ErrNotFound")
	}
	if errors.Is(storage.ErrNotFound, storage.ErrGroupNotFound) {
		t.Error("ErrNotFound matches ErrGroupNotFound")
	}
	wrapped := fmt.Errorf("load: %w", storage.ErrGroupNotFound)
	if !errors.Is(wrapped, storage.ErrNotFound) || !errors.Is(wrapped, storage.ErrGroupNotFound) {
		t.Error("a wrapped ErrGroupNotFound lost a match")
	}
	all := []error{storage.ErrNotFound, storage.ErrConflict, storage.ErrWriteOnce, storage.ErrInvalidUnit, storage.ErrInvalidKey}
	for i, a := range all {
		for j, b := range all {
			if i != j && errors.Is(a, b) {
				t.Errorf("%v matches %v", a, b)
			}
		}
		if !strings.HasPrefix(a.Error(), "storage: ") {
			t.Errorf("%q lacks the package prefix", a)
		}
	}
}
