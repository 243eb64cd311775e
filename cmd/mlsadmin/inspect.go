package main

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/persist"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/storage"
	"github.com/mlsengine/mlsengine/worker"
)

type inspectCmd struct {
	connFlags `embed:"" group:"connection"`
	Member    string `arg:"" help:"Hosted member."`
	Group     string `arg:"" help:"Group id (text, or hex:<hex>)."`
}

func (c *inspectCmd) Run(e *env) error {
	gid, err := parseID(c.Group)
	if err != nil {
		return err
	}
	s, err := c.connect(e.ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	in, err := inspect(e.ctx, s, c.Member, gid)
	if err != nil {
		return err
	}
	if e.json {
		return writeJSON(e.stdout, in)
	}
	return in.print(e.stdout)
}

// inspection is what inspect shows of a member's group. Its JSON field
// names are stable.
type inspection struct {
	Member               string          `json:"member"`
	GroupID              string          `json:"group_id"`
	GroupIDHex           string          `json:"group_id_hex"`
	Epoch                uint64          `json:"epoch"`
	CipherSuite          suiteJSON       `json:"cipher_suite"`
	Status               string          `json:"status"`
	OwnLeaf              uint32          `json:"own_leaf"`
	Members              []memberJSON    `json:"members"`
	Tree                 treeJSON        `json:"tree"`
	Extensions           []extensionJSON `json:"extensions"`
	PendingProposals     []proposalJSON  `json:"pending_proposals"`
	PendingCommit        bool            `json:"pending_commit"`
	PastEpochs           []uint64        `json:"past_epochs"`
	Records              recordsJSON     `json:"records"`
	KeyMaterial          map[string]int  `json:"key_material"`
	ClientKeyMaterial    map[string]int  `json:"client_key_material"`
	Version              uint64          `json:"version"`
	LastAppliedSeq       uint64          `json:"last_applied_seq"`
	EpochAuthenticatorFP string          `json:"epoch_authenticator_fp"`
}

type suiteJSON struct {
	ID   uint16 `json:"id"`
	Name string `json:"name"`
}

type memberJSON struct {
	Leaf           uint32 `json:"leaf"`
	Identity       string `json:"identity"`
	CredentialType string `json:"credential_type"`
	SignatureKeyFP string `json:"signature_key_fp"`
	Own            bool   `json:"own"`
}

type treeJSON struct {
	Leaves      int    `json:"leaves"`
	BlankLeaves int    `json:"blank_leaves"`
	Width       int    `json:"width"`
	TreeHash    string `json:"tree_hash"`
}

type extensionJSON struct {
	Type uint16 `json:"type"`
	Name string `json:"name"`
	Size int    `json:"size"`
}

type proposalJSON struct {
	Type       string  `json:"type"`
	SenderType string  `json:"sender_type"`
	SenderLeaf *uint32 `json:"sender_leaf,omitempty"`
	Ref        string  `json:"ref"`
}

type recordsJSON struct {
	Public      int `json:"public"`
	KeyMaterial int `json:"key_material"`
}

func suiteOf(id ciphersuite.ID) suiteJSON { return suiteJSON{ID: uint16(id), Name: id.String()} }

func membersOf(h *engine.Group) []memberJSON {
	own := h.OwnLeafIndex()
	out := []memberJSON{}
	for _, m := range h.Members() {
		out = append(out, memberJSON{Leaf: uint32(m.Index), Identity: showID(m.Credential.Identity),
			CredentialType: m.Credential.CredentialType.String(), SignatureKeyFP: fingerprint(m.SignatureKey), Own: m.Index == own})
	}
	return out
}

// inspect reads a member's group twice, as records (names only; the key
// material's values are cleared unread) and as a group, at one version.
func inspect(ctx context.Context, s *session, member string, gid []byte) (*inspection, error) {
	h, st, err := s.group(ctx, member, gid)
	if err != nil {
		return nil, err
	}
	var recs *storage.GroupRecords
	for try := 0; ; try++ {
		if recs, err = st.Load(ctx, gid); err != nil {
			return nil, groupErr(member, gid, err)
		}
		if recs.Version == h.Version() {
			break
		}
		// A worker changed the group in between: read both again.
		recs.ClearKeyMaterial()
		if try == 2 {
			return nil, errors.New("the group keeps changing while it is read; try again")
		}
		if h, err = engine.LoadGroup(ctx, st, gid); err != nil {
			return nil, groupErr(member, gid, err)
		}
	}
	in := &inspection{Member: member, GroupID: showID(gid), GroupIDHex: hex.EncodeToString(gid), KeyMaterial: map[string]int{},
		ClientKeyMaterial: map[string]int{}, PastEpochs: []uint64{}, Extensions: []extensionJSON{}, PendingProposals: []proposalJSON{}}
	for _, r := range recs.Records {
		switch r.Key.Class {
		case storage.KeyMaterial:
			in.Records.KeyMaterial++
			in.KeyMaterial[keyKind(r.Key.Name)]++
		case storage.Public:
			in.Records.Public++
			if e, ok := pastEpoch(r.Key.Name); ok {
				in.PastEpochs = append(in.PastEpochs, e)
			}
		}
	}
	recs.ClearKeyMaterial()
	client, err := st.List(ctx, storage.ClientScope(), storage.KeyMaterial, "")
	if err != nil {
		return nil, err
	}
	for _, r := range client {
		in.ClientKeyMaterial[keyKind(r.Key.Name)]++
		clear(r.Value)
	}

	gc := h.GroupContext()
	shape := h.TreeShape()
	in.Epoch = h.Epoch()
	in.CipherSuite = suiteOf(h.Suite().ID())
	in.Status = h.Status().String()
	in.OwnLeaf = uint32(h.OwnLeafIndex())
	in.Members = membersOf(h)
	in.Tree = treeJSON{Leaves: shape.Leaves, BlankLeaves: shape.BlankLeaves, Width: shape.Width, TreeHash: hex.EncodeToString(gc.TreeHash)}
	for _, x := range gc.Extensions {
		in.Extensions = append(in.Extensions, extensionJSON{Type: uint16(x.ExtensionType), Name: x.ExtensionType.String(), Size: len(x.ExtensionData)})
	}
	for _, q := range h.PendingProposals() {
		p := proposalJSON{Type: q.Proposal.ProposalType.String(), SenderType: q.Sender.SenderType.String(), Ref: hex.EncodeToString(q.Ref)}
		switch q.Sender.SenderType {
		case wire.SenderTypeMember:
			p.SenderLeaf = &q.Sender.LeafIndex
		case wire.SenderTypeExternal:
			p.SenderLeaf = &q.Sender.SenderIndex
		}
		in.PendingProposals = append(in.PendingProposals, p)
	}
	in.PendingCommit = h.HasPendingCommit()
	slices.Sort(in.PastEpochs)
	in.Version = h.Version()
	in.LastAppliedSeq = worker.LastApplied(h)
	ea := h.EpochAuthenticator()
	in.EpochAuthenticatorFP = fingerprint(ea.Bytes())
	return in, nil
}

// pastEpoch recognizes the record of a retained past epoch's GroupContext
// (mls/persist: past/<e>/context).
func pastEpoch(name string) (uint64, bool) {
	rest, ok := strings.CutPrefix(name, "past/")
	if !ok {
		return 0, false
	}
	es, ok := strings.CutSuffix(rest, "/context")
	if !ok {
		return 0, false
	}
	e, err := strconv.ParseUint(es, 10, 64)
	return e, err == nil && persist.PastContextName(e) == name
}

// keyKind names the kind of a key-material record from its name (the
// tables in mls/persist/records.go and package engine's documentation).
func keyKind(name string) string {
	if rest, ok := strings.CutPrefix(name, persist.EpochNamePrefix); ok {
		// epoch/<e>/<what>...
		if _, what, ok := strings.Cut(rest, "/"); ok {
			switch w, _, _ := strings.Cut(what, "/"); w {
			case "secrets":
				return "epoch_secrets"
			case "sender-data":
				return "sender_data"
			case "tree":
				return "secret_tree_node"
			case "ratchet":
				return "sender_ratchet"
			case "key":
				return "kept_message_key"
			}
		}
		return "epoch_other"
	}
	switch first, _, _ := strings.Cut(name, "/"); first {
	case "resumption":
		return "resumption_psk"
	case "hpke":
		return "hpke_private_key"
	case "pending-update":
		return "pending_update_key"
	case "pending-commit":
		return "pending_commit_secrets"
	case "key-package":
		return "key_package_private_keys"
	case "signature":
		return "signature_private_key"
	case "psk":
		return "external_psk"
	default:
		return strings.ReplaceAll(first, "-", "_")
	}
}

// print writes the inspection as a few aligned blocks.
func (in *inspection) print(w io.Writer) error {
	t := table(w)
	fmt.Fprintf(t, "member\t%s\n", in.Member)
	fmt.Fprintf(t, "group\t%s (hex %s)\n", in.GroupID, in.GroupIDHex)
	fmt.Fprintf(t, "epoch\t%d\n", in.Epoch)
	fmt.Fprintf(t, "cipher suite\t0x%04x %s\n", in.CipherSuite.ID, in.CipherSuite.Name)
	fmt.Fprintf(t, "status\t%s\n", in.Status)
	fmt.Fprintf(t, "own leaf\t%d\n", in.OwnLeaf)
	fmt.Fprintf(t, "tree\t%d leaves (%d blank), width %d, tree hash %s\n", in.Tree.Leaves, in.Tree.BlankLeaves, in.Tree.Width, in.Tree.TreeHash)
	fmt.Fprintf(t, "extensions\t%s\n", orNone(len(in.Extensions), func() string {
		var s []string
		for _, x := range in.Extensions {
			s = append(s, fmt.Sprintf("%s (%d bytes)", x.Name, x.Size))
		}
		return strings.Join(s, ", ")
	}))
	fmt.Fprintf(t, "pending proposals\t%s\n", orNone(len(in.PendingProposals), func() string {
		var s []string
		for _, p := range in.PendingProposals {
			from := p.SenderType
			if p.SenderLeaf != nil {
				from += " " + strconv.FormatUint(uint64(*p.SenderLeaf), 10)
			}
			s = append(s, p.Type+" from "+from)
		}
		return strings.Join(s, ", ")
	}))
	fmt.Fprintf(t, "pending commit\t%s\n", yesNo(in.PendingCommit))
	fmt.Fprintf(t, "past epochs\t%s\n", orNone(len(in.PastEpochs), func() string {
		var s []string
		for _, e := range in.PastEpochs {
			s = append(s, strconv.FormatUint(e, 10))
		}
		return strings.Join(s, ", ")
	}))
	fmt.Fprintf(t, "records\t%d public, %d key material\n", in.Records.Public, in.Records.KeyMaterial)
	fmt.Fprintf(t, "key material\t%s\n", counts(in.KeyMaterial))
	fmt.Fprintf(t, "client key material\t%s\n", counts(in.ClientKeyMaterial))
	fmt.Fprintf(t, "version\t%d\n", in.Version)
	fmt.Fprintf(t, "last applied seq\t%d\n", in.LastAppliedSeq)
	fmt.Fprintf(t, "epoch authenticator\tfingerprint %s\n", in.EpochAuthenticatorFP)
	if err := t.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nmembers (%d):\n", len(in.Members))
	return printMembers(w, in.Members)
}

func printMembers(w io.Writer, ms []memberJSON) error {
	t := table(w)
	fmt.Fprintln(t, "LEAF\tIDENTITY\tCREDENTIAL\tSIGNATURE KEY\t")
	for _, m := range ms {
		own := ""
		if m.Own {
			own = "(own)"
		}
		fmt.Fprintf(t, "%d\t%s\t%s\t%s\t%s\n", m.Leaf, m.Identity, m.CredentialType, m.SignatureKeyFP, own)
	}
	return t.Flush()
}

func orNone(n int, f func() string) string {
	if n == 0 {
		return "none"
	}
	return f()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// counts renders kind counts sorted by kind.
func counts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var s []string
	for _, k := range slices.SortedFunc(maps.Keys(m), cmp.Compare) {
		s = append(s, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(s, ", ")
}
