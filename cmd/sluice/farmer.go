package main

import (
	"context"
	"errors"
	"io"
)

func farmer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("farmer: wired in the next commit")
}
