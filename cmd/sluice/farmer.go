package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sluicehq/sluice/farmer"
)

// farmerCmd runs a farmer: it gets or reuses a token, fills contracts up
// to --size and answers every challenge until it is stopped (SIGINT or
// SIGTERM), printing a progress line to stdout.
func farmerCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, logLevel, err := parseFarmer(args, stderr)
	if err != nil {
		return badUsage(err)
	}
	log, err := newLogger(logLevel, stderr)
	if err != nil {
		return badUsage(err)
	}
	defer log.Sync()
	cfg.Log, cfg.Progress = log, stdout
	return farmer.Run(ctx, cfg)
}

// parseFarmer reads the farmer's flags and variables into its config
// (without its logger and progress writer) and log level.
func parseFarmer(args []string, stderr io.Writer) (farmer.Config, string, error) {
	fs := newFlagSet("sluice farmer", "SLUICE_FARMER_", stderr)
	node := fs.String("node", "http://127.0.0.1:8000", "the node's base URL")
	address := fs.String("address", "", "payout address the token is for (required)")
	message := fs.String("message", "", "message signed by the address owner (when the node requires signatures)")
	signature := fs.String("signature", "", "signature of --message by the address owner (EIP-191, hex)")
	size := fs.Bytes("size", 32<<20, "bytes of contracts to hold")
	dir := fs.String("dir", "./farmer-data", "directory for the token file and chunk files")
	window := fs.Duration("batch-window", time.Second, "how long ready answers are gathered into one call (0: each is sent at once)")
	every := fs.Duration("progress-every", 5*time.Second, "how often the progress line is printed")
	memory := fs.Bool("memory", false, "keep prototype chunks as their seed instead of on disk (for load tests)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return farmer.Config{}, "", err
	}
	if fs.NArg() > 0 {
		return farmer.Config{}, "", fmt.Errorf("unexpected argument %q: farmer takes flags only (flags after it were not read)", fs.Arg(0))
	}
	var errs []error
	if *every <= 0 {
		errs = append(errs, errors.New("--progress-every: want more than 0"))
	}
	if *window < 0 {
		errs = append(errs, errors.New("--batch-window: want 0 (no batching) or more"))
	}
	if *address == "" {
		errs = append(errs, errors.New("--address is required"))
	}
	if *size <= 0 {
		errs = append(errs, errors.New("--size: want more than 0 bytes"))
	}
	if (*message == "") != (*signature == "") {
		errs = append(errs, errors.New("--message and --signature go together"))
	}
	if _, err := farmer.NewClient(*node, nil); err != nil { // the client's own check
		errs = append(errs, fmt.Errorf("--node %q: want the node's http:// or https:// base URL", *node))
	}
	if err := errors.Join(errs...); err != nil {
		return farmer.Config{}, "", err
	}
	if *window == 0 {
		*window = -1 // farmer.Config: 0 is the default window, negative none
	}
	return farmer.Config{
		Node: *node, Address: *address, Message: *message, Signature: *signature,
		Size: *size, Dir: *dir, BatchWindow: *window, ProgressEvery: *every, Memory: *memory,
	}, *logLevel, nil
}
