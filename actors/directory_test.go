package actors

import (
	"context"
	"fmt"
	"hash/fnv"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

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

// An actor that replies and then stops itself (a token answering its own
// deletion) gives its reply to Ask, however soon after the stop Ask looks
// whether it is gone: the reply was sent, and it must not be taken for a
// message dropped with the actor.
func TestAskTakesTheReplyOfAnActorThatThenStops(t *testing.T) {
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	// Looking at every tick of a few microseconds makes the look land
	// between the stop and the reply's hand-over in most rounds.
	d := &localDirectory{sys: sys, timeout: 10 * time.Second, gone: newSharedTicks(5 * time.Microsecond)}
	props := actor.PropsFromFunc(func(c actor.Context) {
		if _, ok := c.Message().(string); ok {
			c.Respond("deleted")
			c.Stop(c.Self())
		}
	})
	for i := range 2000 {
		who := tokenIdentity(fmt.Sprintf("t%d", i))
		if _, err := sys.Root.SpawnNamed(props, actorName(who)); err != nil {
			t.Fatal(err)
		}
		res, err := d.Ask(context.Background(), who, "delete")
		if err != nil || res != "deleted" {
			t.Fatalf("round %d: Ask gave %v, %v; want the reply the actor sent before it stopped", i, res, err)
		}
	}
}
