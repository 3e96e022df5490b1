package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/gaffer-go/gaffer"
)

// login, user*, key* and lookup*.

func init() {
	commands = append(commands,
		&command{name: "login", usage: "[-u USERNAME] [-p PASSWORD]", short: "get the API key of a user and save it for this gafferd", setup: setupLogin},
		&command{name: "user", usage: "[--json] <username>", short: "show a user", setup: setupUser},
		&command{name: "user:add", usage: "[-p PASSWORD] [-k KEY] [-t TYPE] [--no-input] <username>", short: "create a user", setup: setupUserAdd},
		&command{name: "user:del", usage: "[--no-input] <username>", short: "delete a user", setup: setupUserDel},
		&command{name: "user:setpassword", usage: "[-p PASSWORD] <username>", short: "change a user's password", setup: setupUserSetPassword},
		&command{name: "user:setkey", usage: "-k KEY <username>", short: "link a user to an API key", setup: setupUserSetKey},
		&command{name: "key", usage: "[--json] <apikey>", short: "show an API key and its permissions", setup: setupKey},
		&command{name: "key:create", usage: "[--label LABEL] [--parent KEY] [--no-input] <permission>...",
			short: "create an API key",
			long: `Permissions: +a admin (implies +k and +u), +u create users, +k create keys,
+m manage everything, <target>+rwm read/write/manage a session or job (any of r, w, m).`,
			setup: setupKeyCreate},
		&command{name: "key:delete", usage: "[--no-input] <apikey>", short: "delete an API key and its sub-keys", setup: setupKeyDelete},
		&command{name: "lookup", usage: "-L ADDR... [--no-color]", short: "follow the events of lookupd servers", setup: setupLookup},
		&command{name: "lookup:job", usage: "-L ADDR... [--json] <session.job>", short: "find the nodes running a job", setup: func(c *state, fs *flag.FlagSet) func([]string) error {
			return setupLookupQuery(c, fs, "job")
		}},
		&command{name: "lookup:jobs", usage: "-L ADDR... [--json]", short: "list the jobs of every node", setup: func(c *state, fs *flag.FlagSet) func([]string) error {
			return setupLookupQuery(c, fs, "jobs")
		}},
		&command{name: "lookup:session", usage: "-L ADDR... [--json] <session>", short: "list the jobs of a session across the nodes", setup: func(c *state, fs *flag.FlagSet) func([]string) error {
			return setupLookupQuery(c, fs, "session")
		}},
		&command{name: "lookup:sessions", usage: "-L ADDR... [--json] [<node>]", short: "list the sessions of every node (or of one)", setup: func(c *state, fs *flag.FlagSet) func([]string) error {
			return setupLookupQuery(c, fs, "sessions")
		}},
		&command{name: "lookup:nodes", usage: "-L ADDR... [--json]", short: "list the nodes registered with lookupd", setup: func(c *state, fs *flag.FlagSet) func([]string) error {
			return setupLookupQuery(c, fs, "nodes")
		}},
	)
}

// ask prompts for a value on stderr and reads it from stdin.
func (c *state) ask(prompt string) (string, error) {
	fmt.Fprint(c.stderr, prompt)
	line, err := c.readLine()
	if err != nil {
		return "", errors.New("aborted (no input)")
	}
	return strings.TrimSpace(line), nil
}

func setupLogin(c *state, fs *flag.FlagSet) func([]string) error {
	user := fs.String("u", "", "user name")
	pass := fs.String("p", "", "password (prompted for when missing; it echoes)")
	return func(args []string) error {
		if len(args) > 0 {
			return usagef("login takes no argument")
		}
		var err error
		if *user == "" {
			if *user, err = c.ask("Username: "); err != nil {
				return err
			}
		}
		if *pass == "" {
			if *pass, err = c.ask("Password: "); err != nil {
				return err
			}
		}
		cl, err := c.apiClient()
		if err != nil {
			return err
		}
		key, err := cl.Authenticate(c.ctx, *user, *pass)
		var e *gaffer.Error
		if errors.As(err, &e) && e.Errno == 401 {
			return errors.New("unauthorized: username or password is wrong")
		} else if err != nil {
			return err
		}
		if key == "" {
			return fmt.Errorf("user '%s' has no API key", *user)
		}
		if err := loadUserConfig().setNodeKey(cl.Address(), key); err != nil {
			return fmt.Errorf("saving the key: %v", err)
		}
		fmt.Fprintf(c.stdout, "User '%s' authenticated.\n", *user)
		return nil
	}
}

func setupUser(c *state, fs *flag.FlagSet) func([]string) error {
	asJSON := fs.Bool("json", false, "print JSON")
	return func(args []string) error {
		if len(args) != 1 {
			return usagef("user needs a user name")
		}
		cl, err := c.apiClient()
		if err != nil {
			return err
		}
		u, err := cl.GetUser(c.ctx, args[0])
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(c.stdout, u)
		}
		fmt.Fprintf(c.stdout, "User '%s' found\nType: %d\nAPI Key: %s\n", u.Username, u.UserType, u.Key)
		return nil
	}
}

func setupUserAdd(c *state, fs *flag.FlagSet) func([]string) error {
	pass := fs.String("p", "", "password (prompted for when missing)")
	key := fs.String("k", "", "API key to link the user to")
	typ := fs.Int("t", gaffer.UserTypeApp, "user type: 0 user, 1 application")
	noInput := fs.Bool("no-input", false, "do not ask for confirmation")
	return func(args []string) error {
		if len(args) != 1 {
			return usagef("user:add needs a user name")
		}
		var err error
		if *pass == "" {
			if *pass, err = c.ask("Password: "); err != nil {
				return err
			}
		}
		if err := c.confirm(*noInput, fmt.Sprintf("Create user '%s' (type %d, key %q)?", args[0], *typ, *key)); err != nil {
			return err
		}
		cl, err := c.apiClient()
		if err != nil {
			return err
		}
		err = cl.CreateUser(c.ctx, args[0], *pass, *typ, *key)
		var e *gaffer.Error
		if errors.As(err, &e) && e.Errno == 409 {
			return fmt.Errorf("User '%s' already exists", args[0])
		} else if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "User '%s' created\n", args[0])
		return nil
	}
}

func setupUserDel(c *state, fs *flag.FlagSet) func([]string) error {
	noInput := fs.Bool("no-input", false, "do not ask for confirmation")
	return func(args []string) error {
		if len(args) != 1 {
			return usagef("user:del needs a user name")
		}
		if err := c.confirm(*noInput, fmt.Sprintf("Delete user '%s'?", args[0])); err != nil {
			return err
		}
		cl, err := c.apiClient()
		if err != nil {
			return err
		}
		if err := cl.DeleteUser(c.ctx, args[0]); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "User '%s' deleted\n", args[0])
		return nil
	}
}

func setupUserSetPassword(c *state, fs *flag.FlagSet) func([]string) error {
	pass := fs.String("p", "", "new password (prompted for when missing)")
	return func(args []string) error {
		if len(args) != 1 {
			return usagef("user:setpassword needs a user name")
		}
		var err error
		if *pass == "" {
			if *pass, err = c.ask("New password: "); err != nil {
				return err
			}
		}
		cl, err := c.apiClient()
		if err != nil {
			return err
		}
		if err := cl.SetUserPassword(c.ctx, args[0], *pass); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "%s's password changed\n", args[0])
		return nil
	}
}

func setupUserSetKey(c *state, fs *flag.FlagSet) func([]string) error {
	key := fs.String("k", "", "the API key")
	return func(args []string) error {
		if len(args) != 1 || *key == "" {
			return usagef("user:setkey needs -k KEY and a user name")
		}
		cl, err := c.apiClient()
		if err != nil {
			return err
		}
		if err := cl.SetUserKey(c.ctx, args[0], *key); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "%s's key changed\n", args[0])
		return nil
	}
}

func setupKey(c *state, fs *flag.FlagSet) func([]string) error {
	asJSON := fs.Bool("json", false, "print JSON")
	return func(args []string) error {
		if len(args) != 1 {
			return usagef("key needs an API key")
		}
		cl, err := c.apiClient()
		if err != nil {
			return err
		}
		k, err := cl.GetKey(c.ctx, args[0])
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(c.stdout, k)
		}
		p := k.Permissions
		fmt.Fprintf(c.stdout, "Key '%s' found.\nLabel: %s\nPermissions:\n  admin: %v\n", k.Key, k.Label, p.Admin)
		if p.Admin {
			fmt.Fprint(c.stdout, "  create_user: true\n  create_key: true\n  manage: *\n  read: *\n  write: *\n")
			return nil
		}
		fmt.Fprintf(c.stdout, "  create_key: %v\n  create_user: %v\n  manage: %s\n  read: %s\n  write: %s\n",
			p.CreateKey, p.CreateUser, strings.Join(p.Manage, ","), strings.Join(p.Read, ","), strings.Join(p.Write, ","))
		return nil
	}
}

// parsePermissions reads the key:create arguments.
func parsePermissions(args []string) (gaffer.Permissions, error) {
	var p gaffer.Permissions
	for _, a := range args {
		switch a {
		case "+a":
			p.Admin, p.CreateKey, p.CreateUser = true, true, true
		case "+u":
			p.CreateUser = true
		case "+k":
			p.CreateKey = true
		case "+m":
			p.Manage = append(p.Manage, "*")
		default:
			target, rights, ok := strings.Cut(a, "+")
			if !ok || target == "" || rights == "" || strings.Trim(rights, "rwm") != "" {
				return p, usagef("permission %q: expected +a, +u, +k, +m or <target>+rwm", a)
			}
			if strings.Contains(rights, "r") {
				p.Read = append(p.Read, target)
			}
			if strings.Contains(rights, "w") {
				p.Write = append(p.Write, target)
			}
			if strings.Contains(rights, "m") {
				p.Manage = append(p.Manage, target)
			}
		}
	}
	return p, nil
}

func setupKeyCreate(c *state, fs *flag.FlagSet) func([]string) error {
	label := fs.String("label", "", "a label for the key")
	parent := fs.String("parent", "", "make it a sub-key of this key")
	noInput := fs.Bool("no-input", false, "do not ask for confirmation")
	return func(args []string) error {
		p, err := parsePermissions(args)
		if err != nil {
			return err
		}
		if err := c.confirm(*noInput, fmt.Sprintf("Create key %q with admin=%v create_key=%v create_user=%v manage=%v read=%v write=%v?",
			*label, p.Admin, p.CreateKey, p.CreateUser, p.Manage, p.Read, p.Write)); err != nil {
			return err
		}
		cl, err := c.apiClient()
		if err != nil {
			return err
		}
		k, err := cl.CreateKey(c.ctx, *label, p, *parent)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "The key '%s' has been created.\n", k)
		return nil
	}
}

func setupKeyDelete(c *state, fs *flag.FlagSet) func([]string) error {
	noInput := fs.Bool("no-input", false, "do not ask for confirmation")
	return func(args []string) error {
		if len(args) != 1 {
			return usagef("key:delete needs an API key")
		}
		if err := c.confirm(*noInput, fmt.Sprintf("Delete key '%s' and its sub-keys?", args[0])); err != nil {
			return err
		}
		cl, err := c.apiClient()
		if err != nil {
			return err
		}
		if err := cl.DeleteKey(c.ctx, args[0]); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "The key '%s' has been deleted.\n", args[0])
		return nil
	}
}

// lookupClient reads -L (repeatable; default $GAFFER_LOOKUPD_ADDRESS,
// comma-separated).
func (c *state) lookupClient(addrs []string) (*gaffer.LookupClient, error) {
	if len(addrs) == 0 {
		for _, a := range strings.Split(os.Getenv("GAFFER_LOOKUPD_ADDRESS"), ",") {
			if a = strings.TrimSpace(a); a != "" {
				addrs = append(addrs, a)
			}
		}
	}
	if len(addrs) == 0 {
		return nil, usagef("no lookupd address: use -L ADDR (or $GAFFER_LOOKUPD_ADDRESS)")
	}
	return gaffer.NewLookupClient(addrs, gaffer.ClientOptions{CACert: c.g.remote.CACert, CertFile: c.g.remote.CertFile, KeyFile: c.g.remote.KeyFile})
}

func setupLookup(c *state, fs *flag.FlagSet) func([]string) error {
	var addrs multiFlag
	fs.Var(&addrs, "L", "lookupd address (repeatable)")
	fs.Var(&addrs, "lookupd-address", "same as -L")
	noColor := fs.Bool("no-color", false, "no colours")
	return func(args []string) error {
		if len(args) > 0 {
			return usagef("lookup takes no argument")
		}
		lc, err := c.lookupClient(addrs)
		if err != nil {
			return err
		}
		events, err := lc.Watch(c.ctx)
		if err != nil {
			return err
		}
		printer := gaffer.NewConsolePrinter(c.stdout, !*noColor && os.Getenv("NO_COLOR") == "" && isTerminal(c.stdout))
		for ev := range events {
			n := ev.Node
			var text string
			switch ev.Event {
			case "add_node":
				text = "add node"
			case "identify":
				text = n.Name + ": " + n.Origin
			case "remove_node":
				text = n.Name + ": node " + n.Origin
			case "add_job":
				text = "load " + ev.JobName + " in " + n.Origin
			case "remove_job":
				text = "unload " + ev.JobName + " in " + n.Origin
			case "add_process":
				text = fmt.Sprintf("%s: process id %d spawned on %s", ev.JobName, ev.Pid, n.Origin)
			case "remove_process":
				text = fmt.Sprintf("%s: process %d exited on %s", ev.JobName, ev.Pid, n.Origin)
			default:
				text = ev.JobName
			}
			printer.Line(ev.Event, text)
		}
		if c.ctx.Err() == nil {
			return errors.New("lost the connection to every lookupd")
		}
		return nil
	}
}

func setupLookupQuery(c *state, fs *flag.FlagSet, what string) func([]string) error {
	var addrs multiFlag
	fs.Var(&addrs, "L", "lookupd address (repeatable)")
	fs.Var(&addrs, "lookupd-address", "same as -L")
	asJSON := fs.Bool("json", false, "print JSON")
	return func(args []string) error {
		want := map[string]int{"job": 1, "session": 1, "jobs": 0, "nodes": 0}
		if n, fixed := want[what]; (fixed && len(args) != n) || (what == "sessions" && len(args) > 1) {
			return usagef("wrong number of arguments")
		}
		lc, err := c.lookupClient(addrs)
		if err != nil {
			return err
		}
		printJobs := func(jobs []gaffer.LookupJob, title string) {
			fmt.Fprintf(c.stdout, "%d job(s) found\n\n", len(jobs))
			for _, j := range jobs {
				fmt.Fprintf(c.stdout, "=== %s%s\n", title, j.Name)
				for _, s := range j.Sources {
					fmt.Fprintf(c.stdout, "%s - name: %s, protocol: %s\n", s.NodeInfo.Origin, s.Name, s.NodeInfo.Version)
				}
				fmt.Fprintln(c.stdout)
			}
		}
		switch what {
		case "job":
			srcs, err := lc.FindJob(c.ctx, args[0])
			if err != nil {
				return err
			}
			if *asJSON {
				return printJSON(c.stdout, srcs)
			}
			if len(srcs) == 0 {
				fmt.Fprintln(c.stdout, "no job found")
				return nil
			}
			for _, s := range srcs {
				pids := make([]string, len(s.Pids))
				for i, p := range s.Pids {
					pids[i] = strconv.Itoa(p)
				}
				fmt.Fprintf(c.stdout, "=== %s (Protocol: %s)\nOrigin: %s\nPids: %s\n\n", s.Name, s.NodeInfo.Version, s.NodeInfo.Origin, strings.Join(pids, ","))
			}
		case "jobs", "session":
			var jobs []gaffer.LookupJob
			if what == "jobs" {
				jobs, err = lc.Jobs(c.ctx)
			} else {
				jobs, err = lc.FindSession(c.ctx, args[0])
			}
			if err != nil {
				return err
			}
			if *asJSON {
				return printJSON(c.stdout, jobs)
			}
			printJobs(jobs, "")
		case "sessions":
			node := ""
			if len(args) == 1 {
				node = args[0]
			}
			ss, err := lc.Sessions(c.ctx, node)
			if err != nil {
				return err
			}
			if *asJSON {
				return printJSON(c.stdout, ss)
			}
			fmt.Fprintf(c.stdout, "%d session(s) found\n\n", len(ss))
			for _, s := range ss {
				fmt.Fprintf(c.stdout, "*** session: %s\n\n", s.SessionID)
				for _, j := range s.Jobs {
					fmt.Fprintf(c.stdout, "=== job: %s\n", j.Name)
					for _, src := range j.Sources {
						fmt.Fprintf(c.stdout, "%s - name: %s, protocol: %s\n", src.NodeInfo.Origin, src.Name, src.NodeInfo.Version)
					}
					fmt.Fprintln(c.stdout)
				}
			}
		case "nodes":
			nodes, err := lc.Nodes(c.ctx)
			if err != nil {
				return err
			}
			if *asJSON {
				return printJSON(c.stdout, nodes)
			}
			fmt.Fprintf(c.stdout, "%d node(s) found\n\n", len(nodes))
			for _, n := range nodes {
				fmt.Fprintf(c.stdout, "%s - %s (protocol: %s)\n", n.Origin, n.Name, n.Version)
			}
		}
		return nil
	}
}
