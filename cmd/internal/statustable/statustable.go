// Package statustable is the process table of "gaffer status" and
// "gafferctl status": one row per process (or per job without one) with
// its job, pids, state, uptime, restarts, cpu, memory and last exit, from
// what gafferd's HTTP API answers.
package statustable

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gaffer-go/gaffer"
	"golang.org/x/sys/unix"
)

// Row is one line of the table, and one object of --json. Figures that do
// not apply (a job without a process) are null.
type Row struct {
	Job           string   `json:"job"`
	Pid           *int     `json:"pid"`
	OSPid         *int     `json:"os_pid"`
	State         string   `json:"state"`
	StartedAt     *float64 `json:"started_at"`     // seconds since the Unix epoch
	UptimeSeconds *float64 `json:"uptime_seconds"` // since the process started
	Restarts      int      `json:"restarts"`       // of the job, after unexpected exits
	CPUPercent    *float64 `json:"cpu_percent"`    // of one core, since the previous sample
	MemoryBytes   *int64   `json:"memory_bytes"`   // resident
	LastExit      *int     `json:"last_exit_status"`
	// LastExitSignal names the signal that ended the job's last process
	// (SIGKILL…); "" when it exited by itself.
	LastExitSignal string `json:"last_exit_signal"`
}

// Collect reads the rows of the jobs the client's key can read, those
// for which keep returns true (nil keeps all), sorted by job then pid.
func Collect(ctx context.Context, cl *gaffer.Client, keep func(job string) bool, now time.Time) ([]Row, error) {
	jobs, err := cl.AllJobInfo(ctx)
	if err != nil {
		return nil, err
	}
	sort.SliceStable(jobs, func(i, j int) bool { return jobs[i].Name < jobs[j].Name })
	rows := []Row{}
	for _, j := range jobs {
		if keep != nil && !keep(j.Name) {
			continue
		}
		base := Row{Job: j.Name, Restarts: j.Restarts, LastExit: j.LastExit}
		if j.LastExitInfo != nil {
			base.LastExitSignal = j.LastExitInfo.Signal
		}
		stats := map[int]gaffer.ProcStats{}
		if len(j.Processes) > 0 {
			js, err := cl.JobStats(ctx, j.Name)
			if err != nil && !isNotFound(err) {
				return nil, err
			}
			for _, st := range js.Stats {
				stats[st.Pid] = st
			}
		}
		pids := append([]int(nil), j.Processes...)
		sort.Ints(pids)
		n := 0
		for _, pid := range pids {
			pi, err := cl.ProcessInfo(ctx, pid)
			if isNotFound(err) {
				continue // it exited meanwhile
			} else if err != nil {
				return nil, err
			}
			r := base
			r.Pid, r.OSPid = ptr(pi.Pid), ptr(pi.OSPid)
			r.State = "running"
			if pi.Stopping {
				r.State = "stopping"
			}
			r.StartedAt = ptr(pi.CreateTime)
			r.UptimeSeconds = ptr(math.Max(0, float64(now.UnixNano())/1e9-pi.CreateTime))
			if st, ok := stats[pid]; ok {
				if st.Sampled {
					r.CPUPercent = ptr(st.CPUPercent)
				}
				if st.RSSBytes > 0 {
					r.MemoryBytes = ptr(st.RSSBytes)
				}
			}
			rows = append(rows, r)
			n++
		}
		if n == 0 {
			r := base
			r.State = j.State
			if r.State == "" || r.State == gaffer.JobRunning {
				r.State = "no process"
			}
			rows = append(rows, r)
		}
	}
	return rows, nil
}

func isNotFound(err error) bool {
	var e *gaffer.Error
	return errors.As(err, &e) && e.Errno == 404
}

func ptr[T any](v T) *T { return &v }

// Columns are the table's headings.
var Columns = []string{"JOB", "PID", "OS PID", "STATE", "UPTIME", "RESTARTS", "CPU", "MEMORY", "LAST EXIT"}

// Cells are the texts of a row, in the order of Columns.
func (r Row) Cells() []string {
	dash := "-"
	c := []string{r.Job, dash, dash, r.State, dash, strconv.Itoa(r.Restarts), dash, dash, dash}
	if r.Pid != nil {
		c[1] = strconv.Itoa(*r.Pid)
	}
	if r.OSPid != nil {
		c[2] = strconv.Itoa(*r.OSPid)
	}
	if r.UptimeSeconds != nil {
		c[4] = Duration(time.Duration(*r.UptimeSeconds * float64(time.Second)))
	}
	if r.CPUPercent != nil {
		c[6] = strconv.FormatFloat(*r.CPUPercent, 'f', 1, 64) + "%"
	}
	if r.MemoryBytes != nil {
		c[7] = Bytes(*r.MemoryBytes)
	}
	if r.LastExitSignal != "" {
		c[8] = r.LastExitSignal
	} else if r.LastExit != nil {
		c[8] = strconv.Itoa(*r.LastExit)
	}
	return c
}

// Duration formats an uptime as people read it: 42s, 3m07s, 5h02m, 2d03h.
func Duration(d time.Duration) string {
	s := int64(d / time.Second)
	switch {
	case s < 0:
		return "0s"
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%02dh", s/86400, s%86400/3600)
}

// Bytes formats a size in IEC units: 512 B, 1.5 KiB, 12.3 MiB, 2.0 GiB.
func Bytes(n int64) string {
	if n < 1024 {
		return strconv.FormatInt(n, 10) + " B"
	}
	f := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB", "PiB"} {
		f /= 1024
		if f < 1024 || u == "PiB" {
			return strconv.FormatFloat(f, 'f', 1, 64) + " " + u
		}
	}
	return "" // not reached
}

// UseColor tells whether to colour what goes to w: only a terminal, and
// not when NO_COLOR is set (https://no-color.org).
func UseColor(w io.Writer) bool {
	if os.Getenv("NO_COLOR") != "" {
		return false
	}
	return IsTerminal(w)
}

// IsTerminal tells whether w is a terminal (not merely a character
// device: /dev/null is one too).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), ioctlReadTermios)
	return err == nil
}

// stateColor is the ANSI colour of a state.
func stateColor(state string) string {
	switch state {
	case "running":
		return "32" // green
	case "stopping", gaffer.JobFlapping, "no process":
		return "33" // yellow
	case gaffer.JobGaveUp:
		return "31" // red
	}
	return "2" // dim: stopped, not started
}

// Print writes the table: a heading, then the rows, columns padded to
// their widest cell; with color, a bold heading and coloured states.
func Print(w io.Writer, rows []Row, color bool) error {
	cells := [][]string{Columns}
	for _, r := range rows {
		cells = append(cells, r.Cells())
	}
	width := make([]int, len(Columns))
	for _, line := range cells {
		for i, c := range line {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	for n, line := range cells {
		for i, c := range line {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			text := c
			if i < len(line)-1 {
				text += pad
			}
			switch {
			case color && n == 0:
				text = "\x1b[1m" + text + "\x1b[0m"
			case color && i == 3:
				text = "\x1b[" + stateColor(c) + "m" + c + "\x1b[0m" + pad
			}
			if i > 0 {
				b.WriteString("  ")
			}
			b.WriteString(text)
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}
