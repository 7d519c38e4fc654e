package sim

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Process runs `sluice serve` as a child process that the restart
// scenario can kill with SIGKILL and start again on the same address and
// store. RestartHook(down) is its Options.Restart.
//
// Args follow "serve" and must name a store that survives the process
// (--data-dir or --database-url, or the same in Env). The first start
// may listen on port 0; restarts listen on the address the first start
// got, so the node's URL does not change.
type Process struct {
	// Path is the sluice binary.
	Path string
	// Args are the flags after "serve".
	Args []string
	// Env is added to the simulator's environment.
	Env []string
	// Log receives the node's stderr (its JSON log lines); nil discards
	// them.
	Log io.Writer
	// ReadyTimeout bounds a start (default 60s).
	ReadyTimeout time.Duration

	mu   sync.Mutex
	cmd  *exec.Cmd
	addr string        // the public listener, learned from node.listening
	done chan struct{} // closed when the process exited
}

// Node log events Process waits for.
const (
	eventListening = "node.listening"
	eventReady     = "node.ready"
)

// Start runs the node and waits until it logs node.ready.
func (p *Process) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.start(ctx)
}

func (p *Process) start(ctx context.Context) error {
	if p.cmd != nil {
		return errors.New("sim: the node process is running")
	}
	args := append([]string{"serve"}, p.Args...)
	if p.addr != "" {
		args = append(args, "--listen", p.addr) // the last --listen wins
	}
	cmd := exec.Command(p.Path, args...)
	cmd.Env = append(os.Environ(), p.Env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("sim: start %s: %w", p.Path, err)
	}
	done := make(chan struct{})
	listening, ready := make(chan string, 1), make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		readyOnce := sync.OnceFunc(func() { close(ready) })
		for sc.Scan() {
			line := sc.Bytes()
			if p.Log != nil {
				_, _ = p.Log.Write(append(slices.Clone(line), '\n'))
			}
			var ev struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(line, &ev) != nil {
				continue
			}
			switch ev.Msg {
			case eventListening:
				select {
				case listening <- ev.Addr:
				default:
				}
			case eventReady:
				readyOnce()
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		_ = cmd.Wait()
	}()
	p.cmd, p.done = cmd, done
	wait := p.ReadyTimeout
	if wait <= 0 {
		wait = 60 * time.Second
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case addr := <-listening:
			p.addr = addr
		case <-ready:
			if p.addr == "" {
				p.kill()
				return errors.New("sim: the node was ready before it logged its address")
			}
			return nil
		case <-done:
			p.cmd = nil
			return errors.New("sim: the node exited before it was ready")
		case <-timer.C:
			p.kill()
			return fmt.Errorf("sim: the node was not ready after %s", wait)
		case <-ctx.Done():
			p.kill()
			return ctx.Err()
		}
	}
}

// URL is the node's base URL (after Start).
func (p *Process) URL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return "http://" + p.addr
}

// kill ends the node with SIGKILL, as a crash would, and waits for it.
func (p *Process) kill() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.cmd = nil
}

// RestartHook returns an Options.Restart that kills the node with SIGKILL,
// leaves it dead for down (Scenario.Restart.Down), and starts it again on
// the same address, returning once it logged node.ready.
func (p *Process) RestartHook(down time.Duration) func(context.Context) error {
	return func(ctx context.Context) error { return p.restart(ctx, down) }
}

func (p *Process) restart(ctx context.Context, down time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.kill()
	if down > 0 {
		t := time.NewTimer(down)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return p.start(ctx)
}

// Stop ends the node gracefully (SIGTERM), killing it if it has not
// exited within timeout.
func (p *Process) Stop(timeout time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		p.cmd = nil
	case <-time.After(timeout):
		p.kill()
	}
}
