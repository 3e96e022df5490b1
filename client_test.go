package gaffer

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// clTestServer runs a real API server for a new manager on bind and
// returns a client of it.
func clTestServer(t *testing.T, bind string, opts ServerOptions, copts ClientOptions) (*Client, *Manager) {
	t.Helper()
	m := NewManager(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	opts.Manager = m
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s := NewServer(opts)
	l, h, err := s.Listen(EndpointConfig{Name: "test", Bind: bind})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	addr := l.Addr().String()
	if strings.HasPrefix(bind, "unix:") {
		addr = bind
	}
	c, err := NewClient(addr, copts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		m.Shutdown(ctx)
	})
	return c, m
}

func clWantError(t *testing.T, err error, code string, errno int) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want *Error %s/%d, got %T %v", code, errno, err, err)
	}
	if e.Code != code || e.Errno != errno {
		t.Fatalf("want %s/%d, got %s/%d (%s)", code, errno, e.Code, e.Errno, e.Reason)
	}
}

func TestClientParseEndpoint(t *testing.T) {
	cases := []struct{ in, base, sock string }{
		{"", "http://127.0.0.1:5000", ""},
		{"http://127.0.0.1:5000/", "http://127.0.0.1:5000", ""},
		{"https://gaffer.example", "https://gaffer.example:443", ""},
		{"localhost:6000", "http://localhost:6000", ""},
		{":7000", "http://127.0.0.1:7000", ""},
		{"node1", "http://node1:5000", ""},
		{"http://h:1/prefix/", "http://h:1/prefix", ""},
		{"unix:/run/gaffer.sock", "http://localhost", "/run/gaffer.sock"},
		{"unix:///run/gaffer.sock", "http://localhost", "/run/gaffer.sock"},
		{"/run/g.sock", "http://localhost", "/run/g.sock"},
	}
	for _, tc := range cases {
		u, sock, err := ParseEndpoint(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if u.String() != tc.base || sock != tc.sock {
			t.Errorf("%q: got %s %q, want %s %q", tc.in, u, sock, tc.base, tc.sock)
		}
	}
	for _, bad := range []string{"unix:", "ftp://h:1", "http://", "http://u:p@h:1", "http://h:1/?a=b"} {
		if _, _, err := ParseEndpoint(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if _, err := NewClient("h:1", ClientOptions{CertFile: "x"}); err == nil {
		t.Error("certfile without keyfile accepted")
	}
	if _, err := NewClient("h:1", ClientOptions{CACert: filepath.Join(t.TempDir(), "none.pem")}); err == nil {
		t.Error("missing cacert accepted")
	}
}

func TestClientUnreachable(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "missing.sock")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	for _, ep := range []string{"unix:" + sock, closed} {
		c, err := NewClient(ep, ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		err = c.Ping(context.Background())
		var ue *UnreachableError
		if !errors.As(err, &ue) {
			t.Fatalf("%s: want *UnreachableError, got %T %v", ep, err, err)
		}
		if !strings.HasPrefix(err.Error(), "cannot reach gafferd at "+c.Address()) || strings.Count(err.Error(), ":") > 4 {
			t.Errorf("%s: message %q", ep, err)
		}
		if _, err := c.Watch(context.Background(), "."); !errors.As(err, &ue) {
			t.Errorf("%s: Watch: want *UnreachableError, got %v", ep, err)
		}
		if _, err := c.DialProcess(context.Background(), 1, "", ProcessRead); !errors.As(err, &ue) {
			t.Errorf("%s: DialProcess: want *UnreachableError, got %v", ep, err)
		}
	}
}

func TestClientJobs(t *testing.T) {
	c, _ := clTestServer(t, "unix:"+filepath.Join(t.TempDir(), "g.sock"), ServerOptions{}, ClientOptions{})
	ctx := context.Background()
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	v, err := c.Version(ctx)
	if err != nil || v.Version != CompatVersion || v.GafferVersion != Version {
		t.Fatalf("version %+v %v", v, err)
	}
	cfg := childConfig(t, "sleeper", "sleep", nil)
	cfg.NumProcesses = 2
	cfg.RedirectOutput = []string{"out", "err"}
	if err := c.Load(ctx, "app", cfg); err != nil {
		t.Fatal(err)
	}
	clWantError(t, c.Load(ctx, "app", cfg), CodeConflict, 409)
	if ok, err := c.JobExists(ctx, "app.sleeper"); !ok || err != nil {
		t.Fatalf("JobExists %v %v", ok, err)
	}
	if ok, err := c.JobExists(ctx, "app.nothere"); ok || err != nil {
		t.Fatalf("JobExists(nothere) %v %v", ok, err)
	}
	_, err = c.JobInfo(ctx, "app.nothere")
	clWantError(t, err, CodeNotFound, 404)

	waitFor(t, 10*time.Second, "2 processes", func() bool {
		pids, _ := c.JobPids(ctx, "app.sleeper")
		return len(pids) == 2
	})
	sessions, _ := c.Sessions(ctx)
	jobs, _ := c.Jobs(ctx)
	sj, _ := c.SessionJobs(ctx, "app")
	if len(sessions) != 1 || sessions[0] != "app" || len(jobs) != 1 || jobs[0] != "app.sleeper" || len(sj) != 1 {
		t.Fatalf("sessions %v jobs %v session jobs %v", sessions, jobs, sj)
	}
	n, err := c.Scale(ctx, "app.sleeper", "+1")
	if err != nil || n != 3 {
		t.Fatalf("scale +1: %d %v", n, err)
	}
	if n, _ := c.Scale(ctx, "app.sleeper", "=1"); n != 1 {
		t.Fatalf("scale =1: %d", n)
	}
	if n, _ := c.NumProcesses(ctx, "app.sleeper"); n != 1 {
		t.Fatalf("numprocesses %d", n)
	}
	_, err = c.Scale(ctx, "app.sleeper", "*2")
	clWantError(t, err, CodeBadOperation, 400)

	var pid int
	waitFor(t, 10*time.Second, "1 process", func() bool {
		pids, _ := c.JobPids(ctx, "app.sleeper")
		if len(pids) == 1 {
			pid = pids[0]
		}
		return len(pids) == 1
	})
	info, err := c.ProcessInfo(ctx, pid)
	if err != nil || info.Name != "app.sleeper" || info.OSPid == 0 {
		t.Fatalf("process info %+v %v", info, err)
	}
	if ok, _ := c.ProcessExists(ctx, pid); !ok {
		t.Fatal("ProcessExists false")
	}
	if _, err := c.ProcessStats(ctx, pid); err != nil {
		t.Fatal(err)
	}
	if err := c.SignalProcess(ctx, pid, "HUP-nope"); err == nil {
		t.Fatal("bad signal accepted")
	}
	if err := c.SignalJob(ctx, "app.sleeper", "CONT"); err != nil {
		t.Fatal(err)
	}
	ji, err := c.JobInfo(ctx, "app.sleeper")
	if err != nil || ji.MaxProcesses != 1 || ji.Config["name"] != "sleeper" {
		t.Fatalf("job info %+v %v", ji, err)
	}
	all, err := c.AllJobInfo(ctx)
	if err != nil || len(all) != 1 {
		t.Fatalf("all job info %v %v", all, err)
	}
	if err := c.StopJob(ctx, "app.sleeper"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "stopped", func() bool {
		a, _ := c.JobActive(ctx, "app.sleeper")
		return !a
	})
	if err := c.StartJob(ctx, "app.sleeper"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "started", func() bool {
		a, _ := c.JobActive(ctx, "app.sleeper")
		return a
	})
	cpid, err := c.Commit(ctx, "app.sleeper", time.Second, map[string]string{"X": "1"})
	if err != nil || cpid == 0 {
		t.Fatalf("commit %d %v", cpid, err)
	}
	if err := c.StopProcess(ctx, cpid); err != nil {
		t.Fatal(err)
	}
	cfg.Args = []string{"updated"}
	if err := c.Update(ctx, "app", cfg); err != nil {
		t.Fatal(err)
	}
	if err := c.Unload(ctx, "app.sleeper"); err != nil {
		t.Fatal(err)
	}
	clWantError(t, c.Unload(ctx, "app.sleeper"), CodeNotFound, 404)
}

func TestClientWatchAndStream(t *testing.T) {
	c, _ := clTestServer(t, "127.0.0.1:0", ServerOptions{}, ClientOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A 4-segment pattern is filtered on the client.
	spawns, err := c.Watch(ctx, "job.default.lines.spawn")
	if err != nil {
		t.Fatal(err)
	}
	everything, err := c.Watch(ctx, "job.default.lines")
	if err != nil {
		t.Fatal(err)
	}
	cfg := childConfig(t, "lines", "lines", map[string]string{"LINES": "3", "THEN_SLEEP": "1"})
	cfg.RedirectOutput = []string{"out"}
	if err := c.Load(ctx, "default", cfg); err != nil {
		t.Fatal(err)
	}
	var ev Event
	select {
	case ev = <-spawns:
	case <-time.After(10 * time.Second):
		t.Fatal("no spawn event")
	}
	if ev.Name != "job.default.lines.spawn" {
		t.Fatalf("event %s", ev.Name)
	}
	pid := int(ev.Data["pid"].(float64))
	seen := map[string]bool{}
	waitFor(t, 10*time.Second, "start and spawn events", func() bool {
		select {
		case e := <-everything:
			seen[e.Name] = true
		default:
		}
		return seen["job.default.lines.start"] && seen["job.default.lines.spawn"]
	})

	out, err := c.StreamOutput(ctx, pid, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	waitFor(t, 10*time.Second, "3 lines", func() bool {
		select {
		case ch := <-out:
			got.Write(ch.Data)
			got.WriteByte('\n')
		default:
		}
		return strings.Count(got.String(), " line") == 3
	})
	if !strings.Contains(got.String(), "00000001 line") {
		t.Fatalf("output %q", got.String())
	}
	_, err = c.StreamOutput(ctx, pid, "nope", -1)
	clWantError(t, err, "io_not_found", 404)
	_, err = c.StreamOutput(ctx, 999999, "out", -1)
	clWantError(t, err, CodeNotFound, 404)

	// Stopping the process ends its stream, which closes the channel.
	if err := c.Unload(ctx, "default.lines"); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(20 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-out:
		case <-deadline:
			t.Fatal("stream not closed after unload")
		}
	}
	cancel()
	for range spawns {
	}
}

func TestClientAuth(t *testing.T) {
	store, err := OpenAuthStore(filepath.Join(t.TempDir(), "auth"))
	if err != nil {
		t.Fatal(err)
	}
	_, admin, err := store.CreateAdminUser("root", "rootpass1234")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := clTestServer(t, "127.0.0.1:0", ServerOptions{Auth: store, RequireKey: true}, ClientOptions{})
	ctx := context.Background()
	_, err = c.Jobs(ctx)
	clWantError(t, err, CodeUnauthorized, 401)
	key, err := c.Authenticate(ctx, "root", "rootpass1234")
	if err != nil || key != admin.Key {
		t.Fatalf("authenticate: %q %v", key, err)
	}
	_, err = c.Authenticate(ctx, "root", "wrong")
	clWantError(t, err, CodeUnauthorized, 401)

	ac, err := NewClient(c.Address(), ClientOptions{APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	if _, err := ac.Jobs(ctx); err != nil {
		t.Fatal(err)
	}
	k2, err := ac.CreateKey(ctx, "reader", Permissions{Read: []string{"app"}}, "")
	if err != nil || k2 == "" {
		t.Fatalf("create key %q %v", k2, err)
	}
	got, err := ac.GetKey(ctx, k2)
	if err != nil || got.Label != "reader" || len(got.Permissions.Read) != 1 {
		t.Fatalf("get key %+v %v", got, err)
	}
	if ok, _ := ac.KeyExists(ctx, k2); !ok {
		t.Fatal("KeyExists false")
	}
	keys, _ := ac.Keys(ctx)
	details, _ := ac.KeysDetails(ctx)
	if len(keys) != 2 || len(details) != 2 {
		t.Fatalf("keys %v details %v", keys, details)
	}
	rc, _ := NewClient(c.Address(), ClientOptions{APIKey: k2})
	defer rc.Close()
	_, err = rc.Jobs(ctx)
	clWantError(t, err, CodeForbidden, 403)

	if err := ac.CreateUser(ctx, "bob", "bobpass1234", UserTypeApp, k2); err != nil {
		t.Fatal(err)
	}
	clWantError(t, ac.CreateUser(ctx, "bob", "bobpass1234", UserTypeApp, ""), "conflict", 409)
	u, err := ac.GetUser(ctx, "bob")
	if err != nil || u.Key != k2 || u.UserType != UserTypeApp {
		t.Fatalf("get user %+v %v", u, err)
	}
	if err := ac.SetUserPassword(ctx, "bob", "newpass12345"); err != nil {
		t.Fatal(err)
	}
	if k, err := c.Authenticate(ctx, "bob", "newpass12345"); err != nil || k != k2 {
		t.Fatalf("bob: %q %v", k, err)
	}
	if err := ac.SetUserKey(ctx, "bob", admin.Key); err != nil {
		t.Fatal(err)
	}
	if err := ac.UpdateUser(ctx, "bob", "newpass12345", UserTypeApp, ""); err != nil {
		t.Fatal(err)
	}
	users, _ := ac.Users(ctx)
	ud, _ := ac.UsersDetails(ctx)
	if len(users) != 2 || len(ud) != 2 {
		t.Fatalf("users %v %v", users, ud)
	}
	if ok, _ := ac.UserExists(ctx, "bob"); !ok {
		t.Fatal("UserExists false")
	}
	if err := ac.DeleteUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := ac.DeleteKey(ctx, k2); err != nil {
		t.Fatal(err)
	}
	_, err = ac.GetKey(ctx, k2)
	clWantError(t, err, CodeNotFound, 404)
}

func TestClientLookupMerge(t *testing.T) {
	src := func(node, origin string, pids string) string {
		return `{"name": "` + node + `", "pids": [` + pids + `], "node_info": {"name": "` + node + `", "origin": "` + origin + `", "version": "0.1"}}`
	}
	a := src("n1", "http://a:5000", "1,2")
	b := src("n2", "http://b:5000", "3")
	answers := []map[string]string{
		{
			"/nodes":       `{"nodes": [{"name": "n1", "origin": "http://a:5000", "version": "0.1"}, {"name": null, "origin": null, "version": null}]}`,
			"/jobs":        `{"nb_jobs": 1, "jobs": [{"name": "default.web", "sources": [` + a + `]}]}`,
			"/sessions":    `{"nb_sessions": 1, "sessions": [{"sessionid": "default", "jobs": {"default.web": [` + a + `], "default.db": [` + a + `]}}]}`,
			"/findJob":     `{"sources": [` + a + `]}`,
			"/findSession": `{"nb_jobs": 1, "jobs": [{"name": "default.web", "sources": [` + a + `]}]}`,
		},
		{
			"/nodes":       `{"nodes": [{"name": "n1", "origin": "http://a:5000", "version": "0.1"}, {"name": "n2", "origin": "http://b:5000", "version": "0.1"}]}`,
			"/jobs":        `{"nb_jobs": 2, "jobs": [{"name": "default.web", "sources": [` + a + `, ` + b + `]}, {"name": "x.y", "sources": [` + b + `]}]}`,
			"/sessions":    `{"nb_sessions": 1, "sessions": [{"sessionid": "default", "jobs": {"default.web": [` + b + `]}}]}`,
			"/findJob":     `{"sources": [` + a + `, ` + b + `]}`,
			"/findSession": `{"nb_jobs": 1, "jobs": [{"name": "default.web", "sources": [` + b + `]}]}`,
		},
	}
	var addrs []string
	for _, ans := range answers {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, ok := ans[r.URL.Path]
			if !ok {
				http.NotFound(w, r)
				return
			}
			if r.URL.Path == "/findJob" && r.URL.Query().Get("name") != "default.web" {
				body = `{"sources": []}`
			}
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, body)
		}))
		defer srv.Close()
		addrs = append(addrs, srv.URL)
	}
	// A third lookupd that is down does not fail the queries.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	down := "http://" + l.Addr().String()
	l.Close()
	lc, err := NewLookupClient(append(addrs, down), ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	nodes, err := lc.Nodes(ctx)
	if err != nil || len(nodes) != 2 || nodes[0].Name != "n1" || nodes[1].Name != "n2" {
		t.Fatalf("nodes %+v %v", nodes, err)
	}
	jobs, err := lc.Jobs(ctx)
	if err != nil || len(jobs) != 2 || jobs[0].Name != "default.web" || len(jobs[0].Sources) != 2 || jobs[1].Name != "x.y" {
		t.Fatalf("jobs %+v %v", jobs, err)
	}
	sess, err := lc.Sessions(ctx, "")
	if err != nil || len(sess) != 1 || len(sess[0].Jobs) != 2 || sess[0].Jobs[0].Name != "default.web" ||
		sess[0].Jobs[1].Name != "default.db" || len(sess[0].Jobs[0].Sources) != 2 {
		t.Fatalf("sessions %+v %v", sess, err)
	}
	found, err := lc.FindJob(ctx, "default.web")
	if err != nil || len(found) != 2 || len(found[0].Pids) != 2 {
		t.Fatalf("findJob %+v %v", found, err)
	}
	if none, err := lc.FindJob(ctx, "nope.x"); err != nil || len(none) != 0 {
		t.Fatalf("findJob(nope) %+v %v", none, err)
	}
	fs, err := lc.FindSession(ctx, "default")
	if err != nil || len(fs) != 1 || len(fs[0].Sources) != 2 {
		t.Fatalf("findSession %+v %v", fs, err)
	}
	onlyDown, _ := NewLookupClient([]string{down}, ClientOptions{})
	if _, err := onlyDown.Nodes(ctx); err == nil || !strings.Contains(err.Error(), "cannot reach gafferd at") {
		t.Fatalf("all down: %v", err)
	}
}

func TestClientProcessChannel(t *testing.T) {
	c, _ := clTestServer(t, "unix:"+filepath.Join(t.TempDir(), "g.sock"), ServerOptions{}, ClientOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := childConfig(t, "echo", "echo", nil)
	cfg.RedirectInput, cfg.RedirectOutput = true, []string{"out"}
	if err := c.Load(ctx, "default", cfg); err != nil {
		t.Fatal(err)
	}
	var pid int
	waitFor(t, 10*time.Second, "echo", func() bool {
		p, _ := c.JobPids(ctx, "default.echo")
		if len(p) == 1 {
			pid = p[0]
		}
		return pid != 0
	})
	pr, pw := io.Pipe()
	recvDone := make(chan error, 1)
	go func() { recvDone <- c.Recv(ctx, pid, "", pw); pw.Close() }()
	lines := make(chan string, 10)
	go func() {
		buf := make([]byte, 4096)
		var acc string
		for {
			n, err := pr.Read(buf)
			acc += string(buf[:n])
			for {
				i := strings.IndexByte(acc, '\n')
				if i < 0 {
					break
				}
				lines <- acc[:i]
				acc = acc[i+1:]
			}
			if err != nil {
				close(lines)
				return
			}
		}
	}()
	// Recv attaches asynchronously: send until the echo comes back.
	var got string
	waitFor(t, 10*time.Second, "the echo", func() bool {
		if err := c.Send(ctx, pid, "", []byte("ping\n")); err != nil {
			t.Fatal(err)
		}
		select {
		case got = <-lines:
			return true
		case <-time.After(100 * time.Millisecond):
			return false
		}
	})
	if got != "ping" {
		t.Fatalf("echo %q", got)
	}
	// Writing to a custom stream that does not exist, or reading an
	// unknown pid, is an *Error from the server.
	err := c.Send(ctx, pid, "nosuch", []byte("x"))
	clWantError(t, err, "ENOENT", 404)
	pc, err := c.DialProcess(ctx, 999999, "", ProcessRead)
	if err == nil {
		for range pc.Output() {
		}
		err = pc.Err()
	}
	clWantError(t, err, CodeNotFound, 404)
	// The process exiting ends Recv without an error.
	if err := c.StopProcess(ctx, pid); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-recvDone:
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Recv did not end when the process exited")
	}
}
