package framing_test

import (
	"testing"

	"github.com/mlsengine/mlsengine/internal/vectors"
	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/framing"
	"github.com/mlsengine/mlsengine/mls/keyschedule"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/secrettree"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

const vectorPath = "../../testdata/vectors/message-protection.json"

type hexBytes = vectors.Hex

// vector is one case of message-protection.json.
type vector struct {
	CipherSuite             uint16   `json:"cipher_suite"`
	GroupID                 hexBytes `json:"group_id"`
	Epoch                   uint64   `json:"epoch"`
	TreeHash                hexBytes `json:"tree_hash"`
	ConfirmedTranscriptHash hexBytes `json:"confirmed_transcript_hash"`
	SignaturePriv           hexBytes `json:"signature_priv"`
	SignaturePub            hexBytes `json:"signature_pub"`
	EncryptionSecret        hexBytes `json:"encryption_secret"`
	SenderDataSecret        hexBytes `json:"sender_data_secret"`
	MembershipKey           hexBytes `json:"membership_key"`
	Proposal                hexBytes `json:"proposal"`
	ProposalPub             hexBytes `json:"proposal_pub"`
	ProposalPriv            hexBytes `json:"proposal_priv"`
	Commit                  hexBytes `json:"commit"`
	CommitPub               hexBytes `json:"commit_pub"`
	CommitPriv              hexBytes `json:"commit_priv"`
	Application             hexBytes `json:"application"`
	ApplicationPriv         hexBytes `json:"application_priv"`
}

func loadVectors(tb testing.TB) []vector {
	tb.Helper()
	vs, err := vectors.Load[vector](vectorPath)
	if err != nil {
		tb.Fatal(err)
	}
	return vs
}

// senderLeaf is the sender of every vector message.
const senderLeaf = 1

// fixture is everything a test needs to protect and unprotect the
// messages of one vector case.
type fixture struct {
	v     vector
	suite *ciphersuite.Suite
	gc    *wire.GroupContext
	key   *ciphersuite.SigningKey
}

func newFixture(tb testing.TB, v vector) *fixture {
	tb.Helper()
	suite, err := ciphersuite.Lookup(ciphersuite.ID(v.CipherSuite))
	if err != nil {
		tb.Fatal(err)
	}
	key, err := suite.ParseSigningKey(v.SignaturePriv)
	if err != nil {
		tb.Fatal(err)
	}
	return &fixture{
		v:     v,
		suite: suite,
		gc: &wire.GroupContext{
			Version:                 wire.ProtocolVersionMLS10,
			CipherSuite:             v.CipherSuite,
			GroupID:                 v.GroupID,
			Epoch:                   v.Epoch,
			TreeHash:                v.TreeHash,
			ConfirmedTranscriptHash: v.ConfirmedTranscriptHash,
			Extensions:              []wire.Extension{},
		},
		key: key,
	}
}

// tree returns a fresh 2-leaf secret tree of the case.
func (f *fixture) tree(tb testing.TB, opts ...secrettree.Option) *secrettree.Tree {
	tb.Helper()
	t, err := secrettree.New(f.suite, secret.Copy(f.v.EncryptionSecret), 2, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// epoch returns a framing.Epoch of the case over tree, whose members are
// leaves 0 and 1 and whose every sender signs with the case's key.
func (f *fixture) epoch(tree *secrettree.Tree) *framing.Epoch {
	pub := f.v.SignaturePub
	return &framing.Epoch{
		Suite:   f.suite,
		Context: f.gc,
		Secrets: &framing.Secrets{
			Suite:            f.suite,
			MembershipKey:    secret.Copy(f.v.MembershipKey),
			SenderDataSecret: secret.Copy(f.v.SenderDataSecret),
		},
		SecretTree:   tree,
		IsMember:     func(l treemath.LeafIndex) bool { return l < 2 },
		SignatureKey: func(*wire.AuthenticatedContent) ([]byte, error) { return pub, nil },
		Rand:         zeroReader{},
	}
}

// content returns the FramedContent of a raw proposal, commit or
// application message of the case, sent by senderLeaf.
func (f *fixture) content(tb testing.TB, ct wire.ContentType, raw []byte) *wire.FramedContent {
	tb.Helper()
	c := &wire.FramedContent{
		GroupID:           f.v.GroupID,
		Epoch:             f.v.Epoch,
		Sender:            wire.Sender{SenderType: wire.SenderTypeMember, LeafIndex: senderLeaf},
		AuthenticatedData: []byte{},
		ContentType:       ct,
	}
	var err error
	switch ct {
	case wire.ContentTypeApplication:
		c.ApplicationData = raw
	case wire.ContentTypeProposal:
		c.Proposal, err = wire.Unmarshal[wire.Proposal](raw)
	case wire.ContentTypeCommit:
		c.Commit, err = wire.Unmarshal[wire.Commit](raw)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// confirmationTag is the tag the case's commit carries: it cannot be
// recomputed without the confirmation key, so tests carry it over.
func (f *fixture) confirmationTag(tb testing.TB) []byte {
	tb.Helper()
	pm, err := wire.UnmarshalMLSPublicMessage(f.v.CommitPub)
	if err != nil {
		tb.Fatal(err)
	}
	return pm.Auth.ConfirmationTag
}

// body returns the encoding of the raw value ac carries.
func body(tb testing.TB, ac *wire.AuthenticatedContent) []byte {
	tb.Helper()
	switch ac.Content.ContentType {
	case wire.ContentTypeProposal:
		return mustMarshal(tb, ac.Content.Proposal)
	case wire.ContentTypeCommit:
		return mustMarshal(tb, ac.Content.Commit)
	}
	return ac.Content.ApplicationData
}

func mustMarshal(tb testing.TB, v codec.Marshaler) []byte {
	tb.Helper()
	b, err := wire.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// zeroReader yields zero reuse guards, so that tests are reproducible.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// A group passes its key schedule epoch as is.
var _ framing.EpochSecrets = (*keyschedule.Epoch)(nil)
