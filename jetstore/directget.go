package jetstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Batch direct gets (ADR-31), read to their end-of-batch marker.
//
// jetstreamext's GetBatch and GetLastMsgsFor end their iterator without an
// error when the request times out, which a reader cannot tell from "no
// more messages": a Load against an unreachable server would report the
// group as missing. So jetstore makes the requests itself and treats a
// batch as complete only when the server's EOB marker (status 204) or "no
// results" (404) arrived.

type directReq struct {
	Seq          uint64   `json:"seq,omitempty"`
	NextFor      string   `json:"next_by_subj,omitempty"`
	Batch        int      `json:"batch,omitempty"`
	MultiLastFor []string `json:"multi_last,omitempty"`
}

// errBatchIncomplete: the reply stream ended without its end marker.
var errBatchIncomplete = errors.New("jetstore: batch read ended without its end marker")

// directBatch sends a batch direct get and returns its messages and, for a
// paged read, whether more remain after them.
func (s *Store) directBatch(ctx context.Context, stream string, req directReq) ([]*jetstream.RawStreamMsg, bool, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, false, err
	}
	inbox := s.nc.NewRespInbox()
	sub, err := s.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, false, err
	}
	defer sub.Unsubscribe()
	if err := s.nc.PublishRequest(s.apiPrefix()+"DIRECT.GET."+stream, inbox, body); err != nil {
		return nil, false, err
	}
	var out []*jetstream.RawStreamMsg
	more := false
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, false, fmt.Errorf("%w (%w)", ctx.Err(), errBatchIncomplete)
			}
			return nil, false, err
		}
		if len(m.Data) == 0 && m.Header.Get("Status") != "" {
			switch st := m.Header.Get("Status"); st {
			case "204": // EOB
				return out, more, nil
			case "404":
				if len(out) == 0 {
					return nil, false, nil
				}
				return nil, false, fmt.Errorf("jetstore: batch read of %s: a message failed to load", stream)
			case "503":
				return nil, false, nats.ErrNoResponders
			default:
				return nil, false, fmt.Errorf("jetstore: batch read of %s: status %s %s", stream, st, m.Header.Get("Description"))
			}
		}
		rm, err := rawMsg(m)
		if err != nil {
			return nil, false, err
		}
		out = append(out, rm)
		more = m.Header.Get("Nats-Num-Pending") != "0"
	}
}

func rawMsg(m *nats.Msg) (*jetstream.RawStreamMsg, error) {
	subj := m.Header.Get(jetstream.SubjectHeader)
	seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
	if subj == "" || err != nil {
		return nil, fmt.Errorf("jetstore: malformed direct get reply")
	}
	tm, _ := time.Parse(time.RFC3339Nano, m.Header.Get(jetstream.TimeStampHeaer))
	return &jetstream.RawStreamMsg{Subject: subj, Sequence: seq, Header: m.Header, Data: m.Data, Time: tm}, nil
}
