package actors

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkStatusRebuild is one refresh of the status list's view at
// 100k farmers, all online: what the node spends every StatusRefresh.
// asked=all is a view sorted by every key, as every rebuild did before
// sorting became lazy; asked=uptime is the status benchmark's query
// (by/d/uptime) alone; asked=none is a node nobody asks.
func BenchmarkStatusRebuild(b *testing.B) {
	now := time.Now()
	for _, asked := range []string{"all", "uptime", "none"} {
		b.Run("asked="+asked, func(b *testing.B) {
			x := newStatusIndex()
			for i := range 100_000 {
				s := &statusSource{id: fmt.Sprintf("%040x", i*7919), address: fmt.Sprintf("0x%040x", i*104729),
					heartbeats: int64(i % 977), contracts: 1 + i%10, size: int64(i%10) << 20, lastDue: now}
				s.uptime.Rise(now.Add(-time.Duration(i%3600) * time.Second))
				x.put(s)
			}
			for k, key := range sortKeys {
				if asked == "all" || asked == key {
					x.asked[k].Store(now.UnixNano())
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				x.rebuild(now)
			}
		})
	}
}
