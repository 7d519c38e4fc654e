package actors

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/sluicehq/sluice"
)

// Identity names an entity actor independently of where it runs.
type Identity struct {
	Kind sluice.RecordKind
	ID   string
}

func tokenIdentity(farmer string) Identity { return Identity{Kind: sluice.KindToken, ID: farmer} }
func contractIdentity(id string) Identity  { return Identity{Kind: sluice.KindContract, ID: id} }

// errNoActor: no live actor has the identity (it never existed, or it
// closed and stopped). Callers then ask the store about the archived record.
var errNoActor = errors.New("no live actor")

// Directory reaches an entity's actor by its identity. It is the one seam
// between the request path and actor placement: the local directory looks
// in this process's registry; a clustered one would send the message to the
// node owning the identity's partition (partitions held through etcd
// leases) without the callers changing.
type Directory interface {
	// Ask sends msg and waits for the reply, or for ctx. It returns
	// errNoActor when no live actor has the identity.
	Ask(ctx context.Context, who Identity, msg any) (any, error)
	// Tell sends msg without waiting; it reports false when no live actor
	// has the identity.
	Tell(who Identity, msg any) bool
	// Resolve finds the actor once, for a caller that sends to it often:
	// the PID keeps the actor's process, so sending to it again needs no
	// lookup. Once the actor stops, what is sent to the PID goes to the
	// dead letters, as what is queued when an actor stops is dropped.
	Resolve(who Identity) (*actor.PID, bool)
	// Alive reports whether a live actor has the identity.
	Alive(who Identity) bool
}

// shards is how many manager actors share each kind. Spawning goes through
// a manager, so several of them let start-up spawn in parallel.
const shards = 16

// shardOf is FNV-1a of id, modulo shards.
func shardOf(id string) int {
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h ^= uint32(id[i])
		h *= 16777619
	}
	return int(h % shards)
}

func managerName(kind sluice.RecordKind, shard int) string {
	return fmt.Sprintf("%s-%02d", kind, shard)
}

// actorName is the registry name of an entity actor: a child of its shard's
// manager, so protoactor prefixes the manager's name.
func actorName(who Identity) string {
	if int(who.Kind) < len(managerNames) {
		return managerNames[who.Kind][shardOf(who.ID)] + "/" + who.ID
	}
	return managerName(who.Kind, shardOf(who.ID)) + "/" + who.ID
}

// managerNames holds managerName of every record kind and shard: names are
// made for every message sent, and fmt is slow.
var managerNames = func() (n [sluice.KindNonce + 1][shards]string) {
	for k := range n {
		for s := range n[k] {
			n[k][s] = managerName(sluice.RecordKind(k), s)
		}
	}
	return n
}()

// localDirectory is the single-node Directory.
type localDirectory struct {
	sys     *actor.ActorSystem
	timeout time.Duration // used when ctx has no deadline
	gone    *sharedTicks  // when a waiting Ask looks whether its actor is gone
}

// local is the running actor's process, if there is one.
func (d *localDirectory) local(who Identity) (actor.Process, bool) {
	return d.sys.ProcessRegistry.GetLocal(actorName(who))
}

func (d *localDirectory) pid(who Identity) (*actor.PID, bool) {
	name := actorName(who)
	if _, ok := d.sys.ProcessRegistry.GetLocal(name); !ok {
		return nil, false
	}
	return actor.NewPID(d.sys.Address(), name), true
}

func (d *localDirectory) Ask(ctx context.Context, who Identity, msg any) (any, error) {
	pid, ok := d.pid(who)
	if !ok {
		return nil, errNoActor
	}
	timeout := d.timeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
		if timeout <= 0 {
			// The request's time is up (a slow step before this one):
			// the node is too busy to answer it, as when the actor does
			// not answer in time.
			return nil, unavailable(fmt.Errorf("actor %s not asked: %w", who.Kind, context.Cause(ctx)))
		}
	}
	f := d.sys.Root.RequestFuture(pid, msg, timeout)
	type result struct {
		res any
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := f.Result()
		done <- result{res, err}
	}()
	// An actor that stops (a contract closing, a token deleted) drops the
	// messages still in its mailbox without a reply. Rather than wait for
	// the timeout, notice that it is gone: the caller then answers from
	// the archived record, as for any closed entity.
	for {
		select {
		case r := <-done:
			return d.result(who, timeout, r.res, r.err)
		case <-d.gone.wait():
			if _, alive := d.sys.ProcessRegistry.GetLocal(pid.Id); alive {
				continue
			}
			// A reply completes the future, which leaves the registry
			// then, in the replying actor's goroutine: so if this actor
			// replied before it stopped (a token answering its own
			// deletion), the future has left by now, and its result is
			// there to take even if the goroutine above has not passed
			// it on yet. Looking only at done here told the caller of a
			// deletion that committed that its token did not exist.
			if _, pending := d.sys.ProcessRegistry.GetLocal(f.PID().Id); !pending {
				res, err := f.Result() // complete: returns at once
				return d.result(who, timeout, res, err)
			}
			return nil, errNoActor
		}
	}
}

// goneCheck is how often a waiting Ask checks that its actor still exists.
const goneCheck = 20 * time.Millisecond

func (d *localDirectory) result(who Identity, timeout time.Duration, res any, err error) (any, error) {
	switch {
	case errors.Is(err, actor.ErrDeadLetter):
		return nil, errNoActor
	case errors.Is(err, actor.ErrTimeout):
		return nil, fmt.Errorf("%w: actor %s did not answer in %s", sluice.ErrUnavailable, who.Kind, timeout)
	case err != nil:
		return nil, err
	}
	return res, nil
}

// Tell posts msg straight to the actor's mailbox, which is what Root.Send
// does when the root context has no sender middleware (ours has none): it
// saves making a PID and looking the actor up a second time, on the
// path of every answer.
func (d *localDirectory) Tell(who Identity, msg any) bool {
	proc, ok := d.local(who)
	if !ok {
		return false
	}
	proc.SendUserMessage(nil, msg)
	return true
}

func (d *localDirectory) Resolve(who Identity) (*actor.PID, bool) {
	return d.pid(who)
}

func (d *localDirectory) Alive(who Identity) bool {
	_, ok := d.local(who)
	return ok
}
