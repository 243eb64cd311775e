package wire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/mlsengine/mlsengine/mls/codec"
)

const vectorDir = "../../testdata/vectors"

// codecValue is a pointer to a wire structure.
type codecValue[T any] interface {
	*T
	codec.Marshaler
	codec.Unmarshaler
}

// roundTrip decodes b as a T and returns the decoded value and its
// re-encoding.
func roundTrip[T any, P codecValue[T]](b []byte) (*T, []byte, error) {
	v := P(new(T))
	if err := codec.Unmarshal(b, v); err != nil {
		return nil, nil, err
	}
	out, err := codec.Marshal(v)
	if err != nil {
		return nil, nil, err
	}
	return (*T)(v), out, nil
}

// reencoder decodes one structure and returns its re-encoding.
type reencoder func(b []byte) ([]byte, error)

func reencode[T any, P codecValue[T]]() reencoder {
	return func(b []byte) ([]byte, error) {
		_, out, err := roundTrip[T, P](b)
		return out, err
	}
}

// mlsMessage decodes an MLSMessage and checks its wire format and, for
// public messages, its content type (ct 0: any).
func mlsMessage(wf WireFormat, ct ContentType) reencoder {
	return func(b []byte) ([]byte, error) {
		m, out, err := roundTrip[MLSMessage](b)
		if err != nil {
			return nil, err
		}
		if m.WireFormat != wf {
			return nil, fmt.Errorf("wire format %v, want %v", m.WireFormat, wf)
		}
		if ct != 0 && m.PublicMessage.Content.ContentType != ct {
			return nil, fmt.Errorf("content type %v, want %v", m.PublicMessage.Content.ContentType, ct)
		}
		return out, nil
	}
}

// messageFields maps each field of a messages.json case to its structure.
var messageFields = []struct {
	name string
	dec  reencoder
}{
	{"mls_welcome", mlsMessage(WireFormatWelcome, 0)},
	{"mls_group_info", mlsMessage(WireFormatGroupInfo, 0)},
	{"mls_key_package", mlsMessage(WireFormatKeyPackage, 0)},
	{"ratchet_tree", reencode[RatchetTree]()},
	{"group_secrets", reencode[GroupSecrets]()},
	{"add_proposal", reencode[Add]()},
	{"update_proposal", reencode[Update]()},
	{"remove_proposal", reencode[Remove]()},
	{"pre_shared_key_proposal", reencode[PreSharedKey]()},
	{"re_init_proposal", reencode[ReInit]()},
	{"external_init_proposal", reencode[ExternalInit]()},
	{"group_context_extensions_proposal", reencode[GroupContextExtensions]()},
	{"commit", reencode[Commit]()},
	{"public_message_application", mlsMessage(WireFormatPublicMessage, ContentTypeApplication)},
	{"public_message_proposal", mlsMessage(WireFormatPublicMessage, ContentTypeProposal)},
	{"public_message_commit", mlsMessage(WireFormatPublicMessage, ContentTypeCommit)},
	{"private_message", mlsMessage(WireFormatPrivateMessage, 0)},
}

// loadMessages returns the cases of messages.json, each field hex-decoded.
func loadMessages(tb testing.TB) []map[string][]byte {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(vectorDir, "messages.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var raw []map[string]string
	if err := json.Unmarshal(data, &raw); err != nil {
		tb.Fatal(err)
	}
	if len(raw) == 0 {
		tb.Fatal("messages.json has no cases")
	}
	cases := make([]map[string][]byte, len(raw))
	for i, c := range raw {
		cases[i] = make(map[string][]byte, len(c))
		for k, v := range c {
			b, err := hex.DecodeString(v)
			if err != nil {
				tb.Fatalf("case %d: %s: %v", i, k, err)
			}
			cases[i][k] = b
		}
	}
	return cases
}

// TestMessagesVectors is the verification of messages.json: every field
// decodes with its structure and re-encodes to the same bytes.
func TestMessagesVectors(t *testing.T) {
	for i, c := range loadMessages(t) {
		for _, f := range messageFields {
			b, ok := c[f.name]
			if !ok {
				t.Fatalf("case %d: no field %s", i, f.name)
			}
			out, err := f.dec(b)
			if err != nil {
				t.Errorf("case %d: %s: %v", i, f.name, err)
				continue
			}
			if !bytes.Equal(out, b) {
				t.Errorf("case %d: %s: re-encoding differs", i, f.name)
			}
		}
	}
}

// walkHex calls f with every string in v (decoded from JSON) found under a
// key named key, at any depth.
func walkHex(v any, key string, f func([]byte) error) (n int, err error) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == key {
				b, err := hex.DecodeString(s)
				if err != nil {
					return n, err
				}
				n++
				if err := f(b); err != nil {
					return n, fmt.Errorf("%s: %w", k, err)
				}
				continue
			}
			if l, ok := x.([]any); ok && k == key {
				for _, e := range l {
					if s, ok := e.(string); ok {
						b, err := hex.DecodeString(s)
						if err != nil {
							return n, err
						}
						n++
						if err := f(b); err != nil {
							return n, fmt.Errorf("%s: %w", k, err)
						}
					}
				}
				continue
			}
			m, err := walkHex(x, key, f)
			n += m
			if err != nil {
				return n, err
			}
		}
	case []any:
		for _, x := range v {
			m, err := walkHex(x, key, f)
			n += m
			if err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// TestOtherVectors round-trips the wire structures that the other vector
// files carry.
func TestOtherVectors(t *testing.T) {
	anyMLS := func(b []byte) ([]byte, error) { _, out, err := roundTrip[MLSMessage](b); return out, err }
	// key_package in passive-client files is sometimes a bare KeyPackage.
	keyPackage := func(b []byte) ([]byte, error) {
		if out, err := anyMLS(b); err == nil {
			return out, nil
		}
		_, out, err := roundTrip[KeyPackage](b)
		return out, err
	}
	checks := []struct {
		file, key string
		dec       reencoder
	}{
		{"welcome.json", "key_package", mlsMessage(WireFormatKeyPackage, 0)},
		{"welcome.json", "welcome", mlsMessage(WireFormatWelcome, 0)},
		{"tree-validation.json", "tree", reencode[RatchetTree]()},
		{"tree-operations.json", "tree_before", reencode[RatchetTree]()},
		{"tree-operations.json", "tree_after", reencode[RatchetTree]()},
		{"tree-operations.json", "proposal", reencode[Proposal]()},
		{"treekem.json", "ratchet_tree", reencode[RatchetTree]()},
		{"treekem.json", "update_path", reencode[UpdatePath]()},
		{"transcript-hashes.json", "authenticated_content", reencode[AuthenticatedContent]()},
		{"key-schedule.json", "group_context", reencode[GroupContext]()},
		{"message-protection.json", "proposal", reencode[Proposal]()},
		{"message-protection.json", "commit", reencode[Commit]()},
		{"message-protection.json", "proposal_pub", mlsMessage(WireFormatPublicMessage, ContentTypeProposal)},
		{"message-protection.json", "commit_pub", mlsMessage(WireFormatPublicMessage, ContentTypeCommit)},
		{"message-protection.json", "proposal_priv", mlsMessage(WireFormatPrivateMessage, 0)},
		{"message-protection.json", "commit_priv", mlsMessage(WireFormatPrivateMessage, 0)},
		{"message-protection.json", "application_priv", mlsMessage(WireFormatPrivateMessage, 0)},
		{"passive-client-welcome.json", "key_package", keyPackage},
		{"passive-client-welcome.json", "welcome", mlsMessage(WireFormatWelcome, 0)},
		{"passive-client-welcome.json", "ratchet_tree", reencode[RatchetTree]()},
		{"passive-client-handling-commit.json", "key_package", keyPackage},
		{"passive-client-handling-commit.json", "welcome", mlsMessage(WireFormatWelcome, 0)},
		{"passive-client-handling-commit.json", "commit", anyMLS},
		{"passive-client-handling-commit.json", "proposals", anyMLS},
	}
	for _, c := range checks {
		t.Run(c.file+"/"+c.key, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(vectorDir, c.file))
			if err != nil {
				t.Skip(err)
			}
			var v any
			if err := json.Unmarshal(data, &v); err != nil {
				t.Fatal(err)
			}
			n, err := walkHex(v, c.key, func(b []byte) error {
				out, err := c.dec(b)
				if err != nil {
					return err
				}
				if !bytes.Equal(out, b) {
					return errors.New("re-encoding differs")
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				t.Fatal("no values found")
			}
		})
	}
}
