package ratchettree_test

import (
	"fmt"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/ratchettree"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// leaf returns an unsigned leaf node, enough for tree operations.
func leaf(i byte) *wire.LeafNode {
	return &wire.LeafNode{
		EncryptionKey:  []byte{'e', i},
		SignatureKey:   []byte{'s', i},
		Credential:     wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: []byte{i}},
		LeafNodeSource: wire.LeafNodeSourceKeyPackage,
		Lifetime:       &wire.Lifetime{},
	}
}

// A group of five: the tree grows by doubling, a commit from member 4 sets
// its filtered direct path, and a rejected change is rolled back.
func Example() {
	suite, _ := ciphersuite.Lookup(ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	tree, _ := ratchettree.New(suite, leaf(0))
	for i := byte(1); i < 5; i++ {
		tree.AddLeaf(leaf(i))
	}
	fmt.Println("leaves:", tree.LeafCount(), "members:", tree.MemberCount())

	path, _ := tree.FilteredDirectPath(4)
	copath, _ := tree.FilteredCopath(4)
	fmt.Println("filtered direct path of leaf 4:", path, "copath:", copath)

	keys := [][]byte{[]byte("k7")} // one public key per filtered path node
	ph, _ := tree.MergePath(4, keys)
	fmt.Println("leaf parent hash bytes:", len(ph))
	fmt.Println("resolution of the root:", tree.Resolution(7))

	before := tree.TreeHash()
	cp := tree.Checkpoint()
	tree.RemoveLeaf(4)
	fmt.Println("after removing leaf 4:", tree.LeafCount(), "leaves")
	tree.Rollback(cp)
	fmt.Println("rolled back:", tree.LeafCount(), "leaves, same hash:", string(tree.TreeHash()) == string(before))
	// Output:
	// leaves: 8 members: 5
	// filtered direct path of leaf 4: [7] copath: [3]
	// leaf parent hash bytes: 32
	// resolution of the root: [7]
	// after removing leaf 4: 4 leaves
	// rolled back: 8 leaves, same hash: true
}
