package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gaffer-go/gaffer"
	"github.com/gaffer-go/gaffer/cmd/internal/statustable"
)

func init() {
	one := func(name, short string, fn func(c *ctl, cl *gaffer.Client, full string, asJSON bool) error) *command {
		return &command{name: name, usage: "[--json] <name>|<pid>", short: short, setup: func(c *ctl, fs *flag.FlagSet) func([]string) error {
			asJSON := fs.Bool("json", false, "print JSON")
			return func(args []string) error {
				if len(args) != 1 {
					return usagef("%s needs one name (or pid)", name)
				}
				cl, full, err := c.resolve(args[0])
				if err != nil {
					return err
				}
				return fn(c, cl, full, *asJSON)
			}
		}}
	}
	commands = append(commands,
		&command{name: "processes", usage: "[--running] [--json]", short: "List the process templates (or the running pids)", setup: setupProcesses},
		&command{name: "get_process", usage: "<name>|<pid>", short: "Fetch a process template",
			setup: func(c *ctl, fs *flag.FlagSet) func([]string) error {
				return func(args []string) error {
					if len(args) != 1 {
						return usagef("get_process needs one name")
					}
					_, full, info, err := c.resolveInfo(args[0])
					if err != nil {
						return err
					}
					cfg := info.Config
					cfg["name"] = gaffer.LegacyName(full)
					return c.output(true, cfg)
				}
			}},
		&command{name: "add_process", usage: "[--start] <name> <cmd>", short: "Add a process template (started with --start)", setup: setupAddProcess},
		&command{name: "load_process", usage: "<file>|-\n[--start|--nostart] <file>|-", short: "Load a process template from a JSON file",
			long: `The file (or stdin, "-") holds one JSON object with at least "name" and "cmd".
The template starts with its numprocesses, as the documentation says, unless
the object has "start": false or --nostart is given; --start starts it
whatever the object says.`,
			setup: setupLoadProcess},
		&command{name: "update_process", usage: "[--start] <name> <cmd>|-", short: "Update a process template",
			long:  "The command line is replaced and the other settings are kept; with '-', a JSON object read from stdin is merged over the template's settings. The processes restart with the new settings; --start also starts a stopped template.",
			setup: setupUpdateProcess},
		&command{name: "del_process", usage: "<name>", short: "Remove a process template and stop its processes",
			setup: func(c *ctl, fs *flag.FlagSet) func([]string) error {
				return func(args []string) error {
					if len(args) != 1 {
						return usagef("del_process needs one name")
					}
					cl, full, err := c.resolve(args[0])
					if err != nil {
						return err
					}
					if err := cl.Unload(c.ctx, full); err != nil {
						return err
					}
					return c.output(false, "ok")
				}
			}},
		one("start", "Start a process template", func(c *ctl, cl *gaffer.Client, full string, _ bool) error {
			if err := cl.StartJob(c.ctx, full); err != nil {
				return err
			}
			return c.output(false, "ok")
		}),
		one("stop", "Stop a process template", func(c *ctl, cl *gaffer.Client, full string, _ bool) error {
			if err := cl.StopJob(c.ctx, full); err != nil {
				return err
			}
			return c.output(false, "ok")
		}),
		&command{name: "add", usage: "<name> [<n>]", short: "Increment the number of OS processes", setup: func(c *ctl, fs *flag.FlagSet) func([]string) error {
			return setupAddSub(c, fs, "+")
		}},
		&command{name: "sub", usage: "<name> [<n>]", short: "Decrement the number of OS processes", setup: func(c *ctl, fs *flag.FlagSet) func([]string) error {
			return setupAddSub(c, fs, "-")
		}},
		one("numprocesses", "Number of processes that should be launched", func(c *ctl, cl *gaffer.Client, full string, asJSON bool) error {
			info, err := cl.JobInfo(c.ctx, full)
			if err != nil {
				return err
			}
			return c.output(asJSON, info.MaxProcesses)
		}),
		one("running", "Number of running processes of a template", func(c *ctl, cl *gaffer.Client, full string, asJSON bool) error {
			info, err := cl.JobInfo(c.ctx, full)
			if err != nil {
				return err
			}
			return c.output(asJSON, info.Running)
		}),
		&command{name: "status", usage: "[--json] [<name>|<pid>]",
			short: "Show the status table of every process, or the status of a template (active or stopped)",
			long: `Without a name: one row per process of every template (job, internal pid, OS
pid, state, uptime, restarts, cpu, memory, last exit), coloured on a terminal
unless NO_COLOR is set; --json prints the rows as JSON. With a name: "active"
or "stopped", as gafferctl 0.4 printed it (--json: active, running and
max_processes).`,
			setup: setupStatus},
		&command{name: "restart", usage: "<name>|<pid>...", short: "Restart the processes of templates (a stopped template starts)",
			setup: setupRestart},
		one("pids", "Get the process ids of a template", func(c *ctl, cl *gaffer.Client, full string, asJSON bool) error {
			pids, err := cl.JobPids(c.ctx, full)
			if err != nil {
				return err
			}
			return c.output(asJSON, pids)
		}),
		&command{name: "kill", usage: "<name>|<pid> <signal>", short: "Send a signal to a template's processes or to one process", setup: setupKill},
		&command{name: "watch", usage: "[--no-color] [<pattern>]", short: "Watch changes in gaffer",
			long: `Prints one line per event, "HH:MM:SS name | event name", until Ctrl-C.
A pattern is a dotted event-name prefix: spawn, proc.dummy, proc.dummy.spawn,
proc.app:web.exit; proc(dummy) and proc(dummy).spawn are accepted too.`,
			setup: setupWatch},
	)
}

// resolve turns a 0.4 name (or a pid: the template of that pid) into a
// full job name (gafferctl-0.4 §1.5, §4.1).
// resolveInfo is resolve, and the info of the job.
func (c *ctl) resolveInfo(arg string) (*gaffer.Client, string, gaffer.JobInfo, error) {
	cl, full, err := c.resolve(arg)
	if err != nil {
		return nil, "", gaffer.JobInfo{}, err
	}
	info, err := cl.JobInfo(c.ctx, full)
	return cl, full, info, err
}

func (c *ctl) resolve(arg string) (*gaffer.Client, string, error) {
	cl, err := c.client()
	if err != nil {
		return nil, "", err
	}
	if isDigits(arg) {
		pid, err := strconv.Atoi(arg)
		if err != nil {
			return nil, "", usagef("bad pid %q", arg)
		}
		info, err := cl.ProcessInfo(c.ctx, pid)
		if err != nil {
			return nil, "", err
		}
		return cl, info.Name, nil
	}
	if strings.Contains(arg, ".") {
		return nil, "", usagef("%q: a 0.4 name has no '.'; write session:job", arg)
	}
	return cl, gaffer.FromLegacyName(arg), nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func setupProcesses(c *ctl, fs *flag.FlagSet) func([]string) error {
	running := fs.Bool("running", false, "list the running pids instead")
	asJSON := fs.Bool("json", false, "print JSON")
	return func(args []string) error {
		if len(args) > 0 {
			return usagef("processes takes no argument")
		}
		cl, err := c.client()
		if err != nil {
			return err
		}
		if *running {
			pids, err := cl.Pids(c.ctx)
			if err != nil {
				return err
			}
			return c.output(*asJSON, pids)
		}
		jobs, err := cl.Jobs(c.ctx)
		if err != nil {
			return err
		}
		names := make([]string, len(jobs))
		for i, j := range jobs {
			names[i] = gaffer.LegacyName(j)
		}
		if *asJSON {
			return c.output(true, names)
		}
		for _, n := range names { // one per line, for scripts (0.4 printed a Python list)
			if _, err := fmt.Fprintln(c.stdout, n); err != nil {
				return err
			}
		}
		return nil
	}
}

// loadLegacy creates a template from a 0.4 config object.
func (c *ctl) loadLegacy(cfg map[string]any, start bool) error {
	name, _ := cfg["name"].(string)
	cmd, _ := cfg["cmd"].(string)
	if name == "" || cmd == "" {
		return errors.New("name or cmd properties are missing")
	}
	if strings.Contains(name, ".") {
		return fmt.Errorf("name %q: a 0.4 name has no '.'; write session:job", name)
	}
	full := gaffer.FromLegacyName(name)
	sid, job := gaffer.SplitName(full)
	body := map[string]any{}
	for k, v := range cfg {
		body[k] = v
	}
	body["name"] = job
	body["start"] = start
	delete(body, "group")
	if _, ok := body["os_env"]; !ok {
		body["os_env"] = true // the 0.4 default
	}
	if _, hasArgs := body["args"]; hasArgs && strings.ContainsAny(cmd, " \t") {
		body["cmd"] = gaffer.QuoteCommandWord(cmd) // 0.4 took cmd verbatim when args was given
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	if err := cl.LoadMap(c.ctx, sid, body); err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.stdout, name)
	return err
}

func setupAddProcess(c *ctl, fs *flag.FlagSet) func([]string) error {
	start := fs.Bool("start", false, "start it")
	return func(args []string) error {
		if len(args) != 2 {
			return usagef("add_process needs a name and a command (quote the command)")
		}
		return c.loadLegacy(map[string]any{"name": args[0], "cmd": args[1]}, *start)
	}
}

// readObject reads a JSON object from a file or stdin ("-").
func (c *ctl) readObject(path string) (map[string]any, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(io.LimitReader(c.stdin, gaffer.MaxBodyBytes+1))
	} else {
		data, err = os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%q not found", path)
		}
	}
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		where := path
		if path == "-" {
			where = "stdin"
		}
		if err == nil {
			err = errors.New("not an object")
		}
		return nil, fmt.Errorf("%s: invalid JSON object: %v", where, err)
	}
	return m, nil
}

func setupLoadProcess(c *ctl, fs *flag.FlagSet) func([]string) error {
	start := fs.Bool("start", false, `start it, whatever the file's "start" says`)
	noStart := fs.Bool("nostart", false, "load it without starting it")
	return func(args []string) error {
		if len(args) != 1 {
			return usagef("load_process needs a file (or - for stdin)")
		}
		if *start && *noStart {
			return usagef("--start and --nostart contradict each other")
		}
		m, err := c.readObject(args[0])
		if err != nil {
			return err
		}
		run := true // the documentation: a loaded template starts
		if v, ok := m["start"]; ok {
			b, isBool := v.(bool)
			if !isBool {
				return fmt.Errorf("%s: \"start\" must be true or false, not %v", args[0], v)
			}
			run = b
		}
		switch {
		case *start:
			run = true
		case *noStart:
			run = false
		}
		return c.loadLegacy(m, run)
	}
}

func setupUpdateProcess(c *ctl, fs *flag.FlagSet) func([]string) error {
	start := fs.Bool("start", false, "also start it when it is stopped")
	return func(args []string) error {
		if len(args) != 2 {
			return usagef("update_process needs a name and a command (or - to read JSON settings)")
		}
		cl, full, info, err := c.resolveInfo(args[0])
		if err != nil {
			return err
		}
		cfg := info.Config
		if args[1] == "-" {
			m, err := c.readObject("-")
			if err != nil {
				return err
			}
			for k, v := range m {
				if k != "name" {
					cfg[k] = v
				}
			}
		} else {
			cfg["cmd"] = args[1]
			cfg["args"] = []string{}
		}
		_, cfg["name"] = gaffer.SplitName(full)
		cfg["start"] = *start || info.Active
		if err := cl.UpdateMap(c.ctx, full, cfg); err != nil {
			return err
		}
		_, err = fmt.Fprintln(c.stdout, gaffer.LegacyName(full))
		return err
	}
}

func setupAddSub(c *ctl, fs *flag.FlagSet, sign string) func([]string) error {
	asJSON := fs.Bool("json", false, "print JSON")
	return func(args []string) error {
		if len(args) < 1 || len(args) > 2 {
			return usagef("needs a name and optionally a number")
		}
		n := 1
		if len(args) == 2 {
			var err error
			if n, err = strconv.Atoi(args[1]); err != nil || n < 0 {
				return usagef("%q is not a number of processes", args[1])
			}
		}
		cl, full, err := c.resolve(args[0])
		if err != nil {
			return err
		}
		np, err := cl.Scale(c.ctx, full, sign+strconv.Itoa(n))
		if err != nil {
			return err
		}
		return c.output(*asJSON, np)
	}
}

func setupKill(c *ctl, fs *flag.FlagSet) func([]string) error {
	return func(args []string) error {
		if len(args) != 2 {
			return usagef("kill needs a name or pid and a signal")
		}
		if _, err := gaffer.ParseSignal(args[1]); err != nil {
			return usagef("%s", errorText(err))
		}
		cl, err := c.client()
		if err != nil {
			return err
		}
		if isDigits(args[0]) {
			pid, _ := strconv.Atoi(args[0])
			err = cl.SignalProcess(c.ctx, pid, args[1])
		} else {
			_, full, rerr := c.resolve(args[0])
			if rerr != nil {
				return rerr
			}
			err = cl.SignalJob(c.ctx, full, args[1])
		}
		if err != nil {
			return err
		}
		return c.output(false, "ok")
	}
}

func setupStatus(c *ctl, fs *flag.FlagSet) func([]string) error {
	asJSON := fs.Bool("json", false, "print JSON")
	return func(args []string) error {
		switch len(args) {
		case 0:
			cl, err := c.client()
			if err != nil {
				return err
			}
			rows, err := statustable.Collect(c.ctx, cl, nil, time.Now())
			if err != nil {
				return err
			}
			for i := range rows {
				rows[i].Job = gaffer.LegacyName(rows[i].Job)
			}
			if *asJSON {
				return c.output(true, rows)
			}
			return statustable.Print(c.stdout, rows, statustable.UseColor(c.stdout))
		case 1:
		default:
			return usagef("status takes at most one name (or pid)")
		}
		_, _, info, err := c.resolveInfo(args[0])
		if err != nil {
			return err
		}
		if *asJSON {
			return c.output(true, gaffer.LegacyStatus{Active: info.Active, Running: info.Running, MaxProcesses: info.MaxProcesses})
		}
		if info.Active {
			return c.output(false, "active")
		}
		return c.output(false, "stopped")
	}
}

// setupRestart restarts the processes of each template (POST …/state 2),
// or starts it when it is stopped, as restart does in supervisorctl.
func setupRestart(c *ctl, fs *flag.FlagSet) func([]string) error {
	return func(args []string) error {
		if len(args) == 0 {
			return usagef("restart needs at least one name (or pid)")
		}
		for _, a := range args {
			cl, full, info, err := c.resolveInfo(a)
			if err != nil {
				return err
			}
			if info.State == gaffer.JobStopped || info.State == gaffer.JobNotStarted {
				err = cl.StartJob(c.ctx, full)
			} else {
				err = cl.ReloadJob(c.ctx, full)
			}
			if err != nil {
				return err
			}
		}
		return c.output(false, "ok")
	}
}
