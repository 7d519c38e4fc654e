package actors

import (
	"hash/fnv"
	"testing"

	"github.com/sluicehq/sluice"
)

// The inlined hash and the name table give what fnv and managerName give.
func TestActorNames(t *testing.T) {
	for _, id := range []string{"", "a", "0123456789abcdef0123456789abcdef01234567/" + "ff00", "é"} {
		h := fnv.New32a()
		h.Write([]byte(id))
		if got, want := shardOf(id), int(h.Sum32()%shards); got != want {
			t.Errorf("shardOf(%q) = %d, want %d", id, got, want)
		}
		for k := sluice.RecordKind(0); k <= sluice.KindNonce+1; k++ {
			who := Identity{Kind: k, ID: id}
			if got, want := actorName(who), managerName(k, shardOf(id))+"/"+id; got != want {
				t.Errorf("actorName(%v) = %q, want %q", who, got, want)
			}
		}
	}
}
