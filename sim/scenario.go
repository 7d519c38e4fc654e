package sim

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Kind is a virtual farmer's behaviour.
type Kind string

// The farmer kinds.
const (
	// Honest answers every challenge soon after it appears, batched.
	Honest Kind = "honest"
	// Late answers like Honest, except that with probability Late per
	// challenge it sends the answer after the due time; the node must then
	// say "contract expired".
	Late Kind = "late"
	// Lossy has lost each leaf of its chunks with probability Lost; a
	// challenge naming a lost leaf is answered with made-up bytes for it,
	// which the node must reject.
	Lossy Kind = "lossy"
	// Flaky farms honestly for On, then makes no call at all for Off, and
	// so on; contracts due while it is off expire.
	Flaky Kind = "flaky"
	// Cheater keeps no data and answers with made-up leaves and paths;
	// every answer must be rejected ("proof invalid" or "proof corrupted").
	Cheater Kind = "cheater"
)

// Kinds lists the farmer kinds in report order.
var Kinds = []Kind{Honest, Late, Lossy, Flaky, Cheater}

// Scenario is one simulation, as stored in a JSON file. Durations are Go
// duration strings ("20s") or seconds; sizes are bytes or strings with a
// unit ("256KiB"). Zero fields take the defaults listed.
type Scenario struct {
	// Name labels the report; LoadScenario defaults it to the file name.
	Name        string `json:"name,omitempty"`
	Description string `json:"description,omitempty"`
	// Duration of the load phase (required).
	Duration Duration `json:"duration"`
	// Ramp spreads the farmers' start over this long (default
	// min(2s, Duration/10)).
	Ramp Duration `json:"ramp,omitempty"`
	// IntervalHint is the node's challenge interval (its
	// --challenge-interval). Zero means learn it from the first contract.
	// It bounds retry delays and paces polling.
	IntervalHint Duration `json:"interval_hint,omitempty"`
	// LeavesPerChallenge is k, for the detection table (default: what the
	// node announces, else 4).
	LeavesPerChallenge int `json:"leaves_per_challenge,omitempty"`
	// Pool is the number of pooled connections to the node, shared by all
	// virtual clients (default 64).
	Pool int `json:"pool,omitempty"`
	// RequestTimeout bounds one call (default 10s).
	RequestTimeout Duration `json:"request_timeout,omitempty"`
	// BatchWindow is how long a farmer gathers ready answers into one call,
	// never past halfway to the deadline (default min(1s, interval/10)).
	BatchWindow Duration `json:"batch_window,omitempty"`
	// TreeCache bounds the memory of cached Merkle trees over all farmers
	// (default 256MiB); chunks beyond it are re-read to prove.
	TreeCache Size `json:"tree_cache,omitempty"`
	// UploadReserve is how many bytes beyond its size an honest farmer
	// takes while uploads wait for farmers (default 0: none). The node
	// makes room for uploaded pieces itself, by ending prototype contracts
	// of full farmers (docs/decisions/0004), so farmers need not; a
	// reserve makes uploads finish sooner, and finish at all against a
	// node that does not, at the cost of farmers the original client
	// would not be.
	UploadReserve Size `json:"upload_reserve,omitempty"`
	// UploadChunkSize and UploadRedundancy are the node's
	// --upload-chunk-size and --upload-redundancy (defaults 1MiB and 2):
	// how many chunk contracts an upload needs, so that honest farmers know
	// when to make room.
	UploadChunkSize  Size `json:"upload_chunk_size,omitempty"`
	UploadRedundancy int  `json:"upload_redundancy,omitempty"`
	// ForwardedFor sends a distinct X-Forwarded-For address per virtual
	// farmer, so that a node started with --trusted-proxies 127.0.0.1 counts
	// each as its own client (its --max-tokens-per-ip applies per farmer).
	// Without it, start the node with --max-tokens-per-ip 0.
	ForwardedFor bool `json:"forwarded_for,omitempty"`
	// Seed makes the farmers' random choices repeatable (default 1).
	Seed uint64 `json:"seed,omitempty"`

	Farmers   []FarmerGroup   `json:"farmers"`
	Uploaders []UploaderGroup `json:"uploaders,omitempty"`
	// Restart, when set, kills and restarts the node midway through
	// Options.Restart.
	Restart *Restart `json:"restart,omitempty"`
}

// The most virtual farmers and uploaders one run may have: each is a
// goroutine with its own state, and a run is one process on one machine
// (the benchmarks' largest fleet is 100,000 farmers).
const (
	MaxFarmers   = 1_000_000
	MaxUploaders = 100_000
)

// FarmerGroup is Count farmers of one kind.
type FarmerGroup struct {
	Kind  Kind `json:"kind"`
	Count int  `json:"count"`
	// Size is the bytes of contracts each farmer holds (default 256KiB).
	Size Size `json:"size,omitempty"`
	// Lost is the fraction f of leaves a lossy farmer has lost (0 < f ≤ 1).
	Lost float64 `json:"lost,omitempty"`
	// Late is a late farmer's probability of answering a challenge after
	// its due time (0 < p ≤ 1).
	Late float64 `json:"late,omitempty"`
	// On and Off are a flaky farmer's periods online and offline.
	On  Duration `json:"on,omitempty"`
	Off Duration `json:"off,omitempty"`
}

// UploaderGroup is Count uploaders, each making Uploads uploads one after
// the other.
type UploaderGroup struct {
	Count int `json:"count"`
	// Uploads per uploader (default 1); -1 keeps uploading until the end.
	Uploads int `json:"uploads,omitempty"`
	// Sizes of the files, picked in turn, each uploader starting one
	// further along the list (default 64KiB).
	Sizes []Size `json:"sizes,omitempty"`
	// Type is the storage type (default "sluice", the built-in one, whose
	// files are read back from the node and compared; other types end at
	// getLink).
	Type string `json:"type,omitempty"`
	// StorageDuration is the quoted storage period (default 1h).
	StorageDuration Duration `json:"storage_duration,omitempty"`
	// Start delays the first upload (default 1s, or one interval when
	// that is longer), so that farmers hold contracts first.
	Start Duration `json:"start,omitempty"`
	// Pause between two uploads of one uploader (default 0).
	Pause Duration `json:"pause,omitempty"`
}

// Restart is when the node is killed and restarted.
type Restart struct {
	// At is the time into the run when Options.Restart is called.
	At Duration `json:"at"`
	// Down is how long the node stays dead before it is started again,
	// so that due times fall while it is down. The restart hook applies
	// it (Process.RestartHook(Down)).
	Down Duration `json:"down,omitempty"`
}

// Defaults of Scenario's fields.
const (
	DefaultPool           = 64               // pooled connections
	DefaultRequestTimeout = 10 * time.Second // per call
	DefaultFarmerSize     = 256 << 10        // bytes of contracts per farmer
	DefaultUploadSize     = 64 << 10         // bytes per uploaded file
	DefaultK              = 4                // leaves per challenge
	DefaultTreeCache      = 256 << 20        // bytes of cached Merkle trees
	DefaultUploadChunk    = 1 << 20          // the node's --upload-chunk-size
	DefaultRedundancy     = 2                // the node's --upload-redundancy
)

//go:embed scenarios/*.json
var builtin embed.FS

// BuiltinScenarios lists the names of the scenarios shipped in
// sim/scenarios (smoke, load, restart, ...).
func BuiltinScenarios() []string {
	entries, _ := fs.ReadDir(builtin, "scenarios")
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".json"))
	}
	return names
}

// BuiltinScenario returns a shipped scenario by name ("smoke").
func BuiltinScenario(name string) (Scenario, error) {
	b, err := builtin.ReadFile(path.Join("scenarios", name+".json"))
	if err != nil {
		return Scenario{}, fmt.Errorf("sim: no built-in scenario %q (have %s)", name, strings.Join(BuiltinScenarios(), ", "))
	}
	return ParseScenario(b, name)
}

// LoadScenario reads a scenario file. A name without a path separator or
// ".json" that is not a file is looked up among the built-in scenarios.
func LoadScenario(file string) (Scenario, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && !strings.ContainsAny(file, `/\`) && !strings.HasSuffix(file, ".json") {
			return BuiltinScenario(file)
		}
		return Scenario{}, fmt.Errorf("sim: %w", err)
	}
	return ParseScenario(b, strings.TrimSuffix(path.Base(strings.ReplaceAll(file, `\`, "/")), ".json"))
}

// ParseScenario decodes a scenario (unknown fields are errors) and checks
// it; name is used when the scenario has none.
func ParseScenario(b []byte, name string) (Scenario, error) {
	var sc Scenario
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sc); err != nil {
		return Scenario{}, fmt.Errorf("sim: scenario %s: %w", name, err)
	}
	if sc.Name == "" {
		sc.Name = name
	}
	if err := sc.Validate(); err != nil {
		return Scenario{}, err
	}
	return sc, nil
}

// Validate reports the first problem of a scenario.
func (sc Scenario) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("sim: scenario %s: "+format, append([]any{sc.Name}, args...)...)
	}
	if sc.Duration <= 0 {
		return bad("duration must be positive")
	}
	if sc.Ramp < 0 || sc.IntervalHint < 0 || sc.RequestTimeout < 0 || sc.BatchWindow < 0 {
		return bad("durations must not be negative")
	}
	if sc.Pool < 0 || sc.LeavesPerChallenge < 0 || sc.UploadRedundancy < 0 || sc.TreeCache < 0 ||
		sc.UploadReserve < 0 || sc.UploadChunkSize < 0 {
		return bad("counts and sizes must not be negative")
	}
	farmers := 0
	for i, g := range sc.Farmers {
		if !slices.Contains(Kinds, g.Kind) {
			return bad("farmers[%d]: unknown kind %q (want one of %v)", i, g.Kind, Kinds)
		}
		if g.Count < 0 || g.Size < 0 {
			return bad("farmers[%d]: count and size must not be negative", i)
		}
		if g.Count > MaxFarmers-farmers {
			return bad("farmers: more than %d virtual farmers in all", MaxFarmers)
		}
		farmers += g.Count
		switch g.Kind {
		case Lossy:
			if !(g.Lost > 0 && g.Lost <= 1) {
				return bad("farmers[%d]: a lossy farmer needs lost in (0, 1]", i)
			}
		case Late:
			if !(g.Late > 0 && g.Late <= 1) {
				return bad("farmers[%d]: a late farmer needs late in (0, 1]", i)
			}
		case Flaky:
			if g.On <= 0 || g.Off <= 0 {
				return bad("farmers[%d]: a flaky farmer needs positive on and off periods", i)
			}
		}
		if g.Kind != Lossy && g.Lost != 0 || g.Kind != Late && g.Late != 0 || g.Kind != Flaky && (g.On != 0 || g.Off != 0) {
			return bad("farmers[%d]: a parameter that does not apply to kind %s", i, g.Kind)
		}
	}
	if farmers == 0 {
		return bad("no farmers")
	}
	uploaders := 0
	for i, u := range sc.Uploaders {
		if u.Count < 0 || u.Uploads < -1 || u.Start < 0 || u.Pause < 0 || u.StorageDuration < 0 {
			return bad("uploaders[%d]: negative count, uploads or duration", i)
		}
		if u.Count > MaxUploaders-uploaders {
			return bad("uploaders: more than %d virtual uploaders in all", MaxUploaders)
		}
		uploaders += u.Count
		for _, s := range u.Sizes {
			if s <= 0 {
				return bad("uploaders[%d]: file sizes must be positive", i)
			}
		}
	}
	if sc.Restart != nil && (sc.Restart.At <= 0 || sc.Restart.At >= sc.Duration || sc.Restart.Down < 0) {
		return bad("restart.at must fall within the duration, and restart.down must not be negative")
	}
	return nil
}

// withDefaults fills in the defaults that do not depend on the node.
func (sc Scenario) withDefaults() Scenario {
	if sc.Ramp == 0 {
		sc.Ramp = Duration(min(2*time.Second, sc.Duration.D()/10))
	}
	if sc.Pool == 0 {
		sc.Pool = DefaultPool
	}
	if sc.RequestTimeout == 0 {
		sc.RequestTimeout = Duration(DefaultRequestTimeout)
	}
	if sc.TreeCache == 0 {
		sc.TreeCache = DefaultTreeCache
	}
	if sc.UploadChunkSize == 0 {
		sc.UploadChunkSize = DefaultUploadChunk
	}
	if sc.UploadRedundancy == 0 {
		sc.UploadRedundancy = DefaultRedundancy
	}
	if sc.Seed == 0 {
		sc.Seed = 1
	}
	sc.Farmers = slices.Clone(sc.Farmers)
	for i := range sc.Farmers {
		if sc.Farmers[i].Size == 0 {
			sc.Farmers[i].Size = DefaultFarmerSize
		}
	}
	sc.Uploaders = slices.Clone(sc.Uploaders)
	for i := range sc.Uploaders {
		u := &sc.Uploaders[i]
		if u.Uploads == 0 {
			u.Uploads = 1
		}
		if len(u.Sizes) == 0 {
			u.Sizes = []Size{DefaultUploadSize}
		}
		if u.Type == "" {
			u.Type = "sluice"
		}
		if u.StorageDuration == 0 {
			u.StorageDuration = Duration(time.Hour)
		}
	}
	return sc
}

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string ("1m30s"); it also reads a number of seconds.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes the duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "1m30s" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: want e.g. 30s or 5m", s)
		}
		*d = Duration(v)
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil || math.IsNaN(f) || math.Abs(f) > 1e9 {
		return fmt.Errorf("duration %s: want a string such as \"30s\" or seconds", b)
	}
	*d = Duration(f * float64(time.Second))
	return nil
}

// Size is a byte count that reads JSON as a number or a string with a
// unit: B, KiB, MiB, GiB, TiB (and KB, MB, GB, TB as powers of 1000).
type Size int64

// MarshalJSON writes the size in the largest binary unit that divides it.
func (s Size) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// String formats the size as "256KiB", or bytes when no unit divides it.
func (s Size) String() string {
	for _, u := range []struct {
		name string
		n    int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if s != 0 && int64(s)%u.n == 0 {
			return strconv.FormatInt(int64(s)/u.n, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// UnmarshalJSON reads a number of bytes or a string such as "1.5MiB".
func (s *Size) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		var n int64
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("size %s: want bytes or a string such as \"256KiB\"", b)
		}
		*s = Size(n)
		return nil
	}
	v, err := ParseSize(str)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseSize reads "123", "64KiB", "1.5 MiB", "2GB".
func ParseSize(str string) (Size, error) {
	t := strings.TrimSpace(str)
	units := []struct {
		suffix string
		n      float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	mult := 1.0
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.n
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || f*mult > 1<<62 {
		return 0, fmt.Errorf("size %q: want bytes or a number with KiB, MiB, GiB or TiB", str)
	}
	return Size(math.Round(f * mult)), nil
}
