// Package worker applies the log of package events to hosted MLS members:
// it consumes the log stream's partitions (one consumer per partition, one
// message in flight, pinned to one worker at a time, so that every group's
// inputs are applied in order and another worker takes a partition over
// when its worker stops), applies each input through the engine with its
// members' state in jetstore, publishes what the members produce (commits,
// Welcomes, application messages) and events, and acknowledges.
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
// This is the first slice of the worker: the commands create-member,
// key-packages, create-group, add, remove, self-update and send, and the
// messages of groups (application messages, proposals, commits) and
// Welcomes. The other commands of package events are answered with a
// result whose code is bad-argument ("not implemented").
package worker
