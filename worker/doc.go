// Package worker applies the log of package events to hosted MLS members:
// it consumes the log stream's partitions (one consumer per partition,
// pinned to one worker at a time, so that every group's inputs are applied
// in order and another worker takes a partition over when its worker
// stops), applies each input through the engine with its members' state in
// jetstore, publishes what the members produce (commits, Welcomes,
// application messages) and events, and acknowledges.
//
// A partition's inputs are applied one at a time, in batches of up to
// Config.Batch (1 by default; more is experimental, see there):
// the changes an application message makes (its key deleted, its sender's
// ratchet moved on) wait in the group handle (engine.Group.ProcessDeferred)
// and the batch is stored, one unit per handle, before its inputs are
// acknowledged. Keys used and deleted within a batch never reach storage.
// If the worker dies first, the server redelivers the batch in order (its
// AckWait ends before the partition's pin can move) and it is applied again
// from the stored state; if storage fails, the worker applies the batch
// again itself, in order, before anything after it, and steps back from the
// partition (stops pulling, leaving the batch to be redelivered) if that
// takes longer than PinnedTTL/4.
//
// Every apply is fenced and idempotent. A group's state carries a cursor
// (engine.Group.SetCursor) with the log sequence of the last input applied
// to it and what that input published, stored in the same unit as the
// input's effect: a redelivered input is recognized, its outputs are
// published again under the same message ids (the streams' duplicate
// windows drop them), and nothing is applied twice. A commit is published
// on its epoch's subject with an expected last subject sequence of 0, so
// that the server decides which of two concurrent commits for an epoch
// wins; the loser clears its pending commit and its result says so.
//
// Every command of package events is implemented: create-member,
// key-packages, create-group, add, remove, self-update, commit, send,
// export, leave, delete-group, propose with every proposal kind (add,
// remove, update, external and resumption PSK, ReInit, GroupContext
// extensions, custom; RFC 9420 §12.1) and external-join (§12.4.3.2), as
// are the messages of groups (application messages, proposals, commits)
// and Welcomes. A member that makes a commit publishes the new epoch's
// GroupInfo on the group's groupinfo subject, with the ratchet tree when
// Config.Engine.RatchetTreeExtension is set, for external joiners. An
// external-join must be published on the group's command subject; it
// joins from the command's GroupInfo, which must carry the tree (for a
// command without one the worker takes the last GroupInfo on the
// groupinfo subject, but package events does not accept such a command
// yet), and its commit competes for its epoch like any other. A proposal
// that no commit could carry (an external PSK the member does not hold, a
// custom type or extension some member does not support) is refused with
// bad-argument. After a committed ReInit (§11.2) the old group is ended:
// sending, proposing and committing in it are refused (code invalid); the
// worker does not create the new group. A command kind this worker does
// not know is answered with a result whose code is bad-argument.
package worker
