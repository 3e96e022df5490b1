package gaffer

// Websocket server side: the opening handshake (RFC 6455 §4.2) and origin
// checks.

import (
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// wsGUID is the fixed suffix of the accept key computation (RFC 6455 §1.3).
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// wsHandshakeTimeout bounds the write of the 101 response.
const wsHandshakeTimeout = 10 * time.Second

// WSOptions configures an upgrade. The zero value (or nil) is usable.
type WSOptions struct {
	// MaxMessageSize is the largest message accepted, after reassembly
	// (default 1 MiB); a larger one fails the connection with 1009.
	MaxMessageSize int64
	// CheckOrigin decides whether the request's Origin is allowed; nil
	// means WSSameOrigin. A refused request gets 403.
	CheckOrigin func(r *http.Request) bool
	// Subprotocols are the subprotocols the server speaks, in order of
	// preference: the first one the client also offers is chosen.
	Subprotocols []string
	// keepalive, when set, pings a silent client and drops one that does
	// not answer (ws_keepalive.go). The handler must keep reading.
	keepalive *wsKeepalive
}

// IsWebSocketUpgrade reports whether r asks for a websocket upgrade: its
// Connection header has the "upgrade" token and its Upgrade header the
// "websocket" token (case-insensitively). The method and the other headers
// are checked by WSUpgrade.
func IsWebSocketUpgrade(r *http.Request) bool {
	return wsHeaderHasToken(r.Header, "Connection", "upgrade") &&
		wsHeaderHasToken(r.Header, "Upgrade", "websocket")
}

// WSSameOrigin is the default origin check: a request without an Origin
// header (a non-browser client) is allowed; otherwise the Origin's
// host[:port] must equal r.Host, case-insensitively.
func WSSameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

// WSUpgrade answers the websocket opening handshake and hijacks the
// connection. It requires GET (else 405), HTTP/1.1 or later, a Connection
// header with the "upgrade" token and an Upgrade header with "websocket"
// (else 400), Sec-WebSocket-Version 13 (else 426 with
// Sec-WebSocket-Version: 13), a Sec-WebSocket-Key that is 16 bytes in
// base64 (else 400) and an Origin accepted by opt.CheckOrigin (else 403).
// On failure it writes the JSON error response itself and returns the
// *Error. Headers already set on w (cookies…) are sent with the 101
// response. No extension is negotiated.
func WSUpgrade(w http.ResponseWriter, r *http.Request, opt *WSOptions) (*WSConn, error) {
	if opt == nil {
		opt = &WSOptions{}
	}
	refuse := func(e *Error) (*WSConn, error) {
		writeError(w, e)
		return nil, e
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		return refuse(Errorf(CodeMethodNotAllow, http.StatusMethodNotAllowed, "a websocket upgrade must use GET, not %s", r.Method))
	}
	if !r.ProtoAtLeast(1, 1) || r.ProtoMajor != 1 {
		return refuse(errBadRequest("a websocket upgrade needs HTTP/1.1, not %s", r.Proto))
	}
	if !wsHeaderHasToken(r.Header, "Connection", "upgrade") {
		return refuse(errBadRequest(`a websocket upgrade needs a Connection header with the "upgrade" token`))
	}
	if !wsHeaderHasToken(r.Header, "Upgrade", "websocket") {
		return refuse(errBadRequest(`a websocket upgrade needs "Upgrade: websocket"`))
	}
	if v := r.Header.Values("Sec-Websocket-Version"); len(v) != 1 || strings.TrimSpace(v[0]) != "13" {
		w.Header().Set("Sec-WebSocket-Version", "13")
		return refuse(Errorf(CodeBadRequest, http.StatusUpgradeRequired, "unsupported websocket version %q; only 13 is spoken", strings.Join(v, ", ")))
	}
	keys := r.Header.Values("Sec-Websocket-Key")
	if len(keys) != 1 {
		return refuse(errBadRequest("a websocket upgrade needs exactly one Sec-WebSocket-Key header"))
	}
	key := strings.TrimSpace(keys[0])
	if raw, err := base64.StdEncoding.DecodeString(key); err != nil || len(raw) != 16 {
		return refuse(errBadRequest("Sec-WebSocket-Key %q is not 16 bytes in base64", key))
	}
	check := opt.CheckOrigin
	if check == nil {
		check = WSSameOrigin
	}
	if !check(r) {
		return refuse(Errorf(CodeForbidden, http.StatusForbidden, "websocket origin %q is not allowed", r.Header.Get("Origin")))
	}
	proto := wsChooseSubprotocol(opt.Subprotocols, r.Header)

	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return refuse(Errorf(CodeInternal, http.StatusInternalServerError, "cannot take over the connection for a websocket: %v", err))
	}
	// Bytes the client sent after its request stay buffered in brw.Reader,
	// which the connection keeps reading from.
	conn.SetDeadline(time.Time{})
	bw := brw.Writer
	bw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ")
	bw.WriteString(wsAcceptKey(key))
	bw.WriteString("\r\n")
	if proto != "" {
		bw.WriteString("Sec-WebSocket-Protocol: " + proto + "\r\n")
	}
	w.Header().WriteSubset(bw, wsOwnHeaders)
	bw.WriteString("\r\n")
	conn.SetWriteDeadline(time.Now().Add(wsHandshakeTimeout))
	if err := bw.Flush(); err != nil {
		conn.Close()
		return nil, Errorf(CodeInternal, http.StatusInternalServerError, "cannot send the websocket handshake: %v", err)
	}
	conn.SetWriteDeadline(time.Time{})
	c := wsNewConn(conn, brw.Reader, bw, true, opt.MaxMessageSize)
	c.req = r
	c.subprotocol = proto
	if opt.keepalive != nil {
		c.startKeepalive(*opt.keepalive)
	}
	return c, nil
}

// wsOwnHeaders are the response headers WSUpgrade writes itself (or that
// make no sense on a 101), left out of the caller's headers.
var wsOwnHeaders = map[string]bool{
	"Upgrade":                  true,
	"Connection":               true,
	"Sec-Websocket-Accept":     true,
	"Sec-Websocket-Protocol":   true,
	"Sec-Websocket-Extensions": true,
	"Content-Length":           true,
	"Content-Type":             true,
	"Transfer-Encoding":        true,
}

// wsAcceptKey computes Sec-WebSocket-Accept for a Sec-WebSocket-Key.
func wsAcceptKey(key string) string {
	sum := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// wsHeaderHasToken reports whether one of the comma-separated values of
// header name is token, case-insensitively.
func wsHeaderHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// wsChooseSubprotocol returns the first of ours that the client offers.
func wsChooseSubprotocol(ours []string, h http.Header) string {
	for _, p := range ours {
		for _, v := range h.Values("Sec-Websocket-Protocol") {
			for t := range strings.SplitSeq(v, ",") {
				if strings.TrimSpace(t) == p { // subprotocol names are case-sensitive
					return p
				}
			}
		}
	}
	return ""
}
