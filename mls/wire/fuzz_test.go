package wire

import (
	"bytes"
	"errors"
	"testing"

	"github.com/mlsengine/mlsengine/mls/codec"
)

// fuzzDecoder seeds f with every sample of the given kinds and checks the
// malleability property: whatever decodes re-encodes to the input, and
// whatever fails, fails with codec.ErrMalformed.
func fuzzDecoder(f *testing.F, dec reencoder, seedKinds ...string) {
	n := 0
	for _, c := range loadMessages(f) {
		for _, s := range samples(f, c) {
			for _, k := range seedKinds {
				if s.kind == k {
					f.Add(s.b)
					n++
				}
			}
		}
	}
	if n == 0 {
		f.Fatalf("no seeds of kinds %v", seedKinds)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := dec(b)
		if err != nil {
			if !errors.Is(err, codec.ErrMalformed) {
				t.Fatalf("error %v does not match codec.ErrMalformed", err)
			}
			return
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", b, out)
		}
	})
}

func FuzzMLSMessage(f *testing.F) { fuzzDecoder(f, kinds["MLSMessage"], "MLSMessage") }

func FuzzPublicMessage(f *testing.F) { fuzzDecoder(f, kinds["PublicMessage"], "PublicMessage") }

func FuzzPrivateMessage(f *testing.F) { fuzzDecoder(f, kinds["PrivateMessage"], "PrivateMessage") }

func FuzzWelcome(f *testing.F) { fuzzDecoder(f, kinds["Welcome"], "Welcome") }

func FuzzGroupInfo(f *testing.F) { fuzzDecoder(f, kinds["GroupInfo"], "GroupInfo") }

func FuzzGroupContext(f *testing.F) { fuzzDecoder(f, kinds["GroupContext"], "GroupContext") }

func FuzzKeyPackage(f *testing.F) { fuzzDecoder(f, kinds["KeyPackage"], "KeyPackage") }

func FuzzLeafNode(f *testing.F) { fuzzDecoder(f, kinds["LeafNode"], "LeafNode") }

func FuzzLeafNodeTBS(f *testing.F) { fuzzDecoder(f, kinds["LeafNodeTBS"], "LeafNodeTBS") }

func FuzzRatchetTree(f *testing.F) { fuzzDecoder(f, kinds["RatchetTree"], "RatchetTree") }

func FuzzGroupSecrets(f *testing.F) { fuzzDecoder(f, kinds["GroupSecrets"], "GroupSecrets") }

func FuzzProposal(f *testing.F) { fuzzDecoder(f, kinds["Proposal"], "Proposal") }

func FuzzCommit(f *testing.F) { fuzzDecoder(f, kinds["Commit"], "Commit") }

func FuzzUpdatePath(f *testing.F) { fuzzDecoder(f, kinds["UpdatePath"], "UpdatePath") }

func FuzzPreSharedKeyID(f *testing.F) { fuzzDecoder(f, kinds["PreSharedKeyID"], "PreSharedKeyID") }

func FuzzAuthenticatedContent(f *testing.F) {
	fuzzDecoder(f, kinds["AuthenticatedContent"], "AuthenticatedContent")
}

func FuzzFramedContentTBS(f *testing.F) {
	fuzzDecoder(f, kinds["FramedContentTBS"], "FramedContentTBS")
}

func FuzzConfirmedTranscriptHashInput(f *testing.F) {
	fuzzDecoder(f, kinds["ConfirmedTranscriptHashInput"], "ConfirmedTranscriptHashInput")
}

func FuzzSenderData(f *testing.F) { fuzzDecoder(f, kinds["SenderData"], "SenderData") }

// FuzzPrivateMessageContent prefixes the plaintext with the content type
// that selects its layout.
func FuzzPrivateMessageContent(f *testing.F) {
	dec := func(b []byte) ([]byte, error) {
		if len(b) == 0 {
			return nil, codec.ErrTruncated
		}
		out, err := privateContent(ContentType(b[0]))(b[1:])
		if err != nil {
			return nil, err
		}
		return append([]byte{b[0]}, out...), nil
	}
	n := 0
	for _, c := range loadMessages(f) {
		for _, s := range samples(f, c) {
			for ct, k := range []string{"", "PrivateMessageContent/1", "PrivateMessageContent/2", "PrivateMessageContent/3"} {
				if ct > 0 && s.kind == k {
					f.Add(append([]byte{byte(ct)}, s.b...))
					n++
				}
			}
		}
	}
	if n == 0 {
		f.Fatal("no seeds")
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := dec(b)
		if err != nil {
			if !errors.Is(err, codec.ErrMalformed) {
				t.Fatalf("error %v does not match codec.ErrMalformed", err)
			}
			return
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", b, out)
		}
	})
}

// FuzzExtensionBodies runs the typed extension decoders; the first byte
// picks the extension type.
func FuzzExtensionBodies(f *testing.F) {
	bodies := []string{"ApplicationID", "RatchetTree", "RequiredCapabilities", "ExternalPub", "ExternalSenders"}
	n := 0
	for _, c := range loadMessages(f) {
		for _, s := range samples(f, c) {
			for i, k := range bodies {
				if s.kind == k {
					f.Add(append([]byte{byte(i + 1)}, s.b...))
					n++
				}
			}
		}
	}
	if n == 0 {
		f.Fatal("no seeds")
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		e := Extension{ExtensionType: ExtensionType(b[0]), ExtensionData: b[1:]}
		var v codec.Marshaler
		var err error
		switch e.ExtensionType {
		case ExtensionTypeApplicationID:
			v, err = e.ApplicationID()
		case ExtensionTypeRatchetTree:
			v, err = e.RatchetTree()
		case ExtensionTypeRequiredCapabilities:
			v, err = e.RequiredCapabilities()
		case ExtensionTypeExternalPub:
			v, err = e.ExternalPub()
		case ExtensionTypeExternalSenders:
			v, err = e.ExternalSenders()
		default:
			return
		}
		if err != nil {
			if !errors.Is(err, codec.ErrMalformed) {
				t.Fatalf("error %v does not match codec.ErrMalformed", err)
			}
			return
		}
		if out := NewExtension(e.ExtensionType, v); !bytes.Equal(out.ExtensionData, e.ExtensionData) {
			t.Fatalf("re-encoding differs")
		}
	})
}
