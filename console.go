package gaffer

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
)

// Console colours, in the rotation of the original: cyan, yellow, green,
// magenta, red, blue, then the bright ones.
var consoleColors = []string{"36", "33", "32", "35", "31", "34", "96", "93", "92", "95", "91", "94"}

// ConsolePrinter writes process output and events as
// "HH:MM:SS name | line" (reference §12.3), one colour per name when
// Color is set. Partial lines are held per process until their end. It is
// safe for concurrent use.
type ConsolePrinter struct {
	Color   bool
	mu      sync.Mutex
	w       io.Writer
	colors  map[string]string
	partial map[*Process][]byte
}

// NewConsolePrinter returns a printer writing to w.
func NewConsolePrinter(w io.Writer, color bool) *ConsolePrinter {
	return &ConsolePrinter{Color: color, w: w, colors: map[string]string{}, partial: map[*Process][]byte{}}
}

func newConsolePrinter(w io.Writer) *ConsolePrinter { return NewConsolePrinter(w, false) }

// Line prints one line under name, stamped with the time now.
func (c *ConsolePrinter) Line(name, text string) {
	c.LineAt(time.Now(), name, text)
}

// LineAt prints one line under name, stamped with at (the time its
// output was captured, or its event published).
func (c *ConsolePrinter) LineAt(at time.Time, name, text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lineAtLocked(at, name, text)
}

func (c *ConsolePrinter) lineLocked(name, text string) { c.lineAtLocked(time.Now(), name, text) }

func (c *ConsolePrinter) lineAtLocked(at time.Time, name, text string) {
	ts := at.Format("15:04:05")
	if c.Color {
		col, ok := c.colors[name]
		if !ok {
			col = consoleColors[len(c.colors)%len(consoleColors)]
			c.colors[name] = col
		}
		fmt.Fprintf(c.w, "\x1b[%sm%s %s | %s\x1b[0m\n", col, ts, name, text)
		return
	}
	fmt.Fprintf(c.w, "%s %s | %s\n", ts, name, text)
}

// output is a Manager Output hook: it prints complete lines, trimmed,
// dropping empty ones.
func (c *ConsolePrinter) output(p *Process, label string, data []byte) {
	c.Output(p.Job, p, data)
}

// Output prints the complete lines of data under name; the unfinished
// last line of key is kept for the next call (data nil flushes it).
func (c *ConsolePrinter) Output(name string, key *Process, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	buf := append(c.partial[key], data...)
	if data == nil {
		if len(bytes.TrimSpace(buf)) > 0 {
			c.lineLocked(name, string(bytes.TrimSpace(buf)))
		}
		delete(c.partial, key)
		return
	}
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		if line := bytes.TrimSpace(buf[:i]); len(line) > 0 {
			c.lineLocked(name, string(line))
		}
		buf = buf[i+1:]
	}
	if len(buf) > 0 {
		c.partial[key] = append([]byte(nil), buf...)
	} else {
		delete(c.partial, key)
	}
}

// EventText formats an event as the console shows it: "spawn process with
// pid 3", "exit process with pid 3", "start default.web".
func EventText(ev Event) string {
	if pid, ok := ev.Data["pid"]; ok {
		if ev.Name == "spawn" {
			return fmt.Sprintf("spawn process with pid %v", pid)
		}
		return fmt.Sprintf("%s process with pid %v", ev.Name, pid)
	}
	return fmt.Sprintf("%s %v", ev.Name, ev.Data["name"])
}

// consoleEvents subscribes to lifecycle events (all events when all is
// set); print them with printConsoleEvents. Subscribing first, before any
// job loads, is what keeps the first events.
func consoleEvents(m *Manager, all bool) *Subscription {
	if all {
		return m.Events().Subscribe(1 << 14)
	}
	return m.Events().Subscribe(1<<14, "start", "stop", "spawn", "reap", "exit", "stop_process", "flap")
}

// printConsoleEvents prints the events of sub until the bus drops it. A
// panic while printing one (a failing writer) is logged and the next
// event is printed.
func printConsoleEvents(sub *Subscription, w io.Writer) {
	p := newConsolePrinter(w)
	var panics panicLog
	for ev := range sub.C {
		func() {
			defer panics.recover(slog.Default(), "the console printer", "event", ev.Name)
			name, _ := ev.Data["name"].(string)
			p.Line(name, EventText(ev))
		}()
	}
}
