package gaffer

// The control channel's authentication (reference §3.2): the key a
// connection runs with, the in-band AUTH:<key> handshake, and AUTH
// messages after it.

import (
	"net/http"
	"strings"
	"time"
)

// chInitialKey returns the key a new websocket runs with, and whether the
// client must still authenticate in-band. Without require_key it is
// anonymousKey. Otherwise a key already established by the HTTP layer
// (X-Api-Key, a trusted unix socket) or a valid X-Api-Key header on the
// upgrade request is used.
func (s *Server) chInitialKey(r *http.Request) (*Key, bool) {
	if !s.requireKey {
		return anonymousKey, false
	}
	if k := KeyFrom(r.Context()); k != nil && k != anonymousKey && (k.Key != "" || k.IsAdmin()) {
		return k, false
	}
	if raw := r.Header.Get("X-Api-Key"); raw != "" {
		if k, ok := s.chLookupAuth("AUTH:" + raw); ok {
			return k, false
		}
	}
	return nil, true
}

// chLookupAuth checks an "AUTH:<key>" message against the key store.
func (s *Server) chLookupAuth(msg string) (*Key, bool) {
	key, ok := ParseChannelAuth(msg)
	if !ok || s.auth == nil {
		return nil, false
	}
	return s.auth.LookupKey(key)
}

// authenticate reads the first message, which must be AUTH:<key>; on
// failure it tells the client why (reference §3.2) and closes with 1008.
func (c *chConn) authenticate() bool {
	timer := time.AfterFunc(chAuthTimeout, func() { c.ws.Close(WSClosePolicy, "authentication timeout") })
	defer timer.Stop()
	_, data, err := c.ws.ReadMessage()
	if err != nil {
		c.ws.CloseNow()
		return false
	}
	msg := string(data)
	reason, refused := chReasonUnauthorized, Errorf(CodeUnauthorized, 401, "no AUTH message")
	if strings.HasPrefix(msg, "AUTH:") {
		if k, ok := c.s.chLookupAuth(msg); ok {
			c.key = k
			return true
		}
		reason, refused = chReasonForbidden, Errorf(CodeForbidden, 403, "unknown API key")
	}
	c.audit("AUTH", "", refused)
	c.ws.WriteJSON(map[string]any{"event": "gaffer:error", "data": map[string]any{"error": "AUTH_REQUIRED", "reason": reason}})
	c.ws.Close(WSClosePolicy, "authentication failed")
	return false
}

// lateAuth answers an AUTH message after the connection is set up: the
// key of a connection never changes, so only the same key (or any, when
// keys are not required) is acknowledged.
func (c *chConn) lateAuth(msg string) {
	if c.s.requireKey {
		k, ok := c.s.chLookupAuth(msg)
		if !ok || k.Key != c.key.Key {
			c.invalid("already_authenticated")
			return
		}
	}
	c.w.sendJSON(map[string]any{"event": "gaffer:auth_success"})
}
