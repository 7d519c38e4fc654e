package embedded

import (
	"bytes"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
)

// A frame decodes back to the records it was made of, and no input makes
// the reader panic or read past its buffer.
func FuzzFrame(f *testing.F) {
	f.Add([]byte("id"), []byte("owner"), []byte(`{"state":1}`), uint64(7), true, []byte{})
	f.Add([]byte("x"), []byte{}, []byte{}, uint64(1<<63), false, []byte{3, 2, 1, 0, 0})
	f.Fuzz(func(t *testing.T, id, owner, state []byte, version uint64, live bool, junk []byte) {
		if len(id) == 0 {
			id = []byte("-")
		}
		recs := []sluice.Record{
			{Kind: sluice.KindContract, ID: string(id), Owner: string(owner), Version: version, Live: live, State: state},
			{Kind: sluice.KindToken, ID: string(id) + "t", Version: 1},
		}
		size := frameSize(recs)
		logged := make([]sluice.Record, len(recs))
		frame := encodeFrame(recs, 9, size, logged)
		if len(frame) != size {
			t.Fatalf("frame of %d bytes, frameSize said %d", len(frame), size)
		}
		buf := append(make([]byte, walHeaderSize), frame...)
		buf = append(buf, junk...)
		payload, ok := frameAt(buf, walHeaderSize, 9)
		if !ok {
			t.Fatal("frameAt: the frame just written does not read back")
		}
		if _, ok := frameAt(buf, walHeaderSize, 8); ok {
			t.Fatal("frameAt: a frame of epoch 9 read as epoch 8")
		}
		var got []sluice.Record
		if err := decodeFrame(payload, func(r sluice.Record) { got = append(got, r) }); err != nil {
			t.Fatalf("decodeFrame: %v", err)
		}
		if len(got) != len(recs) {
			t.Fatalf("decoded %d records, want %d", len(got), len(recs))
		}
		for i := range recs {
			w, g := recs[i], got[i]
			if g.Kind != w.Kind || g.ID != w.ID || g.Owner != w.Owner || g.Version != w.Version || g.Live != w.Live || !bytes.Equal(g.State, w.State) {
				t.Fatalf("record %d: got %+v, want %+v", i, g, w)
			}
			if !bytes.Equal(logged[i].State, w.State) {
				t.Fatalf("record %d: logged state %q, want %q", i, logged[i].State, w.State)
			}
		}
		// Anything at all after it: no panic, and a frame only if the crc
		// says so.
		frameAt(buf, walHeaderSize+len(frame), 9)
		decodeFrame(junk, func(sluice.Record) {})
		decodeFrame(append(payload[:len(payload):len(payload)], junk...), func(sluice.Record) {})
	})
}

// The checkpointer rests longest while the active segment is empty and not
// at all once it is full, so a checkpoint never makes writes wait for it
// by resting.
func TestRestShrinksAsTheSegmentFills(t *testing.T) {
	s := &Store{segBytes: 1000}
	took := 10 * time.Millisecond
	for _, c := range []struct {
		filled int64
		want   time.Duration
	}{
		{0, checkpointRest * took},
		{500, checkpointRest * took / 2},
		{1000, 0},
		{1500, 0}, // one frame may take a segment past its size
	} {
		s.filled.Store(c.filled)
		if got := s.rest(took); got != c.want {
			t.Errorf("rest with %d of %d bytes filled: got %v, want %v", c.filled, s.segBytes, got, c.want)
		}
	}
}
