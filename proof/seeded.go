package proof

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
)

// Seeded is the content of a prototype chunk, generated from a public seed
// so that no data has to travel. It is byte-for-byte compatible with
// Storj's RandomIO 0.2.1: the bytes are AES-256-CTR applied to zero bytes,
// with key = SHA-256 of the seed's UTF-8 text and a 128-bit big-endian
// counter starting at 1, so byte offset o lies in counter block o/16+1.
//
// A Seeded is safe for concurrent use.
type Seeded struct {
	block cipher.Block
	size  int64
}

// NewSeeded returns the first size bytes of the stream for seed. The seed
// is used as text: a 32-character hex seed is hashed as its 32 ASCII
// characters, not as the 16 bytes it spells. A negative size counts as 0.
func NewSeeded(seed string, size int64) *Seeded {
	key := sha256.Sum256([]byte(seed))
	block, err := aes.NewCipher(key[:])
	if err != nil {
		panic(err) // unreachable: a SHA-256 sum is always a valid AES-256 key
	}
	return &Seeded{block: block, size: max(size, 0)}
}

// Size returns the length of the chunk in bytes.
func (s *Seeded) Size() int64 { return s.size }

// ReadAt implements io.ReaderAt: it fills p with the bytes at offset off,
// computed directly from the counter, and returns io.EOF if the chunk ends
// before p is full.
func (s *Seeded) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("proof: negative offset")
	}
	if off >= s.size {
		return 0, io.EOF
	}
	n := len(p)
	if int64(n) > s.size-off {
		n = int(s.size - off)
	}
	s.keystream(off).XORKeyStream(p[:n], zeroed(p[:n]))
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// NewReader returns a sequential reader over the whole chunk, from offset
// 0 to Size. It is much faster than ReadAt for small reads.
func (s *Seeded) NewReader() io.Reader {
	return &seededReader{stream: s.keystream(0), left: s.size}
}

// keystream returns a CTR stream positioned at byte offset off.
func (s *Seeded) keystream(off int64) cipher.Stream {
	var iv [aes.BlockSize]byte
	binary.BigEndian.PutUint64(iv[8:], uint64(off/aes.BlockSize)+1)
	stream := cipher.NewCTR(s.block, iv[:])
	if skip := off % aes.BlockSize; skip > 0 {
		var scratch [aes.BlockSize]byte
		stream.XORKeyStream(scratch[:skip], scratch[:skip])
	}
	return stream
}

type seededReader struct {
	stream cipher.Stream
	left   int64
}

func (r *seededReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	r.stream.XORKeyStream(p, zeroed(p))
	r.left -= int64(len(p))
	return len(p), nil
}

// zeroed clears p and returns it, so that XORing the key stream into it
// yields the key stream itself.
func zeroed(p []byte) []byte {
	clear(p)
	return p
}
