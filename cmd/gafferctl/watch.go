package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/gaffer-go/gaffer"
)

// watchPattern turns a watch pattern into the event-name prefix gafferd
// matches. proc(dummy) and proc(dummy).spawn are proc.dummy and
// proc.dummy.spawn, which gafferd matches itself (a job of the default
// session is also named by its short name); a 0.4 name with a session,
// proc.app:web or job.app:web, is proc.app.web or job.app.web. It returns
// an error for a malformed pattern.
func watchPattern(p string) (string, error) {
	p = strings.TrimSpace(p)
	if p == "" || p == "." {
		return ".", nil
	}
	if rest, ok := strings.CutPrefix(p, "proc("); ok {
		name, tail, ok := strings.Cut(rest, ")")
		if !ok || name == "" || (tail != "" && !strings.HasPrefix(tail, ".")) {
			return "", fmt.Errorf("pattern %q: expected proc(NAME) or proc(NAME).EVENT", p)
		}
		p = "proc." + name + tail
	}
	if strings.ContainsAny(p, "() \t") {
		return "", fmt.Errorf("pattern %q: expected a dotted event name prefix such as spawn, proc.dummy or proc.dummy.spawn", p)
	}
	p = gaffer.NormalizePattern(p)
	segs := strings.Split(p, ".")
	if (segs[0] == "proc" || segs[0] == "job") && len(segs) >= 2 && strings.Contains(segs[1], ":") {
		segs[1] = gaffer.FromLegacyName(segs[1])
		p = strings.Join(segs, ".")
	}
	return p, nil
}

// legacyEventName shows proc.<session>.<job>.<event> as
// proc.<0.4 name>.<event>.
func legacyEventName(ev, full string) string {
	if full == "" || !strings.Contains(full, ".") {
		return ev
	}
	if rest, ok := strings.CutPrefix(ev, "proc."+full+"."); ok {
		return "proc." + gaffer.LegacyName(full) + "." + rest
	}
	return ev
}

func setupWatch(c *ctl, fs *flag.FlagSet) func([]string) error {
	noColor := fs.Bool("no-color", false, "no colours")
	colorize := fs.Bool("colorize", false, "colours even when stdout is not a terminal")
	fs.Int("heartbeat", 60, "accepted for compatibility (gafferctl keeps the connection alive itself)")
	return func(args []string) error {
		if len(args) > 1 {
			return usagef("watch takes at most one pattern")
		}
		pattern := "."
		if len(args) == 1 {
			pattern = args[0]
		}
		pat, err := watchPattern(pattern)
		if err != nil {
			return usagef("%v", err)
		}
		cl, err := c.client()
		if err != nil {
			return err
		}
		// gafferd sends each event once, under the name the pattern
		// matched (the primary name, "spawn", for no pattern).
		events, err := cl.Watch(c.ctx, pat)
		if err != nil {
			return err
		}
		color := *colorize || (!*noColor && os.Getenv("NO_COLOR") == "" && isTerminal(c.stdout))
		printer := gaffer.NewConsolePrinter(c.stdout, color)
		for ev := range events {
			full, _ := ev.Data["name"].(string)
			name := full
			if strings.Contains(full, ".") {
				name = gaffer.LegacyName(full)
			}
			printer.Line(name, legacyEventName(ev.Name, full)+" "+name)
		}
		if c.ctx.Err() == nil {
			return fmt.Errorf("lost the connection to gafferd at %s", cl.Address())
		}
		fmt.Fprintln(c.stdout)
		return nil
	}
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
