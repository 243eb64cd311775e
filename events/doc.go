// Package events is the contract between mlsengine's workers and everyone
// else on NATS: the subjects MLS messages, commands and events travel on,
// the streams that capture them, and the MessagePack envelopes of
// commands, their results and events.
//
// # Subjects
//
// With the default prefix "mls" (Subjects.Prefix), where <g> is a group id
// token ("x" and the id in hex) and <m> a hosted member's id:
//
//	mls.in.<g>.msg              MLS messages to the group (PublicMessage,
//	                            PrivateMessage), from anyone
//	mls.in.<g>.epoch.<n>        the commit that ends epoch n: published with
//	                            an expected-last-subject-sequence of 0, so
//	                            the first commit stored for an epoch wins
//	mls.in.<g>.welcome.<m>      a Welcome for hosted member m
//	mls.in.<g>.welcome          a Welcome for members hosted elsewhere
//	mls.in.<g>.groupinfo        a GroupInfo, for external joins
//	mls.in.<g>.cmd.<m>          a command for hosted member m about group g
//	mls.in._.cmd.<m>            a command for m that names no group yet
//	mls.ev.<m>.<g>.<kind>       events for m about g (kinds below)
//	mls.dlq.<g>                 copies of messages that can never apply
//
// Everything under mls.in is captured by the log stream (LogStream), the
// durable, ordered record of the system: commands sit in it next to the
// messages of their group, so that both are applied in one order. The
// stream maps each subject to a partition by the group token (a subject
// transform into mls.p.<partition>.<g>...), and each partition is consumed
// by one worker at a time.
//
// Events are captured by the events stream (EventsStream), which keeps
// them for a bounded time only (EventsMaxAge): application messages
// received are events carrying plaintext.
//
// # Envelopes
//
// Commands, results and events are MessagePack maps with short field
// names, so that clients in any language can build and read them. Each
// has a version ("v", Version) and commands a request id ("id") that their
// result repeats; decoding is strict: an unknown version, kind or field,
// a missing required field, trailing bytes or an oversized payload is
// ErrMalformed.
package events
