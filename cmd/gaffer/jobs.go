package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gaffer-go/gaffer"
	"github.com/gaffer-go/gaffer/cmd/internal/cli"
	"github.com/gaffer-go/gaffer/cmd/internal/statustable"
)

// The commands that drive a gafferd: apps, load, unload, reload, ps, ps:*,
// scale, commit, logs, send and recv.

func init() {
	commands = append(commands,
		&command{name: "apps", usage: "[--json]", short: "list the apps (sessions) of gafferd", setup: setupApps},
		&command{name: "load", usage: "[-c concurrency|--concurrency concurrency] [--nostart] [<name>]\n" +
			"[-c name=N,...] [--nostart] [--app APP] <file.json>|-",
			short: "load the Procfile's processes (or a JSON job file) in gafferd",
			long: `<name> is the application (session) the Procfile is loaded as: by default the
name of the project folder; "." is the current folder. An argument that is an
existing file (or "-" for stdin) is a JSON job file instead.

From the Procfile, each process type becomes the job <name>.<type>, with the
app's environment (and gafferd's), PORT=5000+100*i unless the environment sets
it, numprocesses from -c (process=num,process=num), output labels "out" and
"err", and the app root as working directory. A file holds one job object, or
{"jobs": [...]}; a job name may be "app.job". The jobs start unless --nostart
(or "start": false in the file).`,
			setup: setupLoad},
		&command{name: "unload", usage: "[<name>]\n[--app APP] [--from-file JSON] [--no-input] [<job>|<name>|.]...",
			short: "unload a Procfile application, or some of its jobs",
			long: `Without an argument, the application of the current folder (or --app) is
unloaded, after a confirmation (--no-input skips it). An argument is a job of
that application when it has one of that name, else the application (session)
of that name; "." is the current folder's application.`,
			setup: func(c *state, fs *flag.FlagSet) func([]string) error {
				return setupAppJobsOp(c, fs, "unload")
			}},
		&command{name: "reload", usage: "[--app APP] [--from-file JSON] [--no-input] [<job>|<name>|.]...",
			short: "restart the processes of jobs, or of a whole app", setup: func(c *state, fs *flag.FlagSet) func([]string) error {
				return setupAppJobsOp(c, fs, "reload")
			}},
		&command{name: "ps", usage: "[<appname>]\n[--app APP] [--json] [--all-nodes -L ADDR...]",
			short: "list the jobs of the app, their state and their processes",
			long: `<appname> is the application (session) in gafferd: by default the name of the
project folder ("." is the current folder), the same as --app.`,
			setup: setupPs},
		&command{name: "ps:info", usage: "[--app APP] [--json] <job>|<pid>", short: "show a job or a process", setup: setupPsInfo},
		&command{name: "scale", aliases: []string{"ps:scale"}, usage: "[<appname>] [process=value]...\n[--app APP] <job>=N|<job>+N|<job>-N ...",
			short: "set, add or remove processes of jobs",
			long: `A first argument that is not an operation is the application (session), the
same as --app. process=N sets the number of processes, process+N adds N and
process-N removes N; process may be app.job.`,
			setup: setupScale},
		&command{name: "ps:start", usage: "[--app APP] [--no-input] [<job>...]", short: "start jobs, or every job of the app",
			setup: func(c *state, fs *flag.FlagSet) func([]string) error { return setupAppJobsOp(c, fs, "start") }},
		&command{name: "ps:stop", usage: "[--app APP] [--no-input] [<job>|<pid>...]", short: "stop jobs or processes, or every job of the app",
			setup: func(c *state, fs *flag.FlagSet) func([]string) error { return setupAppJobsOp(c, fs, "stop") }},
		&command{name: "ps:kill", usage: "[--app APP] <job>|<pid> <signal>", short: "send a signal to a job's processes or to one process", setup: setupKill},
		&command{name: "commit", aliases: []string{"ps:run"}, usage: "[--app APP] [--graceful-timeout S] [-p KEY=VALUE]... <job>",
			short: "start a one-off process of a job in gafferd (0.5.2's 'gaffer run')", setup: setupCommit},
		&command{name: "logs", usage: "[--app APP] [--ps JOB] [-n N | --lines N] [--since 10m|TIME] [--backlog] [--no-follow] [--no-color]",
			short: "follow the output and lifecycle events of the app's processes", setup: setupLogs},
		&command{name: "recv", usage: "<pid>[.<stream>] [<stream>]", short: "copy a process's output to stdout", setup: setupRecv},
		&command{name: "send", usage: "[-s STREAM] <pid> <data>...|-", short: "write a line to a process's stdin (or a custom stream)", setup: setupSend},
	)
}

func isUnreachable(err error) bool {
	var ue *gaffer.UnreachableError
	return errors.As(err, &ue)
}

// jobError names the job in an error, except when gafferd is unreachable.
func jobError(full string, err error) error {
	var ue *gaffer.UnreachableError
	if errors.As(err, &ue) {
		return err
	}
	return fmt.Errorf("%s: %s", full, errorText(err))
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// fullJob makes "job" into "<app>.job"; "app.job" stays.
func fullJob(app, job string) string {
	if strings.Contains(job, ".") {
		return job
	}
	return app + "." + job
}

func shortJob(full string) string {
	_, n := gaffer.SplitName(full)
	return n
}

func isPid(s string) bool {
	if s == "" || len(s) > 9 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// confirm asks a yes/no question (default yes); an end of input aborts.
func (c *state) confirm(noInput bool, question string) error {
	if noInput {
		return nil
	}
	fmt.Fprintf(c.stderr, "%s [y]|n: ", question)
	line, err := c.readLine()
	if err != nil {
		return errors.New("aborted (no answer; use --no-input to skip the question)")
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "", "y", "yes":
		return nil
	}
	return errors.New("aborted")
}

var stdinReader *bufio.Reader

func (c *state) readLine() (string, error) {
	if stdinReader == nil {
		stdinReader = bufio.NewReader(c.stdin)
	}
	line, err := stdinReader.ReadString('\n')
	if err != nil && line == "" {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// appOf loads the app and resolves --app.
func (c *state) appOf(flagValue string) (*app, string, error) {
	a, err := c.loadApp(false)
	if err != nil {
		return nil, "", err
	}
	name, err := c.appName(a, flagValue)
	return a, name, err
}

// appRemote is appOf, and the client of gafferd.
func (c *state) appRemote(flagValue string) (*app, string, *gaffer.Client, error) {
	a, name, err := c.appOf(flagValue)
	if err != nil {
		return nil, "", nil, err
	}
	cl, err := c.apiClient()
	return a, name, cl, err
}

func setupApps(c *state, fs *flag.FlagSet) func([]string) error {
	asJSON := fs.Bool("json", false, "print JSON")
	return func(args []string) error {
		if len(args) > 0 {
			return usagef("apps takes no argument")
		}
		cl, err := c.apiClient()
		if err != nil {
			return err
		}
		s, err := cl.Sessions(c.ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(c.stdout, s)
		}
		for _, n := range s {
			fmt.Fprintln(c.stdout, n)
		}
		return nil
	}
}

func setupLoad(c *state, fs *flag.FlagSet) func([]string) error {
	var specs multiFlag
	fs.Var(&specs, "c", "processes per type: process=num[,process=num...] (repeatable)")
	fs.Var(&specs, "concurrency", "same as -c")
	noStart := fs.Bool("nostart", false, "load without starting")
	appFlag := fs.String("app", "", "app (session) name")
	return func(args []string) error {
		if len(args) > 1 {
			return usagef("load takes at most one application name or file")
		}
		appArg, file := *appFlag, ""
		if len(args) == 1 {
			isFile, err := loadArgIsFile(args[0])
			if err != nil {
				return err
			}
			if isFile {
				file = args[0]
			} else if appArg, err = pickApp(*appFlag, args[0]); err != nil {
				return err
			}
		}
		a, name, cl, err := c.appRemote(appArg)
		if err != nil {
			return err
		}
		if file != "" {
			return c.loadFile(cl, file, *appFlag, name, !*noStart)
		}
		if a.pf == nil {
			if len(args) == 1 {
				return fmt.Errorf("no Procfile here to load as '%s', and no file named %q", name, args[0])
			}
			return errors.New("no Procfile here (use -f PROCFILE, or give a JSON file)")
		}
		counts, err := concurrency(a, specs)
		if err != nil {
			return err
		}
		cfgs, err := gaffer.ProcfileJobConfigs(a.pf, counts, a.env)
		if err != nil {
			return err
		}
		redirectIn := map[string]bool{}
		for _, n := range strings.Fields(a.env["GAFFER_REDIRECT_INPUT"]) {
			redirectIn[n] = true
		}
		for i, cfg := range cfgs {
			cfg.RedirectOutput = []string{"out", "err"}
			cfg.RedirectInput = redirectIn[cfg.Name]
			cfg.Cwd = a.root
			cfg.OSEnv = true
			cfg.Start = !*noStart
			if _, ok := cfg.Env["PORT"]; !ok {
				cfg.Env["PORT"] = strconv.Itoa(gaffer.DefaultPortBase + 100*i)
			}
			err := cl.Load(c.ctx, name, cfg)
			var e *gaffer.Error
			switch {
			case errors.As(err, &e) && e.Errno == 409:
				fmt.Fprintf(c.stdout, "'%s.%s' already loaded\n", name, cfg.Name)
			case err != nil:
				return jobError(name+"."+cfg.Name, err)
			}
		}
		fmt.Fprintf(c.stdout, "==> '%s' has been loaded in %s\n", name, cl.Address())
		return nil
	}
}

// loadFile loads the jobs of a JSON file ("-" for stdin).
func (c *state) loadFile(cl *gaffer.Client, path, appFlag, app string, start bool) error {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(io.LimitReader(c.stdin, gaffer.MaxBodyBytes+1))
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return err
	}
	var doc any
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("%s: invalid JSON: %v", path, err)
	}
	var jobs []map[string]any
	switch d := doc.(type) {
	case map[string]any:
		if list, ok := d["jobs"].([]any); ok {
			for i, j := range list {
				m, ok := j.(map[string]any)
				if !ok {
					return fmt.Errorf("%s: jobs[%d] is not an object", path, i)
				}
				jobs = append(jobs, m)
			}
		} else {
			jobs = append(jobs, d)
		}
	default:
		return fmt.Errorf("%s: expected a job object or {\"jobs\": [...]}", path)
	}
	for i, j := range jobs {
		name, _ := j["name"].(string)
		if name == "" {
			return fmt.Errorf("%s: job %d has no name", path, i+1)
		}
		sid := app
		if s, n, ok := strings.Cut(name, "."); ok {
			name = n
			if appFlag == "" {
				sid = s
			}
		}
		j["name"] = name
		if _, ok := j["start"]; !ok {
			j["start"] = start
		}
		err := cl.LoadMap(c.ctx, sid, j)
		var e *gaffer.Error
		switch {
		case errors.As(err, &e) && e.Errno == 409:
			fmt.Fprintf(c.stdout, "'%s.%s' already loaded\n", sid, name)
		case err != nil:
			return jobError(sid+"."+name, err)
		default:
			fmt.Fprintf(c.stdout, "'%s.%s' has been loaded in %s\n", sid, name, cl.Address())
		}
	}
	fmt.Fprintf(c.stdout, "'%s' has been loaded\n", path)
	return nil
}

// psJob is one job of "ps --json".
type psJob struct {
	Job       gaffer.JobInfo       `json:"job"`
	Stats     gaffer.JobStats      `json:"stats"`
	Processes []gaffer.ProcessInfo `json:"processes"`
}

func setupPs(c *state, fs *flag.FlagSet) func([]string) error {
	appFlag := fs.String("app", "", "app (session) name")
	asJSON := fs.Bool("json", false, "print JSON")
	allNodes := fs.Bool("all-nodes", false, "list the jobs of every node known to the lookupds (-L)")
	var lookupds multiFlag
	fs.Var(&lookupds, "L", "lookupd address, with --all-nodes (repeatable)")
	fs.Var(&lookupds, "lookupd-address", "same as -L")
	return func(args []string) error {
		if len(args) > 1 {
			return usagef("ps takes at most one application name (see ps:info for a job)")
		}
		if *allNodes {
			if len(args) > 0 {
				return usagef("ps --all-nodes takes no application name")
			}
			return c.psAllNodes(lookupds, *asJSON)
		}
		appArg := *appFlag
		if len(args) == 1 {
			var err error
			if appArg, err = pickApp(*appFlag, args[0]); err != nil {
				return err
			}
		}
		_, app, cl, err := c.appRemote(appArg)
		if err != nil {
			return err
		}
		jobs, err := cl.SessionJobs(c.ctx, app)
		if err != nil {
			var e *gaffer.Error
			if errors.As(err, &e) && e.Errno == 404 {
				return fmt.Errorf("'%s' not loaded", app)
			}
			return err
		}
		out := []psJob{}
		for _, full := range jobs {
			info, err := cl.JobInfo(c.ctx, full)
			if err != nil {
				return err
			}
			pj := psJob{Job: info, Processes: []gaffer.ProcessInfo{}}
			if !info.Active {
				out = append(out, pj) // listed with its state
				continue
			}
			if pj.Stats, err = cl.JobStats(c.ctx, full); err != nil {
				return err
			}
			for _, pid := range info.Processes {
				pi, err := cl.ProcessInfo(c.ctx, pid)
				if err != nil {
					continue // it exited meanwhile
				}
				pj.Processes = append(pj.Processes, pi)
			}
			out = append(out, pj)
		}
		if *asJSON {
			return printJSON(c.stdout, out)
		}
		for i, pj := range out {
			if i > 0 {
				fmt.Fprintln(c.stdout)
			}
			name := shortJob(pj.Job.Name)
			if !pj.Job.Active {
				fmt.Fprintf(c.stdout, "=== %s: `%s` (%s)\n", name, commandLine(pj.Job.Config), inactiveState(pj.Job))
				continue
			}
			state := ""
			if st := pj.Job.State; st != gaffer.JobRunning && st != "" {
				state = " (" + inactiveState(pj.Job) + ")"
			}
			fmt.Fprintf(c.stdout, "=== %s: `%s`%s\n", name, commandLine(pj.Job.Config), state)
			// 0.5.2 printed the CPU time after "up for"; this is the
			// uptime, and the header says so.
			var rss int64
			for _, st := range pj.Stats.Stats {
				rss += st.RSSBytes
			}
			fmt.Fprintf(c.stdout, "Total CPU: %s Total MEM: %s (%s); up for: time since start\n\n",
				percent(pj.Stats, pj.Stats.CPU), percent(pj.Stats, pj.Stats.Mem), statustable.Bytes(rss))
			for _, p := range pj.Processes {
				up := time.Since(time.Unix(0, int64(p.CreateTime*1e9)))
				fmt.Fprintf(c.stdout, "%s.%d: up for %s%s\n", name, p.Pid, statustable.Duration(up), lifeNote(p.ProcessState))
			}
		}
		return nil
	}
}

// percent formats a figure of the stats (a number, or "N/A") as a percent.
// percent formats one of js's percents, N/A when none of its processes
// could be sampled.
func percent(js gaffer.JobStats, f float64) string {
	if js.Sampled == 0 {
		return "N/A"
	}
	return fmt.Sprintf("%.2f%%", f)
}

func commandLine(cfg map[string]any) string {
	s := fmt.Sprint(cfg["cmd"])
	if args, ok := cfg["args"].([]any); ok {
		for _, a := range args {
			s += " " + gaffer.QuoteCommandWord(fmt.Sprint(a))
		}
	}
	return s
}

func setupPsInfo(c *state, fs *flag.FlagSet) func([]string) error {
	appFlag := fs.String("app", "", "app (session) name")
	asJSON := fs.Bool("json", false, "print JSON")
	return func(args []string) error {
		if len(args) != 1 {
			return usagef("ps:info needs one job or pid")
		}
		_, app, cl, err := c.appRemote(*appFlag)
		if err != nil {
			return err
		}
		t := args[0]
		var e *gaffer.Error
		if isPid(t) {
			pid, _ := strconv.Atoi(t)
			info, err := cl.ProcessInfo(c.ctx, pid)
			if errors.As(err, &e) && e.Errno == 404 {
				return fmt.Errorf("process '%s' not found", t)
			} else if err != nil {
				return err
			}
			if *asJSON {
				return printJSON(c.stdout, info)
			}
			env := make([]string, 0, len(info.Env))
			for k, v := range info.Env {
				env = append(env, k+"="+v)
			}
			sort.Strings(env)
			lines := [][2]any{{"pid", info.Pid}, {"name", info.Name}, {"cmd", info.Cmd}, {"args", strings.Join(info.Args, " ")},
				{"os_pid", info.OSPid}, {"create_time", fmt.Sprintf("%.2f", info.CreateTime)}, {"commited", info.Committed},
				{"redirect_output", strings.Join(info.RedirectOutput, ",")}, {"redirect_input", info.RedirectInput},
				{"custom_streams", strings.Join(info.CustomStreams, ",")}, {"active", info.Active}, {"env", strings.Join(env, " ")}}
			for _, l := range lines {
				fmt.Fprintf(c.stdout, "%s: %v\n", l[0], l[1])
			}
			return nil
		}
		full := fullJob(app, t)
		info, err := cl.JobInfo(c.ctx, full)
		if errors.As(err, &e) && e.Errno == 404 {
			return fmt.Errorf("job '%s' not found", t)
		} else if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(c.stdout, info)
		}
		pids := make([]string, len(info.Processes))
		for i, p := range info.Processes {
			pids[i] = strconv.Itoa(p)
		}
		fmt.Fprintf(c.stdout, "active: %v\nrunning: %d\nnum_processes: %d\npids: %s\n", info.Active, info.Running, info.MaxProcesses, strings.Join(pids, ","))
		return nil
	}
}

// parseScaleArg splits "web=3", "web+2", "my-job-1" at the last operator
// followed only by digits.
func parseScaleArg(s string) (job, op string, ok bool) {
	i := len(s)
	for i > 0 && s[i-1] >= '0' && s[i-1] <= '9' {
		i--
	}
	if i == len(s) || i < 2 {
		return "", "", false
	}
	switch s[i-1] {
	case '=', '+', '-':
		return s[:i-1], string(s[i-1]) + s[i:], true
	}
	return "", "", false
}

func setupScale(c *state, fs *flag.FlagSet) func([]string) error {
	appFlag := fs.String("app", "", "app (session) name")
	return func(args []string) error {
		appArg := *appFlag
		if len(args) > 0 {
			if _, _, ok := parseScaleArg(args[0]); !ok && len(args) > 1 {
				var err error
				if appArg, err = pickApp(*appFlag, args[0]); err != nil {
					return err
				}
				args = args[1:]
			}
		}
		if len(args) == 0 {
			return usagef("scale needs at least one <job>=N, <job>+N or <job>-N")
		}
		type item struct{ full, op string }
		var items []item
		_, app, err := c.appOf(appArg)
		if err != nil {
			return err
		}
		for _, a := range args {
			job, op, ok := parseScaleArg(a)
			if !ok {
				return usagef("%q: expected <job>=N, <job>+N or <job>-N", a)
			}
			items = append(items, item{fullJob(app, job), op})
		}
		cl, err := c.apiClient()
		if err != nil {
			return err
		}
		failed := false
		for _, it := range items {
			n, err := cl.Scale(c.ctx, it.full, it.op)
			var e *gaffer.Error
			switch {
			case errors.As(err, &e) && e.Errno == 404:
				fmt.Fprintf(c.stderr, "gaffer: '%s' not found\n", it.full)
				failed = true
			case err != nil:
				return jobError(it.full, err)
			default:
				fmt.Fprintf(c.stdout, "Scaling %s processes... done, now running %d\n", it.full, n)
			}
		}
		if failed {
			return &cli.ExitError{Code: 1}
		}
		return nil
	}
}

func setupKill(c *state, fs *flag.FlagSet) func([]string) error {
	appFlag := fs.String("app", "", "app (session) name")
	return func(args []string) error {
		if len(args) != 2 {
			return usagef("ps:kill needs a job or pid and a signal")
		}
		if _, err := gaffer.ParseSignal(args[1]); err != nil {
			return usagef("%s", errorText(err))
		}
		_, app, cl, err := c.appRemote(*appFlag)
		if err != nil {
			return err
		}
		if isPid(args[0]) {
			pid, _ := strconv.Atoi(args[0])
			err = cl.SignalProcess(c.ctx, pid, args[1])
		} else {
			err = cl.SignalJob(c.ctx, fullJob(app, args[0]), args[1])
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "'%s' sent to '%s'\n", args[1], args[0])
		return nil
	}
}

func setupCommit(c *state, fs *flag.FlagSet) func([]string) error {
	appFlag := fs.String("app", "", "app (session) name")
	graceful := fs.String("graceful-timeout", "", "graceful stop timeout in seconds")
	var pairs multiFlag
	fs.Var(&pairs, "p", "extra environment KEY=VALUE (repeatable)")
	return func(args []string) error {
		if len(args) != 1 {
			return usagef("commit needs one job")
		}
		var gt time.Duration
		if *graceful != "" {
			f, err := strconv.ParseFloat(*graceful, 64)
			if err != nil || f < 0 {
				return usagef("invalid graceful timeout value %q", *graceful)
			}
			gt = time.Duration(f * float64(time.Second))
		}
		a, app, err := c.appOf(*appFlag)
		if err != nil {
			return err
		}
		env := map[string]string{}
		for k, v := range a.env {
			env[k] = v
		}
		for _, p := range pairs {
			k, v, ok := strings.Cut(p, "=")
			if !ok || k == "" {
				return usagef("-p %q: expected KEY=VALUE", p)
			}
			env[k] = v
		}
		cl, err := c.apiClient()
		if err != nil {
			return err
		}
		full := fullJob(app, args[0])
		pid, err := cl.Commit(c.ctx, full, gt, env)
		var e *gaffer.Error
		if errors.As(err, &e) && e.Errno == 404 {
			return fmt.Errorf("'%s' not found", full)
		} else if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "'%s': new process %d launched\n", full, pid)
		return nil
	}
}
