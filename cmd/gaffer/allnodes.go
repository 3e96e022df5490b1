package main

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/gaffer-go/gaffer"
	"github.com/gaffer-go/gaffer/cmd/internal/cli"
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
//
// Anyone who can reach a lookupd may list a node there, so the origins it
// names are not trusted with keys: a node is sent only the key held for
// its own origin (--api-key-for ORIGIN=KEY, else the key `gaffer login`
// saved for it), never --api-key or $GAFFER_API_KEY; a node without one is
// asked without a key.
func (c *state) psAllNodes(addrs []string, asJSON bool) error {
	keys, err := c.nodeKeys()
	if err != nil {
		return err
	}
	lc, err := c.lookupClient(addrs)
	if err != nil {
		return err
	}
	nodes, err := lc.Nodes(c.ctx)
	if err != nil {
		return err
	}
	uc := loadUserConfig()
	var out []nodeJobs
	answered := 0
	for _, n := range nodes {
		nj := nodeJobs{Node: n, Origin: n.Origin, Jobs: []gaffer.JobInfo{}}
		nj.Jobs, err = c.nodeJobInfo(n.Origin, keys, uc)
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

// nodeKeys reads --api-key-for ORIGIN=KEY into normalised origin → key.
func (c *state) nodeKeys() (map[string]string, error) {
	keys := map[string]string{}
	for _, v := range c.g.apiKeyFor {
		origin, key, ok := strings.Cut(v, "=")
		origin = strings.TrimSpace(origin)
		if !ok || origin == "" || strings.TrimSpace(key) == "" {
			return nil, usagef("--api-key-for: expected ORIGIN=KEY (for example http://node1:5000=KEY), got %q", origin)
		}
		if !strings.HasPrefix(origin, "http://") && !strings.HasPrefix(origin, "https://") {
			return nil, usagef("--api-key-for: the origin %q must start with http:// or https://, as lookupd lists it", origin)
		}
		if _, _, err := gaffer.ParseEndpoint(origin); err != nil {
			return nil, usagef("--api-key-for: origin %q: %v", origin, err)
		}
		keys[normEndpoint(origin)] = strings.TrimSpace(key)
	}
	return keys, nil
}

// nodeJobInfo asks the node at origin for its jobs, with the key and TLS
// files held for that origin only.
func (c *state) nodeJobInfo(origin string, keys map[string]string, uc *userConfig) ([]gaffer.JobInfo, error) {
	if !strings.HasPrefix(origin, "http://") && !strings.HasPrefix(origin, "https://") {
		return nil, fmt.Errorf("not an http:// or https:// origin; not asked")
	}
	node := uc.node(origin)
	key := keys[normEndpoint(origin)]
	if key == "" {
		key = node["key"]
	}
	opts := gaffer.ClientOptions{APIKey: key, CACert: cli.FirstNonEmpty(node["cacert"], c.g.remote.CACert),
		CertFile: c.g.remote.CertFile, KeyFile: c.g.remote.KeyFile}
	if node["certfile"] != "" {
		opts.CertFile, opts.KeyFile = node["certfile"], node["keyfile"]
	}
	cl, err := gaffer.NewClient(origin, opts)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	jobs, err := cl.AllJobInfo(c.ctx)
	var e *gaffer.Error
	switch {
	case err == nil:
		return jobs, nil
	case key == "" && errors.As(err, &e) && e.Errno == 401:
		return nil, errors.New("unauthorized: no API key held for this origin (give it with --api-key-for ORIGIN=KEY, or run gaffer -g ORIGIN login)")
	default:
		return nil, errors.New(errorText(err))
	}
}
