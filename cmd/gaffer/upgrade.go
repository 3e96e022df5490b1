package main

import (
	"context"
	"flag"
	"fmt"
	"time"
)

// gaffer upgrade: POST /upgrade, then wait until gafferd answers again
// with one more upgrade in GET /.

func init() {
	commands = append(commands, &command{name: "upgrade", usage: "[--timeout SECONDS]",
		short: "re-execute gafferd's binary in place; its processes carry on", setup: setupUpgrade})
}

func setupUpgrade(c *state, fs *flag.FlagSet) func([]string) error {
	wait := fs.Float64("timeout", 60, "seconds to wait for the upgraded gafferd")
	return func(args []string) error {
		if len(args) > 0 {
			return usagef("upgrade takes no argument")
		}
		cl, err := c.apiClient()
		if err != nil {
			return err
		}
		before, err := cl.Upgrade(c.ctx)
		if err != nil {
			return err
		}
		deadline := time.Now().Add(time.Duration(*wait * float64(time.Second)))
		for {
			ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
			w, err := cl.Welcome(ctx)
			cancel()
			if err == nil {
				if n, ok := w["upgrades"].(float64); ok && int64(n) > before {
					fmt.Fprintf(c.stdout, "gafferd upgraded (gaffer %v, upgrade %d)\n", w["gaffer_version"], int64(n))
					return nil
				}
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("gafferd did not come back upgraded within %gs; its log says why (the running gafferd goes on when the exec fails)", *wait)
			}
			select {
			case <-c.ctx.Done():
				return c.ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}
