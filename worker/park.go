package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/events"
)

// Parking. A message of an epoch a member has not reached comes before
// its commit in the group's partition, and the partition delivers in order
// (a message given back keeps its place: TestFactNakBlocksPartition), so
// it is set aside in a KV bucket and applied when a commit brings the
// member to its epoch. One that waits longer than Config.FutureWindow is
// rejected. Parked messages are MLS ciphertexts, public like the log.
//
//	<group token>.<member>.<log sequence, 20 digits>   parked{...}
//	<group token>.<member>                             the member has parked messages
//
// The second key lets a member that merged a commit find in one read that
// nothing is parked for it, instead of listing the bucket. It is written
// before the message and deleted once none is left, so a crash can leave
// it without messages (a wasted listing) but never a message without it.

// DefaultParkBucket is the bucket of parked messages.
const DefaultParkBucket = "mls_parked"

type parked struct {
	Data  []byte    `msgpack:"d"`
	Since time.Time `msgpack:"t"`
}

func openParking(ctx context.Context, js jetstream.JetStream, replicas int, storage jetstream.StorageType) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: DefaultParkBucket, History: 1, Replicas: replicas, Storage: storage,
		Description: "mlsengine messages of epochs their members have not reached yet"})
	if err != nil {
		return nil, fmt.Errorf("worker: parking bucket: %w", err)
	}
	return kv, nil
}

func parkPrefix(groupID []byte, member string) string {
	return events.GroupToken(groupID) + "." + member + "."
}

func parkIndex(groupID []byte, member string) string {
	return events.GroupToken(groupID) + "." + member
}

func (w *Worker) park(ctx context.Context, groupID []byte, member string, seq uint64, data []byte) error {
	b, err := msgpack.Marshal(&parked{Data: data, Since: time.Now()})
	if err != nil {
		return err
	}
	if _, err := w.parking.Put(ctx, parkIndex(groupID, member), []byte{1}); err != nil {
		return published(err)
	}
	_, err = w.parking.Put(ctx, parkPrefix(groupID, member)+fmt.Sprintf("%020d", seq), b)
	return published(err)
}

// unpark applies the member's parked messages of the epochs it has reached,
// in log order, and rejects those that waited too long.
func (w *Worker) unpark(ctx context.Context, h *engine.Group, member string, groupID []byte) error {
	if _, err := w.parking.Get(ctx, parkIndex(groupID, member)); errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil // nothing parked
	} else if err != nil {
		return published(err)
	}
	prefix := parkPrefix(groupID, member)
	lister, err := w.parking.ListKeysFiltered(ctx, prefix+"*")
	if err != nil {
		return published(err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	left := 0
	for _, k := range keys {
		e, err := w.parking.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return published(err)
		}
		var p parked
		if err := msgpack.Unmarshal(e.Value(), &p); err != nil {
			_ = w.parking.Delete(ctx, k)
			continue
		}
		seq, _ := strconv.ParseUint(strings.TrimPrefix(k, prefix), 10, 64)
		switch {
		case messageEpoch(p.Data) <= h.Epoch():
			if err := w.process(ctx, nil, h, member, groupID, seq, p.Data, true); err != nil {
				return err
			}
		case time.Since(p.Since) > w.cfg.FutureWindow:
			if err := w.event(ctx, &events.Event{Kind: events.EvRejected, Member: member, Group: groupID, Seq: seq, Epoch: h.Epoch(),
				Code: events.CodeWrongEpoch, Detail: "its epoch did not come in time"}, "rej-"+member+"-"+strconv.FormatUint(seq, 10)); err != nil {
				return err
			}
		default:
			left++
			continue
		}
		if err := w.parking.Delete(ctx, k); err != nil {
			return published(err)
		}
	}
	if left == 0 {
		if err := w.parking.Delete(ctx, parkIndex(groupID, member)); err != nil {
			return published(err)
		}
	}
	return nil
}
