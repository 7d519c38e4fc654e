package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/actors"
)

// whitelistCmd: sluice whitelist import FILE.csv replaces the whitelist in
// the node's store atomically. With PostgreSQL it may run beside the node
// (every /new reads the list from the store); the embedded store is locked
// by a running node, so stop the node first.
func whitelistCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "import" {
		fmt.Fprintln(stderr, "usage: sluice whitelist import [--database-url URL | --data-dir DIR] FILE.csv")
		return errUsage
	}
	fs := newFlagSet("sluice whitelist import", "SLUICE_", stderr)
	dbURL := fs.String("database-url", "", "PostgreSQL URL; empty uses the embedded store in --data-dir")
	dataDir := fs.String("data-dir", "./data", "directory of the embedded store")
	if err := fs.Parse(args[1:]); err != nil {
		return badUsage(err)
	}
	switch {
	case fs.NArg() > 1 && strings.HasPrefix(fs.Arg(1), "-"):
		return badUsage(fmt.Errorf("flags go before the file: sluice whitelist import [flags] FILE.csv (%q came after it)", fs.Arg(1)))
	case fs.NArg() != 1:
		return badUsage(errors.New("name exactly one CSV file (header row, then address,balance rows)"))
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	entries, err := sluice.ParseWhitelist(f)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, serveConfig{databaseURL: *dbURL, dataDir: *dataDir}, zap.NewNop())
	if err != nil {
		return err
	}
	defer st.Close()
	listed, dropped, err := actors.ImportWhitelist(ctx, st, entries, uint64(time.Now().UnixNano()))
	if err != nil {
		return err
	}
	noun := "addresses"
	if listed == 1 {
		noun = "address"
	}
	fmt.Fprintf(stdout, "whitelist: %d %s listed, %d dropped\n", listed, noun, dropped)
	return nil
}
