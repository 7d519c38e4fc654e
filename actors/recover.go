package actors

import (
	"context"
	"fmt"
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
		e.spawnAsync(tokenIdentity(t.Farmer), &t)
		return nil
	})
	if err != nil {
		return fmt.Errorf("load tokens: %w", err)
	}
	if err := e.syncManagers(sluice.KindToken); err != nil {
		return err
	}
	e.metrics.LiveTokens.Set(float64(len(addresses)))

	var contracts, moved int
	err = e.store.Live(ctx, sluice.KindContract, func(r sluice.Record) error {
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
			moved++
			c.Version++
			e.writer.Enqueue(contractRecord(&c))
		}
		contracts++
		e.ledger.bytes[address] += c.Size // single-threaded here: no other user yet
		// Sent before the contract actor exists, so the token counts the
		// contract before it can hear of its closing.
		e.dir.Tell(tokenIdentity(c.Farmer), &contractLoaded{Hash: c.FileHash, Size: c.Size, Proofs: c.Proofs})
		e.spawnAsync(contractIdentity(c.ID()), &c)
		return nil
	})
	if err != nil {
		return fmt.Errorf("load contracts: %w", err)
	}
	if err := e.syncManagers(sluice.KindContract); err != nil {
		return err
	}
	e.metrics.LiveContracts.Add(float64(contracts))
	took := time.Since(began)
	e.metrics.RecoverySeconds.Set(took.Seconds())
	e.log.Info(eventRecovered, zap.Int("tokens", len(addresses)), zap.Int("contracts", contracts),
		zap.Int("deadlines_moved", moved), zap.Duration("took", took))
	return nil
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
