package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/mlsengine/mlsengine/mls/codec"
)

// negativeCases is how many messages.json cases the exhaustive mutation
// tests use.
func negativeCases() int {
	if testing.Short() {
		return 2
	}
	return 8
}

func expectMalformed(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: decoded", what)
	} else if !errors.Is(err, codec.ErrMalformed) {
		t.Errorf("%s: error %v does not match codec.ErrMalformed", what, err)
	}
}

// TestSamplesRoundTrip checks that every derived sample re-encodes exactly,
// so that the mutation tests start from valid encodings.
func TestSamplesRoundTrip(t *testing.T) {
	seen := make(map[string]bool)
	for i, c := range loadMessages(t) {
		for _, s := range samples(t, c) {
			seen[s.kind] = true
			out, err := kinds[s.kind](s.b)
			if err != nil {
				t.Fatalf("case %d: %s: %v", i, s.kind, err)
			}
			if !bytes.Equal(out, s.b) {
				t.Fatalf("case %d: %s: re-encoding differs", i, s.kind)
			}
		}
	}
	for k := range kinds {
		if !seen[k] {
			t.Errorf("no sample of kind %s", k)
		}
	}
}

// TestMutations checks, for every structure, that every strict prefix and
// the input with a byte appended fail to decode, and that every single-bit
// flip either fails with codec.ErrMalformed or decodes to a value that
// re-encodes to the flipped bytes.
func TestMutations(t *testing.T) {
	cases := loadMessages(t)
	for i, c := range cases[:min(len(cases), negativeCases())] {
		for _, s := range samples(t, c) {
			dec := kinds[s.kind]
			padded := strings.HasPrefix(s.kind, "PrivateMessageContent/")
			if !padded {
				// A PrivateMessageContent's padding is the rest of the
				// plaintext: cutting padding or appending zeros is valid.
				for n := range len(s.b) {
					_, err := dec(s.b[:n])
					expectMalformed(t, s.kind+" prefix", err)
				}
				_, err := dec(append(bytes.Clone(s.b), 0))
				expectMalformed(t, s.kind+" with a byte appended", err)
			}
			_, err := dec(append(bytes.Clone(s.b), 1))
			expectMalformed(t, s.kind+" with a byte 1 appended", err)

			m := bytes.Clone(s.b)
			for j := range m {
				for bit := range 8 {
					m[j] ^= 1 << bit
					out, err := dec(m)
					switch {
					case err != nil && !errors.Is(err, codec.ErrMalformed):
						t.Errorf("case %d: %s: flip %d.%d: error %v does not match codec.ErrMalformed", i, s.kind, j, bit, err)
					case err == nil && !bytes.Equal(out, m):
						t.Errorf("case %d: %s: flip %d.%d: decodes but re-encodes differently", i, s.kind, j, bit)
					}
					m[j] ^= 1 << bit
				}
			}
		}
	}
}

// TestTargetedRejections covers specific strictness rules.
func TestTargetedRejections(t *testing.T) {
	c := loadMessages(t)[0]
	pub := c["public_message_commit"]
	welcome := c["mls_welcome"]

	mutate := func(b []byte, f func([]byte) []byte) []byte { return f(bytes.Clone(b)) }
	tests := []struct {
		name string
		b    []byte
		dec  reencoder
		want error
	}{
		{"unknown wire format", mutate(welcome, func(b []byte) []byte { b[3] = 6; return b }), kinds["MLSMessage"], ErrUnknownValue},
		{"reserved wire format", mutate(welcome, func(b []byte) []byte { b[3] = 0; return b }), kinds["MLSMessage"], ErrUnknownValue},
		{"unknown version", mutate(welcome, func(b []byte) []byte { b[1] = 2; return b }), kinds["MLSMessage"], ErrUnknownValue},
		{"truncated header", welcome[:3], kinds["MLSMessage"], codec.ErrTruncated},
		{"trailing byte", append(bytes.Clone(welcome), 0), kinds["MLSMessage"], codec.ErrTrailingBytes},
		// group_id<V> of a public message: re-encode its length 1-byte
		// header as a 2-byte one.
		{"non-minimal varint", nonMinimal(t, pub[4:]), kinds["PublicMessage"], codec.ErrNonMinimalVarint},
		{"varint reserved prefix", append([]byte{0, 1, 0, 1, 0xc0}, pub[5:]...), kinds["MLSMessage"], codec.ErrInvalidVarint},
		{"bad presence byte", badPresence(t, c["commit"]), kinds["Commit"], codec.ErrInvalidValue},
		{"bad padding", badPadding(t, pub), kinds["PrivateMessageContent/3"], ErrBadPadding},
		{"content type 0", []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, kinds["PrivateMessage"], ErrUnknownValue},
		{"content type 4", []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0}, kinds["PrivateMessage"], ErrUnknownValue},
		{"sender type 0", []byte{0}, kinds["Sender"], ErrUnknownValue},
		{"sender type 5", []byte{5}, kinds["Sender"], ErrUnknownValue},
		{"psk type 3", []byte{3, 0, 0}, kinds["PreSharedKeyID"], ErrUnknownValue},
		{"resumption usage 0", []byte{2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, kinds["PreSharedKeyID"], ErrUnknownValue},
		{"resumption usage 4", []byte{2, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, kinds["PreSharedKeyID"], ErrUnknownValue},
		{"proposal type 0", []byte{0, 0, 0}, kinds["Proposal"], ErrUnknownValue},
		{"ProposalOrRef type 3", []byte{3, 0}, kinds["ProposalOrRef"], ErrUnknownValue},
		{"node type 3", []byte{3}, kinds["Node"], ErrUnknownValue},
		{"credential type 3", []byte{0, 3, 0}, kinds["Credential"], ErrUnknownValue},
		{"credential type GREASE", []byte{0x0a, 0x0a, 0}, kinds["Credential"], ErrUnknownValue},
		{"leaf node source 0", leafWithSource(t, c["update_proposal"], 0), kinds["LeafNode"], ErrUnknownValue},
		{"leaf node source 4", leafWithSource(t, c["update_proposal"], 4), kinds["LeafNode"], ErrUnknownValue},
		{"empty tree", []byte{0}, kinds["RatchetTree"], ErrInvalidTree},
		{"trailing blank", trailingBlank(t, c["ratchet_tree"]), kinds["RatchetTree"], ErrInvalidTree},
		{"parent at a leaf index", []byte{5, 1, 2, 0, 0, 0}, kinds["RatchetTree"], ErrInvalidTree},
		{"duplicate extension", []byte{6, 0, 9, 0, 0, 9, 0}, kinds["GroupContextExtensions"], ErrDuplicateExtension},
		{"odd uint16 vector", []byte{1, 0, 0, 0, 0, 0}, kinds["Capabilities"], codec.ErrTruncated},
		{"framing wire format 3", append([]byte{0, 3}, mustEncode(t, &mustDecode[MLSMessage](t, pub).PublicMessage.Content)...), kinds["ConfirmedTranscriptHashInput"], ErrUnknownValue},
		{"huge length", []byte{0xbf, 0xff, 0xff, 0xff}, kinds["ApplicationID"], codec.ErrTruncated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.dec(tc.b)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !errors.Is(err, codec.ErrMalformed) {
				t.Fatalf("%v does not match codec.ErrMalformed", err)
			}
		})
	}
}

// nonMinimal rewrites the first 1-byte varint of b (the leading group_id
// length of a PublicMessage) in the 2-byte form.
func nonMinimal(t *testing.T, b []byte) []byte {
	t.Helper()
	if b[0] >= 64 {
		t.Fatal("length does not fit one byte")
	}
	return append([]byte{0x40, b[0]}, b[1:]...)
}

// badPresence sets the presence byte of a commit's path to 2.
func badPresence(t *testing.T, commit []byte) []byte {
	t.Helper()
	c := mustDecode[Commit](t, commit)
	var w codec.Writer
	writeList(&w, c.Proposals)
	n := len(w.Bytes())
	b := bytes.Clone(commit)
	if b[n] > 1 {
		t.Fatal("not a presence byte")
	}
	b[n] = 2
	return b
}

// badPadding builds a commit PrivateMessageContent with a non-zero padding
// byte.
func badPadding(t *testing.T, pubCommit []byte) []byte {
	t.Helper()
	pm := mustDecode[MLSMessage](t, pubCommit).PublicMessage
	c := &PrivateMessageContent{ContentType: ContentTypeCommit, Commit: pm.Content.Commit, Auth: pm.Auth, PaddingLength: 16}
	b := mustEncode(t, c)
	if _, err := UnmarshalPrivateMessageContent(b, ContentTypeCommit); err != nil {
		t.Fatalf("zero padding rejected: %v", err)
	}
	b[len(b)-5] = 0x80
	return b
}

// leafWithSource re-encodes a LeafNode with its leaf_node_source byte
// replaced.
func leafWithSource(t *testing.T, leaf []byte, src byte) []byte {
	t.Helper()
	ln := mustDecode[LeafNode](t, leaf)
	n := ln.tbsLen
	switch ln.LeafNodeSource {
	case LeafNodeSourceUpdate:
		// The source byte precedes only the extensions.
		var w codec.Writer
		writeExtensions(&w, ln.Extensions)
		n -= len(w.Bytes()) + 1
	default:
		t.Fatalf("update_proposal has source %v", ln.LeafNodeSource)
	}
	b := bytes.Clone(leaf)
	if LeafNodeSource(b[n]) != ln.LeafNodeSource {
		t.Fatal("source byte not found")
	}
	b[n] = src
	return b
}

// trailingBlank appends a blank node to an encoded ratchet tree.
func trailingBlank(t *testing.T, tree []byte) []byte {
	t.Helper()
	rt := *mustDecode[RatchetTree](t, tree)
	rt = append(rt, nil)
	return mustEncode(t, rt)
}

// TestNoPanicOnTypedExtensions feeds arbitrary extension data to the typed
// decoders.
func TestTypedExtensionErrors(t *testing.T) {
	e := Extension{ExtensionType: ExtensionTypeExternalPub, ExtensionData: []byte{5, 1}}
	if _, err := e.ExternalPub(); !errors.Is(err, codec.ErrMalformed) {
		t.Errorf("truncated external_pub: %v", err)
	}
	if _, err := e.RatchetTree(); !errors.Is(err, ErrExtensionType) {
		t.Errorf("wrong type: %v", err)
	}
	e = Extension{ExtensionType: ExtensionTypeApplicationID, ExtensionData: []byte{1, 'x', 0}}
	if _, err := e.ApplicationID(); !errors.Is(err, codec.ErrTrailingBytes) {
		t.Errorf("trailing bytes: %v", err)
	}
}
