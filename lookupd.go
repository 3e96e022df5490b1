package gaffer

// gaffer_lookupd (reference §11): the discovery server. Lookupd is an
// http.Handler that serves the node registration websocket (/ws), the
// client routes (/nodes, /jobs, /findJob…) and the raw websocket event
// feed (/lookup/websocket). The registry itself is in lookupd_registry.go;
// the gafferd side (LookupdRegistrar) is in lookupd_node.go.

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// DefaultLookupdBind is where gaffer_lookupd listens by default (loopback
// only, unlike the original's 0.0.0.0).
const DefaultLookupdBind = "127.0.0.1:5010"

// DefaultLookupdPingInterval is how often nodes PING; a node silent for
// three intervals is dropped.
const DefaultLookupdPingInterval = 15 * time.Second

// lkMaxMessage bounds one node message; the protocol's messages are tiny.
const lkMaxMessage = 64 << 10

// lkWriteTimeout bounds one reply or event write to a websocket peer.
const lkWriteTimeout = 10 * time.Second

// LookupdOptions configures a Lookupd.
type LookupdOptions struct {
	// PingInterval is the interval nodes are expected to PING at (default
	// 15 s). A node connection that sends nothing for 3 × PingInterval is
	// dropped with remove_node.
	PingInterval time.Duration
	// RequireKey, when set, makes lookupd register only the nodes that
	// prove a node key (a shared secret; RequireKey must compare in
	// constant time): in the "key" field of IDENTIFY, which gafferd sends
	// from [gaffer] lookupd_key, or in an X-Api-Key header on the /ws
	// upgrade (a wrong header is refused with 403 at once). A node
	// without a valid key gets an error reply to IDENTIFY (401
	// node_key_required or 403 node_key_refused), is logged and
	// disconnected, and is never listed. The client routes and the event
	// feed are read-only and stay open.
	RequireKey func(key string) bool
	// CORSOrigins are the exact origins ("scheme://host[:port]") allowed to
	// read the client routes and the event feed from a browser; "*" allows
	// any. Empty: CORS is off.
	CORSOrigins []string
	// Logger gets connection and protocol logs (default slog.Default()).
	Logger *slog.Logger
	// wsKeepalive pings the clients of the node socket and the event feed
	// (nil: the default, wsDefaultKeepalive); tests shorten it.
	wsKeepalive *wsKeepalive
}

// Lookupd is an in-memory registry of gafferd nodes and the HTTP handler
// that serves it. It is safe for concurrent use. Serve it with any
// http.Server (ServeHTTP); Close drops every node connection and event
// subscriber.
type Lookupd struct {
	opts  LookupdOptions
	log   *slog.Logger
	reg   *lkRegistry
	cors  map[string]bool
	extra *http.ServeMux
	npat  int
}

// NewLookupd returns an empty lookupd.
func NewLookupd(opts LookupdOptions) *Lookupd {
	if opts.PingInterval <= 0 {
		opts.PingInterval = DefaultLookupdPingInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.wsKeepalive == nil {
		opts.wsKeepalive = wsDefaultKeepalive()
	}
	l := &Lookupd{opts: opts, log: opts.Logger, reg: newLkRegistry(), cors: map[string]bool{}, extra: http.NewServeMux()}
	for _, o := range opts.CORSOrigins {
		l.cors[strings.TrimSuffix(strings.ToLower(strings.TrimSpace(o)), "/")] = true
	}
	return l
}

// Subscribe returns a channel of every registry event from now on (the
// feed of reference §11.5) and a function that ends the subscription. The
// channel is closed by cancel, by Close, or when the subscriber falls more
// than 1024 events behind. Wire SockJS (/lookup) or any other transport
// with it.
func (l *Lookupd) Subscribe() (<-chan LookupdEvent, func()) { return l.reg.subscribe() }

// Handle adds a handler for pattern (http.ServeMux syntax) next to the
// built-in routes, which win for their own paths; for example the SockJS
// transports of /lookup/.
func (l *Lookupd) Handle(pattern string, h http.Handler) {
	l.extra.Handle(pattern, h)
	l.npat++
}

// Nodes returns the identified nodes, in connection order.
func (l *Lookupd) Nodes() []LookupNode { return l.reg.identifiedNodes() }

// Jobs returns every job of the identified nodes with its sources.
func (l *Lookupd) Jobs() []LookupJob { return l.reg.jobs(nil, nil) }

// FindJob returns the nodes running the job full ("session.job").
func (l *Lookupd) FindJob(full string) []LookupSource {
	jobs := l.reg.jobs(nil, func(j string) bool { return j == full })
	if len(jobs) == 0 {
		return []LookupSource{}
	}
	return jobs[0].Sources
}

// Close drops every node connection and ends every subscription; new
// node connections are refused afterwards.
func (l *Lookupd) Close() error {
	for _, n := range l.reg.close() {
		if n.conn != nil {
			n.conn.CloseNow()
		}
	}
	return nil
}

// ServeHTTP serves the lookupd routes.
func (l *Lookupd) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr); ok && la.IP.IsLoopback() && !hostAllowed(r.Host, la.IP.String()) {
		writeError(w, Errorf(CodeForbidden, 403, "Host %q is not allowed on a loopback listener (DNS rebinding protection)", r.Host))
		return
	}
	l.applyCORS(w, r)
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	p := r.URL.Path
	switch p {
	case "/ws":
		l.serveNode(w, r)
		return
	case "/lookup/websocket":
		l.serveFeed(w, r)
		return
	}
	if l.npat > 0 {
		if h, pattern := l.extra.Handler(r); pattern != "" {
			h.ServeHTTP(w, r)
			return
		}
	}
	known := p == "/" || p == "/ping" || p == "/version" || p == "/nodes" || p == "/sessions" ||
		strings.HasPrefix(p, "/sessions/") || p == "/jobs" || p == "/findJob" || p == "/findSession"
	if !known {
		writeError(w, errNotFound("no route %s on gaffer_lookupd", p))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET")
		return
	}
	q := r.URL.Query()
	switch {
	case p == "/":
		writeJSON(w, 200, map[string]any{"welcome": "gaffer-lookupd", "version": Version})
	case p == "/ping":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("OK"))
	case p == "/version":
		writeJSON(w, 200, map[string]any{"name": "gaffer-lookupd", "version": Version, "compat": CompatVersion})
	case p == "/nodes":
		writeJSON(w, 200, map[string]any{"nodes": l.Nodes()})
	case p == "/sessions":
		s := lkGroupSessions(l.Jobs())
		writeJSON(w, 200, map[string]any{"nb_sessions": len(s), "sessions": s})
	case strings.HasPrefix(p, "/sessions/"):
		name := strings.TrimPrefix(p, "/sessions/")
		s := lkGroupSessions(l.reg.jobs(func(n LookupNode) bool { return n.Name == name }, nil))
		writeJSON(w, 200, map[string]any{"nb_sessions": len(s), "sessions": s})
	case p == "/jobs":
		jobs := l.Jobs()
		writeJSON(w, 200, map[string]any{"nb_jobs": len(jobs), "jobs": jobs})
	case p == "/findJob":
		name := q.Get("name")
		if name == "" {
			writeError(w, errBadRequest("findJob needs the parameter name=<session.job>"))
			return
		}
		writeJSON(w, 200, map[string]any{"sources": l.FindJob(name)})
	case p == "/findSession":
		sid := q.Get("sessionid")
		if sid == "" {
			writeError(w, errBadRequest("findSession needs the parameter sessionid=<session>"))
			return
		}
		jobs := l.reg.jobs(nil, func(j string) bool { s, _ := SplitName(j); return s == sid })
		writeJSON(w, 200, map[string]any{"nb_jobs": len(jobs), "jobs": jobs})
	}
}

func (l *Lookupd) originAllowed(o string) bool {
	return l.cors["*"] || l.cors[strings.ToLower(o)]
}

func (l *Lookupd) applyCORS(w http.ResponseWriter, r *http.Request) {
	o := r.Header.Get("Origin")
	if o == "" || !l.originAllowed(o) {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", o)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Access-Control-Allow-Methods", "GET, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Accept, Authorization, X-Api-Key")
	h.Set("Access-Control-Max-Age", "86400")
	h.Add("Vary", "Origin")
}

// serveNode runs one node connection (reference §11.3).
func (l *Lookupd) serveNode(w http.ResponseWriter, r *http.Request) {
	// The node key may come in the header (checked here) or in IDENTIFY
	// (checked by lkCheckNodeKey).
	keyOK := false
	if raw := r.Header.Get("X-Api-Key"); raw != "" && l.opts.RequireKey != nil {
		if key, ok := ParseAPIKeyHeader(raw); !ok || !l.opts.RequireKey(key) {
			l.log.Warn("lookupd: node refused: wrong node key in X-Api-Key", "remote", r.RemoteAddr)
			writeError(w, Errorf(CodeForbidden, 403, "the node key (X-Api-Key) is not accepted by this lookupd"))
			return
		}
		keyOK = true
	}
	// Nodes are programs (no Origin header); a browser may only come from
	// the lookupd's own origin.
	conn, err := WSUpgrade(w, r, &WSOptions{MaxMessageSize: lkMaxMessage, keepalive: l.opts.wsKeepalive})
	if err != nil {
		return
	}
	n := l.reg.connect(conn)
	if n == nil {
		conn.Close(WSCloseGoingAway, "lookupd is shutting down")
		return
	}
	n.keyOK = keyOK
	remote := conn.RemoteAddr().String()
	l.log.Debug("lookupd: node connected", "remote", remote)
	timeout := 3 * l.opts.PingInterval
	why := "closed"
	for {
		conn.SetReadDeadline(time.Now().Add(timeout))
		_, data, err := conn.ReadMessage()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				why = fmt.Sprintf("silent for %s (3 ping intervals)", timeout)
			} else {
				why = err.Error()
			}
			break
		}
		reply, stale, hangUp := l.handleMessage(n, data, remote)
		if stale != nil && stale.conn != nil {
			l.log.Info("lookupd: node reconnected; its stale connection is replaced", "name", stale.info.Name, "origin", stale.info.Origin)
			go stale.conn.Close(WSClosePolicy, "replaced by a new connection of the same node")
		}
		conn.SetWriteDeadline(time.Now().Add(lkWriteTimeout))
		if err := conn.WriteJSON(reply); err != nil {
			why = "write failed: " + err.Error()
			break
		}
		if hangUp {
			why = "refused: " + fmt.Sprint(reply["reason"])
			conn.Close(WSClosePolicy, "node key refused")
			break
		}
	}
	if l.reg.disconnect(n) {
		l.log.Info("lookupd: node removed", "name", n.info.Name, "origin", n.info.Origin, "remote", remote, "reason", why)
	}
	conn.CloseNow()
}

// handleMessage decodes and applies one node message and returns the
// reply, plus a stale node to close when an IDENTIFY replaced one, and
// whether the connection must be closed after the reply (a refused node
// key). remote is the peer's address, for the logs.
func (l *Lookupd) handleMessage(n *lkNode, data []byte, remote string) (map[string]any, *lkNode, bool) {
	var msgid string
	fail := func(e *lkError) map[string]any {
		m := map[string]any{"errno": e.errno, "reason": e.reason, "msgid": nil}
		if !e.noMsgID && msgid != "" {
			m["msgid"] = msgid
		}
		if e.detail != "" {
			m["detail"] = e.detail
		}
		return m
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		detail := "trailing data after the JSON value"
		if err != nil {
			detail = "invalid JSON: " + err.Error()
		}
		return fail(&lkError{errno: 400, reason: "invalid_json", detail: detail, noMsgID: true}), nil, false
	}
	msg, ok := v.(map[string]any)
	if !ok {
		return fail(&lkError{errno: 400, reason: "invalid_message", detail: "the message must be a JSON object", noMsgID: true}), nil, false
	}
	id, _ := msg["msgid"].(string)
	typ, _ := msg["type"].(string)
	if id == "" || len(id) > 128 || typ == "" {
		return fail(&lkError{errno: 400, reason: "invalid_message", detail: "every message needs a string msgid (at most 128 bytes) and a string type", noMsgID: true}), nil, false
	}
	msgid = id
	str := func(field string) (string, *lkError) {
		s, ok := msg[field].(string)
		if !ok || s == "" || len(s) > 1024 {
			return "", &lkError{errno: 400, reason: "invalid_message", detail: fmt.Sprintf("%s needs the field %q (a non-empty string)", typ, field)}
		}
		return s, nil
	}
	jobName := func() (string, *lkError) {
		j, e := str("job_name")
		if e != nil {
			return "", e
		}
		if err := ValidateName(j, "job_name"); err != nil {
			return "", &lkError{errno: 400, reason: "invalid_message", detail: AsError(err).Reason}
		}
		return j, nil
	}
	pidField := func() (int, *lkError) {
		num, ok := msg["pid"].(json.Number)
		v, err := num.Int64()
		if !ok || err != nil || v < 1 || v > 1<<31-1 {
			return 0, &lkError{errno: 400, reason: "invalid_message", detail: typ + " needs the field \"pid\" (a positive integer)"}
		}
		return int(v), nil
	}
	var e *lkError
	var stale *lkNode
	switch typ {
	case "IDENTIFY":
		var info LookupNode
		if info.Name, e = str("name"); e == nil {
			if info.Origin, e = str("origin"); e == nil && !lkValidOrigin(info.Origin) {
				e = &lkError{errno: 400, reason: "invalid_message", detail: "IDENTIFY: the origin must be an http:// or https:// URL with a host (no credentials, query or fragment)"}
			}
			if e == nil {
				if info.Version, e = str("version"); e == nil {
					if e = l.lkCheckNodeKey(n, msg, info, remote); e == nil {
						stale, e = l.reg.identify(n, info)
					}
				}
			}
		}
	case "PING":
		l.reg.ping(n)
	case "REGISTER_JOB", "UNREGISTER_JOB":
		var job string
		if job, e = jobName(); e == nil {
			if typ == "REGISTER_JOB" {
				e = l.reg.registerJob(n, job)
			} else {
				e = l.reg.unregisterJob(n, job)
			}
		}
	case "REGISTER_PROCESS", "UNREGISTER_PROCESS":
		var job string
		var pid int
		if job, e = jobName(); e == nil {
			if pid, e = pidField(); e == nil {
				if typ == "REGISTER_PROCESS" {
					e = l.reg.registerProcess(n, job, pid)
				} else {
					e = l.reg.unregisterProcess(n, job, pid)
				}
			}
		}
	default:
		e = &lkError{errno: 400, reason: "invalid_message_type", detail: fmt.Sprintf("unknown message type %q", typ), noMsgID: true}
	}
	if e != nil {
		l.log.Debug("lookupd: error reply", "name", n.info.Name, "type", typ, "errno", e.errno, "reason", e.reason, "detail", e.detail)
		return fail(e), stale, e.hangUp
	}
	if typ == "IDENTIFY" {
		// Tell the node how often to PING, so that a node configured with
		// a longer interval is not dropped (an extension; old nodes ignore it).
		return map[string]any{"ok": true, "msgid": msgid, "ping_interval": l.opts.PingInterval.Seconds()}, stale, false
	}
	return map[string]any{"ok": true, "msgid": msgid}, stale, false
}

// lkValidOrigin reports whether a node's origin is a URL that clients may
// be pointed at: http or https, a host, no credentials, query or fragment.
func lkValidOrigin(o string) bool {
	u, err := url.Parse(o)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
		u.User == nil && u.RawQuery == "" && u.Fragment == "" && !u.ForceQuery
}

// lkCheckNodeKey applies RequireKey to an IDENTIFY: a node already
// authenticated by its upgrade header passes; otherwise the message's
// "key" must be accepted. A refusal is logged with what the node claimed
// to be and where it came from.
func (l *Lookupd) lkCheckNodeKey(n *lkNode, msg map[string]any, info LookupNode, remote string) *lkError {
	if l.opts.RequireKey == nil || n.keyOK {
		return nil
	}
	raw, _ := msg["key"].(string)
	if raw == "" {
		l.log.Warn("lookupd: node refused: no node key", "name", info.Name, "origin", info.Origin, "remote", remote)
		return &lkError{errno: 401, reason: "node_key_required", hangUp: true,
			detail: "this lookupd registers only nodes that send its node key: set [gaffer] lookupd_key (or lookupd_key_file) on the node"}
	}
	if key, ok := ParseAPIKeyHeader(raw); !ok || !l.opts.RequireKey(key) {
		l.log.Warn("lookupd: node refused: wrong node key", "name", info.Name, "origin", info.Origin, "remote", remote)
		return &lkError{errno: 403, reason: "node_key_refused", hangUp: true,
			detail: "the node key is not accepted by this lookupd: check [gaffer] lookupd_key on the node against gaffer_lookupd's --node-key"}
	}
	return nil
}

// serveFeed is the raw websocket event feed: one JSON message per event.
// The client must send nothing; a message from it ends the connection.
func (l *Lookupd) serveFeed(w http.ResponseWriter, r *http.Request) {
	// Subscribed before the handshake completes: a client sees every event
	// that happens after its dial returned.
	events, cancel := l.Subscribe()
	defer cancel()
	conn, err := WSUpgrade(w, r, &WSOptions{MaxMessageSize: 4096, CheckOrigin: func(r *http.Request) bool {
		return WSSameOrigin(r) || l.originAllowed(r.Header.Get("Origin"))
	}, keepalive: l.opts.wsKeepalive})
	if err != nil {
		return
	}
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		if _, _, err := conn.ReadMessage(); err == nil {
			conn.Close(WSClosePolicy, "the lookup feed accepts no message")
		}
	}()
	for {
		select {
		case <-gone:
			conn.CloseNow()
			return
		case ev, ok := <-events:
			if !ok {
				conn.Close(WSCloseGoingAway, "the lookup feed ended (lookupd closing, or this client fell behind)")
				<-gone
				return
			}
			conn.SetWriteDeadline(time.Now().Add(lkWriteTimeout))
			if err := conn.WriteJSON(ev); err != nil {
				conn.CloseNow()
				<-gone
				return
			}
		}
	}
}

// ListenLookupd opens gaffer_lookupd's listener: "host:port", "[v6]:port",
// "host" (port 5010), or "unix:/path" (mode 0600; a stale socket is
// replaced, a live one is an error); with certFile and keyFile, TLS, and
// with clientCAFile too, clients must present a certificate it signed.
func ListenLookupd(bind, certFile, keyFile, clientCAFile string) (net.Listener, error) {
	bind = strings.TrimSpace(bind)
	if bind == "" {
		bind = DefaultLookupdBind
	}
	var l net.Listener
	if path, ok := strings.CutPrefix(bind, "unix:"); ok {
		if path == "" {
			return nil, errors.New("bind unix: needs a socket path")
		}
		var err error
		if l, err = listenUnix(path, 0o600); err != nil {
			return nil, fmt.Errorf("bind %s: %w", bind, err)
		}
	} else {
		addr := bind
		if _, _, err := net.SplitHostPort(addr); err != nil {
			addr = net.JoinHostPort(strings.Trim(addr, "[]"), "5010")
		}
		var err error
		if l, err = net.Listen("tcp", addr); err != nil {
			return nil, fmt.Errorf("bind %s: %w", bind, err)
		}
	}
	if certFile != "" || keyFile != "" || clientCAFile != "" {
		if certFile == "" || keyFile == "" {
			l.Close()
			return nil, errors.New("TLS needs both a certificate file and a key file")
		}
		conf, err := serverTLSConfig(EndpointConfig{Name: "lookupd", CertFile: certFile, KeyFile: keyFile, ClientCAFile: clientCAFile})
		if err != nil {
			l.Close()
			return nil, err
		}
		l = tls.NewListener(l, conf)
	}
	return l, nil
}

// LookupdWSURL derives the node websocket URL from a lookupd HTTP URL
// (reference §11.3): http → ws, https → wss, "/ws" appended to the path;
// the query and fragment are dropped.
func LookupdWSURL(addr string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(addr))
	if err != nil {
		return "", fmt.Errorf("lookupd address %q: expected an http:// or https:// URL (%v)", addr, err)
	}
	switch strings.ToLower(u.Scheme) {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("lookupd address %q: expected an http:// or https:// URL", addr)
	}
	if u.Host == "" {
		return "", fmt.Errorf("lookupd address %q: no host", addr)
	}
	u.Host = strings.ToLower(u.Host)
	u.Path = strings.TrimRight(u.Path, "/") + "/ws"
	u.RawPath, u.RawQuery, u.Fragment, u.User = "", "", "", nil
	return u.String(), nil
}
