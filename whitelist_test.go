package sluice_test

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice"
)

func TestParseWhitelist(t *testing.T) {
	good := "address,crowdsale_balance\n19qVgG8C6eXwKMMyvVegsi3xCsKyk3Z3jV,10000\n0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed, 25,extra\n"
	got, err := sluice.ParseWhitelist(strings.NewReader(good))
	if err != nil || len(got) != 2 {
		t.Fatalf("got %v, %v; want 2 entries", got, err)
	}
	if got[1].Address != "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed" || got[1].Balance.Int64() != 25 {
		t.Fatalf("second entry: %+v", got[1])
	}
	for name, bad := range map[string]string{
		"empty":          "",
		"bad address":    "a,b\nnope,1\n",
		"bad balance":    "a,b\n19qVgG8C6eXwKMMyvVegsi3xCsKyk3Z3jV,ten\n",
		"negative":       "a,b\n19qVgG8C6eXwKMMyvVegsi3xCsKyk3Z3jV,-1\n",
		"one column":     "a,b\n19qVgG8C6eXwKMMyvVegsi3xCsKyk3Z3jV\n",
		"listed twice":   "a,b\n19qVgG8C6eXwKMMyvVegsi3xCsKyk3Z3jV,1\n19qVgG8C6eXwKMMyvVegsi3xCsKyk3Z3jV,2\n",
		"unclosed quote": "a,b\n\"19qV,1\n",
	} {
		if _, err := sluice.ParseWhitelist(strings.NewReader(bad)); err == nil {
			t.Fatalf("%s: accepted", name)
		}
	}
}
