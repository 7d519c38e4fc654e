package actors

import (
	"context"
	"fmt"

	"github.com/sluicehq/sluice"
)

// ImportWhitelist replaces the whitelist with entries in one atomic write:
// listed addresses get their new balance, addresses no longer listed are
// archived. version must exceed every earlier import's (a clock reading in
// nanoseconds serves). It reports how many were listed and dropped.
func ImportWhitelist(ctx context.Context, store Store, entries []sluice.WhitelistEntry, version uint64) (listed, dropped int, err error) {
	keep := map[string]bool{}
	recs := make([]sluice.Record, 0, len(entries))
	for _, e := range entries {
		keep[e.Address] = true
		recs = append(recs, sluice.Record{Kind: sluice.KindWhitelist, ID: e.Address, Version: version, Live: true, State: []byte(e.Balance.String())})
	}
	err = store.Live(ctx, sluice.KindWhitelist, func(r sluice.Record) error {
		if !keep[r.ID] {
			recs = append(recs, sluice.Record{Kind: sluice.KindWhitelist, ID: r.ID, Version: version, Live: false, State: r.State})
			dropped++
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("read the current whitelist: %w", err)
	}
	if err := store.Write(ctx, recs); err != nil {
		return 0, 0, fmt.Errorf("write the whitelist: %w", err)
	}
	return len(entries), dropped, nil
}
