package gaffer

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// iochMsg is one message received by an I/O channel test client.
type iochMsg struct {
	op   WSOpcode
	typ  string
	id   string
	body string
}

type iochClient struct {
	t    *testing.T
	ws   *WSConn
	msgs chan iochMsg
	err  chan error
}

func iochDial(t *testing.T, url string, header http.Header) *iochClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := WSDial(ctx, url, header, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	c := &iochClient{t: t, ws: ws, msgs: make(chan iochMsg, 100000), err: make(chan error, 1)}
	go func() {
		for {
			op, data, err := ws.ReadMessage()
			if err != nil {
				c.err <- err
				close(c.msgs)
				return
			}
			m := iochMsg{op: op, body: "<unparsable>"}
			if typ, id, body, ok := iochParse(data); ok {
				m.typ, m.id, m.body = typ, id, string(body)
			}
			c.msgs <- m
		}
	}()
	return c
}

func (c *iochClient) send(op WSOpcode, id, body string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(op, iochFrame("message", id, []byte(body))); err != nil {
		c.t.Fatal(err)
	}
}

func (c *iochClient) next() iochMsg {
	c.t.Helper()
	select {
	case m, ok := <-c.msgs:
		if !ok {
			c.t.Fatalf("connection closed: %v", <-c.err)
		}
		return m
	case <-time.After(10 * time.Second):
		c.t.Fatal("timed out waiting for a frame")
	}
	return iochMsg{}
}

// closed drains the connection and returns what came and the close code.
func (c *iochClient) closed() ([]iochMsg, int) {
	c.t.Helper()
	var got []iochMsg
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-c.msgs:
			if ok {
				got = append(got, m)
				continue
			}
			var ce *WSCloseError
			if errors.As(<-c.err, &ce) {
				return got, ce.Code
			}
			return got, 0
		case <-deadline:
			c.t.Fatal("timed out waiting for the close")
		}
	}
}

// refused checks that the server sent one gaffer_error frame with body
// and closed with code.
func (c *iochClient) refused(body string, code int) {
	c.t.Helper()
	got, cc := c.closed()
	if len(got) != 1 || got[0].typ != "error" || got[0].id != "gaffer_error" || got[0].body != body || cc != code {
		c.t.Errorf("got %+v and close %d, want error %s and close %d", got, cc, body, code)
	}
}

func iochEchoJob(c *JobConfig) {
	c.RedirectInput = true
	c.RedirectOutput = []string{"out", "err"}
}

var iochIDRe = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestIOChannelUnknownPid(t *testing.T) {
	e := chNewEnv(t, false)
	c := iochDial(t, e.url+"/999/channel", nil)
	c.refused(`{"error": "not_found", "errno": 404}`, WSCloseNormal)
}

func TestIOChannelEcho(t *testing.T) {
	e := chNewEnv(t, false)
	pid := e.load(t, "echo", "echo", iochEchoJob)
	c := iochDial(t, e.url+"/"+strconv.Itoa(pid)+"/channel", nil)

	// Text in, text out; the answer and the output may come in any order.
	c.send(WSText, "abc", "hello\n")
	var resp, out iochMsg
	for resp.typ == "" || out.typ == "" {
		m := c.next()
		if m.typ == "response" {
			resp = m
		} else {
			out = m
		}
	}
	if resp.id != "abc" || resp.body != "OK" {
		t.Errorf("response: %+v", resp)
	}
	if out.typ != "message" || !iochIDRe.MatchString(out.id) || out.body != "hello\n" || out.op != WSText {
		t.Errorf("output: %+v", out)
	}

	// Binary in (not UTF-8), binary out.
	c.send(WSBinary, "b1", "\xff\xfe\n")
	for {
		m := c.next()
		if m.typ == "message" {
			if m.op != WSBinary || m.body != "\xff\xfe\n" {
				t.Errorf("binary output: %+v", m)
			}
			break
		}
	}
	// A malformed frame is answered, and the channel stays open.
	c.ws.WriteText("hello")
	for {
		m := c.next()
		if m.typ == "response" && m.id == "b1" {
			continue
		}
		if m.typ != "error" || m.id != "invalid_frame" {
			t.Errorf("malformed frame: %+v", m)
		}
		break
	}

	// The process exits: the remaining output, then a normal close.
	var lines strings.Builder
	for i := 0; i < 2000; i++ {
		lines.WriteString("line " + strconv.Itoa(i) + "\n")
	}
	p, _ := e.m.Process(pid)
	st, _ := p.Stream("out")
	since := st.LastSeq()
	c.send(WSText, "many", lines.String())
	waitFor(t, 10*time.Second, "all lines echoed", func() bool {
		chunks, _ := st.Backlog(since)
		n := 0
		for _, ch := range chunks {
			n += len(ch.Data)
		}
		return n == lines.Len()
	})
	e.m.StopProcess(pid)
	got, code := c.closed()
	if code != WSCloseNormal {
		t.Errorf("close code %d, want 1000", code)
	}
	var all bytes.Buffer
	for _, m := range got {
		if m.typ == "message" {
			all.WriteString(m.body)
		}
	}
	if all.String() != lines.String() {
		t.Errorf("got %d bytes of output before the close, want %d", all.Len(), lines.Len())
	}
	waitFor(t, 5*time.Second, "stream subscription removed", func() bool { return chStreamSubs(st) == 0 })
}

func TestIOChannelModesAndStreams(t *testing.T) {
	e := chNewEnv(t, false)
	pid := e.load(t, "echo", "echo", iochEchoJob)
	base := e.url + "/" + strconv.Itoa(pid) + "/channel"

	// Read-only: writes are refused, the channel stays open.
	c := iochDial(t, base+"?mode=1", nil)
	c.send(WSText, "w1", "x\n")
	if m := c.next(); m.typ != "error" || m.id != "w1" || m.body != `{"error": "EPERM", "errno": 403}` {
		t.Errorf("write in mode 1: %+v", m)
	}
	e.m.Send(pid, []byte("from elsewhere\n"), "")
	if m := c.next(); m.typ != "message" || m.body != "from elsewhere\n" {
		t.Errorf("read in mode 1: %+v", m)
	}

	// A named redirect stream: output of that label, input to stdin.
	c = iochDial(t, base+"/err", nil)
	c.send(WSText, "e1", "to stdin\n")
	if m := c.next(); m.typ != "response" || m.body != "OK" {
		t.Errorf("write on the err channel: %+v", m)
	}
	iochDial(t, base+"/nope", nil).refused(`{"error": "ENOENT", "errno": 404}`, WSClosePolicy)

	// No stdin, no output.
	quiet := e.load(t, "quiet", "sleep", func(c *JobConfig) { c.CustomStreams = []string{"ctl"} })
	qbase := e.url + "/" + strconv.Itoa(quiet) + "/channel"
	iochDial(t, qbase+"?mode=1", nil).refused(`{"error": "EPERM", "errno": 403}`, WSClosePolicy)
	iochDial(t, qbase+"?mode=2", nil).refused(`{"error": "EPERM", "errno": 403}`, WSClosePolicy)
	// A custom stream takes input.
	c = iochDial(t, qbase+"/ctl?mode=2", nil)
	c.send(WSText, "c1", "cmd\n")
	if m := c.next(); m.typ != "response" || m.body != "OK" {
		t.Errorf("write to a custom stream: %+v", m)
	}

	// A bad mode is refused before the upgrade.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, resp, err := WSDial(ctx, base+"?mode=9", nil, nil); err == nil || resp == nil || resp.StatusCode != 400 {
		t.Errorf("mode=9: %v %v", resp, err)
	}
}

func TestIOChannelAuth(t *testing.T) {
	e := chNewEnv(t, true)
	pid := e.load(t, "echo", "echo", iochEchoJob)
	base := e.url + "/" + strconv.Itoa(pid) + "/channel"
	writer := e.key(t, Permissions{Write: []string{"default.echo"}})
	reader := e.key(t, Permissions{Read: []string{"default"}})

	c := iochDial(t, base, nil)
	c.send(WSText, "a1", "AUTH:"+writer)
	if m := c.next(); m.typ != "response" || m.id != "a1" || m.body != "OK" {
		t.Fatalf("AUTH: %+v", m)
	}
	c.send(WSText, "m1", "hi\n")
	for m := c.next(); m.typ != "message" || m.body != "hi\n"; m = c.next() {
		if m.typ == "error" {
			t.Fatalf("write after AUTH: %+v", m)
		}
	}

	c = iochDial(t, base, nil)
	c.send(WSText, "a1", "AUTH:nope")
	c.refused(`{"error": "AUTH_REQUIRED", "errno": 403}`, WSClosePolicy)
	c = iochDial(t, base, nil)
	c.send(WSText, "a1", "hello\n")
	c.refused(`{"error": "AUTH_REQUIRED", "errno": 401}`, WSClosePolicy)

	// A read-only key may read but not write, on the default stdio and on
	// named streams alike.
	h := http.Header{"X-Api-Key": {reader}}
	iochDial(t, base, h).refused(`{"error": "FORBIDDEN", "errno": 403}`, WSClosePolicy)
	iochDial(t, base+"/err", h).refused(`{"error": "FORBIDDEN", "errno": 403}`, WSClosePolicy)
	c = iochDial(t, base+"/err?mode=1", h)
	c.send(WSText, "w", "x")
	if m := c.next(); m.typ != "error" || m.body != `{"error": "EPERM", "errno": 403}` {
		t.Errorf("write with a read-only key in mode 1: %+v", m)
	}
	other := e.key(t, Permissions{Manage: []string{"other"}})
	iochDial(t, base+"/err?mode=1", http.Header{"X-Api-Key": {other}}).refused(`{"error": "FORBIDDEN", "errno": 403}`, WSClosePolicy)
}
