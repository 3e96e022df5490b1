package gaffer

// The gafferd side of lookupd (reference §11.3, with its Recommended
// behaviours): one connection per lookupd, IDENTIFY and a full
// re-announcement on every (re)connect, the manager's events mirrored,
// PING every interval, error replies logged, reconnection with exponential
// back-off and jitter.

import (
	"context"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
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

// Reconnection back-off bounds of the registrar.
const (
	lkBackoffMin  = 100 * time.Millisecond
	lkBackoffMax  = 30 * time.Second
	lkDialTimeout = 10 * time.Second
	lkMaxPending  = 4096
	// lkMinPingInterval bounds the interval a lookupd may ask for.
	lkMinPingInterval = 10 * time.Millisecond
)

// LookupdRegistrar registers a gafferd with lookupd servers: it is an App
// of the Daemon. Every lookupd address gets its own connection; there is no
// primary. Set PingInterval before Start to change it.
type LookupdRegistrar struct {
	// PingInterval is how often a PING is sent (default 15 s); a lookupd
	// that answers nothing for three intervals is reconnected.
	PingInterval time.Duration

	addrs   []string
	origin  string
	name    string
	tlsConf *tls.Config
	nodeKey string
	log     *slog.Logger

	// lkForward, when set (tests), replaces mirror.
	lkForward func(c *lkConn, ev Event) error

	mu     sync.Mutex
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewLookupdRegistrar returns a registrar for the lookupd HTTP URLs addrs
// (duplicates are ignored). origin is the URL announced to lookupd (""
// derives "http[s]://<hostname>:<port>" from the daemon's first TCP
// endpoint); name is the node name ("" means the hostname). tlsConf
// configures wss:// connections (nil: system roots); nodeKey, when not
// empty, is the lookupds' node key ([gaffer] lookupd_key), sent in
// IDENTIFY.
func NewLookupdRegistrar(addrs []string, origin, name string, tlsConf *tls.Config, nodeKey string, logger *slog.Logger) *LookupdRegistrar {
	if logger == nil {
		logger = slog.Default()
	}
	return &LookupdRegistrar{PingInterval: DefaultLookupdPingInterval, addrs: append([]string(nil), addrs...),
		origin: strings.TrimSuffix(origin, "/"), name: name, tlsConf: tlsConf, nodeKey: nodeKey, log: logger}
}

// Start implements App: it derives the origin from d's listeners when none
// was given and starts registering d.Manager.
func (r *LookupdRegistrar) Start(ctx context.Context, d *Daemon) error {
	if r.origin == "" {
		origin, err := lkDefaultOrigin(d)
		if err != nil {
			return err
		}
		r.origin = origin
	}
	return r.StartManager(ctx, d.Manager)
}

// lkDefaultOrigin is "http[s]://<hostname>:<port>" of the first TCP
// endpoint the daemon listens on.
func lkDefaultOrigin(d *Daemon) (string, error) {
	eps := d.endpoints()
	for i, a := range d.Addrs() {
		ta, ok := a.(*net.TCPAddr)
		if !ok {
			continue
		}
		scheme := "http"
		if i < len(eps) && eps[i].CertFile != "" {
			scheme = "https"
		}
		host, err := os.Hostname()
		if err != nil {
			return "", fmt.Errorf("lookupd: cannot name this node's origin (set broadcast_address): %w", err)
		}
		// A loopback listener is reached only through a loopback address:
		// a hostname that resolves elsewhere would announce an origin
		// nobody can use.
		if ta.IP.IsLoopback() && !lkResolvesToLoopback(host) {
			d.log.Info("lookupd: the hostname does not resolve to a loopback address and the API listens on loopback; announcing the address (set broadcast_address to choose)",
				"hostname", host, "address", ta.IP.String())
			host = ta.IP.String()
		}
		return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(ta.Port)), nil
	}
	return "", errors.New("lookupd: gafferd listens on no TCP address; set broadcast_address to register with lookupd")
}

// lkResolvesToLoopback reports whether host resolves (within 2 s) to a
// loopback address.
func lkResolvesToLoopback(host string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if a.IP.IsLoopback() {
			return true
		}
	}
	return false
}

// lkAnnouncedHosts returns the host names this daemon announces to
// lookupd, which clients then use to reach it and which its own Host check
// must therefore accept: the broadcast address's host or, when a lookupd
// is configured without one, the hostname (lkDefaultOrigin).
func (d *Daemon) lkAnnouncedHosts() []string {
	origin := d.opts.Broadcast
	if origin == "" {
		origin = d.cfg.BroadcastAddress
	}
	if origin != "" {
		if u, err := url.Parse(origin); err == nil && u.Hostname() != "" {
			return []string{u.Hostname()}
		}
		return nil
	}
	if len(d.opts.LookupdAddrs) == 0 && len(d.cfg.LookupdAddresses) == 0 {
		return nil
	}
	if h, err := os.Hostname(); err == nil {
		return []string{h}
	}
	return nil
}

// StartManager starts registering m with every lookupd; it is Start for
// programs that embed a Manager without a Daemon (the origin must then be
// given). The registration runs until Stop or until ctx ends.
func (r *LookupdRegistrar) StartManager(ctx context.Context, m *Manager) error {
	if r.origin == "" {
		return errors.New("lookupd: no origin to announce")
	}
	if !strings.HasPrefix(r.origin, "http://") && !strings.HasPrefix(r.origin, "https://") {
		return fmt.Errorf("lookupd: broadcast address %q must start with http:// or https://", r.origin)
	}
	if r.name == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("lookupd: cannot name this node: %w", err)
		}
		r.name = h
	}
	if r.PingInterval <= 0 {
		r.PingInterval = DefaultLookupdPingInterval
	}
	var urls []string
	seen := map[string]bool{}
	for _, a := range r.addrs {
		u, err := LookupdWSURL(a)
		if err != nil {
			return err
		}
		if !seen[u] {
			seen[u] = true
			urls = append(urls, u)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel != nil {
		return errors.New("lookupd: registrar already started")
	}
	ctx, r.cancel = context.WithCancel(ctx)
	for _, u := range urls {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.run(ctx, m, u)
		}()
	}
	r.log.Info("lookupd: registering", "lookupds", urls, "name", r.name, "origin", r.origin)
	return nil
}

// Stop implements App: it closes every lookupd connection (the lookupds
// then drop this node) and waits for the goroutines to end.
func (r *LookupdRegistrar) Stop() error {
	r.mu.Lock()
	cancel := r.cancel
	r.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	r.wg.Wait()
	return nil
}

// Restart implements App. The connections are kept: they already mirror
// every change of the manager, and the address list is fixed at start.
func (r *LookupdRegistrar) Restart() error { return nil }

// run keeps one lookupd connection alive until ctx ends.
func (r *LookupdRegistrar) run(ctx context.Context, m *Manager, wsURL string) {
	backoff := lkBackoffMin
	for ctx.Err() == nil {
		began := time.Now()
		identified, err := r.sessionSafe(ctx, m, wsURL)
		if ctx.Err() != nil {
			return
		}
		// A connection that worked for a while earns a quick reconnect; one
		// that is accepted and dropped at once keeps backing off.
		if identified && time.Since(began) > time.Second {
			backoff = lkBackoffMin
		}
		// Jitter: wait between half and all of the back-off, so that nodes
		// restarted together do not reconnect in lockstep.
		wait := backoff/2 + rand.N(backoff/2+1)
		var refused *lkRefusedError
		if errors.As(err, &refused) {
			r.log.Error("lookupd: this node was refused; retrying", "lookupd", wsURL, "err", err, "in", wait.Round(time.Millisecond))
		} else {
			r.log.Warn("lookupd: connection lost; reconnecting", "lookupd", wsURL, "err", err, "in", wait.Round(time.Millisecond))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, lkBackoffMax)
	}
}

// lkConn is one registration connection: the writer side (session) and
// the reader of replies share the pending msgids.
type lkConn struct {
	conn       *WSConn
	log        *slog.Logger
	url        string
	mu         sync.Mutex
	pending    map[string]string // msgid → "TYPE job pid", for the logs
	identifyID string
	identified bool
	// interval is the PING interval in force (nanoseconds): ours, or the
	// lookupd's when it asks for a shorter one in its IDENTIFY reply, which
	// is then also sent on shorter.
	interval atomic.Int64
	shorter  chan time.Duration
}

func lkMsgID() string {
	var b [16]byte
	crand.Read(b[:]) // never fails
	return hex.EncodeToString(b[:])
}

// send writes one message with a fresh msgid.
func (c *lkConn) send(typ string, fields ...any) error {
	msg := map[string]any{"type": typ}
	for i := 0; i+1 < len(fields); i += 2 {
		msg[fields[i].(string)] = fields[i+1]
	}
	id := lkMsgID()
	msg["msgid"] = id
	desc := typ
	if j, ok := msg["job_name"]; ok {
		desc += fmt.Sprintf(" %v", j)
	}
	if p, ok := msg["pid"]; ok {
		desc += fmt.Sprintf(" pid %v", p)
	}
	c.mu.Lock()
	if typ == "IDENTIFY" {
		c.identifyID = id
	}
	if len(c.pending) < lkMaxPending {
		c.pending[id] = desc
	}
	c.mu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(lkWriteTimeout))
	return c.conn.WriteJSON(msg)
}

// readReplies reads the lookupd's replies until the connection fails; it
// logs error replies and fails the connection when IDENTIFY is refused, or
// when nothing arrives for three PING intervals (every PING is answered).
func (c *lkConn) readReplies() error {
	for {
		timeout := 3 * time.Duration(c.interval.Load())
		c.conn.SetReadDeadline(time.Now().Add(timeout))
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return fmt.Errorf("no reply from lookupd for %s", timeout)
			}
			return err
		}
		var rep struct {
			OK     bool   `json:"ok"`
			MsgID  string `json:"msgid"`
			Errno  int    `json:"errno"`
			Reason string `json:"reason"`
			Detail string `json:"detail"`
			// PingInterval (seconds) comes with the IDENTIFY reply.
			PingInterval float64 `json:"ping_interval"`
		}
		if err := json.Unmarshal(data, &rep); err != nil {
			c.log.Warn("lookupd: unreadable reply", "lookupd", c.url, "err", err)
			continue
		}
		c.mu.Lock()
		desc, known := c.pending[rep.MsgID]
		delete(c.pending, rep.MsgID)
		isIdentify := rep.MsgID != "" && rep.MsgID == c.identifyID
		if isIdentify && rep.OK {
			c.identified = true
		}
		c.mu.Unlock()
		if isIdentify && rep.OK {
			c.log.Info("lookupd: registered", "lookupd", c.url)
		}
		if want := time.Duration(rep.PingInterval * float64(time.Second)); isIdentify && want > 0 {
			want = max(want, lkMinPingInterval)
			if want < time.Duration(c.interval.Load()) {
				c.interval.Store(int64(want))
				c.shorter <- want // buffered; sent at most once
			}
		}
		if rep.OK {
			continue
		}
		if !known {
			desc = "message " + rep.MsgID
		}
		if isIdentify {
			if rep.Errno == http.StatusUnauthorized || rep.Errno == http.StatusForbidden {
				return &lkRefusedError{errno: rep.Errno, reason: rep.Reason, detail: rep.Detail}
			}
			return fmt.Errorf("lookupd refused IDENTIFY: %d %s %s", rep.Errno, rep.Reason, rep.Detail)
		}
		// A job registered twice (the snapshot and an event racing) is
		// expected and harmless.
		level := slog.LevelWarn
		if rep.Errno == http.StatusConflict && strings.HasPrefix(desc, "REGISTER_JOB") {
			level = slog.LevelDebug
		}
		c.log.Log(context.Background(), level, "lookupd: error reply", "lookupd", c.url, "message", desc,
			"errno", rep.Errno, "reason", rep.Reason, "detail", rep.Detail)
	}
}

// lkRefusedError is a lookupd's refusal of this node's key (401 or 403,
// at the upgrade or in reply to IDENTIFY).
type lkRefusedError struct {
	errno          int
	reason, detail string
}

func (e *lkRefusedError) Error() string {
	return fmt.Sprintf("lookupd refused this node's key ([gaffer] lookupd_key): %d %s: %s", e.errno, e.reason, e.detail)
}

// sessionSafe is session; a panic is logged with its stack and ends the
// connection like an error, so that the next one announces everything
// again and the lookupd misses nothing.
func (r *LookupdRegistrar) sessionSafe(ctx context.Context, m *Manager, wsURL string) (identified bool, err error) {
	defer func() {
		if v := recover(); v != nil {
			logRecovered(r.log, "lookupd: the registration", v, "lookupd", wsURL)
			identified, err = false, fmt.Errorf("recovered from a panic: %v", v)
		}
	}()
	return r.session(ctx, m, wsURL)
}

// session runs one connection: dial, IDENTIFY, announce everything, then
// mirror events and PING until the connection or ctx ends. It reports
// whether the lookupd accepted IDENTIFY.
func (r *LookupdRegistrar) session(ctx context.Context, m *Manager, wsURL string) (bool, error) {
	dctx, cancel := context.WithTimeout(ctx, lkDialTimeout)
	conn, resp, err := WSDial(dctx, wsURL, nil, r.tlsConf)
	cancel()
	if err != nil {
		if resp != nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
			resp.Body.Close()
			return false, &lkRefusedError{errno: resp.StatusCode, reason: http.StatusText(resp.StatusCode), detail: err.Error()}
		}
		return false, err
	}
	defer conn.CloseNow()
	c := &lkConn{conn: conn, log: r.log, url: wsURL, pending: map[string]string{}, shorter: make(chan time.Duration, 1)}
	c.interval.Store(int64(r.PingInterval))
	readErr := make(chan error, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				logRecovered(r.log, "lookupd: reading replies", v, "lookupd", wsURL)
				readErr <- fmt.Errorf("recovered from a panic: %v", v)
			}
		}()
		readErr <- c.readReplies()
	}()
	identified := func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.identified
	}
	fail := func(err error) (bool, error) {
		conn.CloseNow()
		<-readErr
		return identified(), err
	}

	// Subscribe before the snapshot: a change made in between is both in
	// the snapshot and in the queue, and replaying it is harmless.
	sub := m.Events().Subscribe(0, "load", "unload", "spawn", "exit", "stop_process")
	defer sub.Unsubscribe()
	identify := []any{"name", r.name, "origin", r.origin, "version", LookupdProtocolVersion}
	if r.nodeKey != "" {
		identify = append(identify, "key", r.nodeKey)
	}
	if err := c.send("IDENTIFY", identify...); err != nil {
		return fail(err)
	}
	// Every running pid, one-off (commit) processes included, by job.
	byJob := map[string][]int{}
	all, _ := m.Pids("")
	for _, pid := range all {
		if p, ok := m.Process(pid); ok {
			byJob[p.Job] = append(byJob[p.Job], pid)
		}
	}
	jobs, _ := m.Jobs("")
	for _, job := range jobs {
		if err := c.send("REGISTER_JOB", "job_name", job); err != nil {
			return fail(err)
		}
		for _, pid := range byJob[job] {
			if err := c.send("REGISTER_PROCESS", "job_name", job, "pid", pid); err != nil {
				return fail(err)
			}
		}
	}
	r.log.Debug("lookupd: connected and announced", "lookupd", wsURL, "jobs", len(jobs))

	ping := time.NewTicker(r.PingInterval)
	defer ping.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			conn.Close(WSCloseGoingAway, "gafferd is stopping")
			<-readErr
			return identified(), nil
		case err := <-readErr:
			conn.CloseNow()
			return identified(), err
		case <-ping.C:
			err = c.send("PING")
		case d := <-c.shorter:
			r.log.Debug("lookupd: using the lookupd's ping interval", "lookupd", wsURL, "interval", d)
			ping.Reset(d)
		case ev, ok := <-sub.C:
			if !ok {
				// Cut off for falling behind: reconnect, which announces
				// everything again.
				return fail(errors.New("the manager's event queue overflowed; resynchronizing"))
			}
			if r.lkForward != nil {
				err = r.lkForward(c, ev)
			} else {
				err = r.mirror(c, ev)
			}
		}
		if err != nil {
			return fail(err)
		}
	}
}

// mirror sends the lookupd message matching one manager event.
func (r *LookupdRegistrar) mirror(c *lkConn, ev Event) error {
	name, _ := ev.Data["name"].(string)
	if name == "" {
		return nil
	}
	pid, _ := ev.Data["pid"].(int)
	switch ev.Name {
	case "load":
		return c.send("REGISTER_JOB", "job_name", name)
	case "unload":
		return c.send("UNREGISTER_JOB", "job_name", name)
	case "spawn":
		if pid > 0 {
			return c.send("REGISTER_PROCESS", "job_name", name, "pid", pid)
		}
	case "exit", "stop_process":
		if pid > 0 {
			return c.send("UNREGISTER_PROCESS", "job_name", name, "pid", pid)
		}
	}
	return nil
}

// LookupdClientTLS builds the TLS configuration of the lookupd
// connections from PEM files: a client certificate and key (both or
// neither) and a CA bundle that replaces the system roots. It returns nil
// when every name is empty.
func LookupdClientTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	if certFile == "" && keyFile == "" && caFile == "" {
		return nil, nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if certFile != "" || keyFile != "" {
		if certFile == "" || keyFile == "" {
			return nil, errors.New("lookupd TLS: a client certificate needs both the certificate file and the key file")
		}
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("lookupd TLS: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("lookupd TLS: CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("lookupd TLS: %s holds no PEM certificate", caFile)
		}
		conf.RootCAs = pool
	}
	return conf, nil
}

// lkApp builds the lookupd registrar of a daemon, or returns nil when no
// lookupd is configured. The command line's addresses replace the file's
// only when given (reference §9.1, Recommended); the broadcast address
// likewise. The TLS client files come from [lookup_ssl]; the node key from
// [gaffer] lookupd_key (or lookupd_key_file), else $GAFFERD_LOOKUPD_KEY.
func (d *Daemon) lkApp() (App, error) {
	addrs := d.opts.LookupdAddrs
	if len(addrs) == 0 {
		addrs = d.cfg.LookupdAddresses
	}
	if len(addrs) == 0 {
		return nil, nil
	}
	for _, a := range addrs {
		if _, err := LookupdWSURL(a); err != nil {
			return nil, err
		}
	}
	origin := d.opts.Broadcast
	if origin == "" {
		origin = d.cfg.BroadcastAddress
	}
	if origin != "" && !strings.HasPrefix(origin, "http://") && !strings.HasPrefix(origin, "https://") {
		return nil, fmt.Errorf("broadcast address %q must start with http:// or https://", origin)
	}
	pick := func(flag, file string) string {
		if flag != "" {
			return flag
		}
		return file
	}
	tlsConf, err := LookupdClientTLS(pick(d.opts.LookupdCertFile, d.cfg.LookupdCertFile),
		pick(d.opts.LookupdKeyFile, d.cfg.LookupdKeyFile), pick(d.opts.LookupdCAFile, d.cfg.LookupdCAFile))
	if err != nil {
		return nil, err
	}
	key := d.cfg.LookupdKey
	if key == "" {
		key = strings.TrimSpace(os.Getenv("GAFFERD_LOOKUPD_KEY"))
	}
	return NewLookupdRegistrar(addrs, origin, "", tlsConf, key, d.log), nil
}

// lookupdKey reads [gaffer] lookupd_key or lookupd_key_file (relative to
// the config's directory; its first line) into Config.LookupdKey.
func (l *cfgLoader) lookupdKey(k INIKey, errf func(string, ...any) error) error {
	c := l.cfg
	if c.LookupdKey != "" {
		return errf("the lookupd node key is already set (use one of lookupd_key and lookupd_key_file)")
	}
	key, src := k.Value, "the value"
	if k.Name == "lookupd_key_file" {
		data, err := os.ReadFile(l.path(k.Value))
		if err != nil {
			return errf("%v", err)
		}
		key, _, _ = strings.Cut(string(data), "\n")
		src = "the first line of " + l.path(k.Value)
	}
	var ok bool
	if c.LookupdKey, ok = ParseAPIKeyHeader(key); !ok {
		return errf("%s is not a usable key (1 to 256 bytes, no spaces or control characters)", src)
	}
	return nil
}
