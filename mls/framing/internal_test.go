package framing

import (
	"bytes"
	"testing"

	"github.com/mlsengine/mlsengine/mls/wire"
)

// TestAADPrefix checks the layout encodeAAD relies on: SenderDataAAD is a
// prefix of PrivateContentAAD (§6.3.1, §6.3.2).
func TestAADPrefix(t *testing.T) {
	for _, authData := range [][]byte{nil, []byte("ad"), bytes.Repeat([]byte{1}, 300)} {
		pm := &wire.PrivateMessage{GroupID: bytes.Repeat([]byte{9}, 70), Epoch: 1 << 40, ContentType: wire.ContentTypeCommit, AuthenticatedData: authData}
		aad, n, err := encodeAAD(pm.GroupID, pm.Epoch, pm.ContentType, pm.AuthenticatedData)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(aad, pm.ContentAAD().Bytes()) || !bytes.Equal(aad[:n], pm.SenderDataAAD().Bytes()) {
			t.Errorf("AAD layout differs from the wire package's")
		}
	}
}

// TestTBMPrefix checks that encodeTBM is the AuthenticatedContentTBM and
// that its first tbsLen bytes are the FramedContentTBS (§6.1, §6.2).
func TestTBMPrefix(t *testing.T) {
	gc := &wire.GroupContext{Version: wire.ProtocolVersionMLS10, CipherSuite: 1, GroupID: []byte("g"), Epoch: 3, Extensions: []wire.Extension{}}
	pm := &wire.PublicMessage{
		Content: wire.FramedContent{GroupID: []byte("g"), Epoch: 3, Sender: wire.Sender{SenderType: wire.SenderTypeMember, LeafIndex: 4},
			ContentType: wire.ContentTypeCommit, Commit: &wire.Commit{}},
		Auth: wire.FramedContentAuthData{Signature: []byte("sig"), ConfirmationTag: []byte("tag")},
	}
	e := &Epoch{Context: gc}
	tbm, n, err := e.encodeTBM(&pm.Content, &pm.Auth)
	if err != nil {
		t.Fatal(err)
	}
	want := pm.TBM(gc)
	want.Auth.ContentType = wire.ContentTypeCommit
	if !bytes.Equal(tbm, want.Bytes()) || !bytes.Equal(tbm[:n], pm.AuthenticatedContent().TBS(gc).Bytes()) {
		t.Error("TBM layout differs from the wire package's")
	}
}
