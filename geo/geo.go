// Package geo turns a farmer's IP address into the location shown in the
// statistics: city, country, state, postal code and coordinates, read from a
// MaxMind GeoLite2-City (or GeoIP2-City) database.
//
// [DB] satisfies actors.Locator. The database is optional: without one the
// engine is given no Locator, and every location is null.
package geo

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"strings"
	"sync"

	"github.com/oschwald/geoip2-golang/v2"

	"github.com/sluicehq/sluice"
)

// ErrNotCityDatabase is returned by [Open] for a MaxMind database that has no
// city-level data, such as GeoLite2-Country or GeoLite2-ASN.
var ErrNotCityDatabase = errors.New("not a City database")

// DB finds locations in a MaxMind City database. It is safe for
// concurrent use, including Close while lookups are running.
type DB struct {
	// mu guards r against Close: the reader memory-maps the file, and
	// reading the mapping after it is released would crash the process,
	// not panic.
	mu sync.RWMutex
	r  *geoip2.Reader // nil once closed
}

// Open opens the MaxMind database at path. It must be a City database
// (GeoLite2-City, GeoIP2-City and their variants, or an Enterprise database,
// which holds the same fields); any other type yields an error wrapping
// [ErrNotCityDatabase]. A missing file yields an error wrapping
// [fs.ErrNotExist].
func Open(path string) (*DB, error) {
	r, err := geoip2.Open(path)
	if err != nil {
		// geoip2 returns an open reader alongside an unknown-type error.
		if r != nil {
			_ = r.Close()
		}
		var unknown geoip2.UnknownDatabaseTypeError
		if errors.As(err, &unknown) {
			return nil, fmt.Errorf("geo: open %s: %w (database type %q)", path, ErrNotCityDatabase, unknown.DatabaseType)
		}
		var pathErr *fs.PathError
		if errors.As(err, &pathErr) {
			return nil, fmt.Errorf("geo: %w", err) // already names the path
		}
		return nil, fmt.Errorf("geo: open %s: %w", path, err)
	}
	// geoip2 lets City() read Country databases too, which would give
	// locations without city, state, zip or coordinates, so check the type
	// here rather than trust the library.
	if t := r.Metadata().DatabaseType; !isCityType(t) {
		_ = r.Close()
		return nil, fmt.Errorf("geo: open %s: %w (database type %q)", path, ErrNotCityDatabase, t)
	}
	return &DB{r: r}, nil
}

// isCityType reports whether a database of type t has city-level records.
func isCityType(t string) bool {
	return strings.Contains(t, "City") || strings.Contains(t, "Enterprise")
}

// Locate returns the location of ip, or nil when the database has none: the
// address is in no network, its record holds none of the six fields, the
// lookup fails, ip is invalid, or the database is closed. A network with an
// empty record is thus a miss, not a Location of six nils, so that callers
// need only one test for "unknown" and the statistics show a null location
// as they do for a miss. An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is
// looked up as the IPv4 address. Locate is safe for concurrent use.
func (d *DB) Locate(ip netip.Addr) *sluice.Location {
	if d == nil || !ip.IsValid() {
		return nil
	}
	ip = ip.Unmap()

	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.r == nil {
		return nil
	}
	rec, err := d.r.City(ip)
	if err != nil || !rec.HasData() {
		return nil
	}
	return fromCity(rec)
}

// fromCity maps a City record to a Location, or nil if it has none of the
// fields a Location reports.
func fromCity(rec *geoip2.City) *sluice.Location {
	loc := sluice.Location{
		City:    nonEmpty(rec.City.Names.English),
		Country: nonEmpty(rec.Country.Names.English),
		Lat:     rec.Location.Latitude,
		Lon:     rec.Location.Longitude,
		Zip:     nonEmpty(rec.Postal.Code),
	}
	if loc.Country == nil {
		loc.Country = nonEmpty(rec.Country.ISOCode)
	}
	if len(rec.Subdivisions) > 0 {
		loc.State = nonEmpty(rec.Subdivisions[0].Names.English)
	}
	if loc == (sluice.Location{}) {
		return nil
	}
	return &loc
}

// nonEmpty returns a pointer to s, or nil if s is empty.
func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Close releases the database. Later calls to Locate return nil; closing
// twice is harmless.
func (d *DB) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.r == nil {
		return nil
	}
	err := d.r.Close()
	d.r = nil
	if err != nil {
		return fmt.Errorf("geo: close: %w", err)
	}
	return nil
}
