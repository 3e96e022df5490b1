package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/gaffer-go/gaffer"
)

// logs, recv and send: the feeds of a gafferd.

func setupLogs(c *state, fs *flag.FlagSet) func([]string) error {
	appFlag := fs.String("app", "", "app (session) name")
	ps := fs.String("ps", "", "only this job")
	backlog := fs.Bool("backlog", false, "start with the recent output gafferd still holds")
	noColor := fs.Bool("no-color", false, "no colours")
	return func(args []string) error {
		if len(args) > 0 {
			return usagef("logs takes no argument (use --ps JOB)")
		}
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
		events, err := cl.Watch(c.ctx, prefix)
		if err != nil {
			return err
		}
		color := !*noColor && !isTerminalEnvOff() && isTerminal(c.stdout)
		printer := gaffer.NewConsolePrinter(c.stdout, color)
		var mu sync.Mutex
		following := map[int]bool{}
		var wg sync.WaitGroup
		follow := func(pid int, since int64) {
			mu.Lock()
			if following[pid] {
				mu.Unlock()
				return
			}
			following[pid] = true
			mu.Unlock()
			info, err := cl.ProcessInfo(c.ctx, pid)
			if err != nil {
				return
			}
			name := shortJob(info.Name) + "." + strconv.Itoa(pid)
			seen := map[string]bool{}
			for _, label := range info.RedirectOutput {
				if seen[label] {
					continue
				}
				seen[label] = true
				out, err := cl.StreamOutput(c.ctx, pid, label, since)
				if err != nil {
					continue
				}
				key := new(gaffer.Process) // one partial-line buffer per stream
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ch := range out {
						if ch.Gap != nil {
							printer.Line(name, fmt.Sprintf("[%d chunks of output lost]", ch.Gap.To-ch.Gap.From+1))
							continue
						}
						printer.Output(name, key, append(ch.Data, '\n'))
					}
				}()
			}
		}
		since := int64(-1)
		if *backlog {
			since = 0
		}
		for _, full := range jobs {
			pids, err := cl.JobPids(c.ctx, full)
			if err != nil {
				continue
			}
			for _, pid := range pids {
				follow(pid, since)
			}
		}
		for ev := range events {
			full, _ := ev.Data["name"].(string)
			short := strings.TrimPrefix(ev.Name, "job."+full+".")
			if short == ev.Name {
				continue
			}
			text := short + " " + full
			if pid, ok := ev.Data["pid"].(float64); ok {
				text = fmt.Sprintf("%s process with pid %d", short, int(pid))
				if short == "spawn" {
					go follow(int(pid), 0)
				}
			}
			printer.Line(full, text)
		}
		if c.ctx.Err() == nil {
			return fmt.Errorf("lost the connection to gafferd at %s", cl.Address())
		}
		wg.Wait()
		return nil
	}
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
