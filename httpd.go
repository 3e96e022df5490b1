package gaffer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ServerOptions configures the HTTP API.
type ServerOptions struct {
	Manager           *Manager
	Auth              *AuthStore // users and keys; nil when require_key is off
	RequireKey        bool
	UnixSocketTrusted bool     // requests over the unix socket act as admin without a key
	CORSOrigins       []string // exact origins allowed to call the API from a browser
	Logger            *slog.Logger
	// Reload re-reads the configuration file and applies (or, with
	// dryRun, only computes) the difference (POST /reload).
	Reload func(dryRun bool) (ReloadDiff, error)
	// Upgrade re-executes gafferd in place (POST /upgrade, upgrade.go);
	// started is called once the new binary passed its check.
	Upgrade func(started func()) error
	// Extra routes added by plugins and embedders, by pattern.
	Extra map[string]http.Handler
	// AllowedHosts are more host names that loopback listeners accept in
	// the Host header (the DNS-rebinding check): the names gafferd
	// announces to lookupd, which clients then use to reach it.
	AllowedHosts []string
	// wsKeepalive is the keepalive of the websockets served (nil: the
	// default, wsDefaultKeepalive); tests shorten it.
	wsKeepalive *wsKeepalive
}

// Server is gafferd's HTTP API: every route of the reference, the legacy
// 0.4 routes, the feeds and the websockets, on any number of TCP and unix
// socket listeners. It is safe for concurrent use.
type Server struct {
	m           *Manager
	auth        *AuthStore
	requireKey  bool
	trustUnix   bool
	cors        map[string]bool
	log         *slog.Logger
	reload      func(bool) (ReloadDiff, error)
	upgrade     func(func()) error
	mux         *http.ServeMux
	checkOrigin func(*http.Request) bool
	hosts       []string      // AllowedHosts
	bodyTimeout time.Duration // see bodyReadTimeout

	// baseCtx is the parent of every request's context on the listeners
	// of Serve; Shutdown cancels it, which ends the streams (feeds,
	// long polls, SockJS receivers, the control channel).
	baseCtx    context.Context
	cancelBase context.CancelFunc
	sockjs     *SockJS // the control channel's SockJS server
	// wsKeepalive pings the clients of every websocket served (nil: none).
	wsKeepalive *wsKeepalive

	mu      sync.Mutex
	servers []*http.Server
	closed  bool // Shutdown was called: Serve serves nothing more
}

// NewServer returns the API server for a manager.
func NewServer(opts ServerOptions) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{m: opts.Manager, auth: opts.Auth, requireKey: opts.RequireKey && opts.Auth != nil,
		trustUnix: opts.UnixSocketTrusted, cors: map[string]bool{}, log: opts.Logger, reload: opts.Reload, upgrade: opts.Upgrade,
		bodyTimeout: bodyReadTimeout}
	for _, o := range opts.CORSOrigins {
		s.cors[strings.TrimSuffix(strings.ToLower(strings.TrimSpace(o)), "/")] = true
	}
	s.checkOrigin = s.originAllowed
	s.hosts = opts.AllowedHosts
	if s.wsKeepalive = opts.wsKeepalive; s.wsKeepalive == nil {
		s.wsKeepalive = wsDefaultKeepalive()
	}
	s.baseCtx, s.cancelBase = context.WithCancel(context.Background())
	s.mux = http.NewServeMux()
	s.routes()
	for p, h := range opts.Extra {
		s.mux.Handle(p, h)
	}
	return s
}

// Handle adds a route (plugins, the web console).
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// originAllowed accepts requests without Origin, same-origin requests and
// the configured CORS origins.
func (s *Server) originAllowed(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	if s.cors[strings.ToLower(o)] {
		return true
	}
	u, err := url.Parse(o)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

// listenerInfo says how a request came in.
type listenerInfo struct {
	unix     bool
	loopback bool   // TCP bound to a loopback address: enforce the Host check
	bindHost string // host part of the bind address
}

// Handler returns the handler for one listener.
func (s *Server) handler(li listenerInfo) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.limitBodyRead(w, r)
		if li.loopback && !hostAllowed(r.Host, li.bindHost, s.hosts...) {
			writeError(w, Errorf(CodeForbidden, 403, "Host %q is not allowed on a loopback listener (DNS rebinding protection)", r.Host))
			return
		}
		s.applyCORS(w, r)
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if o := r.Header.Get("Origin"); o != "" && !s.originAllowed(r) {
			writeError(w, Errorf(CodeForbidden, 403, "Origin %q is not allowed (set [gaffer] cors_origins)", o))
			return
		}
		key, err := s.authenticate(r, li)
		if err != nil {
			writeError(w, err)
			return
		}
		if key != anonymousKey {
			// KeyFrom gives anonymousKey for a request without one: no
			// copy of the request is needed when auth is off.
			r = r.WithContext(WithKey(r.Context(), key))
		}
		s.mux.ServeHTTP(w, r)
	})
}

// bodyReadTimeout is how long a client has to send a request body on the
// routes that are not streams (http.Server's ReadHeaderTimeout bounds the
// head). Without it, a client sending a body slowly, or never finishing it,
// holds its connection and goroutine forever.
const bodyReadTimeout = 30 * time.Second

// limitBodyRead sets a read deadline for r's body, cleared once the body
// has been read to its end, so that the connection's later reads (the
// server watching for the client going away, the next request's head) are
// not cut. Requests without a body (GET feeds, websocket upgrades, SockJS
// receivers) and POST /streams/<pid>/<label> (stdin, which may stream) keep
// no deadline.
func (s *Server) limitBodyRead(w http.ResponseWriter, r *http.Request) {
	if s.bodyTimeout <= 0 || r.Body == nil || r.Body == http.NoBody {
		return
	}
	if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/streams/") {
		return
	}
	rc := http.NewResponseController(w)
	if rc.SetReadDeadline(time.Now().Add(s.bodyTimeout)) != nil {
		return // not a connection with deadlines (a test recorder)
	}
	r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc, timeout: s.bodyTimeout}
}

// deadlineBody clears the body's read deadline once the body has been read
// to its end, and names the timeout when it strikes.
type deadlineBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
	done    bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF && !b.done:
		b.done = true
		b.rc.SetReadDeadline(time.Time{})
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The deadline stays: what is left of the body is not waited for,
		// and the connection closes after the answer.
		err = fmt.Errorf("the body did not arrive within %v", b.timeout)
	}
	return n, err
}

// hostAllowed is the DNS-rebinding check: on a loopback listener, the
// Host must be a loopback name, the bound host, or one of the extra names
// (the names gafferd announces; compared without case).
func hostAllowed(hostport, bindHost string, extra ...string) bool {
	h := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		h = hh
	}
	h = strings.Trim(strings.ToLower(h), "[]")
	switch h {
	case "localhost", "127.0.0.1", "::1", "":
		return true
	}
	if strings.HasSuffix(h, ".localhost") {
		return true
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
		return true
	}
	for _, e := range extra {
		if e = strings.Trim(strings.ToLower(e), "[]"); e != "" && h == e {
			return true
		}
	}
	return h == strings.Trim(strings.ToLower(bindHost), "[]")
}

func (s *Server) applyCORS(w http.ResponseWriter, r *http.Request) {
	o := r.Header.Get("Origin")
	if o == "" || !s.cors[strings.ToLower(o)] {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", o)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Access-Control-Allow-Methods", "POST, GET, PUT, DELETE, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "X-Requested-With, X-HTTP-Method-Override, Content-Type, Accept, Authorization, X-Api-Key, Last-Event-ID")
	h.Set("Access-Control-Expose-Headers", "X-Api-Key, Location")
	h.Set("Access-Control-Max-Age", "86400")
	h.Add("Vary", "Origin")
}

// publicRoute reports whether r may reach its handler without a key while
// require_key is on. The list is explicit; every other route needs a key:
//
//   - /, /ping, /version, /favicon.ico: nothing secret;
//   - /auth: it takes HTTP Basic credentials instead (rate-limited);
//   - /ui, /ui/…: the console's static files (the console asks for a key
//     before it asks the API for any data);
//   - /_plugin/<name>/…: plugin sites, static files like the console;
//   - /channel, /channel/…: SockJS, which authenticates in-band (AUTH:<key>)
//     and binds each session to the client that opened it (sockjs.go);
//   - websocket upgrades of /channel/websocket and /<pid>/channel[/<stream>],
//     which authenticate in-band too.
//
// A websocket upgrade header on any other route changes nothing: the
// request is plain HTTP and needs its key like any other.
func publicRoute(r *http.Request) bool {
	p := r.URL.Path
	switch p {
	case "/", "/ping", "/version", "/favicon.ico", "/auth", "/ui", "/openapi.json":
		// /openapi.json describes the routes, not their data: API tools
		// read it before they hold a key.
		return true
	case "/channel/websocket":
		return IsWebSocketUpgrade(r)
	}
	if strings.HasPrefix(p, "/ui/") || strings.HasPrefix(p, "/_plugin/") {
		return true
	}
	if p == "/channel" || strings.HasPrefix(p, "/channel/") {
		return true
	}
	return IsWebSocketUpgrade(r) && isIOChannelPath(p)
}

// isIOChannelPath reports whether p is /<pid>/channel or
// /<pid>/channel/<stream>.
func isIOChannelPath(p string) bool {
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	return (len(segs) == 2 || len(segs) == 3) && isDigits(segs[0]) && segs[1] == "channel" && (len(segs) == 2 || segs[2] != "")
}

// trustedKey is the caller over a trusted unix socket: it may do
// everything.
var trustedKey = &Key{Key: "", Label: "unix socket (trusted)", Permissions: Permissions{Admin: true}}

// authenticate finds the caller's key: X-Api-Key (or ?api_key= on GET,
// for EventSource, which cannot set headers).
func (s *Server) authenticate(r *http.Request, li listenerInfo) (*Key, error) {
	if !s.requireKey {
		return anonymousKey, nil
	}
	if li.unix && s.trustUnix {
		return trustedKey, nil
	}
	raw := r.Header.Get("X-Api-Key")
	if raw == "" && r.Method == http.MethodGet {
		raw = r.URL.Query().Get("api_key")
	}
	if raw == "" {
		if publicRoute(r) {
			return noKey, nil
		}
		return nil, Errorf(CodeUnauthorized, 401, "this route needs an API key in the X-Api-Key header")
	}
	k, ok := ParseAPIKeyHeader(raw)
	if !ok {
		return nil, Errorf(CodeForbidden, 403, "malformed API key")
	}
	key, found := s.auth.LookupKey(k)
	if !found {
		return nil, Errorf(CodeForbidden, 403, "unknown API key")
	}
	return key, nil
}

// caller returns the key of the request.
func caller(r *http.Request) *Key { return KeyFrom(r.Context()) }

// noKey is the caller of a public route reached without a key while
// require_key is on: it may do nothing.
var noKey = &Key{Label: "no key"}

// allow writes 403 (errDenied) and returns false when ok is false.
func allow(w http.ResponseWriter, ok bool) bool {
	if !ok {
		writeError(w, errDenied())
	}
	return ok
}

// errDenied is the error of a key without the right a route needs.
func errDenied() *Error { return Errorf(CodeForbidden, 403, "the API key does not allow this") }

// audit logs a state-changing request: who, what, result.
func (s *Server) audit(r *http.Request, status int) {
	who := "anonymous"
	if k := KeyFrom(r.Context()); k != nil && k != anonymousKey {
		who = k.Label
		if who == "" {
			who = "unlabelled key"
		}
	}
	s.log.Info("audit", "who", who, "action", r.Method+" "+r.URL.Path, "result", status)
}

// auditWriter records the status for the audit log.
type auditWriter struct {
	http.ResponseWriter
	status int
}

func (a *auditWriter) WriteHeader(code int) {
	if a.status == 0 {
		a.status = code
	}
	a.ResponseWriter.WriteHeader(code)
}

func (a *auditWriter) Write(p []byte) (int, error) {
	if a.status == 0 {
		a.status = 200
	}
	return a.ResponseWriter.Write(p)
}

func (a *auditWriter) Flush() {
	if f, ok := a.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (a *auditWriter) Unwrap() http.ResponseWriter { return a.ResponseWriter }

// audited wraps a state-changing handler with the audit line.
func (s *Server) audited(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		aw := &auditWriter{ResponseWriter: w}
		h(aw, r)
		if aw.status == 0 {
			aw.status = 200
		}
		s.audit(r, aw.status)
	}
}

// ServeHTTP serves a request as if it came over a trusted-nothing TCP
// listener without the Host check (for tests and embedding).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler(listenerInfo{}).ServeHTTP(w, r)
}

// Listen opens the listener of one endpoint: "host:port", "[v6]:port",
// "host" (port 5000) or "unix:/path" (mode SocketMode, default 0600; a
// stale socket of a dead gafferd is replaced, a live one is an error).
func (s *Server) Listen(ep EndpointConfig) (net.Listener, http.Handler, error) {
	bind := strings.TrimSpace(ep.Bind)
	if bind == "" {
		bind = "127.0.0.1:5000"
	}
	var l net.Listener
	var li listenerInfo
	if strings.HasPrefix(bind, "unix:") {
		path := strings.TrimPrefix(bind, "unix:")
		if path == "" {
			return nil, nil, fmt.Errorf("endpoint %s: empty unix socket path", ep.Name)
		}
		var err error
		l, err = upgradeListen(bind, func() (net.Listener, error) { return listenUnix(path, ep.SocketMode) })
		if err != nil {
			return nil, nil, fmt.Errorf("endpoint %s: %w", ep.Name, err)
		}
		li.unix = true
	} else {
		addr := bind
		if _, _, err := net.SplitHostPort(addr); err != nil {
			addr = net.JoinHostPort(strings.Trim(addr, "[]"), "5000")
		}
		host, _, _ := net.SplitHostPort(addr)
		var err error
		l, err = upgradeListen(bind, func() (net.Listener, error) { return net.Listen("tcp", addr) })
		if err != nil {
			return nil, nil, fmt.Errorf("endpoint %s: %w", ep.Name, err)
		}
		li.bindHost = host
		ip := net.ParseIP(host)
		li.loopback = host == "localhost" || (ip != nil && ip.IsLoopback())
		if !li.loopback && !s.requireKey {
			s.log.Warn("SECURITY: the API is open to the network without keys: anyone who can reach this address "+
				"may run any command as gafferd's user, and any Host header is accepted; set [gaffer] require_key = true "+
				"or bind a loopback address", "endpoint", ep.Name, "address", l.Addr().String())
		}
	}
	if ep.CertFile != "" || ep.KeyFile != "" {
		conf, err := serverTLSConfig(ep)
		if err != nil {
			l.Close()
			return nil, nil, err
		}
		l = tls.NewListener(l, conf)
	}
	return l, s.handler(li), nil
}

// tlsCipherSuites are the TLS 1.2 suites offered: AEAD ciphers with forward
// secrecy only (ECDHE with AES-GCM or ChaCha20-Poly1305), none of the CBC or
// RSA-key-exchange suites Go's defaults still include. TLS 1.3 suites are
// all of that kind and not configurable.
var tlsCipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

func serverTLSConfig(ep EndpointConfig) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(ep.CertFile, ep.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("endpoint %s: TLS: %w", ep.Name, err)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"},
		CipherSuites: tlsCipherSuites}
	if ep.ClientCAFile != "" {
		pem, err := os.ReadFile(ep.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("endpoint %s: client CA: %w", ep.Name, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("endpoint %s: client CA %s holds no PEM certificate", ep.Name, ep.ClientCAFile)
		}
		conf.ClientCAs = pool
		conf.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return conf, nil
}

// listenUnix creates a unix socket with the given mode, replacing a stale
// socket file but never a live one.
func listenUnix(path string, mode os.FileMode) (net.Listener, error) {
	if mode == 0 {
		mode = 0o600
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("%s is in use by a running server", path)
		}
		os.Remove(path)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	l.(*net.UnixListener).SetUnlinkOnClose(true)
	if err := os.Chmod(path, mode); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// shutdownGrace bounds Shutdown when its context has no deadline.
const shutdownGrace = 10 * time.Second

// Serve serves the API on l until Shutdown. After Shutdown it closes l at
// once and returns nil.
func (s *Server) Serve(l net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
		MaxHeaderBytes: 64 << 10, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext: func(net.Listener) context.Context { return s.baseCtx }}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return nil
	}
	s.servers = append(s.servers, srv)
	s.mu.Unlock()
	err := srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops every listener (and any Serve called later). Streams
// (feeds, long polls, websockets of the control channel, SockJS sessions)
// are ended at once; other requests in flight may finish until ctx is
// done (or, when ctx is nil or has no deadline, for shutdownGrace), after
// which their connections are closed and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	servers := s.servers
	s.servers = nil
	s.mu.Unlock()
	s.cancelBase()
	if ctx == nil {
		ctx = context.Background()
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, shutdownGrace)
		defer cancel()
	}
	var wg sync.WaitGroup
	if s.sockjs != nil {
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			s.sockjs.Close()
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-closed:
			case <-ctx.Done():
			}
		}()
	}
	var forced atomic.Bool
	for _, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Shutdown(ctx); err != nil {
				forced.Store(true)
				srv.Close()
			}
		}()
	}
	wg.Wait()
	if forced.Load() {
		return ctx.Err()
	}
	return nil
}

// parsePid parses an internal pid path segment ([0-9]+).
func parsePid(seg string) (int, error) {
	if seg == "" || len(seg) > 9 {
		return 0, Errorf(CodeBadValue, 400, "invalid pid %q", seg)
	}
	for i := 0; i < len(seg); i++ {
		if seg[i] < '0' || seg[i] > '9' {
			return 0, Errorf(CodeBadValue, 400, "invalid pid %q", seg)
		}
	}
	n, _ := strconv.Atoi(seg)
	return n, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
