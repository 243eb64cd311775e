package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/mlsengine/mlsengine/events"
)

// Registry is the KV bucket of public facts the workers share: which
// members are hosted (with their suite, identity and signature public key,
// whose private key is in the member's jetstore), which groups each is in,
// and which member made each key package (so that a Welcome can be routed).
// Workers write it; mlsadmin reads it (and writes it on restore).
//
//	member.<m>                 MemberInfo
//	group.<group token>.<m>    empty: m is in the group
//	kp.<hex key package ref>   the member's id
//	req.<m>                    the member's last key-packages command and result
//
// A worker keeps the group entries in memory, fed by an ordered consumer on
// the bucket's stream, so that delivering a message costs no listing; the
// registry's own writes update that view at once.
type Registry struct {
	js jetstream.JetStream
	kv jetstream.KeyValue

	mu sync.Mutex
	// infos caches member records: they never change once created.
	infos map[string]*MemberInfo
	// groups is the watched view of the group entries (token → members);
	// nil until the watch has delivered the bucket's current contents.
	groups map[string]map[string]struct{}
	// rev is the revision (stream sequence) of the view's state of each
	// group entry: an update older than what the view has, such as the
	// watch delivering the registry's own write late, changes nothing.
	rev map[string]uint64
}

// DefaultRegistryBucket is the registry's bucket.
const DefaultRegistryBucket = "mls_registry"

// MemberInfo is a hosted member's public record.
type MemberInfo struct {
	Suite     uint16 `msgpack:"suite"`
	Identity  []byte `msgpack:"identity"`
	SignerPub []byte `msgpack:"signer"`
	// Request is the id of the create-member command that made it, so
	// that a redelivery of that command answers as the first time did.
	Request string `msgpack:"req"`
}

var errExists = errors.New("worker: exists already")

// ErrUnknownMember: no hosted member of that id.
var ErrUnknownMember = errors.New("worker: no such hosted member")

func openRegistry(ctx context.Context, js jetstream.JetStream, bucket string, replicas int, storage jetstream.StorageType) (*Registry, error) {
	if bucket == "" {
		bucket = DefaultRegistryBucket
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, History: 1, Replicas: replicas, Storage: storage,
		Description: "mlsengine hosted members and their groups (public)"})
	if err != nil {
		return nil, fmt.Errorf("worker: registry bucket: %w", err)
	}
	return &Registry{js: js, kv: kv, infos: map[string]*MemberInfo{}}, nil
}

// OpenRegistry binds the registry bucket that workers made (bucket ""
// is DefaultRegistryBucket).
func OpenRegistry(ctx context.Context, js jetstream.JetStream, bucket string) (*Registry, error) {
	if bucket == "" {
		bucket = DefaultRegistryBucket
	}
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("worker: registry bucket %s (has a worker run?): %w", bucket, err)
	}
	return &Registry{js: js, kv: kv, infos: map[string]*MemberInfo{}}, nil
}

// AddMember records a new hosted member; an existing one is an error.
func (r *Registry) AddMember(ctx context.Context, m string, info MemberInfo) error {
	b, err := msgpack.Marshal(&info)
	if err != nil {
		return err
	}
	if _, err := r.kv.Create(ctx, "member."+m, b); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("%w: member %s", errExists, m)
		}
		return err
	}
	return nil
}

// Member returns a hosted member's record, or ErrUnknownMember.
func (r *Registry) Member(ctx context.Context, m string) (*MemberInfo, error) {
	r.mu.Lock()
	info := r.infos[m]
	r.mu.Unlock()
	if info != nil {
		return info, nil
	}
	e, err := r.kv.Get(ctx, "member."+m)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrUnknownMember
	}
	if err != nil {
		return nil, err
	}
	info = new(MemberInfo)
	if err := msgpack.Unmarshal(e.Value(), info); err != nil {
		return nil, fmt.Errorf("worker: registry record of %s: %w", m, err)
	}
	r.mu.Lock()
	r.infos[m] = info
	r.mu.Unlock()
	return info, nil
}

// HostedMembers lists the hosted members, sorted.
func (r *Registry) HostedMembers(ctx context.Context) ([]string, error) {
	keys, err := r.keys(ctx, "member.*")
	if err != nil {
		return nil, err
	}
	for i := range keys {
		keys[i] = strings.TrimPrefix(keys[i], "member.")
	}
	slices.Sort(keys)
	return keys, nil
}

// Memberships lists every group's hosted members, by group id.
func (r *Registry) Memberships(ctx context.Context) (map[string][]string, error) {
	keys, err := r.keys(ctx, "group.*.*")
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, k := range keys {
		tok, m, ok := splitGroupKey(k)
		if !ok {
			continue
		}
		id, err := events.ParseGroupToken(tok)
		if err != nil {
			continue
		}
		out[string(id)] = append(out[string(id)], m)
	}
	for _, ms := range out {
		slices.Sort(ms)
	}
	return out, nil
}

func splitGroupKey(k string) (tok, member string, ok bool) {
	rest, ok := strings.CutPrefix(k, "group.")
	if !ok {
		return "", "", false
	}
	return strings.Cut(rest, ".")
}

// keys lists the bucket's keys matching filter; none is not an error.
func (r *Registry) keys(ctx context.Context, filter string) ([]string, error) {
	lister, err := r.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, err
	}
	var out []string
	for k := range lister.Keys() {
		out = append(out, k)
	}
	return out, nil
}

// Join records that m is in the group.
func (r *Registry) Join(ctx context.Context, groupID []byte, m string) error {
	tok := events.GroupToken(groupID)
	rev, err := r.kv.Put(ctx, "group."+tok+"."+m, nil)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.update(tok, m, true, rev)
	r.mu.Unlock()
	return nil
}

// Leave records that m is no longer in the group.
func (r *Registry) Leave(ctx context.Context, groupID []byte, m string) error {
	tok := events.GroupToken(groupID)
	// A KV delete marker (ADR-8) published directly, for its revision.
	msg := nats.NewMsg("$KV." + r.kv.Bucket() + ".group." + tok + "." + m)
	msg.Header.Set("KV-Operation", "DEL")
	ack, err := r.js.PublishMsg(ctx, msg)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.update(tok, m, false, ack.Sequence)
	r.mu.Unlock()
	return nil
}

// update applies a group entry's state at revision rev to the view, if
// there is one and it has no newer state of the entry; r.mu is held.
func (r *Registry) update(tok, m string, in bool, rev uint64) {
	if r.groups == nil {
		return
	}
	key := tok + "." + m
	if rev <= r.rev[key] {
		return
	}
	r.rev[key] = rev
	ms := r.groups[tok]
	switch {
	case in && ms == nil:
		r.groups[tok] = map[string]struct{}{m: {}}
	case in:
		ms[m] = struct{}{}
	case ms != nil:
		delete(ms, m)
		if len(ms) == 0 {
			delete(r.groups, tok)
		}
	}
}

// GroupMembers lists the hosted members of a group: from the watched view
// once it is there, otherwise from the bucket.
func (r *Registry) GroupMembers(ctx context.Context, groupID []byte) ([]string, error) {
	tok := events.GroupToken(groupID)
	r.mu.Lock()
	if r.groups != nil {
		var out []string
		for m := range r.groups[tok] {
			out = append(out, m)
		}
		r.mu.Unlock()
		slices.Sort(out)
		return out, nil
	}
	r.mu.Unlock()
	prefix := "group." + tok + "."
	keys, err := r.keys(ctx, prefix+"*")
	if err != nil {
		return nil, err
	}
	for i := range keys {
		keys[i] = strings.TrimPrefix(keys[i], prefix)
	}
	slices.Sort(keys)
	return keys, nil
}

// watch keeps the view of the group entries until ctx is done, from an
// ordered consumer on the bucket's stream: the last entry of each key,
// then every change. Entries written by other workers (a partition this
// worker takes over) arrive within the server's delivery time, well before
// a partition can change hands (the pinned TTL). If the consumer fails,
// GroupMembers goes back to listing the bucket.
func (r *Registry) watch(ctx context.Context) error {
	pre := "$KV." + r.kv.Bucket() + "."
	c, err := r.js.OrderedConsumer(ctx, "KV_"+r.kv.Bucket(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{pre + "group.>"}, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy})
	if err != nil {
		return err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return err
	}
	view, revs := map[string]map[string]struct{}{}, map[string]uint64{}
	live := func() {
		r.mu.Lock()
		r.groups, r.rev = view, revs
		r.mu.Unlock()
	}
	if info.NumPending == 0 {
		live()
	}
	cc, err := c.Consume(func(msg jetstream.Msg) {
		md, err := msg.Metadata()
		if err != nil {
			return
		}
		tok, m, ok := splitGroupKey(strings.TrimPrefix(msg.Subject(), pre))
		if !ok {
			return
		}
		op := msg.Headers().Get("KV-Operation")
		in := op != "DEL" && op != "PURGE"
		r.mu.Lock()
		isLive := r.groups != nil
		if isLive {
			r.update(tok, m, in, md.Sequence.Stream)
		}
		r.mu.Unlock()
		if isLive {
			return
		}
		// The bucket's contents, before the view is used.
		key := tok + "." + m
		revs[key] = md.Sequence.Stream
		if in {
			if view[tok] == nil {
				view[tok] = map[string]struct{}{}
			}
			view[tok][m] = struct{}{}
		} else if view[tok] != nil {
			delete(view[tok], m)
		}
		if md.NumPending == 0 {
			live()
		}
	})
	if err != nil {
		return err
	}
	go func() {
		select {
		case <-ctx.Done():
		case <-cc.Closed():
		}
		cc.Stop()
		r.mu.Lock()
		r.groups, r.rev = nil, nil // back to listing
		r.mu.Unlock()
	}()
	return nil
}

// lastRequest is a member's last command that names no group and has an
// effect outside any group's cursor (key-packages): its id and result, so
// that a redelivery answers the same instead of acting twice. One per
// member is enough: such commands are in one partition, and only the last
// one can be redelivered.
type lastRequest struct {
	ID     string         `msgpack:"id"`
	Result *events.Result `msgpack:"r"`
}

// LastResult returns the result of the member's last recorded command if
// its id is id, or nil.
func (r *Registry) LastResult(ctx context.Context, m, id string) (*events.Result, error) {
	e, err := r.kv.Get(ctx, "req."+m)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var lr lastRequest
	if err := msgpack.Unmarshal(e.Value(), &lr); err != nil || lr.ID != id {
		return nil, nil
	}
	return lr.Result, nil
}

// SetLastResult records the result of the member's command id.
func (r *Registry) SetLastResult(ctx context.Context, m, id string, res *events.Result) error {
	b, err := msgpack.Marshal(&lastRequest{ID: id, Result: res})
	if err != nil {
		return err
	}
	_, err = r.kv.Put(ctx, "req."+m, b)
	return err
}

// KeyPackage records which member made a key package.
func (r *Registry) KeyPackage(ctx context.Context, ref string, m string) error {
	_, err := r.kv.Put(ctx, "kp."+ref, []byte(m))
	return err
}

// KeyPackageOwner names the member that made a key package.
func (r *Registry) KeyPackageOwner(ctx context.Context, ref string) (string, error) {
	e, err := r.kv.Get(ctx, "kp."+ref)
	if err != nil {
		return "", err
	}
	return string(e.Value()), nil
}
