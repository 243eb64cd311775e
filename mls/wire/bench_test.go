package wire

import (
	"testing"

	"github.com/mlsengine/mlsengine/mls/codec"
)

func benchDecode(b *testing.B, field string) {
	in := loadMessages(b)[0][field]
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := UnmarshalMLSMessage(in); err != nil {
			b.Fatal(err)
		}
	}
}

func benchEncode(b *testing.B, field string) {
	in := loadMessages(b)[0][field]
	m, err := UnmarshalMLSMessage(in)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		w := codec.NewWriter(len(in))
		m.MarshalMLS(w)
		if len(w.Bytes()) != len(in) {
			b.Fatal("length differs")
		}
	}
}

func BenchmarkDecodePublicMessageCommit(b *testing.B) { benchDecode(b, "public_message_commit") }

func BenchmarkEncodePublicMessageCommit(b *testing.B) { benchEncode(b, "public_message_commit") }

func BenchmarkDecodeWelcome(b *testing.B) { benchDecode(b, "mls_welcome") }

func BenchmarkEncodeWelcome(b *testing.B) { benchEncode(b, "mls_welcome") }
