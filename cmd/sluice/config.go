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
	out    io.Writer
	errs   []error
}

// newFlagSet makes the flags of one command; prefix names its variables
// (SLUICE_ for the node, SLUICE_FARMER_ for the farmer).
func newFlagSet(name, prefix string, out io.Writer) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	return &flagSet{FlagSet: fs, prefix: prefix, out: out}
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

// Int and Duration parse their flag and variable alike, with one message
// for a bad value; a bad variable leaves the default, so that no range
// check then reports a value nobody gave.
func (f *flagSet) Int(name string, def int, help string) *int {
	p := new(int)
	*p = def
	parse := func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil {
			return errors.New("want a whole number")
		}
		*p = n
		return nil
	}
	if v, ok := f.env(name); ok {
		if err := parse(v); err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s=%q: %v", f.envName(name), v, err))
		}
	}
	f.FlagSet.Func(name, f.usage(name, help+fmt.Sprintf(" (default %d)", def)), parse)
	return p
}

func (f *flagSet) Duration(name string, def time.Duration, help string) *time.Duration {
	p := new(time.Duration)
	*p = def
	parse := func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil {
			return errors.New("want a duration such as 30s, 5m or 168h")
		}
		*p = d
		return nil
	}
	if v, ok := f.env(name); ok {
		if err := parse(v); err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s=%q: %v", f.envName(name), v, err))
		}
	}
	f.FlagSet.Func(name, f.usage(name, help+" (default "+def.String()+")"), parse)
	return p
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

// Parse parses args and reports every environment error together. A bad
// flag is one line (the caller prints it), not the whole usage; -h prints
// the usage.
func (f *flagSet) Parse(args []string) error {
	if err := f.parseFlags(args); err != nil {
		return err
	}
	return f.envErr()
}

// parseFlags is Parse without the environment's errors, for a command that
// reports them together with its own checks.
func (f *flagSet) parseFlags(args []string) error {
	f.FlagSet.SetOutput(io.Discard)
	err := f.FlagSet.Parse(args)
	f.FlagSet.SetOutput(f.out)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintf(f.out, "Usage of %s:\n", f.Name())
		f.PrintDefaults()
		return err
	case err != nil:
		return fmt.Errorf("%w (%s -h lists the flags)", err, f.Name())
	}
	return nil
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
