package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/gaffer-go/gaffer"
	"github.com/gaffer-go/gaffer/cmd/internal/cli"
)

// unload, reload, ps:start and ps:stop, on jobs or on whole applications,
// and the resolution of the documentation's positional application names.

// pickApp merges --app and the documentation's positional application
// name; both given and different is a usage error.
func pickApp(flagValue, arg string) (string, error) {
	if flagValue != "" && arg != "" && flagValue != arg {
		return "", usagef("--app %q and the application name %q disagree (give one)", flagValue, arg)
	}
	return cli.FirstNonEmpty(arg, flagValue), nil
}

// loadArgIsFile tells whether the argument of load is a JSON job file (an
// existing file that is not a directory, or "-" for stdin) rather than an
// application name ("." and a directory's name included). A missing path
// that looks like a file ("x.json", "dir/x") is an error rather than an
// application name.
func loadArgIsFile(arg string) (bool, error) {
	if arg == "-" {
		return true, nil
	}
	st, err := os.Stat(arg)
	switch {
	case err == nil:
		return !st.IsDir(), nil
	case !errors.Is(err, fs.ErrNotExist):
		return false, err
	case strings.ContainsRune(arg, '/') || strings.EqualFold(filepath.Ext(arg), ".json"):
		return false, fmt.Errorf("%s: no such file", arg)
	}
	return false, nil
}

// inactiveState is what ps shows for a job with no process running.
func inactiveState(info gaffer.JobInfo) string {
	switch info.State {
	case "", gaffer.JobRunning:
		return "running, 0 processes"
	case gaffer.JobNotStarted:
		return "not started"
	case gaffer.JobGaveUp:
		return "gave up: crashing too often, or a failed run with restart = never"
	case "waiting":
		return "waiting for " + info.WaitingFor
	case "backoff":
		if info.NextTry != nil {
			return "backoff: next try at " + info.NextTry.Local().Format("15:04:05.000")
		}
	}
	return info.State
}

// lifeNote is what ps adds after a process's uptime: its state when it
// is not plain running, its health, its sd_notify status line.
func lifeNote(ps gaffer.ProcessState) string {
	var parts []string
	if ps.State != "" && ps.State != gaffer.JobRunning {
		parts = append(parts, ps.State)
	}
	if ps.Health != "" {
		parts = append(parts, ps.Health)
	}
	if ps.Status != "" {
		parts = append(parts, "“"+ps.Status+"”")
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// setupAppJobsOp is unload, reload, restart, ps:start and ps:stop: on the
// named jobs, or on every job of an app after a confirmation. For unload,
// reload and restart an argument that is not a job of the app but the name of an
// application (or ".") stands for that whole application.
func setupAppJobsOp(c *state, fs *flag.FlagSet, op string) func([]string) error {
	appFlag := fs.String("app", "", "app (session) name")
	noInput := fs.Bool("no-input", false, "do not ask for confirmation")
	var fromFile *string
	if op == "unload" || op == "reload" || op == "restart" {
		fromFile = fs.String("from-file", "", "take the job names from this JSON job file")
	}
	rolling := new(bool)
	if op == "restart" {
		rolling = fs.Bool("rolling", false, "replace the processes one at a time, each new one ready before an old one stops")
	}
	past := map[string]string{"unload": "unloaded", "reload": "reloaded", "restart": "restarted", "start": "started", "stop": "stopped"}[op]
	return func(args []string) error {
		_, app, cl, err := c.appRemote(*appFlag)
		if err != nil {
			return err
		}
		if fromFile != nil && *fromFile != "" {
			names, err := jobNamesFromFile(*fromFile)
			if err != nil {
				return err
			}
			args = append(args, names...)
		}
		do := func(full string) error {
			switch op {
			case "unload":
				return cl.Unload(c.ctx, full)
			case "reload":
				return cl.ReloadJob(c.ctx, full)
			case "restart":
				if *rolling {
					_, err := cl.RestartJob(c.ctx, full, true)
					return err
				}
				return restartJob(c, cl, full)
			case "start":
				return cl.StartJob(c.ctx, full)
			default:
				return cl.StopJob(c.ctx, full)
			}
		}
		var sessions []string
		isSession := func(name string) (bool, error) {
			if sessions == nil {
				if sessions, err = cl.Sessions(c.ctx); err != nil {
					return false, err
				}
			}
			for _, s := range sessions {
				if s == name {
					return true, nil
				}
			}
			return false, nil
		}
		wholeApp := func(app string) error {
			if ok, err := isSession(app); err != nil {
				return err
			} else if !ok {
				return fmt.Errorf("'%s' not found", app)
			}
			q := map[string]string{"unload": "Do you want to unload '%s'?", "reload": "Do you want to reload '%s'?", "restart": "Do you want to restart '%s'?",
				"start": "Do you want to start all jobs in '%s'", "stop": "Do you want to stop all jobs in '%s'"}[op]
			if err := c.confirm(*noInput, fmt.Sprintf(q, app)); err != nil {
				return err
			}
			jobs, err := cl.SessionJobs(c.ctx, app)
			if err != nil {
				return err
			}
			if op == "stop" || op == "unload" {
				// Load order has dependencies first: stop dependents first.
				slices.Reverse(jobs)
			}
			for _, full := range jobs {
				if err := do(full); err != nil {
					return jobError(full, err)
				}
				fmt.Fprintf(c.stdout, "job '%s' %s\n", shortJob(full), past)
			}
			if op == "start" || op == "stop" {
				fmt.Fprintf(c.stdout, "==> all jobs in '%s' %s\n", app, past)
			} else {
				fmt.Fprintf(c.stdout, "==> app '%s' %s\n", app, past)
			}
			return nil
		}
		if len(args) == 0 {
			return wholeApp(app)
		}
		appsToo := op == "unload" || op == "reload" || op == "restart"
		failed := false
		for _, arg := range args {
			if op == "stop" && isPid(arg) {
				pid, _ := strconv.Atoi(arg)
				if err := cl.StopProcess(c.ctx, pid); err != nil {
					if isUnreachable(err) {
						return err
					}
					fmt.Fprintf(c.stderr, "gaffer: process %s: %s\n", arg, errorText(err))
					failed = true
					continue
				}
				fmt.Fprintf(c.stdout, "'%s' stopped\n", arg)
				continue
			}
			if appsToo && arg == "." {
				if err := wholeApp(app); err != nil {
					return err
				}
				continue
			}
			full := fullJob(app, arg)
			if appsToo && !strings.Contains(arg, ".") {
				// The documentation's "unload <name>": an application,
				// unless the current app has a job of that name.
				exists, err := cl.JobExists(c.ctx, full)
				if err != nil && isUnreachable(err) {
					return err
				}
				if !exists && gaffer.ValidateSession(arg) == nil {
					if ok, err := isSession(arg); err != nil {
						return err
					} else if ok {
						if err := wholeApp(arg); err != nil {
							return err
						}
						continue
					}
				}
			}
			if err := c.confirm(*noInput || op == "start" || op == "stop" || op == "restart", fmt.Sprintf("Do you want to %s '%s'?", op, full)); err != nil {
				return err
			}
			if err := do(full); err != nil {
				if isUnreachable(err) {
					return err
				}
				var e *gaffer.Error
				if errors.As(err, &e) && e.Errno == 404 {
					fmt.Fprintf(c.stderr, "gaffer: '%s' not found in '%s'\n", shortJob(full), app)
				} else {
					fmt.Fprintf(c.stderr, "gaffer: %s: %s\n", full, errorText(err))
				}
				failed = true
				continue
			}
			if appsToo {
				fmt.Fprintf(c.stdout, "job '%s' %s\n", arg, past)
			} else {
				fmt.Fprintf(c.stdout, "'%s' %s\n", arg, past)
			}
		}
		if failed {
			return &cli.ExitError{Code: 1}
		}
		return nil
	}
}

// restartJob restarts the processes of a job (POST …/state 2), or starts
// it when it is stopped, as restart does in supervisorctl, pm2 and
// systemctl.
func restartJob(c *state, cl *gaffer.Client, full string) error {
	info, err := cl.JobInfo(c.ctx, full)
	if err != nil {
		return err
	}
	if info.State == gaffer.JobStopped || info.State == gaffer.JobNotStarted {
		return cl.StartJob(c.ctx, full)
	}
	return cl.ReloadJob(c.ctx, full)
}

func jobNamesFromFile(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Name string `json:"name"`
		Jobs []struct {
			Name string `json:"name"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: invalid JSON: %v", filepath.Base(path), err)
	}
	var out []string
	if doc.Name != "" {
		out = append(out, doc.Name)
	}
	for _, j := range doc.Jobs {
		if j.Name != "" {
			out = append(out, j.Name)
		}
	}
	return out, nil
}
