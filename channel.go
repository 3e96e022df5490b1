package gaffer

// The control channel (reference §3): one JSON object per websocket text
// message, at /channel/websocket (and over SockJS, sockjs_channel.go).
//
// Each connection has one reader (the handler's goroutine, which also runs
// the commands, one at a time, in order), one writer goroutine fed by a
// bounded queue (chWriter), and one forwarder goroutine per subscribed
// topic. Forwarders of events and stats only ever queue messages without
// waiting: a client that does not keep up overflows its queue and is
// disconnected (close 1008 "client too slow"); the STREAM forwarders read
// the ring at the client's pace (chstream.go). Neither the manager nor a
// process ever waits for a client. When the connection ends every
// subscription is removed and every forwarder has returned before the
// handler returns.
//
// This file holds the connection and the dispatch of messages;
// channel_auth.go the AUTH handshake, channel_writer.go the writer,
// channel_topics.go the topic parser, channel_forward.go the forwarders,
// channelcmd.go the commands.

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The time a client has to authenticate, and the most topics it may
// subscribe to. Variables so that tests can shrink them.
var (
	chAuthTimeout = 30 * time.Second
	// chMaxTopics bounds the distinct topics of one connection: each has
	// a forwarder goroutine and a bus or stream subscription. A SUB past
	// it is refused with "too_many_subscriptions".
	chMaxTopics = 100
)

// E2-shaped reasons, JSON-encoded as the original sends them (reference
// §3.2, §3.4).
const (
	chReasonUnauthorized = `{"error": "unauthorized", "errno": 401}`
	chReasonForbidden    = `{"error": "forbidden", "errno": 403}`
	chReasonNotFound     = `{"error": "not_found", "errno": 404}`
)

// chTransport is what the control protocol runs over: a websocket
// (*WSConn, /channel/websocket) or a SockJS session (sjChannelConn, the
// other transports under /channel/).
type chTransport interface {
	ReadMessage() (WSOpcode, []byte, error)
	WriteMessage(op WSOpcode, data []byte) error
	WriteJSON(v any) error
	Close(code int, reason string) error
	CloseNow() error
	Request() *http.Request
}

// chLogger returns the server's logger, or the default one.
func (s *Server) chLogger() *slog.Logger {
	if s.log != nil {
		return s.log
	}
	return slog.Default()
}

// chConn is one control channel connection.
type chConn struct {
	s    *Server
	m    *Manager
	ws   chTransport
	w    *chWriter
	key  *Key
	log  *slog.Logger
	subs map[string]*chSub // by normalised topic; only the reader touches it
	wg   sync.WaitGroup    // forwarders
	done chan struct{}     // closed when the connection ends
}

// chSub is one subscribed topic: its reference count and how to stop its
// forwarder.
type chSub struct {
	count int
	quit  chan struct{}
}

// serveControlChannel runs the control protocol of reference §3 on an
// upgraded websocket.
func (s *Server) serveControlChannel(w http.ResponseWriter, r *http.Request) {
	ws, err := WSUpgrade(w, r, &WSOptions{CheckOrigin: s.checkOrigin, keepalive: s.wsKeepalive})
	if err != nil {
		return
	}
	s.runControlChannel(ws, r)
}

// runControlChannel runs the control protocol on one connection until it
// ends; r is the request that opened it (for its key).
func (s *Server) runControlChannel(ws chTransport, r *http.Request) {
	c := &chConn{s: s, m: s.m, ws: ws, log: s.chLogger(), subs: map[string]*chSub{}, done: make(chan struct{})}
	key, needAuth := s.chInitialKey(r)
	c.key = key
	if needAuth && !c.authenticate() {
		return
	}
	c.w = chNewWriter(ws, c.log)
	defer c.cleanup()
	// Server.Shutdown cancels the request's context (a SockJS session's
	// never is: SockJS.Close ends those).
	stop := context.AfterFunc(r.Context(), func() { c.w.closeAfter(WSCloseGoingAway, "server shutting down") })
	defer stop()
	if needAuth {
		c.w.sendJSON(map[string]any{"event": "gaffer:auth_success"})
	}
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		c.handle(data)
	}
}

// cleanup stops every forwarder, waits for them, and closes the socket.
func (c *chConn) cleanup() {
	close(c.done)
	for t, sub := range c.subs {
		close(sub.quit)
		delete(c.subs, t)
	}
	c.wg.Wait()
	c.w.stop()
	c.ws.Close(WSCloseNormal, "")
	<-c.w.done
}

func (c *chConn) invalid(reason string) {
	c.w.sendJSON(map[string]any{"event": "gaffer:error", "data": map[string]any{"error": "invalid_msg", "reason": reason}})
}

// handle processes one client message (reference §3.3).
func (c *chConn) handle(data []byte) {
	if bytes.HasPrefix(data, []byte("AUTH:")) {
		c.lateAuth(string(data))
		return
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		c.invalid("invalid_json")
		return
	}
	msg, ok := v.(map[string]any)
	if !ok {
		c.invalid("invalid_json")
		return
	}
	event, _ := msg["event"].(string)
	if event == "" {
		c.invalid("event_missing")
		return
	}
	event = strings.ToUpper(event)
	if event == "NOP" {
		return
	}
	body, ok := msg["data"].(map[string]any)
	if !ok {
		c.invalid("data_missing")
		return
	}
	switch event {
	case "SUB", "UNSUB":
		topic, _ := body["topic"].(string)
		if topic == "" {
			c.invalid("topic_missing")
			return
		}
		if event == "SUB" {
			c.subscribe(topic)
		} else {
			c.unsubscribe(topic)
		}
	case "CMD":
		name, _ := body["name"].(string)
		if name == "" {
			c.invalid("cmd_name_mssing") // sic, as the original
			return
		}
		id, ok := body["identity"]
		if s, isStr := id.(string); !ok || id == nil || (isStr && s == "") {
			c.invalid("cmd_identity_missing")
			return
		}
		args, _ := body["args"].([]any)
		kwargs, _ := body["kwargs"].(map[string]any)
		run := func() {
			result, err := c.runCommand(name, args, kwargs)
			if err != nil {
				c.w.sendJSON(map[string]any{"event": "gaffer:command_error", "data": map[string]any{"id": id,
					"error": map[string]any{"errno": err.Errno, "reason": err.Code, "message": err.Reason}}})
				return
			}
			c.w.sendJSON(map[string]any{"event": "gaffer:command_success", "data": map[string]any{"id": id, "result": result}})
		}
		if name == "restart" {
			go run() // a rolling restart waits for readiness: the channel goes on meanwhile
			return
		}
		run()
	default:
		c.invalid("unknown_cmd")
	}
}

func (c *chConn) subError(topic, reason string) {
	c.w.sendJSON(map[string]any{"event": "gaffer:subscription_error", "topic": topic, "data": map[string]any{"reason": reason}})
}

func (c *chConn) subSuccess(topic string) {
	c.w.sendJSON(map[string]any{"event": "gaffer:subscription_success", "topic": topic})
}

func (c *chConn) subscribe(raw string) {
	t, ok := chParseTopic(raw)
	if !ok {
		c.subError(t.name, "invalid_topic")
		return
	}
	if sub, ok := c.subs[t.name]; ok {
		sub.count++
		c.subSuccess(t.name)
		return
	}
	if len(c.subs) >= chMaxTopics {
		c.subError(t.name, "too_many_subscriptions")
		return
	}
	quit := make(chan struct{})
	run, reason := c.prepare(t, quit)
	if reason != "" {
		c.subError(t.name, reason)
		return
	}
	c.subs[t.name] = &chSub{count: 1, quit: quit}
	c.subSuccess(t.name) // queued before any delivery of the topic
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		run()
	}()
}

func (c *chConn) unsubscribe(raw string) {
	t, ok := chParseTopic(raw)
	if !ok {
		c.subError(t.name, "invalid_topic")
		return
	}
	sub, ok := c.subs[t.name]
	if !ok {
		c.subError(t.name, "not_subscribed")
		return
	}
	sub.count--
	if sub.count <= 0 {
		delete(c.subs, t.name)
		close(sub.quit)
	}
	c.subSuccess(t.name)
}
