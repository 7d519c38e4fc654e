package farmer

import (
	"crypto/sha256"
	"io"
	"testing"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/proof"
)

// seededItem returns the ChunkItem a node would send for a prototype chunk
// of size bytes with the given seed, and the chunk's bytes.
func seededItem(t testing.TB, seed string, size int64) (ChunkItem, []byte) {
	t.Helper()
	data := make([]byte, size)
	if _, err := io.ReadFull(proof.NewSeeded(seed, size).NewReader(), data); err != nil {
		t.Fatalf("seeded bytes: %v", err)
	}
	tag, err := proof.Encode(proof.NewSeeded(seed, size).NewReader(), size, 1024)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	var ch [32]byte
	ch[0] = 7
	return ChunkItem{
		FileHash:  sluice.FileHash(sha256.Sum256(data)),
		Size:      size,
		Seed:      seed,
		Challenge: proof.NewChallenge(ch, tag.Leaves(), 4),
		Tag:       tag,
		Due:       300,
	}, data
}
