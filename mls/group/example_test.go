package group_test

import (
	"fmt"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// Alice creates a group, adds Bob, and they exchange a message.
func Example() {
	suite := ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	s, _ := ciphersuite.Lookup(suite)
	identity := func(name string) *group.Identity {
		sk, _ := s.GenerateSigningKey(nil)
		return &group.Identity{
			Credential: wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: []byte(name)},
			SigningKey: sk,
		}
	}
	cfg := &group.Config{RatchetTreeExtension: true}

	alice, err := group.Create(cfg, suite, identity("alice"), []byte("example"), nil)
	if err != nil {
		panic(err)
	}
	bobKP, _ := group.NewKeyPackage(suite, identity("bob"), cfg, nil)

	res, err := alice.Commit(&group.CommitOptions{Proposals: []*wire.Proposal{
		{ProposalType: wire.ProposalTypeAdd, Add: &wire.Add{KeyPackage: *bobKP.KeyPackage}},
	}})
	if err != nil {
		panic(err)
	}
	alice.MergePendingCommit()
	bob, err := group.Join(cfg, res.Welcome.Welcome, bobKP, nil)
	if err != nil {
		panic(err)
	}

	msg, _ := alice.Protect([]byte("hello, Bob"), nil)
	rm, err := bob.Process(msg)
	if err != nil {
		panic(err)
	}
	a, b := alice.EpochAuthenticator(), bob.EpochAuthenticator()
	fmt.Println(string(rm.ApplicationData), bob.Epoch(), bob.MemberCount(), a.Equal(b))
	// Output: hello, Bob 1 2 true
}
