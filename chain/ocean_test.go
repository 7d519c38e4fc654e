package chain

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice"
)

// TestOceanSignatureVectors recovers the signers of the Ocean uploader
// reference's vectors (section 1.4).
func TestOceanSignatureVectors(t *testing.T) {
	for _, v := range []struct{ quote, nonce, sig, addr string }{
		{"892241ee78e1ff18ca514a475a55f8fb", "1700000000",
			"0xc7b8c6be48558b6c2d21a2a7d4e0749053f8bb3cdaa451583021e7bd494395f02c480322f6f43d3ed9afb70d8f4d8956f077131b90bbb3f69e13c2f16bcc907b1c",
			"0xA3C960B3BA29367ecBCAf1430452C6cd7516F588"},
		{"", "1700000001",
			"0x0d71ec6ba3d017a8a4f08894674b196ddb0ba0178fd3c8f8b745879e0c5e39831f033ba73623ecdff7de978807ea67901e5ccccbf5740a9c86791da5f04060da1b",
			"0xA3C960B3BA29367ecBCAf1430452C6cd7516F588"},
		{"123565", "1768214571",
			"0x013f406f43e263d73b22c866f60ec072a664b32eaaadcdc9df426f98d585bf296b7da8b35678a7f53c105fef4e5e314b4e3b04ac5ba8f6b8dc1251e9862885711c",
			"0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"},
	} {
		got, err := RecoverPersonal([]byte(sluice.SignedMessage(v.quote, v.nonce)), v.sig)
		if err != nil || !strings.EqualFold(got.Hex(), v.addr) {
			t.Fatalf("quote %q nonce %s: got %s %v, want %s", v.quote, v.nonce, got.Hex(), err, v.addr)
		}
		// One nonce off is another message: another (wrong) signer.
		if got, _ := RecoverPersonal([]byte(sluice.SignedMessage(v.quote, v.nonce+"0")), v.sig); strings.EqualFold(got.Hex(), v.addr) {
			t.Fatal("a different message recovered the same signer")
		}
	}
}
