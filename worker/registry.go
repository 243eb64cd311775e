package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/mlsengine/mlsengine/events"
)

// The registry is a KV bucket of public facts the workers share: which
// members are hosted (with their suite, identity and signature public key,
// whose private key is in the member's jetstore), which groups each is in,
// and which member made each key package (so that a Welcome can be routed).
//
//	member.<m>                 memberInfo
//	group.<group token>.<m>    empty: m is in the group
//	kp.<hex key package ref>   the member's id
type registry struct {
	kv jetstream.KeyValue
}

// DefaultRegistryBucket is the registry's bucket.
const DefaultRegistryBucket = "mls_registry"

type memberInfo struct {
	Suite     uint16 `msgpack:"suite"`
	Identity  []byte `msgpack:"identity"`
	SignerPub []byte `msgpack:"signer"`
	// Request is the id of the create-member command that made it, so
	// that a redelivery of that command answers as the first time did.
	Request string `msgpack:"req"`
}

var errExists = errors.New("worker: exists already")

func openRegistry(ctx context.Context, js jetstream.JetStream, bucket string, replicas int, storage jetstream.StorageType) (*registry, error) {
	if bucket == "" {
		bucket = DefaultRegistryBucket
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, History: 1, Replicas: replicas, Storage: storage,
		Description: "mlsengine hosted members and their groups (public)"})
	if err != nil {
		return nil, fmt.Errorf("worker: registry bucket: %w", err)
	}
	return &registry{kv: kv}, nil
}

func (r *registry) addMember(ctx context.Context, m string, info memberInfo) error {
	b, err := msgpack.Marshal(&info)
	if err != nil {
		return err
	}
	if _, err := r.kv.Create(ctx, "member."+m, b); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return errExists
		}
		return err
	}
	return nil
}

func (r *registry) member(ctx context.Context, m string) (*memberInfo, error) {
	e, err := r.kv.Get(ctx, "member."+m)
	if err != nil {
		return nil, err
	}
	var info memberInfo
	if err := msgpack.Unmarshal(e.Value(), &info); err != nil {
		return nil, fmt.Errorf("worker: registry record of %s: %w", m, err)
	}
	return &info, nil
}

func (r *registry) join(ctx context.Context, groupID []byte, m string) error {
	_, err := r.kv.Put(ctx, "group."+events.GroupToken(groupID)+"."+m, nil)
	return err
}

func (r *registry) leave(ctx context.Context, groupID []byte, m string) error {
	err := r.kv.Delete(ctx, "group."+events.GroupToken(groupID)+"."+m)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	return err
}

// members lists the hosted members of a group.
func (r *registry) members(ctx context.Context, groupID []byte) ([]string, error) {
	prefix := "group." + events.GroupToken(groupID) + "."
	lister, err := r.kv.ListKeysFiltered(ctx, prefix+"*")
	if err != nil {
		return nil, err
	}
	var out []string
	for k := range lister.Keys() {
		out = append(out, strings.TrimPrefix(k, prefix))
	}
	return out, nil
}

func (r *registry) keyPackage(ctx context.Context, ref string, m string) error {
	_, err := r.kv.Put(ctx, "kp."+ref, []byte(m))
	return err
}

func (r *registry) keyPackageOwner(ctx context.Context, ref string) (string, error) {
	e, err := r.kv.Get(ctx, "kp."+ref)
	if err != nil {
		return "", err
	}
	return string(e.Value()), nil
}
