package framing_test

import (
	"bytes"
	"fmt"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/framing"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/secrettree"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// Example sends an application message from leaf 0 to leaf 1 of a
// two-member group. In a real group the secrets come from the epoch's
// *keyschedule.Epoch and the keys from the ratchet tree.
func Example() {
	suite, _ := ciphersuite.Lookup(ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	alice, _ := suite.GenerateSigningKey(bytes.NewReader(make([]byte, 32)))
	gc := &wire.GroupContext{
		Version:     wire.ProtocolVersionMLS10,
		CipherSuite: uint16(suite.ID()),
		GroupID:     []byte("group"),
		Epoch:       7,
	}
	nh := suite.HashLen()
	epochSecrets := &framing.Secrets{
		Suite:            suite,
		MembershipKey:    secret.Zero(nh),
		SenderDataSecret: secret.Zero(nh),
	}
	// Each member has its own secret tree for the epoch.
	member := func() *framing.Epoch {
		tree, _ := secrettree.New(suite, secret.Zero(nh), 2)
		return &framing.Epoch{
			Suite:      suite,
			Context:    gc,
			Secrets:    epochSecrets,
			SecretTree: tree,
			IsMember:   func(l treemath.LeafIndex) bool { return l < 2 },
			SignatureKey: func(ac *wire.AuthenticatedContent) ([]byte, error) {
				if ac.Content.Sender.LeafIndex != 0 {
					return nil, fmt.Errorf("no key for leaf %d", ac.Content.Sender.LeafIndex)
				}
				return alice.PublicKey(), nil
			},
		}
	}
	sender, receiver := member(), member()

	ac, err := sender.Sign(wire.WireFormatPrivateMessage, &wire.FramedContent{
		GroupID:         gc.GroupID,
		Epoch:           gc.Epoch,
		Sender:          wire.Sender{SenderType: wire.SenderTypeMember, LeafIndex: 0},
		ContentType:     wire.ContentTypeApplication,
		ApplicationData: []byte("hello, group"),
	}, alice)
	if err != nil {
		panic(err)
	}
	pm, err := sender.ProtectPrivate(ac, 16)
	if err != nil {
		panic(err)
	}
	b, _ := wire.Marshal(wire.WrapPrivateMessage(pm))

	m, err := wire.UnmarshalMLSMessage(b)
	if err != nil {
		panic(err)
	}
	got, sd, err := receiver.Unprotect(m)
	if err != nil {
		panic(err)
	}
	fmt.Printf("leaf %d, generation %d: %s\n", got.Content.Sender.LeafIndex, sd.Generation, got.Content.ApplicationData)

	// Each generation decrypts once.
	_, _, err = receiver.Unprotect(m)
	fmt.Println(err != nil)
	// Output:
	// leaf 0, generation 0: hello, group
	// true
}
