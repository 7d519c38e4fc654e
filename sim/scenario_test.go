package sim_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/sim"
)

// TestBuiltinScenarios loads every shipped scenario: each is valid, and
// the smoke one has every farmer kind and uploaders.
func TestBuiltinScenarios(t *testing.T) {
	names := sim.BuiltinScenarios()
	for _, want := range []string{"smoke", "load", "restart"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("built-in scenarios %v lack %s", names, want)
		}
	}
	for _, name := range names {
		sc, err := sim.BuiltinScenario(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if sc.Name != name || sc.Duration <= 0 {
			t.Errorf("%s: name %q, duration %v", name, sc.Name, sc.Duration)
		}
		// The same file loads from disk.
		fromFile, err := sim.LoadScenario(filepath.Join("scenarios", name+".json"))
		if err != nil || fromFile.Name != name {
			t.Errorf("LoadScenario(scenarios/%s.json): %v, name %q", name, err, fromFile.Name)
		}
	}
	smoke, _ := sim.BuiltinScenario("smoke")
	kinds := map[sim.Kind]int{}
	for _, g := range smoke.Farmers {
		kinds[g.Kind] += g.Count
	}
	for _, k := range sim.Kinds {
		if kinds[k] == 0 {
			t.Errorf("smoke scenario has no %s farmer", k)
		}
	}
	if smoke.Duration.D() > time.Minute || len(smoke.Uploaders) == 0 {
		t.Errorf("smoke: %v long, %d uploader groups; want under a minute, with uploaders", smoke.Duration.D(), len(smoke.Uploaders))
	}
	restart, _ := sim.BuiltinScenario("restart")
	if restart.Restart == nil || restart.Restart.At <= 0 || restart.Restart.Down <= 0 {
		t.Errorf("restart scenario: restart %+v, want a time and a downtime", restart.Restart)
	}
}

// TestParseScenario covers the JSON forms of durations and sizes, and the
// name a file gives.
func TestParseScenario(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "mine.json")
	os.WriteFile(file, []byte(`{
		"duration": 90,
		"interval_hint": "1.5s",
		"tree_cache": "1.5MiB",
		"farmers": [
			{"kind": "honest", "count": 3, "size": 65536},
			{"kind": "lossy", "count": 1, "size": "2 MiB", "lost": 0.1},
			{"kind": "flaky", "count": 1, "on": "3s", "off": "500ms"}
		],
		"uploaders": [{"count": 2, "sizes": ["1KB", "10KiB"]}],
		"restart": {"at": "30s", "down": "2s"}
	}`), 0o600)
	sc, err := sim.LoadScenario(file)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case sc.Name != "mine":
		t.Errorf("name %q, want mine (from the file)", sc.Name)
	case sc.Duration.D() != 90*time.Second || sc.IntervalHint.D() != 1500*time.Millisecond:
		t.Errorf("durations %v %v, want 1m30s and 1.5s", sc.Duration.D(), sc.IntervalHint.D())
	case sc.TreeCache != 3<<19 || sc.Farmers[0].Size != 65536 || sc.Farmers[1].Size != 2<<20:
		t.Errorf("sizes %d %d %d", sc.TreeCache, sc.Farmers[0].Size, sc.Farmers[1].Size)
	case sc.Uploaders[0].Sizes[0] != 1000 || sc.Uploaders[0].Sizes[1] != 10240:
		t.Errorf("upload sizes %v, want 1000 and 10240", sc.Uploaders[0].Sizes)
	case sc.Restart.At.D() != 30*time.Second || sc.Restart.Down.D() != 2*time.Second:
		t.Errorf("restart %+v", sc.Restart)
	}
	// It writes back in the same notation and reads back the same.
	b, _ := json.Marshal(sc)
	if !strings.Contains(string(b), `"1m30s"`) || !strings.Contains(string(b), `"2MiB"`) {
		t.Errorf("marshalled: %s", b)
	}
	again, err := sim.ParseScenario(b, "x")
	if err != nil || again.Duration != sc.Duration || again.Farmers[1].Size != sc.Farmers[1].Size {
		t.Errorf("round trip: %v %+v", err, again)
	}
	if _, err := sim.LoadScenario(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("a missing file loaded")
	}
	if _, err := sim.LoadScenario("nosuchscenario"); err == nil || !strings.Contains(err.Error(), "smoke") {
		t.Errorf("unknown built-in name: %v, want an error listing the built-in ones", err)
	}
}

// TestScenarioErrors: each mistake is refused with a message naming it.
func TestScenarioErrors(t *testing.T) {
	for _, c := range []struct{ json, want string }{
		{`{"farmers":[{"kind":"honest","count":1}]}`, "duration"},
		{`{"duration":"1s","farmers":[]}`, "no farmers"},
		{`{"duration":"1s","farmers":[{"kind":"evil","count":1}]}`, "unknown kind"},
		{`{"duration":"1s","farmers":[{"kind":"lossy","count":1}]}`, "lost"},
		{`{"duration":"1s","farmers":[{"kind":"lossy","count":1,"lost":1.5}]}`, "lost"},
		{`{"duration":"1s","farmers":[{"kind":"late","count":1}]}`, "late"},
		{`{"duration":"1s","farmers":[{"kind":"flaky","count":1,"on":"1s"}]}`, "on and off"},
		{`{"duration":"1s","farmers":[{"kind":"honest","count":1,"lost":0.1}]}`, "does not apply"},
		{`{"duration":"1s","farmers":[{"kind":"honest","count":-1}]}`, "negative"},
		{`{"duration":"1s","farmers":[{"kind":"honest","count":1}],"restart":{"at":"2s"}}`, "restart"},
		{`{"duration":"1s","farmers":[{"kind":"honest","count":1}],"uploaders":[{"count":1,"sizes":[0]}]}`, "positive"},
		{`{"duration":"soon","farmers":[{"kind":"honest","count":1}]}`, "duration"},
		{`{"duration":"1s","farmers":[{"kind":"honest","count":1,"size":"lots"}]}`, "size"},
		{`{"duration":"1s","farmers":[{"kind":"honest","count":1}],"typo":1}`, "unknown field"},
		{`{"duration":"1s","farmers":[{"kind":"honest","count":3000000000}]}`, "virtual farmers"},
		{`{"duration":"1s","farmers":[{"kind":"honest","count":9223372036854775807},{"kind":"honest","count":9223372036854775807}]}`, "virtual farmers"},
		{`{"duration":"1s","farmers":[{"kind":"honest","count":1}],"uploaders":[{"count":200000}]}`, "virtual uploaders"},
	} {
		_, err := sim.ParseScenario([]byte(c.json), "t")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.json, err, c.want)
		}
	}
}
