package main

import (
	"flag"
	"strings"
	"time"

	"github.com/gaffer-go/gaffer/cmd/internal/statustable"
)

// status: the process table of every job (supervisorctl status, pm2 ls);
// restart: the verb every peer has (reload's processes restart, and a
// stopped job starts).

func init() {
	commands = append(commands,
		&command{name: "status", usage: "[--json] [--app APP] [<app>|<job>...]",
			short: "show one row per process: job, pids, state, uptime, restarts, cpu, memory, last exit",
			long: `Without an argument, every job the API key can read; an argument is an
application (session) or a job (app.job, or job of --app). UPTIME is the time
since the process started; CPU is the percent of one core since the previous
sample; MEMORY is the resident size; LAST EXIT is the exit status of the job's
last exited process, or the signal that ended it (SIGKILL...). --json prints the same rows as JSON. Colours only on a
terminal, and not when NO_COLOR is set.`,
			setup: setupStatus},
		&command{name: "restart", usage: "[--app APP] [--from-file JSON] [--no-input] [<job>|<name>|.]...",
			short: "restart the processes of jobs (a stopped job starts), or of a whole app",
			setup: func(c *state, fs *flag.FlagSet) func([]string) error { return setupAppJobsOp(c, fs, "restart") }},
	)
}

func setupStatus(c *state, fs *flag.FlagSet) func([]string) error {
	asJSON := fs.Bool("json", false, "print JSON")
	appFlag := fs.String("app", "", "only the jobs of this app (session)")
	return func(args []string) error {
		cl, err := c.apiClient()
		if err != nil {
			return err
		}
		keep := func(job string) bool {
			if *appFlag != "" && !strings.HasPrefix(job, *appFlag+".") {
				return false
			}
			if len(args) == 0 {
				return true
			}
			for _, a := range args {
				if job == a || strings.HasPrefix(job, a+".") || (*appFlag != "" && job == *appFlag+"."+a) {
					return true
				}
			}
			return false
		}
		rows, err := statustable.Collect(c.ctx, cl, keep, time.Now())
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(c.stdout, rows)
		}
		return statustable.Print(c.stdout, rows, statustable.UseColor(c.stdout))
	}
}
