package gaffer

// A SockJS 0.3.3 server (the protocol of the sockjs-protocol 0.3.3 test
// suite), for the control channel /channel and lookupd's /lookup, so that
// the browser library sockjs-client works over its websocket,
// xhr-streaming, xhr-polling and eventsource transports.
//
// Routes under a prefix P:
//
//	P, P/                         GET: "Welcome to SockJS!\n"
//	P/info                        GET: {"websocket", "cookie_needed", "origins", "entropy"}
//	P/<server>/<session>/websocket      framed websocket (o, h, a[...], c[code,"reason"])
//	P/<server>/<session>/xhr            POST: polling receiver, "o\n", "a[...]\n"…
//	P/<server>/<session>/xhr_send       POST: a JSON array of strings; 204
//	P/<server>/<session>/xhr_streaming  POST: 2 KiB "h" prelude, then frames
//	P/<server>/<session>/eventsource    GET: "\r\n" prelude, then "data: <frame>\r\n\r\n"
//
// The iframe, htmlfile and jsonp transports (for browsers older than any
// that gafferd supports) are not served: they answer 404, and clients fall
// back to the transports above. P/websocket (the raw websocket) is left to
// the caller, who registers it as a more specific route.
//
// Every HTTP session has at most one receiving request at a time (another
// one gets c[2010,"Another connection still open"]); a session without a
// receiving request for DisconnectDelay is closed; a receiving request
// that the client aborts closes its session (c[1002,"Connection
// interrupted"]); a streaming response ends after ResponseLimit bytes, or
// after a minute (the keepalive's idle + wait), and the client opens the
// next one. A heartbeat frame goes out every Heartbeat on open receivers;
// the websocket transport also pings a silent client and drops it when it
// does not answer (ws_keepalive.go), which closes its session. Messages queued for a client that does not
// come back for them are bounded (MaxQueuedBytes): past it the session is
// closed with 1008, so a slow or vanished browser never makes the server
// grow. HTTP sessions are bound to the client that opened them by a
// token cookie (sjCookie): a request of the session without it is refused.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// SockJSSession is one SockJS session as the application sees it. Its
// methods are safe for concurrent use.
type SockJSSession interface {
	// ID is the session id the client chose.
	ID() string
	// Request is the request that opened the session (its context is
	// never cancelled: it carries the values, such as the caller's key).
	Request() *http.Request
	// Recv returns the next message from the client, or io.EOF once the
	// session is closed.
	Recv() (string, error)
	// Send queues a message for the client; it fails once the session is
	// closed.
	Send(msg string) error
	// Close ends the session: the client gets c[code,"reason"].
	Close(code int, reason string) error
	// Done is closed when the session is closed.
	Done() <-chan struct{}
}

// SockJSOptions tunes a SockJS server. The zero value is the protocol's
// defaults.
type SockJSOptions struct {
	Heartbeat       time.Duration // heartbeat frame period (25 s)
	DisconnectDelay time.Duration // a session without receiver is closed after this (5 s)
	ResponseLimit   int           // bytes after which a streaming response ends (128 KiB)
	CookieNeeded    bool          // info says cookie_needed and JSESSIONID is set
	NoWebSocket     bool          // turn the websocket transport off
	// CheckOrigin accepts a request's Origin (websocket upgrades and
	// CORS); nil is WSSameOrigin. A refused Origin gets 403; an accepted
	// one is echoed with Access-Control-Allow-Credentials: true.
	CheckOrigin    func(*http.Request) bool
	MaxSessions    int   // open sessions at once (1000); more get 503
	MaxQueuedBytes int64 // unsent bytes per session, each way (8 MiB)
	MaxMessageSize int64 // largest xhr_send body or websocket message (1 MiB)
	Logger         *slog.Logger
	// keepalive pings the clients of the websocket transport (nil: the
	// default, wsDefaultKeepalive), on top of the protocol's heartbeat
	// frames, which a half-open client never fails to "receive".
	keepalive *wsKeepalive
}

// SockJS is a SockJS server under one prefix: an http.Handler.
type SockJS struct {
	prefix    string
	opts      SockJSOptions
	onSession func(SockJSSession)
	log       *slog.Logger

	mu       sync.Mutex
	sessions map[string]*sjSession   // HTTP sessions by id
	all      map[*sjSession]struct{} // HTTP and websocket sessions not yet released
	open     int                     // HTTP and websocket sessions alive
	wg       sync.WaitGroup          // onSession goroutines
}

// SockJSHandler returns a SockJS server with the default options that
// runs onSession, in a goroutine of its own, for every new session;
// the session is closed (c[3000,"Go away!"]) when onSession returns.
func SockJSHandler(prefix string, onSession func(SockJSSession)) *SockJS {
	return NewSockJS(prefix, SockJSOptions{}, onSession)
}

// NewSockJS is SockJSHandler with options.
func NewSockJS(prefix string, opts SockJSOptions, onSession func(SockJSSession)) *SockJS {
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 25 * time.Second
	}
	if opts.DisconnectDelay <= 0 {
		opts.DisconnectDelay = 5 * time.Second
	}
	if opts.ResponseLimit <= 0 {
		opts.ResponseLimit = 128 << 10
	}
	if opts.CheckOrigin == nil {
		opts.CheckOrigin = WSSameOrigin
	}
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = 1000
	}
	if opts.MaxQueuedBytes <= 0 {
		opts.MaxQueuedBytes = 8 << 20
	}
	if opts.MaxMessageSize <= 0 {
		opts.MaxMessageSize = 1 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.keepalive == nil {
		opts.keepalive = wsDefaultKeepalive()
	}
	return &SockJS{prefix: strings.TrimSuffix(prefix, "/"), opts: opts, onSession: onSession,
		log: opts.Logger, sessions: map[string]*sjSession{}, all: map[*sjSession]struct{}{}}
}

// Close closes every session and waits for their onSession to return.
func (h *SockJS) Close() {
	h.mu.Lock()
	var all []*sjSession
	for s := range h.all {
		all = append(all, s)
	}
	h.mu.Unlock()
	for _, s := range all {
		s.Close(1001, "Server going away")
	}
	h.wg.Wait()
}

// Sessions returns the number of open sessions.
func (h *SockJS) Sessions() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.open
}

// ServeHTTP routes a request under the prefix.
func (h *SockJS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, h.prefix)
	if !ok || (rest != "" && rest[0] != '/') {
		writeError(w, errNotFound("no SockJS route %s", r.URL.Path))
		return
	}
	if !h.cors(w, r) {
		return
	}
	switch rest {
	case "", "/":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			methodNotAllowed(w, "GET, HEAD")
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		w.Write([]byte("Welcome to SockJS!\n"))
		return
	case "/info":
		switch r.Method {
		case http.MethodGet:
			h.info(w)
		case http.MethodOptions:
			sjOptions(w, "OPTIONS, GET")
		default:
			methodNotAllowed(w, "OPTIONS, GET")
		}
		return
	}
	parts := strings.Split(rest[1:], "/")
	if len(parts) != 3 || !sjValidID(parts[0]) || !sjValidID(parts[1]) {
		writeError(w, errNotFound("no SockJS route %s", r.URL.Path))
		return
	}
	server, id, transport := parts[0], parts[1], parts[2]
	post := func(fn func()) {
		switch r.Method {
		case http.MethodPost:
			fn()
		case http.MethodOptions:
			sjOptions(w, "OPTIONS, POST")
		default:
			methodNotAllowed(w, "OPTIONS, POST")
		}
	}
	switch transport {
	case "websocket":
		if h.opts.NoWebSocket {
			writeError(w, errNotFound("the websocket transport is off"))
			return
		}
		h.websocket(w, r, id)
	case "xhr":
		post(func() { h.receive(w, r, server, id, sjXHR) })
	case "xhr_streaming":
		post(func() { h.receive(w, r, server, id, sjXHRStreaming) })
	case "xhr_send":
		post(func() { h.xhrSend(w, r, id) })
	case "eventsource":
		if r.Method != http.MethodGet {
			methodNotAllowed(w, "GET")
			return
		}
		h.receive(w, r, server, id, sjEventSource)
	default:
		// iframe, htmlfile, jsonp and jsonp_send are not served.
		writeError(w, errNotFound("SockJS transport %q is not served (use websocket, xhr-streaming, xhr-polling or eventsource)", transport))
	}
}

// sjValidID accepts a server or session id: non-empty, no dot, at most
// 128 bytes.
func sjValidID(s string) bool {
	return s != "" && len(s) <= 128 && !strings.Contains(s, ".")
}

// cors sets the CORS headers for an accepted Origin, refuses other
// origins with 403, and answers OPTIONS preflights of non-SockJS paths.
func (h *SockJS) cors(w http.ResponseWriter, r *http.Request) bool {
	hd := w.Header()
	origin := r.Header.Get("Origin")
	if origin != "" {
		if !h.opts.CheckOrigin(r) {
			writeError(w, Errorf(CodeForbidden, 403, "Origin %q is not allowed", origin))
			return false
		}
		hd.Set("Access-Control-Allow-Origin", origin)
		hd.Add("Vary", "Origin")
	} else {
		hd.Set("Access-Control-Allow-Origin", "*")
	}
	hd.Set("Access-Control-Allow-Credentials", "true")
	if rh := r.Header.Get("Access-Control-Request-Headers"); rh != "" {
		hd.Set("Access-Control-Allow-Headers", rh)
	}
	return true
}

// sjOptions answers a CORS preflight, cacheable for a year.
func sjOptions(w http.ResponseWriter, methods string) {
	hd := w.Header()
	hd.Set("Cache-Control", "public, max-age=31536000")
	hd.Set("Expires", time.Now().Add(365*24*time.Hour).UTC().Format(http.TimeFormat))
	hd.Set("Access-Control-Max-Age", "31536000")
	hd.Set("Access-Control-Allow-Methods", methods)
	w.WriteHeader(http.StatusNoContent)
}

func sjNoCache(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store, no-cache, must-revalidate, max-age=0")
}

func (h *SockJS) info(w http.ResponseWriter) {
	var b [4]byte
	rand.Read(b[:])
	sjNoCache(w)
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	js, _ := json.Marshal(map[string]any{"websocket": !h.opts.NoWebSocket, "cookie_needed": h.opts.CookieNeeded,
		"origins": []string{"*:*"}, "entropy": binary.BigEndian.Uint32(b[:])})
	w.Write(js)
}

// cookie sets JSESSIONID (echoing the client's) when cookies are needed.
func (h *SockJS) cookie(w http.ResponseWriter, r *http.Request) {
	if !h.opts.CookieNeeded {
		return
	}
	v := "dummy"
	if c, err := r.Cookie("JSESSIONID"); err == nil && c.Value != "" {
		v = c.Value
	}
	http.SetCookie(w, &http.Cookie{Name: "JSESSIONID", Value: v, Path: "/"})
}

// remoteHost is the client's address without the port.
func remoteHost(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

// newSession registers a session (HTTP sessions in the map) and starts
// the application on it. It returns nil when too many are open.
func (h *SockJS) newSession(id string, r *http.Request, inMap bool) *sjSession {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.open >= h.opts.MaxSessions {
		return nil
	}
	var tok [16]byte
	rand.Read(tok[:])
	s := &sjSession{h: h, id: id, token: hex.EncodeToString(tok[:]), req: r.WithContext(context.WithoutCancel(r.Context())), remote: remoteHost(r),
		inMap: inMap, wakeOut: make(chan struct{}, 1), wakeIn: make(chan struct{}, 1), inSpace: make(chan struct{}, 1),
		done: make(chan struct{})}
	h.open++
	h.all[s] = struct{}{}
	if inMap {
		h.sessions[id] = s
		s.timer = time.AfterFunc(h.opts.DisconnectDelay, s.expire)
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		if h.onSession != nil {
			h.onSession(s)
		}
		s.Close(3000, "Go away!")
	}()
	return s
}

// sjCookie is the cookie that binds an HTTP session to the client that
// opened it: a random token, set by the request that creates the session,
// scoped to the session's own path, and required on every later request
// of the session (receivers and xhr_send). The session id alone (which
// shows in URLs and logs) gives nothing: without the token, an xhr_send
// could otherwise inject messages, commands included, into a session that
// its client has authenticated.
const sjCookie = "gaffer_sockjs"

// setBindCookie sets the session's cookie on the response that creates
// it. Over TLS it is SameSite=None; Secure, so that configured cross-site
// origins keep working; otherwise SameSite=Lax (same-site pages, any port).
func (h *SockJS) setBindCookie(w http.ResponseWriter, r *http.Request, s *sjSession, server string) {
	c := &http.Cookie{Name: sjCookie, Value: s.token, Path: h.prefix + "/" + server + "/" + s.id, HttpOnly: true,
		SameSite: http.SameSiteLaxMode}
	if r.TLS != nil {
		c.Secure, c.SameSite = true, http.SameSiteNoneMode
	}
	http.SetCookie(w, c)
}

// ownedBy reports whether r carries the session's token.
func (s *sjSession) ownedBy(r *http.Request) bool {
	for _, c := range r.Cookies() {
		if c.Name == sjCookie && subtle.ConstantTimeCompare([]byte(c.Value), []byte(s.token)) == 1 {
			return true
		}
	}
	return false
}

// lookup finds an HTTP session. A session is visible only to the client
// that opened it: same address, and its token cookie (sjCookie); for
// another request lookup returns nil, true.
func (h *SockJS) lookup(id string, r *http.Request) (*sjSession, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.sessions[id]
	if !ok {
		return nil, false
	}
	if s.remote != remoteHost(r) || !s.ownedBy(r) {
		return nil, true
	}
	return s, true
}

// forget removes an HTTP session from the map.
func (h *SockJS) forget(s *sjSession) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sessions[s.id] == s {
		delete(h.sessions, s.id)
	}
}

// released counts a session that is closed and gone.
func (h *SockJS) released(s *sjSession) {
	h.mu.Lock()
	h.open--
	delete(h.all, s)
	h.mu.Unlock()
}

// sjBufPool holds the buffers "a" frames are encoded through.
var sjBufPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}

// sjCountWriter counts what goes through it.
type sjCountWriter struct {
	w io.Writer
	n int
}

func (c *sjCountWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += n
	return n, err
}

// sjKind is a receiving HTTP transport.
type sjKind int

const (
	sjXHR sjKind = iota
	sjXHRStreaming
	sjEventSource
)

// sjPrelude is what xhr-streaming sends first (2 KiB of 'h' and a
// newline), so that browsers start delivering the response.
var sjPrelude = strings.Repeat("h", 2048) + "\n"

// receive serves a receiving request: xhr (polling), xhr_streaming and
// eventsource.
func (h *SockJS) receive(w http.ResponseWriter, r *http.Request, server, id string, kind sjKind) {
	s, exists := h.lookup(id, r)
	if exists && s == nil {
		writeError(w, Errorf(CodeForbidden, 403, "SockJS session %q belongs to another client", id))
		return
	}
	isNew := false
	if s == nil {
		if s = h.newSession(id, r, true); s == nil {
			writeError(w, Errorf(CodeUnavailable, 503, "too many SockJS sessions"))
			return
		}
		isNew = true
	}
	hd := w.Header()
	sjNoCache(w)
	h.cookie(w, r)
	if isNew {
		h.setBindCookie(w, r, s, server)
	}
	if kind == sjEventSource {
		hd.Set("Content-Type", "text/event-stream; charset=UTF-8")
	} else {
		hd.Set("Content-Type", "application/javascript; charset=UTF-8")
	}
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(200)
	rc := http.NewResponseController(w)
	written := 0
	before, after := "", "\n"
	if kind == sjEventSource {
		before, after = "data: ", "\r\n\r\n"
	}
	write := func(frame string) error {
		p := before + frame + after
		rc.SetWriteDeadline(time.Now().Add(feedWriteTimeout))
		if _, err := io.WriteString(w, p); err != nil {
			return err
		}
		written += len(p)
		return rc.Flush()
	}
	// writeMsgs writes an "a" frame, encoded straight into the response
	// (a frame of a slow client's messages is not held a second time).
	writeMsgs := func(msgs []string) error {
		rc.SetWriteDeadline(time.Now().Add(feedWriteTimeout))
		bw := sjBufPool.Get().(*bufio.Writer)
		cw := &sjCountWriter{w: w}
		bw.Reset(cw)
		bw.WriteString(before)
		sjAppendArray(bw, msgs)
		bw.WriteString(after)
		err := bw.Flush()
		bw.Reset(nil)
		sjBufPool.Put(bw)
		written += cw.n
		if err != nil {
			return err
		}
		return rc.Flush()
	}
	switch kind {
	case sjXHRStreaming:
		io.WriteString(w, sjPrelude)
	case sjEventSource:
		io.WriteString(w, "\r\n")
	}
	rc.Flush()

	att := s.attach()
	if att == sjBusy {
		write(sjCloseFrame(2010, "Another connection still open"))
		return
	}
	// A new session always opens with "o", even when the application
	// has closed it already (the close frame follows, or comes with the
	// next poll).
	if isNew {
		if write("o") != nil {
			s.abort()
			return
		}
		if kind == sjXHR {
			s.detach()
			return
		}
	}
	if att == sjClosed {
		write(s.closeFrame())
		return
	}
	tick := time.NewTicker(h.opts.Heartbeat)
	defer tick.Stop()
	// A streaming response also ends after a while: a client that vanished
	// without a FIN never makes the small heartbeat writes fail, but it
	// does not come back for the next response, so its session expires
	// DisconnectDelay later (and its subscriptions with it).
	life := time.NewTimer(h.opts.keepalive.idle + h.opts.keepalive.wait)
	defer life.Stop()
	for {
		msgs, n, closed := s.take()
		if len(msgs) > 0 {
			err := writeMsgs(msgs)
			s.sent(n)
			if err != nil {
				s.abort()
				return
			}
			if kind == sjXHR || written >= h.opts.ResponseLimit {
				s.detach()
				return
			}
			continue
		}
		if closed {
			write(s.closeFrame())
			s.detach()
			return
		}
		select {
		case <-s.wakeOut:
		case <-tick.C:
			if write("h") != nil {
				s.abort()
				return
			}
			if kind == sjXHR {
				s.detach()
				return
			}
		case <-life.C:
			s.detach()
			return
		case <-r.Context().Done():
			s.abort()
			return
		}
	}
}

// xhrSend serves xhr_send: a JSON array of strings (or one string) for
// the session.
func (h *SockJS) xhrSend(w http.ResponseWriter, r *http.Request, id string) {
	s, _ := h.lookup(id, r)
	if s == nil {
		writeError(w, errNotFound("no SockJS session %q", id))
		return
	}
	sjNoCache(w)
	h.cookie(w, r)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxMessageSize))
	if err != nil {
		writeError(w, Errorf(CodeBadRequest, 413, "xhr_send: the body is larger than %d bytes", h.opts.MaxMessageSize))
		return
	}
	if len(body) == 0 {
		writeError(w, Errorf(CodeBadRequest, 500, "Payload expected."))
		return
	}
	msgs, err := sjDecode(body)
	if err != nil {
		writeError(w, Errorf(CodeBadRequest, 500, "Broken JSON encoding."))
		return
	}
	if err := s.deliver(r.Context(), msgs); err != nil {
		writeError(w, errNotFound("SockJS session %q is closed", id))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.WriteHeader(http.StatusNoContent)
}

// websocket serves the framed websocket transport: every connection is a
// session of its own.
func (h *SockJS) websocket(w http.ResponseWriter, r *http.Request, id string) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, "GET")
		return
	}
	if !wsHeaderHasToken(r.Header, "Upgrade", "websocket") {
		writeError(w, errBadRequest(`Can "Upgrade" only to "WebSocket".`))
		return
	}
	if !wsHeaderHasToken(r.Header, "Connection", "upgrade") {
		writeError(w, errBadRequest(`"Connection" must be "Upgrade".`))
		return
	}
	h.mu.Lock()
	full := h.open >= h.opts.MaxSessions
	h.mu.Unlock()
	if full {
		writeError(w, Errorf(CodeUnavailable, 503, "too many SockJS sessions"))
		return
	}
	ws, err := WSUpgrade(w, r, &WSOptions{CheckOrigin: h.opts.CheckOrigin, MaxMessageSize: h.opts.MaxMessageSize, keepalive: h.opts.keepalive})
	if err != nil {
		return
	}
	s := h.newSession(id, r, false)
	if s == nil {
		ws.Close(WSCloseInternal, "too many sessions")
		return
	}
	s.attach()
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		if ws.WriteText("o") != nil {
			s.abort()
			ws.CloseNow()
			return
		}
		tick := time.NewTicker(h.opts.Heartbeat)
		defer tick.Stop()
		for {
			msgs, n, closed := s.take()
			if len(msgs) > 0 {
				err := ws.WriteText(sjArrayFrame(msgs))
				s.sent(n)
				if err != nil {
					s.abort()
					ws.CloseNow()
					return
				}
				continue
			}
			if closed {
				ws.WriteText(s.closeFrame())
				ws.Close(WSCloseNormal, "")
				return
			}
			select {
			case <-s.wakeOut:
			case <-tick.C:
				if ws.WriteText("h") != nil {
					s.abort()
					ws.CloseNow()
					return
				}
			case <-ws.Done():
				s.abort()
				return
			}
		}
	}()
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			s.abort()
			break
		}
		if len(data) == 0 {
			continue
		}
		msgs, err := sjDecode(data)
		if err != nil {
			// Broken JSON: the connection ends abruptly.
			s.abort()
			ws.CloseNow()
			break
		}
		if s.deliver(context.Background(), msgs) != nil {
			break
		}
	}
	<-writerDone
	s.detach()
}
