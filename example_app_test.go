package gaffer_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/gaffer-go/gaffer"
)

// reporter is a Go application hosted by gafferd (the seed's
// start/stop/restart shape): it loads a job of its own when the daemon
// starts, and unloads it when the daemon stops.
type reporter struct {
	d *gaffer.Daemon
}

func (a *reporter) Start(ctx context.Context, d *gaffer.Daemon) error {
	a.d = d
	cfg := gaffer.NewJobConfig("ticker", "sleep 600")
	return d.Manager.Load("reporter", cfg, nil, true)
}

func (a *reporter) Stop() error { return a.d.Manager.Unload("reporter.ticker") }

// Restart runs on every reload of the configuration.
func (a *reporter) Restart() error { return nil }

// A program that embeds gaffer adds its applications to the daemon; they
// start after the manager and the listeners (and after the plugins of
// -p / plugins_dir, which the daemon runs itself), are restarted on every
// reload, and stop before the processes.
func ExampleApp() {
	app := &reporter{}
	d, err := gaffer.NewDaemon(gaffer.DaemonOptions{
		Binds:  []string{"127.0.0.1:0"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Apps:   []gaffer.App{app},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	err = d.Run(ctx, func() {
		info, err := d.Manager.JobInfo("reporter.ticker", false)
		fmt.Println(info.Name, info.Running, err)
		cancel() // a real program runs until SIGTERM
	})
	fmt.Println("stopped:", err)
	// Output:
	// reporter.ticker 1 <nil>
	// stopped: <nil>
}
