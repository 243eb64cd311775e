package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/events"
	"github.com/mlsengine/mlsengine/mls/wire"
)

type keyPackageCmd struct {
	connFlags  `embed:"" group:"connection"`
	Member     string `arg:"" help:"Hosted member."`
	Count      int    `name:"count" short:"n" placeholder:"N" default:"1" help:"How many (1 to 100)."`
	LastResort bool   `name:"last-resort" help:"Make last-resort key packages (not deleted when used)."`
	Out        string `name:"out" placeholder:"FILE" help:"Write them to FILE, one per line in base64 of their TLS encoding (RFC 9420)." type:"path" xor:"out"`
	OutDir     string `name:"out-dir" placeholder:"DIR" help:"Write each to DIR/<ref>.kp, its TLS encoding (RFC 9420)." type:"path" xor:"out"`
}

type keyPackagesJSON struct {
	Member      string           `json:"member"`
	KeyPackages []keyPackageJSON `json:"key_packages"`
}

type keyPackageJSON struct {
	Ref  string `json:"ref"`
	Size int    `json:"size"`
	File string `json:"file,omitempty"`
}

// Run asks the member's worker for key packages (the key-packages command:
// the worker stores their private keys with the member and records them
// in the registry, so that a Welcome for one reaches the member).
func (c *keyPackageCmd) Run(e *env) error {
	if c.Count < 1 || c.Count > 100 {
		return usageErr(errors.New("--count must be 1 to 100"))
	}
	if err := events.ValidMember(c.Member); err != nil {
		return usageErr(err)
	}
	s, err := c.connect(e.ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	r, err := s.do(e.ctx, &events.Command{Kind: events.CmdKeyPackages, Member: c.Member, Count: c.Count, LastResort: c.LastResort})
	if err != nil {
		return err
	}
	out := keyPackagesJSON{Member: c.Member, KeyPackages: []keyPackageJSON{}}
	var lines bytes.Buffer
	for _, b := range r.KeyPackages {
		kp, err := wire.Unmarshal[wire.KeyPackage](b)
		if err != nil {
			return fmt.Errorf("the worker answered a key package that does not decode: %w", err)
		}
		ref, err := engine.KeyPackageRef(kp)
		if err != nil {
			return err
		}
		k := keyPackageJSON{Ref: hex.EncodeToString(ref), Size: len(b)}
		switch {
		case c.OutDir != "":
			k.File = filepath.Join(c.OutDir, k.Ref+".kp")
			if err := os.WriteFile(k.File, b, 0o644); err != nil {
				return err
			}
		case c.Out != "":
			lines.WriteString(base64.StdEncoding.EncodeToString(b) + "\n")
			k.File = c.Out
		}
		out.KeyPackages = append(out.KeyPackages, k)
	}
	if c.Out != "" {
		if err := os.WriteFile(c.Out, lines.Bytes(), 0o644); err != nil {
			return err
		}
	}
	if e.json {
		return writeJSON(e.stdout, out)
	}
	t := table(e.stdout)
	fmt.Fprintln(t, "REF\tSIZE\tFILE")
	for _, k := range out.KeyPackages {
		fmt.Fprintf(t, "%s\t%d\t%s\n", k.Ref, k.Size, k.File)
	}
	return t.Flush()
}
