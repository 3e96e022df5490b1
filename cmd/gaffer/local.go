package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gaffer-go/gaffer"
	"github.com/gaffer-go/gaffer/cmd/internal/cli"
)

// The commands that need no gafferd: start, run and export.

func init() {
	commands = append(commands,
		&command{name: "start", aliases: []string{"dev:start"}, usage: "[-c concurrency|--concurrency concurrency]\n<type>\n" +
			"[-c name=N,...] [-t TIMEOUT] [-p PORT] [--no-color] [--app APP] [<type>]",
			short: "run the Procfile's processes in the foreground (no daemon needed)",
			long: `Starts every process type of the Procfile, or only <type>. Each process type
runs as many times as -c says (process=num,process=num; 1 by default; "all=N"
sets the default). Instance j of the i-th process type gets PORT=base+100*i+j, foreman's
rule, where base is -p, else PORT from the .env files or the environment, else
5000. Output is printed as "HH:MM:SS name.N | line", one colour per process type
when stdout is a terminal and NO_COLOR is not set. A process that exits is
restarted (with crash-loop protection). Ctrl-C (SIGINT) or SIGTERM stops every
process gracefully (SIGTERM, then SIGKILL after -t) and exits 0; a second
Ctrl-C kills them at once. With --exit-on-error a process that fails (a
non-zero exit status, or a signal) is not restarted: every process is stopped
gracefully and gaffer exits 1 (foreman's and goreman's -exit-on-error
behaviour; one that exits 0 just ends). With --vv, the other lifecycle
events are printed too.`,
			setup: setupStart},
		&command{name: "run", aliases: []string{"dev:run"}, usage: "[-c concurrency] [<args>]...\n<command> [<args>...]",
			short: "run a one-off command with the app's environment",
			long: `The command runs in the foreground in the app's root, with the environment of
gaffer plus the .env files; gaffer exits with the command's status. With
-c N (or -c <command>=N) N copies run at once, without stdin; gaffer exits 0
when all of them succeed, else with the status of the first copy (in order)
that failed. Options come before the command.`,
			setup: setupRun, rawArgs: true},
		&command{name: "export", usage: "[-c concurrency|--concurrency concurrency] [--format=format] [--out=filename] [<name>]\n" +
			"[ini|json] [-c name=N,...] [--app APP] [--out FILE] [<name>]",
			long: `<format> is ini (a gafferd configuration, the default) or json (a job file for
gaffer load or the HTTP API); <name> exports only that process type.`,
			short: "export the Procfile as a gafferd INI file or a JSON job file",
			setup: setupExport},
	)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// concurrency reads the -c flags and checks them against the Procfile.
func concurrency(a *app, specs []string) (map[string]int, error) {
	counts, err := gaffer.ParseConcurrency(specs)
	if err != nil {
		return nil, usagef("-c: %s", errorText(err))
	}
	if err := a.pf.CheckConcurrency(counts); err != nil {
		return nil, usagef("-c: %s", errorText(err))
	}
	return counts, nil
}

// loadCounts loads the app (its Procfile is needed) and reads the -c
// flags against it.
func (c *state) loadCounts(specs []string) (*app, map[string]int, error) {
	a, err := c.loadApp(true)
	if err != nil {
		return nil, nil, err
	}
	counts, err := concurrency(a, specs)
	return a, counts, err
}

func setupStart(c *state, fs *flag.FlagSet) func([]string) error {
	var specs multiFlag
	fs.Var(&specs, "c", "processes to run per type: process=num[,process=num...] (repeatable)")
	fs.Var(&specs, "concurrency", "same as -c")
	timeout := fs.Duration("t", 5*time.Second, "graceful stop timeout before SIGKILL")
	port := fs.Int("p", 0, "base port (default: $PORT, else 5000)")
	noColor := fs.Bool("no-color", false, "no colours")
	appFlag := fs.String("app", "", "session name (default: the root directory's name)")
	exitOnError := fs.Bool("exit-on-error", false, "stop everything and exit 1 when a process fails")
	return func(args []string) error {
		if len(args) > 1 {
			return usagef("start takes at most one process name")
		}
		a, counts, err := c.loadCounts(specs)
		if err != nil {
			return err
		}
		if len(args) == 1 {
			if _, ok := a.pf.Lookup(args[0]); !ok {
				return fmt.Errorf("no process type %q in %s (it has %s)", args[0], a.pf.Path, strings.Join(a.pf.Names(), ", "))
			}
			for _, n := range a.pf.Names() {
				if n != args[0] {
					counts[n] = 0
				} else if _, set := counts[n]; !set {
					counts[n] = gaffer.ConcurrencyFor(counts, n)
				}
			}
		}
		base := *port
		if base == 0 {
			pv := a.env["PORT"]
			if pv == "" {
				pv = os.Getenv("PORT")
			}
			if pv != "" {
				if base, err = strconv.Atoi(pv); err != nil || base <= 0 || base > 65535 {
					return fmt.Errorf("PORT=%q is not a port number", pv)
				}
			} else {
				base = gaffer.DefaultPortBase
			}
		}
		session := *appFlag
		if session == "" {
			session = a.name
		}
		if session == "" {
			session = "app"
		}
		if err := gaffer.ValidateSession(session); err != nil {
			return fmt.Errorf("--app: %s", errorText(err))
		}
		color := !*noColor && os.Getenv("NO_COLOR") == "" && isTerminal(c.stdout)
		return c.startForeground(a, session, counts, base, *timeout, color, *exitOnError)
	}
}

// startForeground runs the app in an embedded manager until a signal.
func (c *state) startForeground(a *app, session string, counts map[string]int, base int, graceful time.Duration, color, exitOnError bool) error {
	cfgs, err := gaffer.ProcfileJobConfigs(a.pf, counts, a.env)
	if err != nil {
		return err
	}
	ports := gaffer.ProcfilePorts(a.pf.Entries, counts, base)
	type inst struct {
		cfg     gaffer.JobConfig
		display string
	}
	var insts []inst
	display := map[string]string{} // full job name -> "web.1"
	for _, cfg := range cfgs {
		for j, p := range ports[cfg.Name] {
			jc := cfg.Clone()
			jc.Name = fmt.Sprintf("%s_%d", cfg.Name, j+1)
			jc.NumProcesses = 1
			jc.OSEnv = true
			if jc.Env == nil {
				jc.Env = map[string]string{}
			}
			jc.Env["PORT"] = strconv.Itoa(p)
			jc.Cwd = a.root
			jc.RedirectOutput = []string{"out", "out"} // one pipe: lines stay in order
			jc.GracefulTimeout = graceful
			flap := gaffer.DefaultFlapConfig()
			jc.Flapping = &flap
			if exitOnError {
				jc.Restart, jc.Essential = "never", true
			}
			d := fmt.Sprintf("%s.%d", cfg.Name, j+1)
			insts = append(insts, inst{cfg: jc, display: d})
			display[session+"."+jc.Name] = d
		}
	}
	if len(insts) == 0 {
		return errors.New("nothing to run: every process type has a count of 0")
	}
	// Like foreman, the names are padded to the longest one ("system"
	// included), so that the "|" column lines up.
	width := len("system")
	for _, d := range display {
		width = max(width, len(d))
	}
	for full, d := range display {
		display[full] = fmt.Sprintf("%-*s", width, d)
	}
	system := fmt.Sprintf("%-*s", width, "system")
	if err := gaffer.SetSubreaper(); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		slog.Debug("subreaper", "err", err)
	}
	printer := gaffer.NewConsolePrinter(c.stdout, color)
	var mu sync.Mutex
	procs := map[int]*gaffer.Process{}
	logger := slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	failed := make(chan string, 1) // an essential job gave up (--exit-on-error)
	m := gaffer.NewManager(gaffer.Options{Logger: logger, Output: func(p *gaffer.Process, label string, data []byte) {
		mu.Lock()
		procs[p.ID] = p
		mu.Unlock()
		printer.Output(display[p.Job], p, data)
	}, EssentialFailed: func(job, reason string) {
		select {
		case failed <- job:
		default:
		}
	}})
	patterns := []string{"spawn", "exit", "flap", "spawn_error"}
	if c.g.veryVerbose {
		patterns = []string{"."} // --vv: every lifecycle event
	}
	sub := m.Events().Subscribe(1<<14, patterns...)
	eventsDone := make(chan struct{})
	go func() {
		defer close(eventsDone)
		for ev := range sub.C {
			full, _ := ev.Data["name"].(string)
			name := display[full]
			if name == "" {
				continue
			}
			switch ev.Name {
			case "spawn":
				printer.Line(name, fmt.Sprintf("started with pid %v", ev.Data["os_pid"]))
			case "exit":
				pid, _ := ev.Data["pid"].(int)
				mu.Lock()
				p := procs[pid]
				delete(procs, pid)
				mu.Unlock()
				if p != nil {
					// Print what is left of its output before the exit line.
					select {
					case <-p.IODone():
					case <-time.After(time.Second):
					}
					printer.Output(name, p, nil)
				}
				if sig, _ := ev.Data["term_signal"].(int); sig > 0 {
					printer.Line(name, "terminated by "+gaffer.SignalName(syscall.Signal(sig)))
				} else {
					printer.Line(name, fmt.Sprintf("exited with code %v", ev.Data["exit_status"]))
				}
			case "flap":
				if retry, _ := ev.Data["retry"].(bool); retry {
					printer.Line(name, "crashing too often: stopped, will retry")
				} else {
					printer.Line(name, "crashing too often: gave up")
				}
			case "spawn_error":
				printer.Line(name, fmt.Sprintf("cannot start: %v", ev.Data["reason"]))
			default:
				if !strings.Contains(ev.Name, ".") { // not the job.* and proc.* aliases
					printer.Line(name, ev.Name)
				}
			}
		}
	}()
	shutdown := func() {
		printer.Line(system, "sending SIGTERM to all processes")
		kill := make(chan os.Signal, 2)
		signal.Notify(kill, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(kill)
		ctx, cancel := context.WithTimeout(context.Background(), graceful+5*time.Second)
		defer cancel()
		go func() {
			select {
			case <-kill:
				printer.Line(system, "sending SIGKILL to all processes")
				cancel()
			case <-ctx.Done():
			}
		}()
		m.Shutdown(ctx)
		sub.Unsubscribe()
		<-eventsDone
	}
	for _, in := range insts {
		if err := m.Load(session, in.cfg, nil, true); err != nil {
			shutdown()
			return fmt.Errorf("%s: %s", in.display, errorText(err))
		}
	}
	select {
	case <-c.ctx.Done():
	case job := <-failed:
		printer.Line(system, strings.TrimSpace(display[job])+" failed: stopping every process")
		shutdown()
		return &cli.ExitError{Code: 1}
	}
	shutdown()
	return nil
}

func setupRun(c *state, fs *flag.FlagSet) func([]string) error {
	conc := fs.String("c", "", "number of copies to run at once: N, or <command>=N")
	fs.StringVar(conc, "concurrency", "", "same as -c")
	return func(args []string) error {
		if len(args) == 0 {
			return usagef("run needs a command")
		}
		a, err := c.loadApp(false)
		if err != nil {
			return err
		}
		argv := args
		if len(args) == 1 && strings.ContainsAny(args[0], " \t") {
			if argv, err = gaffer.SplitCommandLine(args[0]); err != nil || len(argv) == 0 {
				return usagef("cannot split the command %q: %v", args[0], err)
			}
		}
		copies, err := runCopies(*conc, argv[0])
		if err != nil {
			return err
		}
		env := os.Environ()
		for _, k := range a.envKeys {
			env = append(env, k+"="+a.env[k])
		}
		path := argv[0]
		if !strings.Contains(path, "/") {
			envPath := os.Getenv("PATH")
			if v, ok := a.env["PATH"]; ok {
				envPath = v
			}
			found := ""
			for _, dir := range filepath.SplitList(envPath) {
				p := filepath.Join(dir, path)
				if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
					found = p
					break
				}
			}
			if found == "" {
				return fmt.Errorf("%s: command not found", path)
			}
			path = found
		}
		cmds := make([]*exec.Cmd, copies)
		for i := range cmds {
			cmd := exec.Command(path, argv[1:]...)
			cmd.Args[0] = argv[0]
			cmd.Env = env
			cmd.Dir = a.root
			cmd.Stdout, cmd.Stderr = c.stdout, c.stderr
			if copies == 1 {
				cmd.Stdin = c.stdin
			}
			cmds[i] = cmd
		}
		// The terminal delivers Ctrl-C to the commands too; gaffer only
		// passes SIGTERM and SIGHUP on and waits for the commands' status.
		sigs := make(chan os.Signal, 4)
		signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
		defer signal.Stop(sigs)
		var started []*exec.Cmd
		var startErr error
		for _, cmd := range cmds {
			if startErr = cmd.Start(); startErr != nil {
				break
			}
			started = append(started, cmd)
		}
		done := make(chan struct{})
		go func() {
			for {
				select {
				case s := <-sigs:
					if s != os.Interrupt {
						for _, cmd := range started {
							cmd.Process.Signal(s)
						}
					}
				case <-done:
					return
				}
			}
		}()
		if startErr != nil {
			for _, cmd := range started {
				cmd.Process.Signal(syscall.SIGTERM)
			}
		}
		errs := make([]error, len(started))
		for i, cmd := range started {
			errs[i] = cmd.Wait()
		}
		close(done)
		if startErr != nil {
			return startErr
		}
		for _, err := range errs {
			if err == nil {
				continue
			}
			var xe *exec.ExitError
			if errors.As(err, &xe) {
				if ws, ok := xe.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					return &cli.ExitError{Code: 128 + int(ws.Signal())}
				}
				return &cli.ExitError{Code: xe.ExitCode()}
			}
			return err
		}
		return nil
	}
}

// runCopies reads run's -c: "" (1), N, or <command>=N where <command> is
// the base name of the command (the job name 0.5.2's dev:run gave it).
func runCopies(spec, command string) (int, error) {
	if spec == "" {
		return 1, nil
	}
	num := spec
	if name, n, ok := strings.Cut(spec, "="); ok {
		if name != filepath.Base(command) {
			return 0, usagef("-c %q: expected N or %s=N", spec, filepath.Base(command))
		}
		num = n
	}
	n, err := strconv.Atoi(strings.TrimSpace(num))
	if err != nil || n < 1 || n > gaffer.MaxConcurrency {
		return 0, usagef("-c %q: the number of copies must be an integer from 1 to %d", spec, gaffer.MaxConcurrency)
	}
	return n, nil
}

func setupExport(c *state, fs *flag.FlagSet) func([]string) error {
	var specs multiFlag
	fs.Var(&specs, "c", "processes per type: process=num[,process=num...] (repeatable)")
	fs.Var(&specs, "concurrency", "same as -c")
	format := fs.String("format", "", "ini or json (default ini)")
	out := fs.String("out", "", "write to this file instead of stdout")
	appFlag := fs.String("app", "", "app (session) name (default: the root directory's name)")
	return func(args []string) error {
		f := *format
		if len(args) > 0 && (args[0] == "ini" || args[0] == "json") {
			if f != "" && f != args[0] {
				return usagef("--format %s conflicts with %s", f, args[0])
			}
			f, args = args[0], args[1:]
		}
		if f == "" {
			f = "ini"
		}
		if f != "ini" && f != "json" {
			return usagef("unknown format %q (ini or json)", f)
		}
		if len(args) > 1 {
			return usagef("export takes at most one process name")
		}
		a, counts, err := c.loadCounts(specs)
		if err != nil {
			return err
		}
		name, err := c.appName(a, *appFlag)
		if err != nil {
			return err
		}
		pf := a.pf
		if len(args) == 1 {
			e, ok := pf.Lookup(args[0])
			if !ok {
				return usagef("%q is neither a format (ini, json) nor a process type of %s", args[0], pf.Path)
			}
			pf = &gaffer.Procfile{Path: pf.Path, Entries: []gaffer.ProcfileEntry{e}}
		}
		var sb strings.Builder
		if f == "ini" {
			err = gaffer.ExportINI(&sb, name, pf, counts, a.env)
		} else {
			err = gaffer.ExportJSON(&sb, name, pf, counts, a.env)
		}
		if err != nil {
			return errors.New(errorText(err))
		}
		if *out == "" {
			_, err = io.WriteString(c.stdout, sb.String())
			return err
		}
		// The export holds the .env values: keep it private.
		return os.WriteFile(*out, []byte(sb.String()), 0o600)
	}
}
