package geo_test

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/geo"
)

// DB has the method set of actors.Locator; checked here against the same
// signature so that this package's tests do not depend on actors.
var _ interface {
	Locate(netip.Addr) *sluice.Location
} = (*geo.DB)(nil)

// names is a MaxMind "names" map holding only an English name.
func names(en string) mmdbtype.Map {
	return mmdbtype.Map{"en": mmdbtype.String(en)}
}

// cityRecords are the networks of the test City database. The networks are
// reserved for documentation (or private), which IncludeReservedNetworks
// allows.
var cityRecords = map[string]mmdbtype.Map{
	// Every field a Location reports, plus a second subdivision and a
	// continent, which it ignores.
	"192.0.2.0/24": {
		"city":      mmdbtype.Map{"names": names("London")},
		"continent": mmdbtype.Map{"code": mmdbtype.String("EU"), "names": names("Europe")},
		"country":   mmdbtype.Map{"iso_code": mmdbtype.String("GB"), "names": names("United Kingdom")},
		"location":  mmdbtype.Map{"latitude": mmdbtype.Float64(51.5508), "longitude": mmdbtype.Float64(-0.0912)},
		"postal":    mmdbtype.Map{"code": mmdbtype.String("N5")},
		"subdivisions": mmdbtype.Slice{
			mmdbtype.Map{"iso_code": mmdbtype.String("ENG"), "names": names("England")},
			mmdbtype.Map{"iso_code": mmdbtype.String("ISL"), "names": names("Islington")},
		},
	},
	// Country and coordinates only, as for many addresses in GeoLite2.
	"198.51.100.0/24": {
		"country":  mmdbtype.Map{"iso_code": mmdbtype.String("US"), "names": names("United States")},
		"location": mmdbtype.Map{"latitude": mmdbtype.Float64(37.751), "longitude": mmdbtype.Float64(-97.822)},
	},
	// A record that exists but is empty.
	"203.0.113.0/24": {},
	// A record with data, but none that a Location reports.
	"10.2.0.0/16": {
		"continent": mmdbtype.Map{"code": mmdbtype.String("EU"), "names": names("Europe")},
	},
	// A country with an ISO code but no English name.
	"10.1.0.0/16": {
		"country": mmdbtype.Map{"iso_code": mmdbtype.String("FR")},
	},
	"2001:db8::/32": {
		"city":         mmdbtype.Map{"names": names("Berlin")},
		"country":      mmdbtype.Map{"iso_code": mmdbtype.String("DE"), "names": names("Germany")},
		"location":     mmdbtype.Map{"latitude": mmdbtype.Float64(52.52), "longitude": mmdbtype.Float64(13.405)},
		"postal":       mmdbtype.Map{"code": mmdbtype.String("10115")},
		"subdivisions": mmdbtype.Slice{mmdbtype.Map{"names": names("Land Berlin")}},
	},
}

// writeDB writes a MaxMind database of type dbType holding records to a
// fresh file and returns its path.
func writeDB(tb testing.TB, dbType string, records map[string]mmdbtype.Map) string {
	tb.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            dbType,
		RecordSize:              24,
		IncludeReservedNetworks: true,
		// Without the ::ffff:0:0/96 alias, an IPv4-mapped address is found
		// only if Locate unmaps it, so the test proves that it does.
		DisableIPv4Aliasing: true,
	})
	if err != nil {
		tb.Fatalf("mmdbwriter.New: %v", err)
	}
	for cidr, rec := range records {
		_, network, err := net.ParseCIDR(cidr)
		if err != nil {
			tb.Fatalf("parse %s: %v", cidr, err)
		}
		if err := tree.Insert(network, rec); err != nil {
			tb.Fatalf("insert %s: %v", cidr, err)
		}
	}
	path := filepath.Join(tb.TempDir(), dbType+".mmdb")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		tb.Fatalf("write database: %v", err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}

// openCityDB opens a GeoLite2-City database holding cityRecords and closes
// it when the test ends.
func openCityDB(tb testing.TB) *geo.DB {
	tb.Helper()
	db, err := geo.Open(writeDB(tb, "GeoLite2-City", cityRecords))
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return db
}

// toJSON encodes loc as the statistics would.
func toJSON(t *testing.T, loc *sluice.Location) string {
	t.Helper()
	b, err := json.Marshal(loc)
	if err != nil {
		t.Fatalf("marshal %+v: %v", loc, err)
	}
	return string(b)
}

func TestLocate(t *testing.T) {
	db := openCityDB(t)
	const (
		london = `{"city":"London","country":"United Kingdom","lat":51.5508,"lon":-0.0912,"state":"England","zip":"N5"}`
		berlin = `{"city":"Berlin","country":"Germany","lat":52.52,"lon":13.405,"state":"Land Berlin","zip":"10115"}`
	)
	tests := []struct {
		name string
		ip   netip.Addr
		want string // JSON
	}{
		{"full record", netip.MustParseAddr("192.0.2.1"), london},
		{"partial record", netip.MustParseAddr("198.51.100.7"),
			`{"city":null,"country":"United States","lat":37.751,"lon":-97.822,"state":null,"zip":null}`},
		{"country without English name falls back to ISO code", netip.MustParseAddr("10.1.2.3"),
			`{"city":null,"country":"FR","lat":null,"lon":null,"state":null,"zip":null}`},
		{"empty record", netip.MustParseAddr("203.0.113.9"), "null"},
		{"record without any reported field", netip.MustParseAddr("10.2.3.4"), "null"},
		{"IPv4 outside every network", netip.MustParseAddr("8.8.8.8"), "null"},
		{"IPv6", netip.MustParseAddr("2001:db8::1"), berlin},
		{"IPv6 outside every network", netip.MustParseAddr("2001:db9::1"), "null"},
		{"IPv4-mapped IPv6", netip.MustParseAddr("::ffff:192.0.2.1"), london},
		{"invalid address", netip.Addr{}, "null"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := toJSON(t, db.Locate(tt.ip)); got != tt.want {
				t.Errorf("Locate(%v): got %s, want %s", tt.ip, got, tt.want)
			}
		})
	}
}

func TestLocateEmptyRecordIsNil(t *testing.T) {
	// Distinct from JSON "null" above: a Go caller sees a nil pointer, not a
	// Location of nil fields.
	db := openCityDB(t)
	if got := db.Locate(netip.MustParseAddr("203.0.113.9")); got != nil {
		t.Errorf("got %+v, want nil", got)
	}
}

func TestOpenAcceptsCityTypes(t *testing.T) {
	for _, dbType := range []string{"GeoLite2-City", "GeoIP2-City", "GeoIP2-City-Europe", "GeoIP2-Enterprise"} {
		t.Run(dbType, func(t *testing.T) {
			db, err := geo.Open(writeDB(t, dbType, cityRecords))
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			defer db.Close()
			if got := db.Locate(netip.MustParseAddr("192.0.2.1")); got == nil || got.City == nil || *got.City != "London" {
				t.Errorf("got %s, want London", toJSON(t, got))
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	writeFile := func(t *testing.T, data string) string {
		path := filepath.Join(t.TempDir(), "file.mmdb")
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	tests := []struct {
		name   string
		path   func(t *testing.T) string
		wantIs error // nil: any error
	}{
		{"Country database", func(t *testing.T) string { return writeDB(t, "GeoLite2-Country", cityRecords) }, geo.ErrNotCityDatabase},
		{"ASN database", func(t *testing.T) string { return writeDB(t, "GeoLite2-ASN", nil) }, geo.ErrNotCityDatabase},
		{"unknown database type", func(t *testing.T) string { return writeDB(t, "Sluice-Test", nil) }, geo.ErrNotCityDatabase},
		{"missing file", func(t *testing.T) string { return filepath.Join(t.TempDir(), "absent.mmdb") }, fs.ErrNotExist},
		{"garbage file", func(t *testing.T) string { return writeFile(t, "this is not a MaxMind database\n") }, nil},
		{"empty file", func(t *testing.T) string { return writeFile(t, "") }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path(t)
			db, err := geo.Open(path)
			if err == nil {
				db.Close()
				t.Fatalf("Open(%s): got no error, want one", path)
			}
			if db != nil {
				t.Errorf("got DB %v with error, want nil", db)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("got error %q, want one wrapping %q", err, tt.wantIs)
			}
			t.Log(err)
		})
	}
}

func TestClose(t *testing.T) {
	db, err := geo.Open(writeDB(t, "GeoLite2-City", cityRecords))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close: got %v, want nil", err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close: got %v, want nil", err)
	}
	if got := db.Locate(netip.MustParseAddr("192.0.2.1")); got != nil {
		t.Errorf("Locate after Close: got %s, want null", toJSON(t, got))
	}
}

func TestConcurrentLocateAndClose(t *testing.T) {
	db, err := geo.Open(writeDB(t, "GeoLite2-City", cityRecords))
	if err != nil {
		t.Fatal(err)
	}
	ips := []netip.Addr{
		netip.MustParseAddr("192.0.2.1"),
		netip.MustParseAddr("198.51.100.7"),
		netip.MustParseAddr("8.8.8.8"),
		netip.MustParseAddr("2001:db8::1"),
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				ip := ips[(g+i)%len(ips)]
				if loc := db.Locate(ip); loc != nil && loc.Country == nil {
					t.Errorf("Locate(%v): got a location without country", ip)
					return
				}
			}
		})
	}
	wg.Go(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	wg.Wait()
}

func TestNilDB(t *testing.T) {
	var db *geo.DB
	if got := db.Locate(netip.MustParseAddr("192.0.2.1")); got != nil {
		t.Errorf("got %+v, want nil", got)
	}
}

func BenchmarkLocate(b *testing.B) {
	db := openCityDB(b)
	hit := netip.MustParseAddr("192.0.2.1")
	miss := netip.MustParseAddr("8.8.8.8")
	b.Run("hit", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if db.Locate(hit) == nil {
				b.Fatal("got nil, want a location")
			}
		}
	})
	b.Run("miss", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if db.Locate(miss) != nil {
				b.Fatal("got a location, want nil")
			}
		}
	})
	b.Run("hit-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if db.Locate(hit) == nil {
					b.Error("got nil, want a location")
					return
				}
			}
		})
	})
}
