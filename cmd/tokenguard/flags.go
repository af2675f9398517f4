package main

import (
	"errors"
	"flag"
	"io"
	"strings"
)

// listFlag collects a repeatable flag; each value may also be a
// comma-separated list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// parse parses args into fs and turns flag errors into usage errors.
func parse(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &exitError{code: exitOK, err: errors.New("")}
		}
		return &exitError{code: exitUsage, err: errors.New("")} // flag already printed the problem
	}
	return nil
}

// required reports missing flags as a usage error.
func required(flags map[string]string) error {
	var missing []string
	for _, name := range []string{"issuer", "key-file", "project-id"} {
		if v, ok := flags[name]; ok && v == "" {
			missing = append(missing, "-"+name)
		}
	}
	if len(missing) > 0 {
		return fail(exitUsage, "missing %s", strings.Join(missing, ", "))
	}
	return nil
}
