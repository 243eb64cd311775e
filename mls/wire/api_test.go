package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/secret"
)

func TestSignedBytes(t *testing.T) {
	for i, c := range loadMessages(t)[:20] {
		kp, err := UnmarshalMLSKeyPackage(c["mls_key_package"])
		if err != nil {
			t.Fatal(err)
		}
		if kp.Raw() == nil || !bytes.Equal(kp.Bytes(), c["mls_key_package"][4:]) {
			t.Fatalf("case %d: KeyPackage.Bytes is not the received encoding", i)
		}
		recv := kp.TBS()
		fresh := mustEncode(t, &KeyPackageTBS{kp.Version, kp.CipherSuite, kp.InitKey, kp.LeafNode, kp.Extensions})
		if !bytes.Equal(recv, fresh) {
			t.Fatalf("case %d: KeyPackage.TBS differs from the encoded KeyPackageTBS", i)
		}
		if !bytes.HasPrefix(kp.Bytes(), recv) {
			t.Fatalf("case %d: TBS is not a prefix of the encoding", i)
		}
		kp.ClearRaw()
		if kp.Raw() != nil || !bytes.Equal(kp.TBS(), recv) {
			t.Fatalf("case %d: re-encoded TBS differs", i)
		}
		kp.InitKey = append(kp.InitKey, 1)
		if bytes.Equal(kp.TBS(), recv) {
			t.Fatalf("case %d: TBS ignores a modification after ClearRaw", i)
		}

		// LeafNodeTBS carries group_id and leaf_index only for leaves
		// created in a group (§7.2).
		for _, ln := range []*LeafNode{&kp.LeafNode, &mustDecode[Update](t, c["update_proposal"]).LeafNode} {
			gid := []byte("group id")
			recv := ln.TBS(gid, 42)
			want := &LeafNodeTBS{
				EncryptionKey: ln.EncryptionKey, SignatureKey: ln.SignatureKey, Credential: ln.Credential,
				Capabilities: ln.Capabilities, LeafNodeSource: ln.LeafNodeSource, Lifetime: ln.Lifetime,
				ParentHash: ln.ParentHash, Extensions: ln.Extensions, GroupID: gid, LeafIndex: 42,
			}
			if !bytes.Equal(recv, mustEncode(t, want)) {
				t.Fatalf("case %d: LeafNode.TBS(%v) differs from the encoded LeafNodeTBS", i, ln.LeafNodeSource)
			}
			hasContext := !bytes.Equal(recv, ln.TBS(nil, 0))
			if hasContext != (ln.LeafNodeSource != LeafNodeSourceKeyPackage) {
				t.Fatalf("case %d: %v leaf: group context in TBS = %v", i, ln.LeafNodeSource, hasContext)
			}
			ln.ClearRaw()
			if !bytes.Equal(ln.TBS(gid, 42), recv) {
				t.Fatalf("case %d: re-encoded LeafNode TBS differs", i)
			}
		}

		gi, err := UnmarshalMLSGroupInfo(c["mls_group_info"])
		if err != nil {
			t.Fatal(err)
		}
		recv = gi.TBS()
		gi.ClearRaw()
		if !bytes.Equal(recv, gi.TBS()) || !bytes.HasPrefix(c["mls_group_info"][4:], recv) {
			t.Fatalf("case %d: GroupInfo.TBS", i)
		}
	}
}

func TestFramedContentTBSContext(t *testing.T) {
	c := loadMessages(t)[0]
	gc := &mustDecode[MLSMessage](t, c["mls_group_info"]).GroupInfo.GroupContext
	pm := mustDecode[MLSMessage](t, c["public_message_proposal"]).PublicMessage
	for _, st := range []SenderType{SenderTypeMember, SenderTypeExternal, SenderTypeNewMemberProposal, SenderTypeNewMemberCommit} {
		content := pm.Content
		content.Sender = Sender{SenderType: st, LeafIndex: 1, SenderIndex: 2}
		tbs := NewFramedContentTBS(WireFormatPublicMessage, &content, gc)
		b := tbs.Bytes()
		withContext := bytes.HasSuffix(b, gc.Bytes())
		if withContext != (st == SenderTypeMember || st == SenderTypeNewMemberCommit) {
			t.Errorf("%v: GroupContext included = %v", st, withContext)
		}
		back, err := Unmarshal[FramedContentTBS](b)
		if err != nil {
			t.Fatalf("%v: %v", st, err)
		}
		if (back.Context != nil) != withContext {
			t.Errorf("%v: decoded context = %v", st, back.Context != nil)
		}

		// membership_tag is present only for members (§6.2).
		msg := WrapPublicMessage(&PublicMessage{Content: content, Auth: pm.Auth, MembershipTag: []byte{1, 2, 3}})
		enc := msg.Bytes()
		got, err := UnmarshalMLSPublicMessage(enc)
		if err != nil {
			t.Fatalf("%v: %v", st, err)
		}
		if (got.MembershipTag != nil) != (st == SenderTypeMember) {
			t.Errorf("%v: membership tag decoded = %x", st, got.MembershipTag)
		}
	}
}

func TestPrivateMessageContentPadding(t *testing.T) {
	c := loadMessages(t)[0]
	pm := mustDecode[MLSMessage](t, c["public_message_application"]).PublicMessage
	pmc := &PrivateMessageContent{
		ContentType:     ContentTypeApplication,
		ApplicationData: pm.Content.ApplicationData,
		Auth:            pm.Auth,
		PaddingLength:   100,
	}
	b := pmc.Bytes()
	got, err := UnmarshalPrivateMessageContent(b, ContentTypeApplication)
	if err != nil {
		t.Fatal(err)
	}
	if got.PaddingLength != 100 || !bytes.Equal(got.ApplicationData, pm.Content.ApplicationData) {
		t.Fatalf("padding %d", got.PaddingLength)
	}
	for i := len(b) - 100; i < len(b); i++ {
		m := bytes.Clone(b)
		m[i] = 1
		if _, err := UnmarshalPrivateMessageContent(m, ContentTypeApplication); !errors.Is(err, ErrBadPadding) {
			t.Fatalf("non-zero padding byte %d: %v", i, err)
		}
	}
	if _, err := UnmarshalPrivateMessageContent(b, 0); !errors.Is(err, ErrUnknownValue) {
		t.Fatalf("content type 0: %v", err)
	}
}

func TestSecretsDoNotPrint(t *testing.T) {
	gs := mustDecode[GroupSecrets](t, loadMessages(t)[0]["group_secrets"])
	if gs.JoinerSecret.Len() == 0 {
		t.Fatal("empty joiner secret")
	}
	js := hex.EncodeToString(gs.JoinerSecret.Bytes())
	for _, format := range []string{"%v", "%+v", "%#v", "%x", "%s"} {
		out := fmt.Sprintf(format, gs)
		if strings.Contains(out, js) || strings.Contains(out, fmt.Sprint(gs.JoinerSecret.Bytes())) {
			t.Errorf("%s prints the joiner secret", format)
		}
	}
	ps := &PathSecret{PathSecret: secret.Copy([]byte("path secret bytes"))}
	if strings.Contains(fmt.Sprintf("%+v", ps), "path secret bytes") {
		t.Error("PathSecret prints")
	}
}

func TestExtensionHelpers(t *testing.T) {
	c := loadMessages(t)[0]
	tree := *mustDecode[RatchetTree](t, c["ratchet_tree"])
	ln := mustDecode[Update](t, c["update_proposal"]).LeafNode
	rc := &RequiredCapabilities{ExtensionTypes: []ExtensionType{ExtensionTypeExternalSenders}}
	exts := []Extension{
		ApplicationIDExtension([]byte("app")),
		RatchetTreeExtension(tree),
		RequiredCapabilitiesExtension(rc),
		ExternalPubExtension([]byte("pub")),
		ExternalSendersExtension(ExternalSenders{{SignatureKey: ln.SignatureKey, Credential: ln.Credential}}),
		{ExtensionType: 0x0A0A, ExtensionData: []byte("grease")},
	}
	if err := CheckExtensions(exts); err != nil {
		t.Fatal(err)
	}
	if err := CheckExtensions(append(exts, exts[0])); !errors.Is(err, ErrDuplicateExtension) {
		t.Fatalf("duplicate: %v", err)
	}
	if id, err := FindExtension(exts, ExtensionTypeApplicationID).ApplicationID(); err != nil || string(id) != "app" {
		t.Fatalf("application_id: %q %v", id, err)
	}
	if got, err := FindExtension(exts, ExtensionTypeRatchetTree).RatchetTree(); err != nil || !bytes.Equal(got.Bytes(), c["ratchet_tree"]) {
		t.Fatalf("ratchet_tree: %v", err)
	}
	if got, err := FindExtension(exts, ExtensionTypeRequiredCapabilities).RequiredCapabilities(); err != nil || len(got.ExtensionTypes) != 1 {
		t.Fatalf("required_capabilities: %v", err)
	}
	if got, err := FindExtension(exts, ExtensionTypeExternalPub).ExternalPub(); err != nil || string(got.ExternalPub) != "pub" {
		t.Fatalf("external_pub: %v", err)
	}
	if got, err := FindExtension(exts, ExtensionTypeExternalSenders).ExternalSenders(); err != nil || len(got) != 1 || !got[0].Credential.Equal(&ln.Credential) {
		t.Fatalf("external_senders: %v", err)
	}
	if FindExtension(exts, 0x1A1A) != nil {
		t.Fatal("found an absent extension")
	}
	// Unknown extension types survive a round trip inside a GroupInfo.
	gi := &GroupInfo{GroupContext: GroupContext{Version: ProtocolVersionMLS10}, Extensions: exts}
	back, err := UnmarshalMLSGroupInfo(WrapGroupInfo(gi).Bytes())
	if err != nil || len(back.Extensions) != len(exts) || string(back.Extensions[5].ExtensionData) != "grease" {
		t.Fatalf("GroupInfo with extensions: %v", err)
	}
}

func TestUnmarshalHelpers(t *testing.T) {
	c := loadMessages(t)[0]
	if _, err := UnmarshalMLSKeyPackage(c["mls_welcome"]); !errors.Is(err, ErrUnexpectedWireFormat) || !errors.Is(err, codec.ErrMalformed) {
		t.Fatalf("welcome as key package: %v", err)
	}
	for name, f := range map[string]func([]byte) error{
		"mls_welcome":                func(b []byte) error { _, err := UnmarshalMLSWelcome(b); return err },
		"mls_group_info":             func(b []byte) error { _, err := UnmarshalMLSGroupInfo(b); return err },
		"mls_key_package":            func(b []byte) error { _, err := UnmarshalMLSKeyPackage(b); return err },
		"public_message_commit":      func(b []byte) error { _, err := UnmarshalMLSPublicMessage(b); return err },
		"private_message":            func(b []byte) error { _, err := UnmarshalMLSPrivateMessage(b); return err },
		"public_message_application": func(b []byte) error { _, err := UnmarshalMLSPublicMessage(b); return err },
	} {
		if err := f(c[name]); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	kp, err := Unmarshal[KeyPackage](c["add_proposal"])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(WrapKeyPackage(kp).Bytes(), append([]byte{0, 1, 0, 5}, c["add_proposal"]...)) {
		t.Fatal("WrapKeyPackage")
	}
}

// TestReceiverReset decodes into values that hold data from an earlier
// decode and checks that nothing survives.
func TestReceiverReset(t *testing.T) {
	c := loadMessages(t)[0]
	var m MLSMessage
	if err := codec.Unmarshal(c["mls_welcome"], &m); err != nil {
		t.Fatal(err)
	}
	if err := codec.Unmarshal(c["public_message_commit"], &m); err != nil {
		t.Fatal(err)
	}
	if m.Welcome != nil {
		t.Fatal("Welcome survived")
	}
	var p Proposal
	if err := codec.Unmarshal(append([]byte{0, 1}, c["add_proposal"]...), &p); err != nil {
		t.Fatal(err)
	}
	if err := codec.Unmarshal([]byte{0, 3, 0, 0, 0, 1}, &p); err != nil {
		t.Fatal(err)
	}
	if p.Add != nil || p.Remove == nil || p.Remove.Removed != 1 {
		t.Fatalf("%+v", p)
	}
	var kp KeyPackage
	if err := codec.Unmarshal(c["add_proposal"], &kp); err != nil {
		t.Fatal(err)
	}
	if err := codec.Unmarshal(c["add_proposal"][:10], &kp); err == nil {
		t.Fatal("truncated key package decoded")
	}
	if kp.Raw() != nil {
		t.Fatal("raw bytes survived a failed decode")
	}
}

// TestNilCases checks that a union whose selected case is nil encodes the
// case's zero value instead of panicking.
func TestNilCases(t *testing.T) {
	values := []codec.Marshaler{
		&MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatPublicMessage},
		&MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatKeyPackage},
		&MLSMessage{Version: ProtocolVersionMLS10, WireFormat: 99},
		&Proposal{ProposalType: ProposalTypeAdd},
		&Proposal{ProposalType: ProposalTypeGroupContextExtensions},
		&ProposalOrRef{Type: ProposalOrRefTypeProposal},
		&Node{NodeType: NodeTypeLeaf},
		&FramedContentTBS{Content: FramedContent{ContentType: ContentTypeCommit, Sender: Sender{SenderType: SenderTypeMember}}},
		&LeafNode{LeafNodeSource: LeafNodeSourceKeyPackage},
		&TreeHashInput{NodeType: NodeTypeParent},
		RatchetTree{nil, nil},
	}
	for _, v := range values {
		if _, err := codec.Marshal(v); err != nil {
			t.Errorf("%T: %v", v, err)
		}
	}
	b := mustEncode(t, &Proposal{ProposalType: ProposalTypeRemove})
	if !bytes.Equal(b, []byte{0, 3, 0, 0, 0, 0}) {
		t.Fatalf("nil Remove: %x", b)
	}
}

func TestIsGREASE(t *testing.T) {
	n := 0
	for v := range 1 << 16 {
		if IsGREASE(uint16(v)) {
			n++
			if v&0xFF != v>>8 || v&0x0F != 0x0A {
				t.Errorf("%#04x", v)
			}
		}
	}
	if n != 15 || IsGREASE(0xFAFA) || !IsGREASE(0x0A0A) || !IsGREASE(0xEAEA) {
		t.Fatalf("%d GREASE values", n)
	}
}

func ExampleUnmarshalMLSMessage() {
	// An MLSMessage carrying a PrivateMessage (§6.3) with empty fields.
	b := []byte{
		0x00, 0x01, // version = mls10
		0x00, 0x02, // wire_format = mls_private_message
		0x01, 'g', // group_id
		0, 0, 0, 0, 0, 0, 0, 7, // epoch
		0x01,       // content_type = application
		0x00,       // authenticated_data
		0x01, 0xaa, // encrypted_sender_data
		0x02, 0xbb, 0xcc, // ciphertext
	}
	msg, err := UnmarshalMLSMessage(b)
	if err != nil {
		fmt.Println(err)
		return
	}
	pm := msg.PrivateMessage
	fmt.Println(msg.WireFormat, string(pm.GroupID), pm.Epoch, pm.ContentType)

	_, err = UnmarshalMLSMessage(append(b, 0))
	fmt.Println(errors.Is(err, codec.ErrMalformed))
	// Output:
	// mls_private_message g 7 application
	// true
}
