package sluice

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
)

// WhitelistEntry is one address allowed to farm and its balance.
type WhitelistEntry struct {
	Address string
	Balance *big.Int
}

// ParseWhitelist reads a whitelist CSV: a header row, then rows of
// address,balance (more columns are ignored, as the original node did).
// Addresses are validated and canonicalised; a balance is a non-negative
// whole number. Every bad row is reported, with its line number.
func ParseWhitelist(r io.Reader) ([]WhitelistEntry, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	if _, err := cr.Read(); err != nil {
		if err == io.EOF {
			return nil, errors.New("whitelist: the file is empty (want a header row, then address,balance rows)")
		}
		return nil, fmt.Errorf("whitelist: header: %w", err)
	}
	var out []WhitelistEntry
	var errs []error
	seen := map[string]bool{}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			errs = append(errs, err) // a csv.ParseError names its line
			var pe *csv.ParseError
			if errors.As(err, &pe) && pe.Err == csv.ErrQuote {
				break // nothing after an unclosed quote can be trusted
			}
			continue
		}
		line, _ := cr.FieldPos(0)
		if len(rec) < 2 {
			errs = append(errs, fmt.Errorf("line %d: want address,balance", line))
			continue
		}
		addr, _, err := ParseAddress(strings.TrimSpace(rec[0]))
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %q is not a valid address", line, rec[0]))
			continue
		}
		bal, ok := new(big.Int).SetString(strings.TrimSpace(rec[1]), 10)
		if !ok || bal.Sign() < 0 {
			errs = append(errs, fmt.Errorf("line %d: balance %q is not a whole number ≥ 0", line, rec[1]))
			continue
		}
		if seen[addr] {
			errs = append(errs, fmt.Errorf("line %d: %s is listed twice", line, addr))
			continue
		}
		seen[addr] = true
		out = append(out, WhitelistEntry{Address: addr, Balance: bal})
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("whitelist: %w", errors.Join(errs...))
	}
	return out, nil
}
