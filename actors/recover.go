package actors

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice"
)

// recover loads every live token and contract, spawns their actors and
// re-arms the contracts' timers with the time they have left. A due time
// that fell while the node was down moves to start-up plus one interval.
// Contracts of tokens that are gone are archived as cancelled.
func (e *Engine) recover(ctx context.Context) error {
	began := time.Now()
	startup := e.now()
	addresses := map[string]string{} // live farmer → payout address
	err := e.store.Live(ctx, sluice.KindToken, func(r sluice.Record) error {
		t, err := decodeToken(r)
		if err != nil {
			e.log.Error(eventRecordSkipped, zap.String("kind", "token"), zap.String("id", r.ID), zap.Error(err))
			return nil
		}
		addresses[t.Farmer] = t.Address
		_ = e.ips.take(t.IP, 0) // counted, never refused: it already exists
		e.spawnAsync(tokenIdentity(t.Farmer), &t, nil)
		return nil
	})
	if err != nil {
		return fmt.Errorf("load tokens: %w", err)
	}
	if err := e.syncManagers(sluice.KindToken); err != nil {
		return err
	}
	e.metrics.LiveTokens.Set(float64(len(addresses)))

	// Decoding is most of the work: records are fanned out to one worker
	// per core. Each worker tells a contract's token about it before it
	// spawns the contract's actor, so the token counts the contract before
	// it can hear of its closing.
	var contracts, moved atomic.Int64
	records := make(chan sluice.Record, 1024)
	var workers sync.WaitGroup
	var failed atomic.Pointer[error]
	for range runtime.GOMAXPROCS(0) {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for r := range records {
				if failed.Load() != nil {
					continue
				}
				if err := e.recoverContract(r, addresses, startup, &contracts, &moved); err != nil {
					failed.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	err = e.store.Live(ctx, sluice.KindContract, func(r sluice.Record) error {
		if p := failed.Load(); p != nil {
			return *p
		}
		records <- r
		return nil
	})
	close(records)
	workers.Wait()
	if p := failed.Load(); err == nil && p != nil {
		err = *p
	}
	if err != nil {
		return fmt.Errorf("load contracts: %w", err)
	}
	if err := e.syncManagers(sluice.KindContract); err != nil {
		return err
	}
	// Every actor is spawned; each arms its deadline when it runs its
	// Started message, on a goroutine of its own. The node is ready once
	// all of them have.
	if err := e.waitRearmed(ctx); err != nil {
		return err
	}
	e.metrics.LiveContracts.Add(float64(contracts.Load()))
	took := time.Since(began)
	e.metrics.RecoverySeconds.Set(took.Seconds())
	e.log.Info(eventRecovered, zap.Int("tokens", len(addresses)), zap.Int64("contracts", contracts.Load()),
		zap.Int64("deadlines_moved", moved.Load()), zap.Duration("took", took))
	return nil
}

// rearmTimeout bounds the wait for the recovered contracts to arm; as
// long as syncManagers would wait for their spawns.
const rearmTimeout = 5 * time.Minute

// waitRearmed waits until every recovered contract's actor has started
// and armed its deadline.
func (e *Engine) waitRearmed(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		e.rearming.Wait()
		close(done)
	}()
	t := time.NewTimer(rearmTimeout)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("start contract actors: not all armed after %s", rearmTimeout)
	}
}

// syncManagers waits until every manager of the kind has handled the spawns
// queued before.
func (e *Engine) syncManagers(kind sluice.RecordKind) error {
	futures := make([]actor.Future, 0, shards)
	for _, pid := range e.managers[kind] {
		futures = append(futures, e.sys.Root.RequestFuture(pid, &syncManager{}, 5*time.Minute))
	}
	for _, f := range futures {
		if _, err := f.Result(); err != nil {
			return fmt.Errorf("start %s actors: %w", kind, err)
		}
	}
	return nil
}

// recoverContract loads one live contract record: it archives contracts of
// tokens that are gone, moves a due time that passed while the node was
// down, and starts the contract's actor.
func (e *Engine) recoverContract(r sluice.Record, addresses map[string]string, startup time.Time, contracts, moved *atomic.Int64) error {
	c, err := decodeContract(r)
	if err != nil {
		e.log.Error(eventRecordSkipped, zap.String("kind", "contract"), zap.String("id", r.ID), zap.Error(err))
		return nil
	}
	address, ok := addresses[c.Farmer]
	if !ok {
		c.Cancel(startup)
		c.Version++
		e.writer.Enqueue(contractRecord(&c))
		return nil
	}
	changed, err := c.Recover(startup, e.cfg.Scheme, e.rng())
	if err != nil {
		return err
	}
	if changed {
		moved.Add(1)
		c.Version++
		e.writer.Enqueue(contractRecord(&c))
	}
	contracts.Add(1)
	if c.Quote != "" {
		e.pool.hold(c.Farmer, c.FileHash, c.Proofs > 0)
	}
	e.ledger.add(address, c.Size)
	e.dir.Tell(tokenIdentity(c.Farmer), &contractLoaded{Hash: c.FileHash, Size: c.Size, Proofs: c.Proofs, Due: c.Due})
	e.rearming.Add(1)
	e.spawnAsync(contractIdentity(c.ID()), recoveredContract{c: &c, queued: changed}, e.rearming.Done)
	return nil
}
