package embedded

// The write-ahead log in front of the bbolt file (DECISION.md, "The log").
//
// Two segment files, sluice.wal.0 and sluice.wal.1, take turns. Each starts
// with a 4 KiB header block naming its epoch; frames follow, one per Write:
//
//	header:  magic "SLCWAL01" (8) | epoch u64 | crc32c of the 16 bytes before (4)
//	frame:   payload length u32 | crc32c u32 | epoch u64 | payload
//	payload: count uvarint, then per record:
//	         kind uvarint | live byte | len(id) uvarint | id | version uvarint |
//	         len(owner) uvarint | owner | len(state) uvarint | state
//
// A frame's crc covers its length, its epoch and its payload. A segment's
// frames run from offset 4096 to the first frame that is incomplete, fails
// its crc, or carries another epoch than the header's: that is where the
// last acknowledged write ended (a torn frame was never acknowledged), or
// where the previous use of the file, with an older epoch, shows through.
// Segments are reused rather than recreated, because overwriting blocks a
// file already has costs an fdatasync no journal commit for a new size.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"

	bolt "go.etcd.io/bbolt"

	"github.com/sluicehq/sluice"
)

const (
	walMagic = "SLCWAL01"
	// walHeaderSize is the block the segment header occupies; frames start
	// after it.
	walHeaderSize = 4096
	// frameHeaderSize is a frame's length, crc and epoch.
	frameHeaderSize = 16
	// maxFrame caps one frame's payload, so a corrupt length cannot ask
	// replay for gigabytes; a Write bigger than this is refused.
	maxFrame = 1 << 30
	// defaultSegmentBytes is how full the active segment may get before the
	// log moves to the other one and the records it holds are checkpointed
	// into bbolt: about 50,000 contract records.
	defaultSegmentBytes = 32 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// syncFile and writeFile are datasync and os.File.WriteAt, as variables
// so that a test can make them fail as a failing disk would.
var (
	syncFile  = datasync
	writeFile = (*os.File).WriteAt
)

// walPrefix names the segment files: sluice.wal.0 and sluice.wal.1.
const walPrefix = "sluice.wal"

// segmentName is the file name of segment i (0 or 1).
func segmentName(i int) string { return walPrefix + "." + strconv.Itoa(i) }

// segment is one of the log's two files.
type segment struct {
	f     *os.File
	epoch uint64 // 0: holds nothing (never used, or its header is invalid)
}

// openSegment opens (creating if needed) segment i in dir and reads its
// epoch. badHeader reports a header that is there but unreadable: a
// header torn while it was being rewritten, which happens only after the
// segment's records were checkpointed, so the segment is taken as empty.
func openSegment(dir string, i int) (g segment, badHeader bool, err error) {
	f, err := os.OpenFile(filepath.Join(dir, segmentName(i)), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return segment{}, false, err
	}
	var h [20]byte
	n, err := f.ReadAt(h[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		f.Close()
		return segment{}, false, err
	}
	g = segment{f: f}
	if n == len(h) && string(h[:8]) == walMagic &&
		binary.LittleEndian.Uint32(h[16:]) == crc32.Checksum(h[:16], castagnoli) {
		g.epoch = binary.LittleEndian.Uint64(h[8:16])
	}
	return g, g.epoch == 0 && n > 0, nil
}

// reset makes the segment empty with a new epoch: every frame already in
// the file carries an older epoch, so none of them is read again. A file
// that one big frame took past size is cut back to it.
func (g *segment) reset(epoch uint64, size int64) error {
	if fi, err := g.f.Stat(); err == nil && fi.Size() > size {
		if err := g.f.Truncate(size); err != nil {
			return err
		}
	}
	var h [20]byte
	copy(h[:8], walMagic)
	binary.LittleEndian.PutUint64(h[8:16], epoch)
	binary.LittleEndian.PutUint32(h[16:], crc32.Checksum(h[:16], castagnoli))
	if _, err := g.f.WriteAt(h[:], 0); err != nil {
		return err
	}
	if err := syncFile(g.f); err != nil {
		return err
	}
	g.epoch = epoch
	return nil
}

// replay calls fn for every record of every frame in the segment, in the
// order they were written. It reads one frame at a time, so it stops
// after a few bytes at the end of the log however big the file is.
// Records passed to fn point into their frame's buffer, which replay does
// not reuse. A frame whose crc holds but whose payload does not decode is
// corruption, not a torn write, and fails replay.
func (g *segment) replay(fn func(sluice.Record)) error {
	if g.epoch == 0 {
		return nil
	}
	fi, err := g.f.Stat()
	if err != nil {
		return err
	}
	var h [frameHeaderSize]byte
	for off := int64(walHeaderSize); off+frameHeaderSize <= fi.Size(); {
		if _, err := g.f.ReadAt(h[:], off); err != nil {
			return err
		}
		n := int64(binary.LittleEndian.Uint32(h[:]))
		if n > maxFrame || n > fi.Size()-off-frameHeaderSize || binary.LittleEndian.Uint64(h[8:]) != g.epoch {
			return nil
		}
		buf := make([]byte, frameHeaderSize+n)
		if _, err := g.f.ReadAt(buf, off); err != nil {
			return err
		}
		payload, ok := frameAt(buf, 0, g.epoch)
		if !ok {
			return nil
		}
		if err := decodeFrame(payload, fn); err != nil {
			return fmt.Errorf("%s at offset %d: %w", g.f.Name(), off, err)
		}
		off += frameHeaderSize + n
	}
	return nil
}

// frameAt returns the payload of the frame at buf[off:], or false if there
// is no complete frame of this epoch with a good crc there.
func frameAt(buf []byte, off int, epoch uint64) ([]byte, bool) {
	if off < 0 || len(buf)-off < frameHeaderSize {
		return nil, false
	}
	h := buf[off : off+frameHeaderSize]
	n := int(binary.LittleEndian.Uint32(h))
	if n > maxFrame || n > len(buf)-off-frameHeaderSize || binary.LittleEndian.Uint64(h[8:]) != epoch {
		return nil, false
	}
	payload := buf[off+frameHeaderSize : off+frameHeaderSize+n]
	if binary.LittleEndian.Uint32(h[4:]) != frameCRC(h, payload) {
		return nil, false
	}
	return payload, true
}

// frameCRC is the crc of a frame with header h: its length, its epoch and
// its payload.
func frameCRC(h, payload []byte) uint32 {
	c := crc32.Update(0, castagnoli, h[:4])
	c = crc32.Update(c, castagnoli, h[8:16])
	return crc32.Update(c, castagnoli, payload)
}

// errFrame marks a frame whose payload does not decode.
var errFrame = errors.New("corrupt log frame")

// decodeFrame calls fn for each record in payload. Owner and ID are copied;
// State points into payload.
func decodeFrame(payload []byte, fn func(sluice.Record)) error {
	d := decoder{b: payload}
	count := d.uvarint()
	for i := uint64(0); i < count && d.err == nil; i++ {
		var r sluice.Record
		r.Kind = sluice.RecordKind(d.uvarint())
		switch d.byte() {
		case 0:
		case 1:
			r.Live = true
		default:
			d.err = errFrame
		}
		r.ID = string(d.bytes())
		r.Version = d.uvarint()
		r.Owner = string(d.bytes())
		r.State = d.bytes()
		if d.err == nil {
			if r.ID == "" {
				return fmt.Errorf("%w: a record without id", errFrame)
			}
			fn(r)
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = errFrame
	}
	return d.err
}

// decoder reads a payload, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errFrame
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.err = errFrame
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// bytes reads a length-prefixed byte string, capped so that the result
// cannot reach past the payload.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errFrame
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// frameSize is the size of the frame encoding recs, header included.
func frameSize(recs []sluice.Record) int {
	n := frameHeaderSize + uvarintLen(uint64(len(recs)))
	for i := range recs {
		r := &recs[i]
		n += uvarintLen(uint64(r.Kind)) + 1 +
			uvarintLen(uint64(len(r.ID))) + len(r.ID) +
			uvarintLen(r.Version) +
			uvarintLen(uint64(len(r.Owner))) + len(r.Owner) +
			uvarintLen(uint64(len(r.State))) + len(r.State)
	}
	return n
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// encodeFrame encodes recs as one frame of the epoch, size bytes long (as
// frameSize computed), and stores in logged a copy of each record whose
// State points into the frame, so the caller's buffers may be reused once
// Write returns.
func encodeFrame(recs []sluice.Record, epoch uint64, size int, logged []sluice.Record) []byte {
	b := make([]byte, frameHeaderSize, size)
	b = binary.AppendUvarint(b, uint64(len(recs)))
	for i := range recs {
		r := &recs[i]
		b = binary.AppendUvarint(b, uint64(r.Kind))
		if r.Live {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
		b = binary.AppendUvarint(b, uint64(len(r.ID)))
		b = append(b, r.ID...)
		b = binary.AppendUvarint(b, r.Version)
		b = binary.AppendUvarint(b, uint64(len(r.Owner)))
		b = append(b, r.Owner...)
		b = binary.AppendUvarint(b, uint64(len(r.State)))
		b = append(b, r.State...)
		logged[i] = *r
		// b never grows past size, so this slice stays valid.
		logged[i].State = b[len(b)-len(r.State) : len(b) : len(b)]
	}
	binary.LittleEndian.PutUint32(b, uint32(len(b)-frameHeaderSize))
	binary.LittleEndian.PutUint64(b[8:], epoch)
	binary.LittleEndian.PutUint32(b[4:], frameCRC(b[:frameHeaderSize], b[frameHeaderSize:]))
	return b
}

// checkRecords refuses what bbolt would refuse at checkpoint time, before
// it reaches the log: a record the log has acknowledged must be one the
// checkpoint can apply.
func checkRecords(recs []sluice.Record) error {
	for i := range recs {
		r := &recs[i]
		switch {
		case r.ID == "":
			return fmt.Errorf("%s record without id: %w", r.Kind, sluice.ErrInvalid)
		case len(r.ID) > bolt.MaxKeySize:
			return fmt.Errorf("%s id of %d bytes, over bbolt's %d: %w", r.Kind, len(r.ID), bolt.MaxKeySize, sluice.ErrInvalid)
		case valueSize(*r) > bolt.MaxValueSize:
			return fmt.Errorf("%s %q: state of %d bytes is too big: %w", r.Kind, r.ID, len(r.State), sluice.ErrInvalid)
		}
	}
	return nil
}
