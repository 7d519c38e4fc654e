package http_test

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/actors"
	"github.com/sluicehq/sluice/geo"
	sluicehttp "github.com/sluicehq/sluice/http"
	"github.com/sluicehq/sluice/internal/nodetest"
)

// writeCityDB writes a small GeoLite2-City database: a full record for
// 192.0.2.0/24 and a country-only one for 198.51.100.0/24.
func writeCityDB(t *testing.T) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoLite2-City", RecordSize: 24, IncludeReservedNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	en := func(s string) mmdbtype.Map { return mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(s)}} }
	_, full, _ := net.ParseCIDR("192.0.2.0/24")
	tree.Insert(full, mmdbtype.Map{
		"city": en("London"), "country": en("United Kingdom"),
		"subdivisions": mmdbtype.Slice{en("England")}, "postal": mmdbtype.Map{"code": mmdbtype.String("N5")},
		"location": mmdbtype.Map{"latitude": mmdbtype.Float64(51.5508), "longitude": mmdbtype.Float64(-0.0912)},
	})
	_, part, _ := net.ParseCIDR("198.51.100.0/24")
	tree.Insert(part, mmdbtype.Map{"country": en("United States"),
		"location": mmdbtype.Map{"latitude": mmdbtype.Float64(38), "longitude": mmdbtype.Float64(-97)}})
	path := filepath.Join(t.TempDir(), "city.mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return path
}

func TestFarmerLocation(t *testing.T) {
	db, err := geo.Open(writeCityDB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n := nodetest.Start(t, nodetest.Stores(t)[0].Open(t), nodetest.Options{
		Engine: actors.Config{Terms: sluice.Terms{Interval: time.Minute}, Locator: db},
		HTTP:   sluicehttp.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
	})
	newAt := func(ip string) string {
		r := do(t, "GET", n.API+"/new/"+addr, nil, "X-Forwarded-For", ip)
		if r.code != 200 {
			t.Fatalf("/new from %s: %s", ip, r.raw)
		}
		return r.str("token")
	}
	show := func(token string) map[string]any {
		r := do(t, "GET", n.API+"/status/show/"+sluiceFarmerID(t, token), nil)
		loc, _ := r.body["location"].(map[string]any)
		return loc
	}
	full := newAt("192.0.2.10")
	if loc := show(full); loc["city"] != "London" || loc["country"] != "United Kingdom" || loc["state"] != "England" ||
		loc["zip"] != "N5" || loc["lat"] != 51.5508 || loc["lon"] != -0.0912 {
		t.Fatalf("full record: %v", loc)
	}
	if loc := show(newAt("198.51.100.1")); loc["country"] != "United States" || loc["city"] != nil || loc["state"] != nil || loc["zip"] != nil || loc["lat"] != 38.0 {
		t.Fatalf("partial record: %v", loc)
	}
	if loc := show(newAt("203.0.113.1")); loc != nil {
		t.Fatalf("address in no network: %v, want null", loc)
	}
	// A token used from a new address moves there and is located again.
	if r := do(t, "GET", n.API+"/chunk/"+full, nil, "X-Forwarded-For", "198.51.100.7"); r.code != 200 {
		t.Fatalf("chunk from a new address: %s", r.raw)
	}
	if loc := show(full); loc["country"] != "United States" {
		t.Fatalf("after moving: %v", loc)
	}
}
