package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// gafferd's log under systemd: journald stamps each line with its own
// time, and reads a "<N>" prefix as the line's syslog priority
// (sd-daemon(3)), so that "journalctl -p err" filters gafferd's errors.

// journalPriority is the sd-daemon(3) prefix of a level: <3> error,
// <4> warning, <6> info, <7> debug.
func journalPriority(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "<3>"
	case l >= slog.LevelWarn:
		return "<4>"
	case l >= slog.LevelInfo:
		return "<6>"
	}
	return "<7>"
}

// journalHandler writes one line per record: the priority prefix, the
// message (a newline in it escaped, so that the record stays one journal
// entry), then the attributes as the text handler writes them. No time,
// no level: the journal has both.
type journalHandler struct {
	mu    *sync.Mutex
	w     io.Writer
	buf   *bytes.Buffer // where attrs writes, under mu
	attrs slog.Handler  // a text handler on buf that writes only the attributes
}

func newJournalHandler(w io.Writer, opts *slog.HandlerOptions) *journalHandler {
	buf := &bytes.Buffer{}
	inner := &slog.HandlerOptions{Level: opts.Level, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == slog.MessageKey) {
			return slog.Attr{}
		}
		return a
	}}
	return &journalHandler{mu: &sync.Mutex{}, w: w, buf: buf, attrs: slog.NewTextHandler(buf, inner)}
}

func (h *journalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.attrs.Enabled(ctx, l)
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf.Reset()
	if err := h.attrs.Handle(ctx, r); err != nil {
		return err
	}
	attrs := strings.TrimSuffix(h.buf.String(), "\n")
	var line strings.Builder
	line.WriteString(journalPriority(r.Level))
	line.WriteString(strings.NewReplacer("\r\n", `\n`, "\n", `\n`, "\r", `\r`).Replace(r.Message))
	if attrs != "" {
		line.WriteByte(' ')
		line.WriteString(attrs)
	}
	line.WriteByte('\n')
	_, err := io.WriteString(h.w, line.String())
	return err
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = h.attrs.WithAttrs(as)
	return &c
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.attrs = h.attrs.WithGroup(name)
	return &c
}

// onJournal tells whether w is the stream systemd connected to the
// journal: $JOURNAL_STREAM holds its device and inode ("dev:ino"), and a
// child that inherited the variable but writes elsewhere must not use the
// journal format (systemd.exec(5)).
func onJournal(w io.Writer) bool {
	js := os.Getenv("JOURNAL_STREAM")
	if js == "" {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return js == fmt.Sprintf("%d:%d", uint64(st.Dev), uint64(st.Ino))
}
