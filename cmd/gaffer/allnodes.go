package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/gaffer-go/gaffer"
)

// nodeJobs is one node's answer for "ps --all-nodes".
type nodeJobs struct {
	Node   gaffer.LookupNode `json:"node"`
	Jobs   []gaffer.JobInfo  `json:"jobs"`
	Error  string            `json:"error,omitempty"`
	Origin string            `json:"origin"`
}

// psAllNodes asks the lookupds for the nodes, then each node for its jobs,
// and prints one line per job with a node column. A node that cannot be
// reached is listed with its error; the command still succeeds if one
// node answered.
func (c *cli) psAllNodes(addrs []string, asJSON bool) error {
	lc, err := c.lookupClient(addrs)
	if err != nil {
		return err
	}
	nodes, err := lc.Nodes(c.ctx)
	if err != nil {
		return err
	}
	key := firstNonEmpty(c.g.apiKey, os.Getenv("GAFFER_API_KEY"))
	var out []nodeJobs
	answered := 0
	for _, n := range nodes {
		nj := nodeJobs{Node: n, Origin: n.Origin, Jobs: []gaffer.JobInfo{}}
		cl, err := gaffer.NewClient(n.Origin, gaffer.ClientOptions{APIKey: key, CACert: c.g.cacert, CertFile: c.g.certfile, KeyFile: c.g.keyfile})
		if err == nil {
			nj.Jobs, err = cl.AllJobInfo(c.ctx)
		}
		if err != nil {
			nj.Error = err.Error()
		} else {
			answered++
		}
		out = append(out, nj)
	}
	if asJSON {
		if err := printJSON(c.stdout, out); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(c.stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tORIGIN\tJOB\tSTATE\tRUNNING\tPIDS")
		for _, nj := range out {
			if nj.Error != "" {
				fmt.Fprintf(tw, "%s\t%s\t-\tunreachable\t-\t%s\n", nj.Node.Name, nj.Origin, nj.Error)
				continue
			}
			for _, j := range nj.Jobs {
				pids := make([]string, len(j.Processes))
				for i, p := range j.Processes {
					pids[i] = fmt.Sprint(p)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\n", nj.Node.Name, nj.Origin, j.Name, j.State, j.Running, j.MaxProcesses, strings.Join(pids, ","))
			}
		}
		tw.Flush()
	}
	if len(nodes) > 0 && answered == 0 {
		return fmt.Errorf("no node answered")
	}
	return nil
}
