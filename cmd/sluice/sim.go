package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/sim"
)

// simUsage heads `sluice sim -h`.
const simUsage = `Usage: sluice sim [flags] [SCENARIO]

Drives a running node with virtual farmers and uploaders over HTTP, prints
a progress line to stderr every second and the report to stdout, and exits
with status 1 when the ledger check finds a difference or the node did
what it must not.

SCENARIO is a JSON file or a built-in scenario: %s (default smoke).
A scenario with a restart runs its own node (this binary's serve, on a
temporary data directory), since it kills it with SIGKILL midway.

Flags:
`

// simConfig is what `sluice sim` was asked to do.
type simConfig struct {
	scenario      sim.Scenario
	node          string
	jsonOut       bool
	htmlFile      string
	interval      time.Duration
	duration      time.Duration
	progressEvery time.Duration
	chainRPC      string
	payKeys       string
	nodeLog       string
	nodeDataDir   string
}

// parseSim reads the flags, the scenario argument (before or after the
// flags) and the SLUICE_SIM_* variables, and loads the scenario. Every
// problem is reported together.
func parseSim(args []string, out io.Writer) (simConfig, error) {
	fs := newFlagSet("sluice sim", "SLUICE_SIM_", out)
	fs.Usage = func() {
		fmt.Fprintf(out, simUsage, strings.Join(sim.BuiltinScenarios(), ", "))
		fs.PrintDefaults()
	}
	scenario := fs.String("scenario", "", "built-in scenario name or JSON file (or give it as the argument; default smoke)")
	node := fs.String("node", "http://127.0.0.1:8000", "the node's base URL (not for scenarios with a restart)")
	jsonOut := fs.Bool("json", false, "print the report as JSON instead of tables")
	htmlFile := fs.String("html", "", "also write the report as one self-contained HTML page with charts to this file")
	interval := fs.Duration("interval", 0, "the node's --challenge-interval (0: the scenario's interval_hint, else learnt from the node)")
	duration := fs.Duration("duration", 0, "how long the load runs (0: the scenario's duration)")
	every := fs.Duration("progress-every", time.Second, "how often the progress line is printed")
	chainRPC := fs.String("chain-rpc", "", "Ethereum RPC URL for paid uploads, when the node's built-in type has a price")
	payKeys := fs.String("pay-keys", "", "file of private keys (hex, one per line) funded with ether and the node's token, that uploaders pay from")
	nodeLog := fs.String("node-log", "", "with a restart scenario: file the own node's log lines go to (default: discarded)")
	nodeDir := fs.String("node-data-dir", "", "with a restart scenario: the own node's data directory (default: a temporary one, removed after)")

	// The scenario may come before the flags, after them, or as --scenario.
	var positional []string
	for {
		if err := fs.FlagSet.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return simConfig{}, err
			}
			return simConfig{}, errUsage // flag printed why
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		positional, args = append(positional, args[0]), args[1:]
	}

	c := simConfig{node: *node, jsonOut: *jsonOut, htmlFile: *htmlFile, interval: *interval, duration: *duration,
		progressEvery: *every, chainRPC: *chainRPC, payKeys: *payKeys, nodeLog: *nodeLog, nodeDataDir: *nodeDir}
	errs := []error{fs.envErr()}
	name := *scenario
	switch {
	case len(positional) > 1:
		errs = append(errs, fmt.Errorf("one scenario at a time, got %s", strings.Join(positional, " ")))
	case len(positional) == 1 && name != "" && positional[0] != name:
		errs = append(errs, fmt.Errorf("scenario %q and --scenario %q: give one", positional[0], name))
	case len(positional) == 1:
		name = positional[0]
	}
	if name == "" {
		name = "smoke"
	}
	if c.interval < 0 || c.interval > 0 && c.interval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("--interval %s: want 0 or at least 100ms, as the node's --challenge-interval", c.interval))
	}
	if c.duration < 0 {
		errs = append(errs, fmt.Errorf("--duration %s: want 0 (the scenario's) or more", c.duration))
	}
	if c.progressEvery < time.Second {
		errs = append(errs, fmt.Errorf("--progress-every %s: want at least 1s", c.progressEvery))
	}
	if (c.chainRPC == "") != (c.payKeys == "") {
		errs = append(errs, errors.New("--chain-rpc and --pay-keys go together"))
	}
	if u, err := url.Parse(c.node); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("--node %q: want the node's base URL, such as http://127.0.0.1:8000", c.node))
	}
	var err error
	if len(positional) <= 1 {
		c.scenario, err = sim.LoadScenario(name)
		errs = append(errs, err)
	}
	if err == nil && c.scenario.Restart != nil {
		explicit := false
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "node" {
				explicit = true
			}
		})
		if explicit {
			errs = append(errs, fmt.Errorf("scenario %s restarts the node with SIGKILL, so it runs its own: drop --node", c.scenario.Name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return simConfig{}, err
	}
	if c.duration > 0 {
		c.scenario.Duration = sim.Duration(c.duration)
	}
	if c.interval > 0 {
		c.scenario.IntervalHint = sim.Duration(c.interval)
	}
	if err := c.scenario.Validate(); err != nil { // the overrides may have broken it
		return simConfig{}, err
	}
	return c, nil
}

// simCmd runs `sluice sim`.
func simCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	err := runSim(ctx, args, stdout, stderr)
	if err != nil && !errors.Is(err, errUsage) && !errors.Is(err, flag.ErrHelp) {
		// The caller prefixes "sluice sim: "; package sim's own prefix
		// would repeat it.
		return errors.New(strings.TrimPrefix(err.Error(), "sim: "))
	}
	return err
}

func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseSim(args, stderr)
	if errors.Is(err, flag.ErrHelp) || errors.Is(err, errUsage) {
		return err
	}
	if err != nil {
		fmt.Fprintf(stderr, "sluice sim: %s\n", strings.TrimPrefix(err.Error(), "sim: "))
		return errUsage
	}
	opt := sim.Options{Node: c.node, Progress: stderr, ProgressEvery: c.progressEvery}
	if c.chainRPC != "" {
		if opt.PayKeys, err = sim.LoadKeys(c.payKeys); err != nil {
			return err
		}
		if len(opt.PayKeys) == 0 {
			return fmt.Errorf("--pay-keys %s: no key in the file", c.payKeys)
		}
		if opt.Chain, err = sim.DialChain(ctx, c.chainRPC); err != nil {
			return err
		}
	}
	if c.scenario.Restart != nil {
		p, stop, err := startOwnNode(ctx, c, stderr)
		if err != nil {
			return err
		}
		defer stop()
		opt.Node, opt.Restart = p.URL(), p.RestartHook(c.scenario.Restart.Down.D())
	}

	rep, err := sim.Run(ctx, c.scenario, opt)
	if err != nil {
		return err
	}
	if c.jsonOut {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		return fmt.Errorf("write the report: %w", err)
	}
	if c.htmlFile != "" {
		if err := writeHTML(rep, c.htmlFile); err != nil {
			return err
		}
	}
	switch {
	case ctx.Err() != nil:
		return errors.New("interrupted: the ledger was not checked")
	case rep.Ledger.NodeGone != "":
		return fmt.Errorf("the node did not answer at the end of the run (%s): the ledger was not checked", rep.Ledger.NodeGone)
	case rep.Refused > 0:
		return fmt.Errorf("%d virtual farmers got no token: start the node with --max-tokens-per-ip 0 (see Notes)", rep.Refused)
	case !rep.LedgerOK:
		return fmt.Errorf("the ledger check found %d differences", len(rep.Ledger.Differences))
	case len(rep.Anomalies) > 0:
		return fmt.Errorf("the node did %d things it must not (see Anomalies)", len(rep.Anomalies))
	}
	return nil
}

// writeHTML writes the report's page to file.
func writeHTML(rep *sim.Report, file string) error {
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("--html: %w", err)
	}
	if err := rep.WriteHTML(f); err != nil {
		f.Close()
		return fmt.Errorf("--html: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--html: %w", err)
	}
	return nil
}

// startOwnNode runs this binary's serve for a scenario that restarts the
// node: on 127.0.0.1 with a free port, the scenario's interval and upload
// settings, no per-IP or per-token limits, and a data directory that
// survives the SIGKILL. stop ends the node and removes a temporary data
// directory. Other SLUICE_* variables of the environment (such as
// SLUICE_DATABASE_URL) reach the node as they would reach serve.
func startOwnNode(ctx context.Context, c simConfig, stderr io.Writer) (*sim.Process, func(), error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, fmt.Errorf("find this binary to run the node: %w", err)
	}
	dir, cleanup := c.nodeDataDir, func() {}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "sluice-sim-node"); err != nil {
			return nil, nil, err
		}
		cleanup = func() { os.RemoveAll(dir) }
	}
	var logFile *os.File
	var log io.Writer
	if c.nodeLog != "" {
		if logFile, err = os.Create(c.nodeLog); err != nil {
			cleanup()
			return nil, nil, fmt.Errorf("--node-log: %w", err)
		}
		log = logFile
	}
	sc := c.scenario
	interval := sc.IntervalHint.D()
	if interval == 0 {
		interval = time.Second
	}
	args := []string{"--listen", "127.0.0.1:0", "--private-listen", "127.0.0.1:0", "--data-dir", dir,
		"--challenge-interval", interval.String(), "--max-tokens-per-ip", "0", "--token-rate", "0", "--quote-rate", "0"}
	if sc.UploadChunkSize > 0 {
		args = append(args, "--upload-chunk-size", strconv.FormatInt(int64(sc.UploadChunkSize), 10))
	}
	if sc.UploadRedundancy > 0 {
		args = append(args, "--upload-redundancy", strconv.Itoa(sc.UploadRedundancy))
	}
	p := &sim.Process{Path: self, Args: args, Log: log}
	fmt.Fprintf(stderr, "sluice sim: scenario %s restarts the node, so it runs its own: sluice serve %s\n",
		sc.Name, strings.Join(args, " "))
	stop := func() {
		p.Stop(30 * time.Second)
		if logFile != nil {
			logFile.Close()
		}
		cleanup()
	}
	if err := p.Start(ctx); err != nil {
		stop()
		return nil, nil, fmt.Errorf("start the node: %w", err)
	}
	return p, stop, nil
}
