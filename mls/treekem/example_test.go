package treekem_test

import (
	"fmt"
	"log"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/ratchettree"
	"github.com/mlsengine/mlsengine/mls/treekem"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// member is one client: its leaf node, signing key and leaf private key.
type member struct {
	leaf    *wire.LeafNode
	sig     *ciphersuite.SigningKey
	leafKey *ciphersuite.HPKEPrivateKey
}

func newMember(suite *ciphersuite.Suite, name string) member {
	sig, err := suite.GenerateSigningKey(nil)
	if err != nil {
		log.Fatal(err)
	}
	leafKey, err := suite.GenerateKeyPair(nil)
	if err != nil {
		log.Fatal(err)
	}
	ln := &wire.LeafNode{
		EncryptionKey: leafKey.PublicKey(),
		SignatureKey:  sig.PublicKey(),
		Credential:    wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: []byte(name)},
		Capabilities: wire.Capabilities{
			Versions:     []wire.ProtocolVersion{wire.ProtocolVersionMLS10},
			CipherSuites: []uint16{uint16(suite.ID())},
			Credentials:  []wire.CredentialType{wire.CredentialTypeBasic},
		},
		LeafNodeSource: wire.LeafNodeSourceKeyPackage,
		Lifetime:       &wire.Lifetime{NotAfter: 1<<64 - 1},
	}
	// A real client signs its KeyPackage's leaf node; the example skips it.
	return member{leaf: ln, sig: sig, leafKey: leafKey}
}

// Alice creates a group and adds Bob with a Commit that carries an
// UpdatePath; Bob joins with the path secret of the Welcome, then commits
// an UpdatePath of his own, which Alice processes.
func Example() {
	suite, _ := ciphersuite.Lookup(ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	groupID := []byte("example group")
	groupContext := func(epoch uint64) func([]byte) ([]byte, error) {
		return func(treeHash []byte) ([]byte, error) {
			gc := wire.GroupContext{Version: wire.ProtocolVersionMLS10, CipherSuite: uint16(suite.ID()),
				GroupID: groupID, Epoch: epoch, TreeHash: treeHash}
			return gc.Bytes(), nil
		}
	}
	alice, bob := newMember(suite, "alice"), newMember(suite, "bob")

	// Epoch 0: Alice alone.
	tree, err := ratchettree.New(suite, alice.leaf)
	if err != nil {
		log.Fatal(err)
	}
	aliceState, _ := treekem.NewPrivateState(suite, 0, alice.leafKey, nil)

	// Alice commits Add(Bob) with a path: Bob is excluded from the
	// resolutions and gets his path secret through the Welcome.
	bobLeaf, _ := tree.AddLeaf(bob.leaf)
	created, err := treekem.CreateUpdatePath(tree, treekem.CreateParams{
		Sender: 0, GroupID: groupID, SigningKey: alice.sig,
		Excluded: []treemath.LeafIndex{bobLeaf}, GroupContext: groupContext(1),
	})
	if err != nil {
		log.Fatal(err)
	}
	aliceState = created.State
	welcomePathSecret, _ := created.PathSecret(bobLeaf)
	bobState, err := treekem.NewJoinerState(tree.Clone(), bobLeaf, bob.leafKey, 0, welcomePathSecret)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("Bob joined with", bobState)

	// Epoch 1 to 2: Bob commits a path; Alice processes it on her copy.
	aliceTree := tree.Clone()
	bobCommit, err := treekem.CreateUpdatePath(tree, treekem.CreateParams{
		Sender: bobLeaf, GroupID: groupID, SigningKey: bob.sig, GroupContext: groupContext(2),
	})
	if err != nil {
		log.Fatal(err)
	}
	received, err := treekem.ProcessUpdatePath(aliceTree, aliceState, treekem.ProcessParams{
		Sender: bobLeaf, GroupID: groupID, Path: bobCommit.Path, GroupContext: groupContext(2),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("same commit secret:", received.CommitSecret.Equal(bobCommit.CommitSecret))
	fmt.Println("same tree:", string(aliceTree.TreeHash()) == string(tree.TreeHash()))
	fmt.Println("Alice now holds", received.State)
	// Output:
	// Bob joined with treekem.PrivateState{leaf: 1, nodes: [1]}
	// same commit secret: true
	// same tree: true
	// Alice now holds treekem.PrivateState{leaf: 0, nodes: [1]}
}
