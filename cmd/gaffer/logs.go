package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gaffer-go/gaffer"
)

// logs, recv and send: the feeds of a gafferd.

func setupLogs(c *state, fs *flag.FlagSet) func([]string) error {
	appFlag := fs.String("app", "", "app (session) name")
	ps := fs.String("ps", "", "only this job")
	lines := fs.Int("n", -1, "start with the last N lines of each process's output (and the events since the first of them)")
	fs.IntVar(lines, "lines", -1, "same as -n")
	since := fs.String("since", "", "start with what was captured since then: a duration (10m, 1h30m) or an RFC 3339 time")
	backlog := fs.Bool("backlog", false, "start with all the recent output gafferd still holds (the whole ring buffer)")
	noFollow := fs.Bool("no-follow", false, "print what gafferd holds and exit (everything, unless -n or --since)")
	noColor := fs.Bool("no-color", false, "no colours")
	return func(args []string) error {
		if len(args) > 0 {
			return usagef("logs takes no argument (use --ps JOB)")
		}
		if *lines < -1 {
			return usagef("-n: expected a number of lines, got %d", *lines)
		}
		var cutoff time.Time
		if *since != "" {
			var err error
			if cutoff, err = parseSince(*since, time.Now()); err != nil {
				return usagef("%v", err)
			}
		}
		past := *lines >= 0 || *since != "" || *backlog || *noFollow
		_, app, cl, err := c.appRemote(*appFlag)
		if err != nil {
			return err
		}
		prefix := "job." + app
		var jobs []string
		if *ps != "" {
			full := fullJob(app, *ps)
			if _, err := cl.JobInfo(c.ctx, full); err != nil {
				return err
			}
			prefix = "job." + full
			jobs = []string{full}
		} else if jobs, err = cl.SessionJobs(c.ctx, app); err != nil {
			var e *gaffer.Error
			if !errors.As(err, &e) || e.Errno != 404 {
				return err
			}
			jobs = nil // nothing loaded yet: wait for it
		}
		ctx, cancel := context.WithCancel(c.ctx)
		defer cancel()
		var pastEvents []gaffer.Event
		var events <-chan gaffer.Event
		if past {
			pastEvents, events, err = cl.FollowEvents(ctx, prefix)
		} else {
			events, err = cl.Watch(ctx, prefix)
		}
		if err != nil {
			return err
		}
		color := !*noColor && !isTerminalEnvOff() && isTerminal(c.stdout)
		lg := &logsRun{cl: cl, ctx: ctx, printer: gaffer.NewConsolePrinter(c.stdout, color), following: map[int]bool{},
			pastDone: make(chan struct{})}

		// What gafferd holds: the output of the processes running now, and
		// the job's events, in the order they happened.
		var held []logEntry
		for _, full := range jobs {
			pids, err := cl.JobPids(ctx, full)
			if err != nil {
				continue
			}
			for _, pid := range pids {
				since := int64(-1) // only what comes next
				if past {
					since = 0
				}
				held = append(held, lg.follow(pid, since, true, !*noFollow)...)
			}
		}
		if past {
			held = pastWindow(held, pastEvents, prefix, cutoff, *lines)
			for _, e := range held {
				lg.printer.LineAt(e.at, e.name, e.text)
			}
		}
		close(lg.pastDone) // the live output may go now
		if *noFollow {
			return nil
		}
		for ev := range events {
			full, _ := ev.Data["name"].(string)
			short := strings.TrimPrefix(ev.Name, "job."+full+".")
			if short == ev.Name {
				continue
			}
			if pid, ok := ev.Data["pid"].(float64); ok && short == "spawn" {
				go lg.follow(int(pid), 0, false, true) // from its start: all of it is new
			}
			lg.printer.LineAt(ev.Time, full, eventText(short, full, ev))
		}
		if c.ctx.Err() == nil {
			return fmt.Errorf("lost the connection to gafferd at %s", cl.Address())
		}
		cancel()
		lg.wg.Wait()
		return nil
	}
}

// parseSince reads --since: a duration before now (10m, 1h30m, 90s) or an
// RFC 3339 time.
func parseSince(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("--since %s: expected a duration before now (10m, 2h) or an RFC 3339 time", v)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since %q: expected a duration (10m, 1h30m) or an RFC 3339 time (2006-01-02T15:04:05Z)", v)
}

// eventText is how logs shows a lifecycle event of job full (short is
// its name under the job): "exit process with pid 3", "start myapp.web".
func eventText(short, full string, ev gaffer.Event) string {
	if pid, ok := ev.Data["pid"].(float64); ok {
		return fmt.Sprintf("%s process with pid %d", short, int(pid))
	}
	return short + " " + full
}

// logEntry is one line logs prints: a line of output or an event, with
// the time it was captured or published.
type logEntry struct {
	at    time.Time
	name  string // the name column: web.3 for output, the job for events
	text  string
	event bool
	pid   int // output: the process
}

// logsRun follows the output of an app's processes.
type logsRun struct {
	cl        *gaffer.Client
	ctx       context.Context
	printer   *gaffer.ConsolePrinter
	mu        sync.Mutex
	following map[int]bool
	wg        sync.WaitGroup
	pastDone  chan struct{} // closed once what gafferd held is printed
}

// follow reads the output of process pid after chunk since (< 0: only
// what comes next): what its ring buffers hold is returned as lines,
// oldest first, when collect is set (the unfinished last line of a stream
// included only when live is off), else printed; with live, what comes
// next is printed as it comes, once what gafferd held is. A process
// already followed is skipped.
func (lg *logsRun) follow(pid int, since int64, collect, live bool) []logEntry {
	lg.mu.Lock()
	if lg.following[pid] {
		lg.mu.Unlock()
		return nil
	}
	lg.following[pid] = true
	lg.mu.Unlock()
	info, err := lg.cl.ProcessInfo(lg.ctx, pid)
	if err != nil {
		return nil
	}
	name := shortJob(info.Name) + "." + strconv.Itoa(pid)
	var held []logEntry
	seen := map[string]bool{}
	for _, label := range info.RedirectOutput {
		if seen[label] {
			continue
		}
		seen[label] = true
		backlog, out, err := lg.cl.FollowOutput(lg.ctx, pid, label, since)
		if err != nil {
			continue
		}
		sp := &lineSplitter{}
		var mine []logEntry
		emit := func(at time.Time, line string) {
			mine = append(mine, logEntry{at: at, name: name, text: line, pid: pid})
		}
		for _, ch := range backlog {
			if ch.Gap == nil { // a gap first only says the ring holds no older output
				sp.feed(ch.Data, ch.Time, emit)
			}
		}
		if !live {
			sp.flush(emit)
		}
		if collect {
			held, mine = append(held, mine...), nil
		}
		if !live {
			for _, e := range mine {
				lg.printer.LineAt(e.at, e.name, e.text)
			}
			continue
		}
		lg.wg.Add(1)
		go func() {
			defer lg.wg.Done()
			select {
			case <-lg.pastDone:
			case <-lg.ctx.Done():
				return
			}
			for _, e := range mine {
				lg.printer.LineAt(e.at, e.name, e.text)
			}
			print := func(at time.Time, line string) { lg.printer.LineAt(at, name, line) }
			for ch := range out {
				if ch.Gap != nil {
					lg.printer.Line(name, fmt.Sprintf("[%d chunks of output lost: the ring buffer no longer held them]", ch.Gap.To-ch.Gap.From+1))
					continue
				}
				sp.feed(ch.Data, ch.Time, print)
			}
			sp.flush(print)
		}()
	}
	return held
}

// pastWindow picks what logs prints of what gafferd holds: the lines
// captured since cutoff (zero: any), then the last n of each process
// (n < 0: all), and the events of the job since the oldest line picked
// (the last n events when no line is: nothing else dates them), all in
// the order they happened.
func pastWindow(lines []logEntry, events []gaffer.Event, prefix string, cutoff time.Time, n int) []logEntry {
	perProc := map[int][]logEntry{}
	var order []int
	for _, l := range lines {
		if !cutoff.IsZero() && l.at.Before(cutoff) {
			continue
		}
		if _, ok := perProc[l.pid]; !ok {
			order = append(order, l.pid)
		}
		perProc[l.pid] = append(perProc[l.pid], l)
	}
	var out []logEntry
	for _, pid := range order {
		ls := perProc[pid]
		sort.SliceStable(ls, func(i, j int) bool { return ls[i].at.Before(ls[j].at) })
		if n >= 0 && len(ls) > n {
			ls = ls[len(ls)-n:]
		}
		out = append(out, ls...)
	}
	var evs []logEntry
	for _, ev := range events {
		full, _ := ev.Data["name"].(string)
		short, ok := strings.CutPrefix(ev.Name, "job."+full+".")
		if !ok || !strings.HasPrefix(ev.Name, prefix) || !cutoff.IsZero() && ev.Time.Before(cutoff) {
			continue
		}
		evs = append(evs, logEntry{at: ev.Time, name: full, text: eventText(short, full, ev), event: true})
	}
	if n >= 0 {
		if len(out) > 0 {
			oldest := out[0].at
			for _, l := range out {
				if l.at.Before(oldest) {
					oldest = l.at
				}
			}
			kept := evs[:0]
			for _, e := range evs {
				if !e.at.Before(oldest) {
					kept = append(kept, e)
				}
			}
			evs = kept
		} else if len(evs) > n {
			evs = evs[len(evs)-n:]
		}
	}
	out = append(out, evs...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out
}

// lineSplitter cuts a stream's output into lines, each stamped with the
// capture time of the chunk it started in. Trailing white space is
// trimmed and empty lines dropped, as the console does.
type lineSplitter struct {
	partial []byte
	at      time.Time // of the partial line
}

func (sp *lineSplitter) feed(data []byte, at time.Time, emit func(time.Time, string)) {
	for len(data) > 0 {
		if len(sp.partial) == 0 {
			sp.at = at
		}
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			sp.partial = append(sp.partial, data...)
			return
		}
		line := append(sp.partial, data[:i]...)
		if l := bytes.TrimRight(line, " \t\r"); len(l) > 0 {
			emit(sp.at, string(l))
		}
		sp.partial, data = line[:0], data[i+1:]
	}
}

// flush emits the unfinished last line.
func (sp *lineSplitter) flush(emit func(time.Time, string)) {
	if l := bytes.TrimRight(sp.partial, " \t\r"); len(l) > 0 {
		emit(sp.at, string(l))
	}
	sp.partial = sp.partial[:0]
}

func isTerminalEnvOff() bool { return os.Getenv("NO_COLOR") != "" }

func setupRecv(c *state, fs *flag.FlagSet) func([]string) error {
	backlog := fs.Bool("backlog", false, "start with the recent output gafferd still holds")
	return func(args []string) error {
		if len(args) < 1 || len(args) > 2 {
			return usagef("recv needs a pid and optionally a stream")
		}
		target, stream, _ := strings.Cut(args[0], ".")
		if len(args) == 2 {
			stream = args[1]
		}
		if !isPid(target) {
			return usagef("%q is not a pid", target)
		}
		pid, _ := strconv.Atoi(target)
		cl, err := c.apiClient()
		if err != nil {
			return err
		}
		since := int64(-1)
		if *backlog {
			since = 0
		}
		out, err := cl.StreamOutput(c.ctx, pid, stream, since)
		var e *gaffer.Error
		if errors.As(err, &e) {
			switch e.Code {
			case gaffer.CodeNotFound:
				return fmt.Errorf("process '%d' not found", pid)
			case "io_not_found", gaffer.CodeNotRedirected:
				return fmt.Errorf("can't read on '%s': %s", stream, e.Reason)
			}
		}
		if err != nil {
			return err
		}
		for ch := range out {
			if len(ch.Data) > 0 {
				c.stdout.Write(append(ch.Data, '\n'))
			}
		}
		return nil
	}
}

func setupSend(c *state, fs *flag.FlagSet) func([]string) error {
	stream := fs.String("s", "", "stream: stdin (default) or a custom stream")
	fs.StringVar(stream, "stream", "", "same as -s")
	return func(args []string) error {
		if len(args) < 2 {
			return usagef("send needs a pid and data (or - to read lines)")
		}
		if !isPid(args[0]) {
			return usagef("%q is not a pid", args[0])
		}
		pid, _ := strconv.Atoi(args[0])
		cl, err := c.apiClient()
		if err != nil {
			return err
		}
		write := func(line string) error {
			err := cl.WriteStream(c.ctx, pid, *stream, []byte(line+"\n"))
			var e *gaffer.Error
			if errors.As(err, &e) {
				switch {
				case e.Code == gaffer.CodeNotFound && strings.Contains(e.Reason, "stream"):
					return fmt.Errorf("stream '%s' not found", *stream)
				case e.Code == gaffer.CodeNotFound:
					return fmt.Errorf("process '%d' not found", pid)
				case e.Code == gaffer.CodeForbiddenWrite || strings.Contains(e.Reason, "stdin"):
					return fmt.Errorf("can't write on this process (no stdin): %s", e.Reason)
				}
				return fmt.Errorf("Error (%d): %s", e.Errno, e.Reason)
			}
			return err
		}
		if len(args) == 2 && args[1] == "-" {
			for {
				line, err := c.readLine()
				if err != nil || line == "." {
					return nil
				}
				if err := write(line); err != nil {
					return err
				}
			}
		}
		return write(strings.TrimSpace(strings.Join(args[1:], " ")))
	}
}
