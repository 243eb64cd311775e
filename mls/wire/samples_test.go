package wire

import (
	"testing"

	"github.com/mlsengine/mlsengine/mls/codec"
)

// A sample is a valid encoding of one structure, taken or derived from
// messages.json.
type sample struct {
	kind string
	b    []byte
}

// kinds maps every sample kind to the decoder that must reproduce it. All
// kinds are prefix-free except PrivateMessageContent, whose padding is the
// rest of the input.
var kinds = map[string]reencoder{
	"MLSMessage":                   reencode[MLSMessage](),
	"PublicMessage":                reencode[PublicMessage](),
	"PrivateMessage":               reencode[PrivateMessage](),
	"Welcome":                      reencode[Welcome](),
	"GroupInfo":                    reencode[GroupInfo](),
	"GroupInfoTBS":                 reencode[GroupInfoTBS](),
	"GroupContext":                 reencode[GroupContext](),
	"KeyPackage":                   reencode[KeyPackage](),
	"KeyPackageTBS":                reencode[KeyPackageTBS](),
	"LeafNode":                     reencode[LeafNode](),
	"LeafNodeTBS":                  reencode[LeafNodeTBS](),
	"Credential":                   reencode[Credential](),
	"Capabilities":                 reencode[Capabilities](),
	"Extension":                    reencode[Extension](),
	"RatchetTree":                  reencode[RatchetTree](),
	"Node":                         reencode[Node](),
	"ParentNode":                   reencode[ParentNode](),
	"GroupSecrets":                 reencode[GroupSecrets](),
	"EncryptedGroupSecrets":        reencode[EncryptedGroupSecrets](),
	"Proposal":                     reencode[Proposal](),
	"Add":                          reencode[Add](),
	"Update":                       reencode[Update](),
	"Remove":                       reencode[Remove](),
	"PreSharedKey":                 reencode[PreSharedKey](),
	"PreSharedKeyID":               reencode[PreSharedKeyID](),
	"ReInit":                       reencode[ReInit](),
	"ExternalInit":                 reencode[ExternalInit](),
	"GroupContextExtensions":       reencode[GroupContextExtensions](),
	"Commit":                       reencode[Commit](),
	"ProposalOrRef":                reencode[ProposalOrRef](),
	"UpdatePath":                   reencode[UpdatePath](),
	"UpdatePathNode":               reencode[UpdatePathNode](),
	"HPKECiphertext":               reencode[HPKECiphertext](),
	"FramedContent":                reencode[FramedContent](),
	"FramedContentTBS":             reencode[FramedContentTBS](),
	"AuthenticatedContent":         reencode[AuthenticatedContent](),
	"AuthenticatedContentTBM":      reencode[AuthenticatedContentTBM](),
	"ConfirmedTranscriptHashInput": reencode[ConfirmedTranscriptHashInput](),
	"InterimTranscriptHashInput":   reencode[InterimTranscriptHashInput](),
	"Sender":                       reencode[Sender](),
	"SenderData":                   reencode[SenderData](),
	"SenderDataAAD":                reencode[SenderDataAAD](),
	"PrivateContentAAD":            reencode[PrivateContentAAD](),
	"TreeHashInput":                reencode[TreeHashInput](),
	"LeafNodeHashInput":            reencode[LeafNodeHashInput](),
	"ParentNodeHashInput":          reencode[ParentNodeHashInput](),
	"ParentHashInput":              reencode[ParentHashInput](),
	"PSKLabel":                     reencode[PSKLabel](),
	"RequiredCapabilities":         reencode[RequiredCapabilities](),
	"ExternalSenders":              reencode[ExternalSenders](),
	"ExternalPub":                  reencode[ExternalPub](),
	"ApplicationID":                reencode[ApplicationID](),
	"PrivateMessageContent/1":      privateContent(ContentTypeApplication),
	"PrivateMessageContent/2":      privateContent(ContentTypeProposal),
	"PrivateMessageContent/3":      privateContent(ContentTypeCommit),
	"FramedContentAuthData/1":      authData(ContentTypeApplication),
	"FramedContentAuthData/2":      authData(ContentTypeProposal),
	"FramedContentAuthData/3":      authData(ContentTypeCommit),
}

func privateContent(ct ContentType) reencoder {
	return func(b []byte) ([]byte, error) {
		c, err := UnmarshalPrivateMessageContent(b, ct)
		if err != nil {
			return nil, err
		}
		return codec.Marshal(c)
	}
}

func authData(ct ContentType) reencoder {
	return func(b []byte) ([]byte, error) {
		a := &FramedContentAuthData{ContentType: ct}
		if err := codec.Unmarshal(b, a); err != nil {
			return nil, err
		}
		return codec.Marshal(a)
	}
}

func mustDecode[T any, P codecValue[T]](tb testing.TB, b []byte) *T {
	tb.Helper()
	v, _, err := roundTrip[T, P](b)
	if err != nil {
		tb.Fatalf("decoding %T: %v", v, err)
	}
	return v
}

func mustEncode(tb testing.TB, v codec.Marshaler) []byte {
	tb.Helper()
	b, err := codec.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// samples returns the fields of one messages.json case and structures
// derived from them, each with its kind.
func samples(tb testing.TB, c map[string][]byte) []sample {
	tb.Helper()
	var out []sample
	add := func(kind string, b []byte) {
		if _, ok := kinds[kind]; !ok {
			tb.Fatalf("no decoder for kind %s", kind)
		}
		out = append(out, sample{kind, b})
	}
	addV := func(kind string, v codec.Marshaler) { add(kind, mustEncode(tb, v)) }

	for _, f := range []string{"mls_welcome", "mls_group_info", "mls_key_package",
		"public_message_application", "public_message_proposal", "public_message_commit", "private_message"} {
		add("MLSMessage", c[f])
	}
	add("RatchetTree", c["ratchet_tree"])
	add("GroupSecrets", c["group_secrets"])
	bodies := []struct {
		kind string
		pt   ProposalType
		f    string
	}{
		{"Add", ProposalTypeAdd, "add_proposal"},
		{"Update", ProposalTypeUpdate, "update_proposal"},
		{"Remove", ProposalTypeRemove, "remove_proposal"},
		{"PreSharedKey", ProposalTypePSK, "pre_shared_key_proposal"},
		{"ReInit", ProposalTypeReInit, "re_init_proposal"},
		{"ExternalInit", ProposalTypeExternalInit, "external_init_proposal"},
		{"GroupContextExtensions", ProposalTypeGroupContextExtensions, "group_context_extensions_proposal"},
	}
	for _, p := range bodies {
		add(p.kind, c[p.f])
		add("Proposal", append([]byte{byte(p.pt >> 8), byte(p.pt)}, c[p.f]...))
	}
	// A custom proposal of an unregistered type.
	add("Proposal", []byte{0xf0, 0x01, 3, 'a', 'b', 'c'})
	add("Commit", c["commit"])
	add("KeyPackage", c["add_proposal"])
	add("LeafNode", c["update_proposal"])
	add("PreSharedKeyID", c["pre_shared_key_proposal"])
	add("Welcome", c["mls_welcome"][4:])
	add("GroupInfo", c["mls_group_info"][4:])
	add("PrivateMessage", c["private_message"][4:])

	kp := mustDecode[Add](tb, c["add_proposal"]).KeyPackage
	add("KeyPackageTBS", kp.TBS())
	add("LeafNodeTBS", kp.LeafNode.TBS(nil, 0))
	addV("Credential", &kp.LeafNode.Credential)
	addV("Capabilities", &kp.LeafNode.Capabilities)
	for i := range kp.Extensions {
		addV("Extension", &kp.Extensions[i])
	}
	ln := mustDecode[Update](tb, c["update_proposal"]).LeafNode
	add("LeafNodeTBS", ln.TBS([]byte("group"), 7))
	addV("LeafNodeHashInput", &LeafNodeHashInput{LeafIndex: 3, LeafNode: &ln})
	addV("LeafNodeHashInput", &LeafNodeHashInput{LeafIndex: 4})
	addV("TreeHashInput", &TreeHashInput{NodeType: NodeTypeLeaf, LeafNode: &LeafNodeHashInput{LeafIndex: 1, LeafNode: &ln}})

	psk := mustDecode[PreSharedKey](tb, c["pre_shared_key_proposal"]).PSK
	addV("PSKLabel", &PSKLabel{ID: psk, Index: 1, Count: 2})

	gs := mustDecode[GroupSecrets](tb, c["group_secrets"])
	for i := range gs.PSKs {
		addV("PreSharedKeyID", &gs.PSKs[i])
	}

	tree := mustDecode[RatchetTree](tb, c["ratchet_tree"])
	// messages.json trees have no parent nodes: add a tree that has one.
	parent := &Node{NodeType: NodeTypeParent, ParentNode: &ParentNode{
		EncryptionKey:  ln.EncryptionKey,
		ParentHash:     ln.SignatureKey,
		UnmergedLeaves: []uint32{1, 70000},
	}}
	leaf := &Node{NodeType: NodeTypeLeaf, LeafNode: &ln}
	withParent := RatchetTree{leaf, parent, leaf, nil, nil, nil, leaf}
	addV("RatchetTree", withParent)
	for _, n := range append(*tree, withParent...) {
		if n == nil {
			continue
		}
		addV("Node", n)
		if n.ParentNode != nil {
			p := n.ParentNode
			addV("ParentNode", p)
			addV("ParentNodeHashInput", &ParentNodeHashInput{ParentNode: p, LeftHash: []byte{1}, RightHash: []byte{2, 3}})
			addV("TreeHashInput", &TreeHashInput{NodeType: NodeTypeParent, ParentNode: &ParentNodeHashInput{}})
			addV("ParentHashInput", &ParentHashInput{EncryptionKey: p.EncryptionKey, ParentHash: p.ParentHash, OriginalSiblingTreeHash: []byte{9}})
		}
	}

	gi := mustDecode[MLSMessage](tb, c["mls_group_info"]).GroupInfo
	add("GroupInfoTBS", gi.TBS())
	addV("GroupContext", &gi.GroupContext)
	for _, exts := range [][]Extension{gi.Extensions, gi.GroupContext.Extensions} {
		for i := range exts {
			addV("Extension", &exts[i])
		}
	}
	gc := &gi.GroupContext

	wm := mustDecode[MLSMessage](tb, c["mls_welcome"]).Welcome
	for i := range wm.Secrets {
		addV("EncryptedGroupSecrets", &wm.Secrets[i])
		addV("HPKECiphertext", &wm.Secrets[i].EncryptedGroupSecrets)
	}

	commit := mustDecode[Commit](tb, c["commit"])
	for i := range commit.Proposals {
		addV("ProposalOrRef", &commit.Proposals[i])
	}
	if commit.Path != nil {
		addV("UpdatePath", commit.Path)
		for i := range commit.Path.Nodes {
			addV("UpdatePathNode", &commit.Path.Nodes[i])
		}
	}

	for _, f := range []string{"public_message_application", "public_message_proposal", "public_message_commit"} {
		add("PublicMessage", c[f][4:])
		pm := mustDecode[MLSMessage](tb, c[f]).PublicMessage
		ac := pm.AuthenticatedContent()
		ct := pm.Content.ContentType
		addV("FramedContent", &pm.Content)
		addV("Sender", &pm.Content.Sender)
		addV("AuthenticatedContent", ac)
		addV("FramedContentTBS", ac.TBS(gc))
		addV("AuthenticatedContentTBM", pm.TBM(gc))
		addV("ConfirmedTranscriptHashInput", ac.ConfirmedTranscriptHashInput())
		addV("InterimTranscriptHashInput", ac.InterimTranscriptHashInput())
		kind := map[ContentType]string{1: "1", 2: "2", 3: "3"}[ct]
		addV("FramedContentAuthData/"+kind, &pm.Auth)
		for _, pad := range []int{0, 1, 13} {
			addV("PrivateMessageContent/"+kind, &PrivateMessageContent{
				ContentType:     ct,
				ApplicationData: pm.Content.ApplicationData,
				Proposal:        pm.Content.Proposal,
				Commit:          pm.Content.Commit,
				Auth:            pm.Auth,
				PaddingLength:   pad,
			})
		}
	}

	priv := mustDecode[MLSMessage](tb, c["private_message"]).PrivateMessage
	addV("SenderDataAAD", priv.SenderDataAAD())
	addV("PrivateContentAAD", priv.ContentAAD())
	addV("SenderData", &SenderData{LeafIndex: 5, Generation: 1 << 20, ReuseGuard: [4]byte{1, 2, 3, 4}})

	// Typed extension bodies.
	addV("RequiredCapabilities", &RequiredCapabilities{
		ExtensionTypes:  []ExtensionType{ExtensionTypeExternalSenders, 0x0A0A},
		ProposalTypes:   []ProposalType{0xf001},
		CredentialTypes: []CredentialType{CredentialTypeBasic, CredentialTypeX509},
	})
	addV("ExternalSenders", ExternalSenders{{SignatureKey: ln.SignatureKey, Credential: ln.Credential}})
	addV("ExternalPub", &ExternalPub{ExternalPub: ln.EncryptionKey})
	addV("ApplicationID", ApplicationID("app id"))
	return out
}
