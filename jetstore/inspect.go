package jetstore

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
)

// RawContents implements storage.Inspector: every file under
// Options.StoreDir (the server's store, read from disk as someone who copied
// it would), every message of the two streams as the server serves them,
// and whatever of all that the wrapping keys this Store holds can open.
// Without StoreDir (a remote server) only the served messages are
// included, which is not proof of erasure: the audit tests use an embedded
// or local server.
func (s *Store) RawContents(ctx context.Context) ([][]byte, error) {
	var out [][]byte
	if s.o.StoreDir != "" {
		err := filepath.WalkDir(s.o.StoreDir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) {
					return nil // a block rewritten while walking
				}
				return err
			}
			if d.IsDir() {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				if os.IsNotExist(err) {
					return nil
				}
				return err
			}
			out = append(out, b)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	for _, st := range []string{s.l.snap, s.l.keys} {
		ms, err := s.scan(ctx, st, ">")
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			out = append(out, m.Data)
		}
	}
	// Open every sealed frame found anywhere in what was read.
	var opened [][]byte
	for _, b := range out {
		for i := 0; ; {
			k := bytes.Index(b[i:], sealMagic)
			if k < 0 {
				break
			}
			i += k
			if sl, ok := parseSealed(b[i:]); ok {
				if v, err := s.ring.openParsed(sl); err == nil {
					opened = append(opened, v)
				}
			}
			i += len(sealMagic)
		}
	}
	return append(out, opened...), nil
}
