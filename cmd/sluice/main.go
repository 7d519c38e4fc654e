// Command sluice is the Sluice storage node and its companions:
//
//	sluice serve     run the node (farmer API, operations endpoints)
//	sluice farmer    run a farmer against a node
//	sluice sim       drive a node with virtual farmers and uploaders
//
// Every flag also reads a SLUICE_* environment variable; `sluice <command>
// -h` lists them. The README documents each one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

const usage = `sluice: a node for decentralized storage.

Usage:
  sluice serve  [flags]   run the node (try: sluice serve -h)
  sluice farmer [flags]   run a farmer against a node (try: sluice farmer -h)
  sluice sim [flags] [SCENARIO]
                          drive a node with virtual farmers and uploaders and
                          check its books (try: sluice sim -h)
  sluice whitelist import [--database-url URL | --data-dir DIR] FILE.csv
                          replace the whitelist (header row, then address,balance)
  sluice version          print the version
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stderr)
	case "farmer":
		err = farmerCmd(ctx, args[1:], stdout, stderr)
	case "sim":
		err = simCmd(ctx, args[1:], stdout, stderr)
	case "whitelist":
		err = whitelistCmd(ctx, args[1:], stdout, stderr)
	case "version":
		if len(args) > 1 {
			err = badUsage(fmt.Errorf("version takes no arguments (got %q)", args[1]))
			break
		}
		fmt.Fprintln(stdout, version)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "sluice: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintf(stderr, "sluice %s: %v\n", args[0], err)
	if errors.As(err, new(usageError)) {
		return 2
	}
	return 1
}

// errUsage: the flags were wrong; flag already printed why.
var errUsage = errors.New("usage")

// usageError is a command line that cannot run: an unknown flag, a value
// out of range, a stray word. Like the flag package's own errors, it exits
// with status 2; a command that fails while running exits with 1.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// badUsage marks err (when there is one, and it is not a request for help)
// as a usage error.
func badUsage(err error) error {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return usageError{err}
}

// newLogger builds the one zap logger of the process: JSON to stderr.
func newLogger(level string, out io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "time"
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(out), lvl)
	return zap.New(core, zap.AddCaller()), nil
}
