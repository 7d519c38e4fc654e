package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// flagSet wraps flag.FlagSet so that every flag falls back to a SLUICE_*
// environment variable, and the usage text names both.
type flagSet struct {
	*flag.FlagSet
	prefix string
	errs   []error
}

// newFlagSet makes the flags of one command; prefix names its variables
// (SLUICE_ for the node, SLUICE_FARMER_ for the farmer).
func newFlagSet(name, prefix string, out io.Writer) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	return &flagSet{FlagSet: fs, prefix: prefix}
}

// envName is the variable that backs a flag: the prefix + upper snake case.
func (f *flagSet) envName(flagName string) string {
	return f.prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func (f *flagSet) env(name string) (string, bool) {
	v, ok := os.LookupEnv(f.envName(name))
	return v, ok && v != ""
}

func (f *flagSet) usage(name, help string) string {
	return fmt.Sprintf("%s (env %s)", help, f.envName(name))
}

func (f *flagSet) String(name, def, help string) *string {
	if v, ok := f.env(name); ok {
		def = v
	}
	return f.FlagSet.String(name, def, f.usage(name, help))
}

func (f *flagSet) Bool(name string, def bool, help string) *bool {
	if v, ok := f.env(name); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s=%q: want true or false", f.envName(name), v))
		}
		def = b
	}
	return f.FlagSet.Bool(name, def, f.usage(name, help))
}

func (f *flagSet) Int(name string, def int, help string) *int {
	if v, ok := f.env(name); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s=%q: want a whole number", f.envName(name), v))
		}
		def = n
	}
	return f.FlagSet.Int(name, def, f.usage(name, help))
}

func (f *flagSet) Duration(name string, def time.Duration, help string) *time.Duration {
	if v, ok := f.env(name); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s=%q: want a duration such as 30s or 5m", f.envName(name), v))
		}
		def = d
	}
	return f.FlagSet.Duration(name, def, f.usage(name, help))
}

// Bytes is a size flag accepting plain bytes or KiB/MiB/GiB/TiB suffixes.
func (f *flagSet) Bytes(name string, def int64, help string) *int64 {
	p := new(int64)
	*p = def
	if v, ok := f.env(name); ok {
		n, err := parseBytes(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s=%q: %v", f.envName(name), v, err))
		}
		*p = n
	}
	f.FlagSet.Func(name, f.usage(name, help+fmt.Sprintf(" (default %d)", def)), func(s string) error {
		n, err := parseBytes(s)
		*p = n
		return err
	})
	return p
}

// Sizes is a comma-separated list of byte sizes.
func (f *flagSet) Sizes(name, def, help string) *[]int64 {
	p := new([]int64)
	set := func(s string) error {
		var out []int64
		for _, part := range strings.Split(s, ",") {
			n, err := parseBytes(strings.TrimSpace(part))
			if err != nil {
				return err
			}
			out = append(out, n)
		}
		*p = out
		return nil
	}
	v := def
	if e, ok := f.env(name); ok {
		v = e
	}
	if err := set(v); err != nil {
		f.errs = append(f.errs, fmt.Errorf("%s=%q: %v", f.envName(name), v, err))
	}
	f.FlagSet.Func(name, f.usage(name, help+" (default "+def+")"), set)
	return p
}

// Parse parses args and reports every environment error together.
func (f *flagSet) Parse(args []string) error {
	if err := f.FlagSet.Parse(args); err != nil {
		return err
	}
	return f.envErr()
}

// envErr joins the errors found in the environment variables.
func (f *flagSet) envErr() error { return errors.Join(f.errs...) }

func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("want a byte size such as 32768, 1MiB or 2GiB")
	}
	return n * mult, nil
}
