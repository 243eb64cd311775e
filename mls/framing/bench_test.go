package framing_test

import (
	"testing"

	"github.com/mlsengine/mlsengine/mls/framing"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// The benchmarks measure what a member pays per message, from content to
// bytes on the wire and back, signature included: compare them with
// BenchmarkSignatureBaseline, the bare SignWithLabel and VerifyWithLabel
// over a FramedContentTBS of the same size.

const benchSize = 1024

func benchSuites(b *testing.B, run func(b *testing.B, f *fixture)) {
	for _, v := range loadVectors(b) {
		f := newFixture(b, v)
		b.Run(f.suite.ID().String(), func(b *testing.B) { run(b, f) })
	}
}

func benchApp() []byte {
	data := make([]byte, benchSize)
	for i := range data {
		data[i] = byte(i)
	}
	return data
}

// protectAppBytes signs and encrypts one application message and encodes
// it as an MLSMessage.
func protectAppBytes(b *testing.B, fe *framing.Epoch, f *fixture, c *wire.FramedContent) []byte {
	ac, err := fe.Sign(wire.WireFormatPrivateMessage, c, f.key)
	if err != nil {
		b.Fatal(err)
	}
	pm, err := fe.ProtectPrivate(ac, 0)
	if err != nil {
		b.Fatal(err)
	}
	out, err := wire.Marshal(wire.WrapPrivateMessage(pm))
	if err != nil {
		b.Fatal(err)
	}
	return out
}

func BenchmarkProtectPrivateApplication1KiB(b *testing.B) {
	benchSuites(b, func(b *testing.B, f *fixture) {
		fe := f.epoch(f.tree(b))
		fe.Rand = nil // the real reuse guard source
		c := f.content(b, wire.ContentTypeApplication, benchApp())
		b.ReportAllocs()
		b.SetBytes(benchSize)
		for b.Loop() {
			protectAppBytes(b, fe, f, c)
		}
	})
}

func BenchmarkUnprotectPrivateApplication1KiB(b *testing.B) {
	benchSuites(b, func(b *testing.B, f *fixture) {
		// Each message consumes its generation: encrypt b.N of them first,
		// at consecutive generations, and decrypt them in order.
		sender := f.epoch(f.tree(b))
		c := f.content(b, wire.ContentTypeApplication, benchApp())
		msgs := make([][]byte, b.N)
		for i := range msgs {
			msgs[i] = protectAppBytes(b, sender, f, c)
		}
		fe := f.epoch(f.tree(b))
		b.ReportAllocs()
		b.SetBytes(benchSize)
		b.ResetTimer()
		for i := range b.N {
			m, err := wire.UnmarshalMLSMessage(msgs[i])
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := fe.Unprotect(m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkProtectPublicProposal(b *testing.B) {
	benchSuites(b, func(b *testing.B, f *fixture) {
		fe := f.epoch(f.tree(b))
		c := f.content(b, wire.ContentTypeProposal, f.v.Proposal)
		b.ReportAllocs()
		for b.Loop() {
			ac, err := fe.Sign(wire.WireFormatPublicMessage, c, f.key)
			if err != nil {
				b.Fatal(err)
			}
			pm, err := fe.ProtectPublic(ac)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := wire.Marshal(wire.WrapPublicMessage(pm)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkUnprotectPublicProposal(b *testing.B) {
	benchSuites(b, func(b *testing.B, f *fixture) {
		// A PublicMessage consumes no state: the vector's own serves.
		fe := f.epoch(f.tree(b))
		b.ReportAllocs()
		for b.Loop() {
			m, err := wire.UnmarshalMLSMessage(f.v.ProposalPub)
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := fe.Unprotect(m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSignatureBaseline is the floor of the benchmarks above: one
// SignWithLabel or VerifyWithLabel over the FramedContentTBS of a 1 KiB
// application message.
func BenchmarkSignatureBaseline(b *testing.B) {
	benchSuites(b, func(b *testing.B, f *fixture) {
		c := f.content(b, wire.ContentTypeApplication, benchApp())
		tbs := wire.NewFramedContentTBS(wire.WireFormatPrivateMessage, c, f.gc).Bytes()
		sig, err := f.suite.SignWithLabel(f.key, "FramedContentTBS", tbs)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("sign", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.suite.SignWithLabel(f.key, "FramedContentTBS", tbs); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("verify", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := f.suite.VerifyWithLabel(f.v.SignaturePub, "FramedContentTBS", tbs, sig); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// BenchmarkProtectPrivateOnly is ProtectPrivate and the encoding alone, on
// content signed once: the cost of §6.3 without §6.1.
func BenchmarkProtectPrivateOnly1KiB(b *testing.B) {
	benchSuites(b, func(b *testing.B, f *fixture) {
		fe := f.epoch(f.tree(b))
		fe.Rand = nil
		ac, err := fe.Sign(wire.WireFormatPrivateMessage, f.content(b, wire.ContentTypeApplication, benchApp()), f.key)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.SetBytes(benchSize)
		for b.Loop() {
			pm, err := fe.ProtectPrivate(ac, 0)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := wire.Marshal(wire.WrapPrivateMessage(pm)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
