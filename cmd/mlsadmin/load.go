package main

import (
	"encoding/hex"
	"fmt"
	"time"

	"github.com/mlsengine/mlsengine/engine"
)

type loadCmd struct {
	connFlags `embed:"" group:"connection"`
	Member    string `arg:"" help:"Hosted member."`
	Group     string `arg:"" help:"Group id (text, or hex:<hex>)."`
}

// loadSummary is what load shows. Its JSON field names are stable.
type loadSummary struct {
	Member               string    `json:"member"`
	GroupID              string    `json:"group_id"`
	GroupIDHex           string    `json:"group_id_hex"`
	Epoch                uint64    `json:"epoch"`
	CipherSuite          suiteJSON `json:"cipher_suite"`
	Members              int       `json:"members"`
	OwnLeaf              uint32    `json:"own_leaf"`
	Status               string    `json:"status"`
	Version              uint64    `json:"version"`
	EpochAuthenticatorFP string    `json:"epoch_authenticator_fp"`
	LoadMillis           float64   `json:"load_ms"`
}

// Run loads the group as a worker would (through the member's jetstore)
// and times the load alone.
func (c *loadCmd) Run(e *env) error {
	gid, err := parseID(c.Group)
	if err != nil {
		return err
	}
	s, err := c.connect(e.ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := s.member(e.ctx, c.Member); err != nil {
		return err
	}
	st, err := s.store(e.ctx, c.Member)
	if err != nil {
		return err
	}
	start := time.Now()
	h, err := engine.LoadGroup(e.ctx, st, gid)
	took := time.Since(start)
	if err != nil {
		return groupErr(c.Member, gid, err)
	}
	sum := loadSummary{Member: c.Member, GroupID: showID(gid), GroupIDHex: hex.EncodeToString(gid), Epoch: h.Epoch(),
		CipherSuite: suiteOf(h.Suite().ID()), Members: len(h.Members()), OwnLeaf: uint32(h.OwnLeafIndex()), Status: h.Status().String(),
		Version: h.Version(), EpochAuthenticatorFP: fingerprint(h.EpochAuthenticator().Bytes()), LoadMillis: float64(took.Microseconds()) / 1000}
	if e.json {
		return writeJSON(e.stdout, sum)
	}
	t := table(e.stdout)
	fmt.Fprintf(t, "member\t%s\n", sum.Member)
	fmt.Fprintf(t, "group\t%s\n", sum.GroupID)
	fmt.Fprintf(t, "epoch\t%d\n", sum.Epoch)
	fmt.Fprintf(t, "cipher suite\t0x%04x %s\n", sum.CipherSuite.ID, sum.CipherSuite.Name)
	fmt.Fprintf(t, "members\t%d\n", sum.Members)
	fmt.Fprintf(t, "own leaf\t%d\n", sum.OwnLeaf)
	fmt.Fprintf(t, "status\t%s\n", sum.Status)
	fmt.Fprintf(t, "version\t%d\n", sum.Version)
	fmt.Fprintf(t, "epoch authenticator\tfingerprint %s\n", sum.EpochAuthenticatorFP)
	fmt.Fprintf(t, "load time\t%v\n", took.Round(time.Microsecond))
	return t.Flush()
}
