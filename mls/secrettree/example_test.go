package secrettree_test

import (
	"errors"
	"fmt"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/secrettree"
)

func Example() {
	suite, _ := ciphersuite.Lookup(1)
	encryptionSecret := secret.Zero(suite.HashLen()) // epoch.TakeEncryptionSecret()

	sender, _ := secrettree.New(suite, secret.Copy(encryptionSecret.Bytes()), 50000)
	receiver, _ := secrettree.New(suite, encryptionSecret, 50000,
		secrettree.WithOutOfOrderTolerance(5), secrettree.WithMaxForwardDistance(1000))

	// The member at leaf 42 sends three application messages.
	var sent []secrettree.KeyNonce
	for range 3 {
		kn, _ := sender.NextKey(42, secrettree.Application)
		sent = append(sent, kn)
	}

	// They arrive out of order; each key is handed out once.
	for _, g := range []uint32{2, 0, 1, 1} {
		kn, err := receiver.Key(42, secrettree.Application, g)
		if errors.Is(err, secrettree.ErrGenerationConsumed) {
			fmt.Println("generation", g, "replayed")
			continue
		}
		fmt.Println("generation", g, kn.Key.Equal(sent[g].Key), kn.Nonce.Equal(sent[g].Nonce))
		kn.Clear()
	}
	// Output:
	// generation 2 true true
	// generation 0 true true
	// generation 1 true true
	// generation 1 replayed
}

// A receiver that must not use up a key when it rejects the message
// prepares the key, and confirms only once the message is accepted.
func ExampleTree_TakeKey() {
	suite, _ := ciphersuite.Lookup(1)
	tree, _ := secrettree.New(suite, secret.Zero(suite.HashLen()), 2)

	tk, _ := tree.TakeKey(1, secrettree.Application, 0)
	kn := tk.KeyNonce()
	_ = kn // decrypt and verify the message; it turns out forged
	tk.Abort()

	// The genuine message of generation 0 still decrypts.
	tk, _ = tree.TakeKey(1, secrettree.Application, 0)
	kn = tk.KeyNonce()
	change, err := tk.Confirm()
	fmt.Println(err, len(change.Added.Ratchets), len(change.Removed.Ratchets))
	change.Added.Clear()
	kn.Clear()

	_, err = tree.TakeKey(1, secrettree.Application, 0)
	fmt.Println(errors.Is(err, secrettree.ErrGenerationConsumed))
	// Output:
	// <nil> 2 0
	// true
}
