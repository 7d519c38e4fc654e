package actors

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sluicehq/sluice"
)

// memStore is a test double for the real stores: an in-memory map with the
// same version rule, so actor tests can run inside synctest bubbles (the
// real stores do file and network I/O). The stores themselves are checked
// by persistence/storetest.
type memStore struct {
	mu   sync.Mutex
	recs map[sluice.RecordKind]map[string]sluice.Record
	fail error // when set, Write fails with it
	// stall, when set, holds every Write until it is closed or the
	// write's ctx ends (a store that stopped answering).
	stall chan struct{}
	// written is when each record was last written (its archive time, for
	// an archived one).
	written map[string]time.Time
}

func newMemStore() *memStore {
	return &memStore{recs: map[sluice.RecordKind]map[string]sluice.Record{
		sluice.KindToken: {}, sluice.KindContract: {},
	}}
}

func (s *memStore) Write(ctx context.Context, recs []sluice.Record) error {
	s.mu.Lock()
	stall := s.stall
	s.mu.Unlock()
	if stall != nil {
		select {
		case <-stall:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	for _, r := range recs {
		if s.recs[r.Kind] == nil {
			s.recs[r.Kind] = map[string]sluice.Record{}
		}
		if old, ok := s.recs[r.Kind][r.ID]; ok && old.Version >= r.Version {
			continue
		}
		r.State = append([]byte(nil), r.State...)
		s.recs[r.Kind][r.ID] = r
		if s.written == nil {
			s.written = map[string]time.Time{}
		}
		s.written[r.Kind.String()+"/"+r.ID] = time.Now()
	}
	return nil
}

// PurgeArchived deletes archived records of kind written before before,
// as the real stores do (persistence/storetest checks those).
func (s *memStore) PurgeArchived(_ context.Context, kind sluice.RecordKind, before time.Time, limit int) (int, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id, r := range s.recs[kind] {
		if n < limit && !r.Live && s.written[kind.String()+"/"+id].Before(before) {
			delete(s.recs[kind], id)
			n++
		}
	}
	return n, n >= limit, nil
}

func (s *memStore) Live(ctx context.Context, kind sluice.RecordKind, fn func(sluice.Record) error) error {
	s.mu.Lock()
	var live []sluice.Record
	for _, r := range s.recs[kind] {
		if r.Live {
			live = append(live, r)
		}
	}
	s.mu.Unlock()
	for _, r := range live {
		if err := fn(r); err != nil {
			return err
		}
	}
	return ctx.Err()
}

func (s *memStore) Get(_ context.Context, kind sluice.RecordKind, id string) (sluice.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[kind][id]
	if !ok {
		return r, fmt.Errorf("%s %s: %w", kind, id, sluice.ErrNotFound)
	}
	return r, nil
}

func (s *memStore) Close() error { return nil }

func (s *memStore) setFail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

// contract returns the stored state of a contract.
func (s *memStore) contract(id string) (sluice.Contract, bool) {
	s.mu.Lock()
	r, ok := s.recs[sluice.KindContract][id]
	s.mu.Unlock()
	if !ok {
		return sluice.Contract{}, false
	}
	c, err := decodeContract(r)
	if err != nil {
		panic(err)
	}
	return c, true
}
