package farmer

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/proof"
)

// ErrChunkMismatch is wrapped by the errors of chunks whose bytes or
// description do not match their contract: wrong size, SHA-256 or Merkle
// root. Such a chunk is refused and never answered.
var ErrChunkMismatch = errors.New("chunk does not match its contract")

// CheckItem checks a ChunkItem's description before any byte is read: a
// valid tag whose size equals the item's, and exactly one of Seed and URL.
func CheckItem(item ChunkItem) error {
	if err := item.Tag.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrChunkMismatch, err)
	}
	if item.Size != item.Tag.Size {
		return fmt.Errorf("%w: size %d, tag says %d", ErrChunkMismatch, item.Size, item.Tag.Size)
	}
	if (item.Seed == "") == (item.URL == "") {
		return fmt.Errorf("%w: want exactly one of seed and url", ErrChunkMismatch)
	}
	return nil
}

// VerifyChunk reads a chunk's bytes from r and checks them against item:
// exactly item.Size bytes, SHA-256 equal to item.FileHash and Merkle root
// equal to item.Tag.Root. It reads in 64 KiB batches and keeps nothing.
func VerifyChunk(r io.Reader, item ChunkItem) error {
	return copyChecked(io.Discard, r, item)
}

// WriteChunk streams a chunk's bytes from r into the file path, checking
// them as VerifyChunk does. The bytes go to a temporary file next to path,
// renamed to path only once they are checked; on any error nothing is left
// behind.
func WriteChunk(path string, r io.Reader, item ChunkItem) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("farmer: writing chunk: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err = copyChecked(f, r, item); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("farmer: writing chunk: %w", err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("farmer: writing chunk: %w", err)
	}
	return nil
}

// copyChecked copies exactly item.Size bytes from r to w while hashing
// them and computing their Merkle root, then checks all three.
func copyChecked(w io.Writer, r io.Reader, item ChunkItem) error {
	if err := CheckItem(item); err != nil {
		return err
	}
	h := sha256.New()
	tag, err := proof.Encode(io.TeeReader(r, io.MultiWriter(w, h)), item.Size, item.Tag.LeafSize)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: shorter than %d bytes", ErrChunkMismatch, item.Size)
	}
	if err != nil {
		return fmt.Errorf("farmer: reading chunk: %w", err)
	}
	var extra [1]byte
	if n, _ := io.ReadFull(r, extra[:]); n > 0 {
		return fmt.Errorf("%w: longer than %d bytes", ErrChunkMismatch, item.Size)
	}
	if got := sluice.FileHash(h.Sum(nil)); got != item.FileHash {
		return fmt.Errorf("%w: SHA-256 is %s", ErrChunkMismatch, got)
	}
	if tag.Root != item.Tag.Root {
		return fmt.Errorf("%w: Merkle root is %s, tag says %s", ErrChunkMismatch, tag.Root, item.Tag.Root)
	}
	return nil
}

// TagFile re-reads a stored chunk, checks that its SHA-256 is hash, and
// returns its tag for leaves of leafSize bytes. A restarted farmer uses it
// for chunks it finds on disk.
func TagFile(path string, hash sluice.FileHash, leafSize int) (proof.Tag, error) {
	f, err := os.Open(path)
	if err != nil {
		return proof.Tag{}, fmt.Errorf("farmer: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return proof.Tag{}, fmt.Errorf("farmer: %w", err)
	}
	h := sha256.New()
	tag, err := proof.Encode(io.TeeReader(f, h), st.Size(), leafSize)
	if err != nil {
		return proof.Tag{}, fmt.Errorf("farmer: tagging %s: %w", filepath.Base(path), err)
	}
	if sluice.FileHash(h.Sum(nil)) != hash {
		return proof.Tag{}, fmt.Errorf("%w: %s no longer has its SHA-256", ErrChunkMismatch, filepath.Base(path))
	}
	return tag, nil
}

// ProveChunk answers a challenge from the chunk stored at path: it builds
// the chunk's Merkle tree, checks it against tag, and proves. The simulator
// and the farmer loop both use it; a stored chunk that no longer matches its
// tag gives an error wrapping ErrChunkMismatch.
func ProveChunk(path string, tag proof.Tag, ch proof.Challenge) (proof.Proof, error) {
	p, _, err := proveFile(path, tag, ch, nil)
	return p, err
}

// ProveReader answers a challenge from the chunk's bytes in r, such as
// proof.NewSeeded(seed, size) for a prototype chunk kept in memory.
func ProveReader(r io.ReaderAt, tag proof.Tag, ch proof.Challenge) (proof.Proof, error) {
	p, _, err := prove(r, tag, ch, nil)
	return p, err
}

// proveFile proves from a stored chunk with a cached tree, or builds one
// (returned for the caller to cache).
func proveFile(path string, tag proof.Tag, ch proof.Challenge, tree *proof.Tree) (proof.Proof, *proof.Tree, error) {
	f, err := os.Open(path)
	if err != nil {
		return proof.Proof{}, nil, fmt.Errorf("farmer: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return proof.Proof{}, nil, fmt.Errorf("farmer: %w", err)
	}
	if st.Size() != tag.Size {
		return proof.Proof{}, nil, fmt.Errorf("%w: stored chunk has %d bytes, tag says %d", ErrChunkMismatch, st.Size(), tag.Size)
	}
	return prove(f, tag, ch, tree)
}

// prove answers ch from r, building the tree when tree is nil. The tree
// is checked against tag.Root when built; Prove checks each leaf read
// against the tree.
func prove(r io.ReaderAt, tag proof.Tag, ch proof.Challenge, tree *proof.Tree) (proof.Proof, *proof.Tree, error) {
	if tree == nil {
		if err := tag.Validate(); err != nil {
			return proof.Proof{}, nil, fmt.Errorf("%w: %v", ErrChunkMismatch, err)
		}
		t, err := proof.BuildTree(r, tag.Size, tag.LeafSize)
		if err != nil {
			return proof.Proof{}, nil, err
		}
		if t.Root() != tag.Root {
			return proof.Proof{}, nil, fmt.Errorf("%w: Merkle root is %s, tag says %s", ErrChunkMismatch, t.Root(), tag.Root)
		}
		tree = t
	}
	p, err := tree.Prove(r, ch)
	if err != nil {
		return proof.Proof{}, nil, err
	}
	return p, tree, nil
}

// treeBytes estimates the memory of a chunk's cached tree: every level
// kept, about two hashes per leaf.
func treeBytes(tag proof.Tag) int64 { return 2*tag.Leaves()*int64(len(proof.Hash{})) + 64 }
