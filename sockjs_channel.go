package gaffer

// The control channel (channel.go) over SockJS: /channel/<server>/<session>/…

import (
	"encoding/json"
	"net/http"
)

// sjChannelConn runs the control channel protocol over a SockJS session
// (it is a chTransport).
type sjChannelConn struct{ s SockJSSession }

func (c sjChannelConn) ReadMessage() (WSOpcode, []byte, error) {
	m, err := c.s.Recv()
	if err != nil {
		return 0, nil, err
	}
	return WSText, []byte(m), nil
}

// sjChannelWindow is about the most bytes a control channel lets queue up
// in its SockJS session (waiting for the client, or being written to it)
// while few stream readers are open; with many, the window is their share
// of the readers' budget (memBudget.share), down to 4 KiB.
const sjChannelWindow = 256 << 10

// WriteMessage queues data once the session has room (the window above),
// waiting until it drains or closes: the channel's writer then waits as
// it does on a websocket whose client is slow, so that the flow control
// of the channel (a bounded writer queue, the STREAM relays that read the
// ring at the client's pace) covers SockJS too, instead of the session
// piling up what the client has not taken.
func (c sjChannelConn) WriteMessage(op WSOpcode, data []byte) error {
	if s, ok := c.s.(*sjSession); ok {
		if err := s.waitRoom(int64(subscriberMemory.share(sjChannelWindow))); err != nil {
			return err
		}
	}
	return c.s.Send(string(data))
}

// room is closed once the session has room for more (chWindowed).
func (c sjChannelConn) room() <-chan struct{} {
	if s, ok := c.s.(*sjSession); ok {
		return s.roomChan(int64(subscriberMemory.share(sjChannelWindow)))
	}
	return closedChan
}

func (c sjChannelConn) WriteJSON(v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.WriteMessage(WSText, data)
}

func (c sjChannelConn) Close(code int, reason string) error { return c.s.Close(code, reason) }
func (c sjChannelConn) CloseNow() error                     { return c.s.Close(WSCloseNormal, "") }
func (c sjChannelConn) Request() *http.Request              { return c.s.Request() }

// SockJSChannel returns the SockJS server of the control channel,
// /channel/… (reference §3.1): the same protocol as /channel/websocket,
// over the SockJS transports. Origins are checked as for the API
// (same-origin or [gaffer] cors_origins).
func (s *Server) SockJSChannel() *SockJS {
	return NewSockJS("/channel", SockJSOptions{CookieNeeded: true, CheckOrigin: s.checkOrigin, Logger: s.chLogger(), keepalive: s.wsKeepalive},
		func(sess SockJSSession) {
			if ss, ok := sess.(*sjSession); ok {
				ss.countIn(subscriberMemory)
			}
			s.runControlChannel(sjChannelConn{sess}, sess.Request())
		})
}

// sockjsRoutes registers the SockJS control channel at /channel and
// /channel/…; the raw /channel/websocket route, more specific, keeps
// serving the plain websocket.
func (s *Server) sockjsRoutes() {
	h := s.SockJSChannel()
	s.sockjs = h
	s.mux.Handle("/channel", h)
	s.mux.Handle("/channel/", h)
}

// LookupdSockJS returns the SockJS server of lookupd's event feed,
// /lookup/… (reference §11.5): every registry event from the session's
// start on, one JSON message each; a message from the client closes the
// session (1008), as it drops the raw feed. Wire it next to the raw
// /lookup/websocket with l.Handle("/lookup", h) and l.Handle("/lookup/", h).
func LookupdSockJS(l *Lookupd) *SockJS {
	check := func(r *http.Request) bool { return WSSameOrigin(r) || l.originAllowed(r.Header.Get("Origin")) }
	return NewSockJS("/lookup", SockJSOptions{CheckOrigin: check, MaxMessageSize: 4096, Logger: l.log, keepalive: l.opts.wsKeepalive}, func(s SockJSSession) {
		events, cancel := l.Subscribe()
		defer cancel()
		go func() {
			if _, err := s.Recv(); err == nil {
				s.Close(WSClosePolicy, "the lookup feed accepts no message")
			}
		}()
		for {
			select {
			case <-s.Done():
				return
			case ev, ok := <-events:
				if !ok {
					s.Close(WSCloseGoingAway, "the lookup feed ended (lookupd closing, or this client fell behind)")
					return
				}
				data, err := json.Marshal(ev)
				if err != nil || s.Send(string(data)) != nil {
					return
				}
			}
		}
	})
}
