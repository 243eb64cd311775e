package keyschedule_test

import (
	"fmt"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/keyschedule"
	"github.com/mlsengine/mlsengine/mls/secret"
)

// A committer derives the next epoch, hands the joiner_secret to new
// members, and a new member reaches the same epoch from it.
func Example() {
	suite, _ := ciphersuite.Lookup(1)
	groupContext := []byte("encoded GroupContext of the new epoch")

	// Committer: previous init_secret + commit_secret, then PSKs.
	init, _ := keyschedule.NewInitSecret(suite, secret.Zero(suite.HashLen()))
	joiner, _ := init.Joiner(secret.Secret{}, groupContext) // no path: commit_secret = 0
	pskSecret, _ := keyschedule.PSKSecret(suite, nil)       // no PSKs: psk_secret = 0
	member, _ := joiner.WithPSK(pskSecret)
	epoch, _ := member.Epoch(groupContext)

	// New member: joiner_secret from GroupSecrets.
	js, _ := keyschedule.NewJoinerSecret(suite, joiner.Secret())
	m2, _ := js.WithPSK(pskSecret)
	welcome, _ := m2.WelcomeSecret()
	key, nonce, _ := welcome.KeyNonce() // decrypt the GroupInfo with these
	epoch2, _ := m2.Epoch(groupContext)

	fmt.Println(epoch.EpochAuthenticator().Equal(epoch2.EpochAuthenticator()))
	fmt.Println(key.Len(), nonce.Len())
	exported, _ := epoch.Export("example", []byte("context"), 16)
	fmt.Println(exported.Len(), exported)

	// Stages are deleted by their owner once the new epoch is accepted.
	for _, c := range []interface{ Clear() }{init, joiner, member, js, m2, welcome} {
		c.Clear()
	}
	// Output:
	// true
	// 16 12
	// 16 [secret]
}
