package gaffer

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultEndpoint is the address of gafferd that clients use when none is
// given (gafferd's default bind).
const DefaultEndpoint = "http://127.0.0.1:5000"

// DefaultClientTimeout bounds one request of a Client (not the streaming
// helpers) when ClientOptions.Timeout is zero.
const DefaultClientTimeout = 30 * time.Second

// ClientOptions configures a Client.
type ClientOptions struct {
	APIKey   string // sent as X-Api-Key on every request ("" sends none)
	CACert   string // PEM file of the CAs that sign gafferd's certificate ("" uses the system's)
	CertFile string // client certificate (PEM), with KeyFile
	KeyFile  string // client private key (PEM), with CertFile
	// Timeout bounds each request, from the dial to the end of the
	// answer; the streaming helpers are bounded by their context only.
	// Zero means DefaultClientTimeout; negative means no limit.
	Timeout time.Duration
}

// Client talks to a gafferd over its HTTP API: every route of the 0.5.2
// API, the 0.4 routes gafferctl used (the Legacy* methods), the feeds
// (Watch, StreamOutput) and the websockets (DialProcess, Send, Recv). A
// Client is safe for concurrent use.
//
// Errors answered by gafferd are *Error values decoded from the answer's
// body ({"error": code, "reason": text, "errno": status}); a gafferd that
// cannot be reached gives an *UnreachableError whose text starts with
// "cannot reach gafferd at ADDRESS".
type Client struct {
	base    *url.URL // scheme://host[/prefix], without the trailing '/'
	addr    string   // the endpoint as shown in messages
	unix    string   // unix socket path, or ""
	apiKey  string
	tlsConf *tls.Config
	timeout time.Duration
	hc      *http.Client
}

// UnreachableError is returned when gafferd cannot be reached: nothing
// listens at the address, the socket file does not exist, the name does not
// resolve…
type UnreachableError struct {
	Address string // the endpoint as given to NewClient (normalised)
	Err     error  // the underlying network error
}

// Error implements the error interface: "cannot reach gafferd at ADDRESS:
// cause", with the cause reduced to the system's short message.
func (e *UnreachableError) Error() string {
	cause := clShortCause(e.Err)
	if cause == "" {
		return "cannot reach gafferd at " + e.Address
	}
	return "cannot reach gafferd at " + e.Address + ": " + cause
}

// Unwrap returns the underlying network error.
func (e *UnreachableError) Unwrap() error { return e.Err }

// clShortCause reduces a network error to its last, human part
// ("connection refused", "no such file or directory").
func clShortCause(err error) string {
	if err == nil {
		return ""
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return "cannot resolve " + dns.Name + ": " + dns.Err
	}
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}

// clIsUnreachable reports whether err happened before any byte reached
// gafferd (the dial failed).
func clIsUnreachable(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT)
}

// ParseEndpoint normalises a gafferd address. Accepted forms:
// "http://host:port", "https://host:port" (an optional path prefix is
// kept), "host:port" and "host" (http, port 5000), ":port" (127.0.0.1),
// and a unix socket as "unix:/path", "unix:///path" or a path starting with
// '/' or '.'. It returns the base URL (for a unix socket
// http://localhost) and the socket path.
func ParseEndpoint(endpoint string) (base *url.URL, unixPath string, err error) {
	ep := strings.TrimSpace(endpoint)
	if ep == "" {
		ep = DefaultEndpoint
	}
	switch {
	case strings.HasPrefix(ep, "unix:"):
		p := strings.TrimPrefix(ep, "unix:")
		if strings.HasPrefix(p, "//") {
			p = strings.TrimPrefix(p, "//")
		}
		if p == "" {
			return nil, "", fmt.Errorf("endpoint %q: empty unix socket path", endpoint)
		}
		return &url.URL{Scheme: "http", Host: "localhost"}, p, nil
	case strings.HasPrefix(ep, "/") || strings.HasPrefix(ep, "./") || strings.HasPrefix(ep, "../"):
		return &url.URL{Scheme: "http", Host: "localhost"}, ep, nil
	}
	if !strings.Contains(ep, "://") {
		if strings.HasPrefix(ep, ":") {
			ep = "127.0.0.1" + ep
		}
		ep = "http://" + ep
	}
	u, err := url.Parse(ep)
	if err != nil {
		return nil, "", fmt.Errorf("endpoint %q: %v", endpoint, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, "", fmt.Errorf("endpoint %q: unsupported scheme %q (use http, https or unix)", endpoint, u.Scheme)
	}
	if u.Host == "" {
		return nil, "", fmt.Errorf("endpoint %q: no host", endpoint)
	}
	if u.Port() == "" {
		def := "5000"
		if u.Scheme == "https" {
			def = "443"
		}
		u.Host = net.JoinHostPort(u.Hostname(), def)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, "", fmt.Errorf("endpoint %q: user info, query and fragment are not allowed", endpoint)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u, "", nil
}

// ClientTLSConfig builds the TLS configuration of ClientOptions: the CA
// file (else the system roots) and an optional client certificate.
func ClientTLSConfig(opts ClientOptions) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if opts.CACert != "" {
		pem, err := os.ReadFile(opts.CACert)
		if err != nil {
			return nil, fmt.Errorf("cacert: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cacert: %s holds no PEM certificate", opts.CACert)
		}
		conf.RootCAs = pool
	}
	if (opts.CertFile == "") != (opts.KeyFile == "") {
		return nil, errors.New("certfile and keyfile go together: give both or neither")
	}
	if opts.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(opts.CertFile, opts.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("certfile/keyfile: %v", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}

// NewClient returns a client of the gafferd at endpoint (see
// ParseEndpoint; "" is DefaultEndpoint). Nothing is contacted yet.
func NewClient(endpoint string, opts ClientOptions) (*Client, error) {
	base, sock, err := ParseEndpoint(endpoint)
	if err != nil {
		return nil, err
	}
	conf, err := ClientTLSConfig(opts)
	if err != nil {
		return nil, err
	}
	c := &Client{base: base, unix: sock, apiKey: opts.APIKey, tlsConf: conf, timeout: opts.Timeout}
	if c.timeout == 0 {
		c.timeout = DefaultClientTimeout
	}
	if sock != "" {
		c.addr = "unix:" + sock
	} else {
		c.addr = base.String()
	}
	tr := &http.Transport{
		Proxy:               nil, // gafferd is local or on a private network: never through a proxy
		TLSClientConfig:     conf,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   false,
	}
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if sock != "" {
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", sock)
		}
	} else {
		tr.DialContext = d.DialContext
	}
	c.hc = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	return c, nil
}

// Address returns the endpoint as shown in messages: the base URL, or
// "unix:/path".
func (c *Client) Address() string { return c.addr }

// Close releases the idle connections of the client.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// url builds the URL of path (which starts with '/') and query.
func (c *Client) url(path string, q url.Values) string {
	u := *c.base
	u.Path = c.base.Path + path
	u.RawPath = ""
	if q != nil {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// clPath joins escaped path segments: clPath("jobs", sid, name) is
// "/jobs/<sid>/<name>".
func clPath(segs ...string) string {
	var b strings.Builder
	for _, s := range segs {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// clRaw is a request body sent as it is.
type clRaw []byte

// newRequest builds a request with the key and the usual headers.
func (c *Client) newRequest(ctx context.Context, method, path string, q url.Values, body any) (*http.Request, error) {
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case clRaw:
		rd = bytes.NewReader(b)
		ctype = "application/octet-stream"
	default:
		js, err := json.Marshal(b)
		if err != nil {
			return nil, fmt.Errorf("encoding the request: %v", err)
		}
		rd = bytes.NewReader(js)
		ctype = "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url(path, q), rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "gaffer-client/"+Version)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.apiKey != "" {
		req.Header.Set("X-Api-Key", c.apiKey)
	}
	return req, nil
}

// send runs a request and maps transport errors; the caller closes the
// body of the response.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctxErr := req.Context().Err(); ctxErr != nil && !clIsUnreachable(err) {
			if errors.Is(ctxErr, context.DeadlineExceeded) {
				return nil, fmt.Errorf("gafferd at %s did not answer in time", c.addr)
			}
			return nil, ctxErr
		}
		if clIsUnreachable(err) {
			return nil, &UnreachableError{Address: c.addr, Err: err}
		}
		return nil, fmt.Errorf("gafferd at %s: %s", c.addr, clShortCause(err))
	}
	return resp, nil
}

// do runs one request. out may be nil (the body is dropped), *[]byte (the
// raw body) or a pointer to decode the JSON answer into.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body, out any) error {
	_, err := c.doStatus(ctx, method, path, q, body, out)
	return err
}

func (c *Client) doStatus(ctx context.Context, method, path string, q url.Values, body, out any) (int, error) {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	req, err := c.newRequest(ctx, method, path, q, body)
	if err != nil {
		return 0, err
	}
	resp, err := c.send(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return resp.StatusCode, clDecodeError(resp)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("gafferd at %s: reading the answer: %s", c.addr, clShortCause(err))
	}
	switch o := out.(type) {
	case nil:
	case *[]byte:
		*o = data
	default:
		dec := json.NewDecoder(bytes.NewReader(data))
		if err := dec.Decode(out); err != nil {
			return resp.StatusCode, fmt.Errorf("gafferd at %s: %s %s: unexpected answer: %v", c.addr, method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// head runs a HEAD request: true on 2xx, false on 404.
func (c *Client) head(ctx context.Context, path string) (bool, error) {
	st, err := c.doStatus(ctx, http.MethodHead, path, nil, nil, nil)
	if err == nil {
		return true, nil
	}
	if st == http.StatusNotFound {
		return false, nil
	}
	return false, err
}

// clDecodeError turns an error answer into an *Error. The body may be any
// of the shapes the original used ({"error": code}, {"error": 404,
// "reason": ...}) or not JSON at all.
func clDecodeError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &Error{Errno: resp.StatusCode}
	var m map[string]any
	if json.Unmarshal(data, &m) == nil && m != nil {
		switch v := m["error"].(type) {
		case string:
			e.Code = v
		case float64:
			e.Code = clCodeFor(int(v))
		}
		if r, ok := m["reason"].(string); ok {
			e.Reason = r
		}
		if n, ok := m["errno"].(float64); ok && n > 0 {
			e.Errno = int(n)
		}
	} else if line, _, _ := strings.Cut(strings.TrimSpace(string(data)), "\n"); line != "" && len(line) < 300 {
		e.Reason = line
	}
	if e.Code == "" {
		e.Code = clCodeFor(resp.StatusCode)
	}
	if e.Reason == "" {
		e.Reason = http.StatusText(resp.StatusCode)
	}
	return e
}

// clCodeFor gives the machine code of an HTTP status.
func clCodeFor(status int) string {
	switch status {
	case 400:
		return CodeBadRequest
	case 401:
		return CodeUnauthorized
	case 403:
		return CodeForbidden
	case 404:
		return CodeNotFound
	case 405:
		return CodeMethodNotAllow
	case 409:
		return CodeConflict
	case 413:
		return CodeTooLarge
	case 503:
		return CodeUnavailable
	}
	return strings.ReplaceAll(strings.ToLower(http.StatusText(status)), " ", "_")
}

// clJob splits a full job name into the path segments of /jobs/<sid>/<name>.
func clJob(full string) (sid, name string, err error) {
	sid, name = SplitName(full)
	if sid == "" || name == "" {
		return "", "", errBadRequest("job %q: expected session.job", full)
	}
	return sid, name, nil
}

func clJobPath(full string, sub ...string) (string, error) {
	sid, name, err := clJob(full)
	if err != nil {
		return "", err
	}
	return clPath(append([]string{"jobs", sid, name}, sub...)...), nil
}

// VersionInfo is the answer of GET /version.
type VersionInfo struct {
	Name          string `json:"name"`
	Version       string `json:"version"`        // the interface spoken (0.5.2)
	GafferVersion string `json:"gaffer_version"` // the server's own version
}

// Version returns gafferd's name and version (GET /version).
func (c *Client) Version(ctx context.Context) (VersionInfo, error) {
	var v VersionInfo
	err := c.do(ctx, http.MethodGet, "/version", nil, nil, &v)
	return v, err
}

// Welcome returns the answer of GET / ({"welcome": "gaffer", "version": …}).
func (c *Client) Welcome(ctx context.Context) (map[string]any, error) {
	var v map[string]any
	err := c.do(ctx, http.MethodGet, "/", nil, nil, &v)
	return v, err
}

// Ping checks that gafferd answers (GET /ping).
func (c *Client) Ping(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/ping", nil, nil, nil)
}

// Pids lists the internal pids of every process (GET /pids).
func (c *Client) Pids(ctx context.Context) ([]int, error) {
	var v struct{ Pids []int }
	err := c.do(ctx, http.MethodGet, "/pids", nil, nil, &v)
	return v.Pids, err
}

// Sessions lists the session ids (GET /sessions).
func (c *Client) Sessions(ctx context.Context) ([]string, error) {
	var v struct{ Sessions []string }
	err := c.do(ctx, http.MethodGet, "/sessions", nil, nil, &v)
	return v.Sessions, err
}

// Jobs lists the full names of every job (GET /jobs).
func (c *Client) Jobs(ctx context.Context) ([]string, error) {
	var v struct{ Jobs []string }
	err := c.do(ctx, http.MethodGet, "/jobs", nil, nil, &v)
	return v.Jobs, err
}

// AllJobInfo returns the info of every job the key may read
// (GET /jobs?details=1).
func (c *Client) AllJobInfo(ctx context.Context) ([]JobInfo, error) {
	var v struct{ Jobs []JobInfo }
	err := c.do(ctx, http.MethodGet, "/jobs", url.Values{"details": {"1"}}, nil, &v)
	return v.Jobs, err
}

// SessionJobs lists the full names of the jobs of a session
// (GET /jobs/<sid>).
func (c *Client) SessionJobs(ctx context.Context, sid string) ([]string, error) {
	var v struct{ Jobs []string }
	err := c.do(ctx, http.MethodGet, clPath("jobs", sid), nil, nil, &v)
	return v.Jobs, err
}

// JobConfigMap returns cfg as the JSON object POST /jobs/<sid> takes,
// secrets included and with "start" set from cfg.Start.
func JobConfigMap(cfg JobConfig) map[string]any {
	m := cfg.Map(true)
	m["start"] = cfg.Start
	return m
}

// Load loads a job in session sid (POST /jobs/<sid>) and starts it when
// cfg.Start is set. A job that exists already is an *Error with code
// process_conflict (409).
func (c *Client) Load(ctx context.Context, sid string, cfg JobConfig) error {
	return c.LoadMap(ctx, sid, JobConfigMap(cfg))
}

// LoadMap loads a job given as a JSON object (name, cmd and settings;
// "start" defaults to true on the server).
func (c *Client) LoadMap(ctx context.Context, sid string, cfg map[string]any) error {
	return c.do(ctx, http.MethodPost, clPath("jobs", sid), nil, cfg, nil)
}

// Update replaces the config of an existing job (PUT /jobs/<sid>/<name>):
// its processes are restarted with the new config; cfg.Start starts a
// stopped job.
func (c *Client) Update(ctx context.Context, sid string, cfg JobConfig) error {
	return c.UpdateMap(ctx, sid+"."+cfg.Name, JobConfigMap(cfg))
}

// UpdateMap is Update with the config as a JSON object, for the job full.
func (c *Client) UpdateMap(ctx context.Context, full string, cfg map[string]any) error {
	p, err := clJobPath(full)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPut, p, nil, cfg, nil)
}

// Unload stops and removes a job (DELETE /jobs/<sid>/<name>).
func (c *Client) Unload(ctx context.Context, full string) error {
	p, err := clJobPath(full)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodDelete, p, nil, nil, nil)
}

// JobExists reports whether a job is loaded (HEAD /jobs/<sid>/<name>).
func (c *Client) JobExists(ctx context.Context, full string) (bool, error) {
	p, err := clJobPath(full)
	if err != nil {
		return false, err
	}
	return c.head(ctx, p)
}

// JobInfo describes a job (GET /jobs/<sid>/<name>).
func (c *Client) JobInfo(ctx context.Context, full string) (JobInfo, error) {
	var v JobInfo
	p, err := clJobPath(full)
	if err != nil {
		return v, err
	}
	err = c.do(ctx, http.MethodGet, p, nil, nil, &v)
	return v, err
}

// JobStats samples the processes of a job (GET /jobs/<sid>/<name>/stats).
func (c *Client) JobStats(ctx context.Context, full string) (JobStats, error) {
	var v JobStats
	p, err := clJobPath(full, "stats")
	if err != nil {
		return v, err
	}
	err = c.do(ctx, http.MethodGet, p, nil, nil, &v)
	return v, err
}

// NumProcesses returns the target number of processes of a job.
func (c *Client) NumProcesses(ctx context.Context, full string) (int, error) {
	var v struct{ Numprocesses int }
	p, err := clJobPath(full, "numprocesses")
	if err != nil {
		return 0, err
	}
	err = c.do(ctx, http.MethodGet, p, nil, nil, &v)
	return v.Numprocesses, err
}

// Scale changes the number of processes of a job and returns the new
// target. op is "+N" (add), "-N" (remove), "=N" (set) or "N" (add).
func (c *Client) Scale(ctx context.Context, full, op string) (int, error) {
	var v struct{ Numprocesses int }
	p, err := clJobPath(full, "numprocesses")
	if err != nil {
		return 0, err
	}
	err = c.do(ctx, http.MethodPost, p, nil, map[string]any{"scale": op}, &v)
	return v.Numprocesses, err
}

// SignalJob sends a signal ("HUP", "SIGTERM", "9"…) to every process of a
// job.
func (c *Client) SignalJob(ctx context.Context, full, sig string) error {
	p, err := clJobPath(full, "signal")
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, p, nil, map[string]any{"signal": sig}, nil)
}

// JobActive reports whether a job has a running process
// (GET /jobs/<sid>/<name>/state).
func (c *Client) JobActive(ctx context.Context, full string) (bool, error) {
	var raw []byte
	p, err := clJobPath(full, "state")
	if err != nil {
		return false, err
	}
	if err := c.do(ctx, http.MethodGet, p, nil, nil, &raw); err != nil {
		return false, err
	}
	return strings.TrimSpace(string(raw)) == "1", nil
}

func (c *Client) setState(ctx context.Context, full, state string) error {
	p, err := clJobPath(full, "state")
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, p, nil, clRaw(state), nil)
}

// StartJob starts a job (POST …/state 1).
func (c *Client) StartJob(ctx context.Context, full string) error { return c.setState(ctx, full, "1") }

// StopJob stops a job's processes, keeping it loaded (POST …/state 0).
func (c *Client) StopJob(ctx context.Context, full string) error { return c.setState(ctx, full, "0") }

// ReloadJob restarts a job's processes (POST …/state 2).
func (c *Client) ReloadJob(ctx context.Context, full string) error {
	return c.setState(ctx, full, "2")
}

// RestartJob restarts a job's processes (POST …/restart): all at once,
// or with rolling one at a time, each new one ready before an old one
// stops; it returns once done, with the number replaced by a rolling
// restart. A rolling restart waits for each new process to be ready, so
// it is bounded by ctx only, not by the client's timeout.
func (c *Client) RestartJob(ctx context.Context, full string, rolling bool) (int, error) {
	p, err := clJobPath(full, "restart")
	if err != nil {
		return 0, err
	}
	q := url.Values{}
	if rolling {
		q.Set("rolling", "1")
		unbounded := *c
		unbounded.timeout = 0
		c = &unbounded
	}
	var v struct {
		Replaced int `json:"replaced"`
	}
	err = c.do(ctx, http.MethodPost, p, q, nil, &v)
	return v.Replaced, err
}

// JobPids lists the kept-alive processes of a job (GET …/pids).
func (c *Client) JobPids(ctx context.Context, full string) ([]int, error) {
	var v struct{ Pids []int }
	p, err := clJobPath(full, "pids")
	if err != nil {
		return nil, err
	}
	err = c.do(ctx, http.MethodGet, p, nil, nil, &v)
	return v.Pids, err
}

// Commit starts a one-off process of a job with extra environment and
// returns its internal pid (POST …/commit). A zero graceful timeout keeps
// the job's.
func (c *Client) Commit(ctx context.Context, full string, graceful time.Duration, env map[string]string) (int, error) {
	var v struct{ Pid int }
	p, err := clJobPath(full, "commit")
	if err != nil {
		return 0, err
	}
	body := map[string]any{}
	if graceful > 0 {
		body["graceful_timeout"] = graceful.Seconds()
	}
	if len(env) > 0 {
		body["env"] = env
	}
	err = c.do(ctx, http.MethodPost, p, nil, body, &v)
	return v.Pid, err
}

// Reload makes gafferd re-read its configuration (POST /reload); with
// dryRun it only reports what would change.
func (c *Client) Reload(ctx context.Context, dryRun bool) (ReloadDiff, error) {
	var v ReloadDiff
	var q url.Values
	if dryRun {
		q = url.Values{"dry_run": {"1"}}
	}
	err := c.do(ctx, http.MethodPost, "/reload", q, nil, &v)
	return v, err
}

// Metrics returns the Prometheus text of GET /metrics.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	var raw []byte
	err := c.do(ctx, http.MethodGet, "/metrics", nil, nil, &raw)
	return string(raw), err
}

// ProcessExists reports whether an internal pid is alive (HEAD /<pid>).
func (c *Client) ProcessExists(ctx context.Context, pid int) (bool, error) {
	return c.head(ctx, "/"+strconv.Itoa(pid))
}

// ProcessInfo describes a process (GET /<pid>).
func (c *Client) ProcessInfo(ctx context.Context, pid int) (ProcessInfo, error) {
	var v ProcessInfo
	err := c.do(ctx, http.MethodGet, "/"+strconv.Itoa(pid), nil, nil, &v)
	return v, err
}

// StopProcess stops one process (DELETE /<pid>); a kept-alive one is
// replaced.
func (c *Client) StopProcess(ctx context.Context, pid int) error {
	return c.do(ctx, http.MethodDelete, "/"+strconv.Itoa(pid), nil, nil, nil)
}

// SignalProcess sends a signal ("HUP", "SIGUSR1", "15"…) to one process.
func (c *Client) SignalProcess(ctx context.Context, pid int, sig string) error {
	return c.do(ctx, http.MethodPost, "/"+strconv.Itoa(pid)+"/signal", nil, map[string]any{"signal": sig}, nil)
}

// ProcessStats samples one process (GET /<pid>/stats).
func (c *Client) ProcessStats(ctx context.Context, pid int) (ProcStats, error) {
	var v struct{ Stats ProcStats }
	err := c.do(ctx, http.MethodGet, "/"+strconv.Itoa(pid)+"/stats", nil, nil, &v)
	return v.Stats, err
}

// WriteStream writes data as it is to a process's stdin (stream "stdin" or
// "") or to one of its custom streams (POST /streams/<pid>/<stream>).
func (c *Client) WriteStream(ctx context.Context, pid int, stream string, data []byte) error {
	if stream == "" {
		stream = "stdin"
	}
	return c.do(ctx, http.MethodPost, clPath("streams", strconv.Itoa(pid), stream), nil, clRaw(data), nil)
}

// Upgrade asks gafferd to re-execute its binary in place (POST /upgrade,
// admin). It returns once the new binary passed its check, with the
// number of upgrades gafferd had gone through: GET / ("upgrades") shows
// one more once the new instance answers.
func (c *Client) Upgrade(ctx context.Context) (int64, error) {
	var v struct {
		Upgrades int64 `json:"upgrades"`
	}
	err := c.do(ctx, http.MethodPost, "/upgrade", nil, nil, &v)
	return v.Upgrades, err
}
