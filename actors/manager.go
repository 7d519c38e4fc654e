package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"
)

// spawnEntity asks a manager to spawn a child entity actor.
type spawnEntity struct {
	Name  string
	Props *actor.Props
	// Failed, if set, is called when the spawn fails and nobody waits for
	// the reply (start-up counts the contracts it spawned).
	Failed func()
}

type spawnEntityReply struct {
	Err error
}

// syncManager is answered once every message sent before it is handled;
// start-up uses it to know that all queued spawns are done.
type syncManager struct{}

// manager spawns and supervises the entity actors of one shard of one kind.
// It holds no state of its own: the registry knows its children.
type manager struct{}

func newManager() actor.Actor { return &manager{} }

func (m *manager) Receive(c actor.Context) {
	switch msg := c.Message().(type) {
	case *spawnEntity:
		_, err := c.SpawnNamed(msg.Props, msg.Name)
		if c.Sender() != nil {
			c.Respond(&spawnEntityReply{Err: err})
		} else if err != nil && msg.Failed != nil {
			msg.Failed()
		}
	case *syncManager:
		c.Respond(msg)
	}
}

// entitySupervision restarts a failing entity actor, which then reloads its
// last committed snapshot. An actor failing more than ten times a minute is
// stopped; its record stays in the store and is loaded at the next start.
func entitySupervision(log *zap.Logger) actor.SupervisorStrategy {
	return actor.NewOneForOneStrategy(10, time.Minute, func(reason any) actor.Directive {
		log.Warn(eventActorFailed, zap.Any("reason", reason))
		return actor.RestartDirective
	})
}
