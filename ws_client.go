package gaffer

// Websocket client side: WSDial and the client opening handshake (RFC 6455
// §4.1).

import (
	"bufio"
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ErrWSBadHandshake is wrapped by the error WSDial returns when the server
// answered the upgrade with anything but a valid 101 response.
var ErrWSBadHandshake = errors.New("websocket: bad handshake")

// wsClientBufferSize is the size of a client connection's read and write
// buffers.
const wsClientBufferSize = 16 << 10

// wsMaxErrorBody bounds how much of a refused handshake's body is kept.
const wsMaxErrorBody = 64 << 10

// WSDial opens a client websocket connection and returns it with the
// server's handshake response. URL forms:
//
//	ws://host[:port]/path?query     plain TCP (http:// is accepted too)
//	wss://host[:port]/path?query    TLS with tlsConf (nil: defaults; https:// too)
//	ws+unix:///path/to.sock:/path?query
//	                                a unix socket: the socket's path, then
//	                                ':' and the request path (default "/");
//	                                the Host header is "localhost"
//
// header holds extra request headers: Origin, Authorization,
// Sec-WebSocket-Protocol (the subprotocols offered), Host (overrides the
// URL's). User info in the URL becomes basic authentication. ctx bounds
// the dial and the handshake, not the connection's life. When the server
// refuses the upgrade, the error wraps ErrWSBadHandshake and the response
// is returned too, with (up to 64 KiB of) its body readable. The
// connection reads messages of up to 1 MiB (see SetMaxMessageSize).
func WSDial(ctx context.Context, rawURL string, header http.Header, tlsConf *tls.Config) (*WSConn, *http.Response, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, fmt.Errorf("websocket: bad URL: %w", err)
	}
	var network, addr, host, reqURI string
	useTLS := false
	switch strings.ToLower(u.Scheme) {
	case "ws", "http":
		network, addr, host, reqURI = "tcp", wsHostPort(u, "80"), u.Host, u.RequestURI()
	case "wss", "https":
		network, addr, host, reqURI = "tcp", wsHostPort(u, "443"), u.Host, u.RequestURI()
		useTLS = true
	case "ws+unix":
		sock, path, _ := strings.Cut(u.Path, ":")
		if path == "" {
			path = "/"
		}
		if u.RawQuery != "" {
			path += "?" + u.RawQuery
		}
		network, addr, host, reqURI = "unix", sock, "localhost", path
	default:
		return nil, nil, fmt.Errorf("websocket: unsupported URL scheme %q (want ws, wss or ws+unix)", u.Scheme)
	}
	if addr == "" {
		return nil, nil, fmt.Errorf("websocket: no host or socket in URL %q", rawURL)
	}
	if h := header.Get("Host"); h != "" {
		host = h
	}

	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, nil, fmt.Errorf("websocket: dial: %w", err)
	}
	if useTLS {
		cfg := &tls.Config{}
		if tlsConf != nil {
			cfg = tlsConf.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname()
		}
		cfg.NextProtos = []string{"http/1.1"}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, nil, fmt.Errorf("websocket: TLS handshake: %w", err)
		}
		conn = tc
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	c, resp, err := wsClientHandshake(conn, u, host, reqURI, header)
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		conn.Close()
		return nil, resp, err
	}
	conn.SetDeadline(time.Time{})
	return c, resp, nil
}

// wsHostPort returns u's host:port, with the scheme's default port.
func wsHostPort(u *url.URL, port string) string {
	if u.Hostname() == "" {
		return ""
	}
	if p := u.Port(); p != "" {
		port = p
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// wsClientOwnHeaders are the request headers the handshake writes itself.
var wsClientOwnHeaders = map[string]bool{
	"Host":                     true,
	"Upgrade":                  true,
	"Connection":               true,
	"Sec-Websocket-Key":        true,
	"Sec-Websocket-Version":    true,
	"Sec-Websocket-Extensions": true,
}

// wsClientHandshake sends the upgrade request on conn and checks the
// answer.
func wsClientHandshake(conn net.Conn, u *url.URL, host, reqURI string, header http.Header) (*WSConn, *http.Response, error) {
	var raw [16]byte
	crand.Read(raw[:])
	key := base64.StdEncoding.EncodeToString(raw[:])

	bw := bufio.NewWriterSize(conn, wsClientBufferSize)
	bw.WriteString("GET " + reqURI + " HTTP/1.1\r\nHost: " + host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
		"\r\nSec-WebSocket-Version: 13\r\n")
	if u.User != nil && header.Get("Authorization") == "" {
		pw, _ := u.User.Password()
		bw.WriteString("Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pw)) + "\r\n")
	}
	header.WriteSubset(bw, wsClientOwnHeaders)
	bw.WriteString("\r\n")
	if err := bw.Flush(); err != nil {
		return nil, nil, fmt.Errorf("websocket: sending the handshake: %w", err)
	}

	br := bufio.NewReaderSize(conn, wsClientBufferSize)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet, URL: u})
	if err != nil {
		return nil, nil, fmt.Errorf("websocket: reading the handshake response: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, wsMaxErrorBody))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return nil, resp, fmt.Errorf("%w: the server answered %s", ErrWSBadHandshake, resp.Status)
	}
	switch {
	case !wsHeaderHasToken(resp.Header, "Upgrade", "websocket"):
		err = fmt.Errorf(`%w: no "Upgrade: websocket" in the response`, ErrWSBadHandshake)
	case !wsHeaderHasToken(resp.Header, "Connection", "upgrade"):
		err = fmt.Errorf(`%w: no "Connection: upgrade" in the response`, ErrWSBadHandshake)
	case resp.Header.Get("Sec-Websocket-Accept") != wsAcceptKey(key):
		err = fmt.Errorf("%w: wrong Sec-WebSocket-Accept", ErrWSBadHandshake)
	case resp.Header.Get("Sec-Websocket-Extensions") != "":
		err = fmt.Errorf("%w: the server chose an extension that was not offered", ErrWSBadHandshake)
	}
	proto := resp.Header.Get("Sec-Websocket-Protocol")
	if err == nil && proto != "" && wsChooseSubprotocol([]string{proto}, header) == "" {
		err = fmt.Errorf("%w: the server chose subprotocol %q, which was not offered", ErrWSBadHandshake, proto)
	}
	if err != nil {
		return nil, resp, err
	}
	c := wsNewConn(conn, br, bw, false, 0)
	c.subprotocol = proto
	var seed [32]byte
	crand.Read(seed[:])
	c.wrng = rand.NewChaCha8(seed)
	return c, resp, nil
}
