package gaffer

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// stdinPending is the number of writes to p under way or waiting.
func stdinPending(p *Process) int {
	stdinQueues.mu.Lock()
	defer stdinQueues.mu.Unlock()
	if q := stdinQueues.m[p]; q != nil {
		return q.pending
	}
	return 0
}

// TestStdinWritesAreBoundedAndCancelled is the attack of issue 13: many
// 1 MB posts to the stdin of a process that never reads it. At most
// stdinMaxPending are held (the others are refused at once with 503
// stdin_busy, before their body is read), and a client that goes away
// takes its write with it, long before the write timeout.
func TestStdinWritesAreBoundedAndCancelled(t *testing.T) {
	defer func(d time.Duration) { stdinWriteTimeout = d }(stdinWriteTimeout)
	stdinWriteTimeout = 10 * time.Minute
	a := newAPI(t, ServerOptions{})
	a.json("POST", "/jobs/default", childJSON(t, "deaf", "sleep", `, "redirect_input": true`), 200)
	pids := a.json("GET", "/jobs/default/deaf/pids", "", 200)["pids"].([]any)
	pid := int(pids[0].(float64))
	p, _ := a.m.Process(pid)

	body := bytes.Repeat([]byte("x"), 1<<20)
	const posts = 20
	type answer struct {
		code  int
		error string
	}
	answers := make(chan answer, posts)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: posts + 1}}
	defer client.CloseIdleConnections()
	for range posts {
		go func() {
			req, _ := http.NewRequestWithContext(ctx, "POST", a.srv.URL+"/streams/"+strconv.Itoa(pid)+"/stdin", bytes.NewReader(body))
			resp, err := client.Do(req)
			if err != nil {
				answers <- answer{error: err.Error()}
				return
			}
			defer resp.Body.Close()
			var e struct{ Error string }
			json.NewDecoder(resp.Body).Decode(&e)
			io.Copy(io.Discard, resp.Body)
			answers <- answer{code: resp.StatusCode, error: e.Error}
		}()
	}
	// All but stdinMaxPending are refused, whatever the order.
	for i := 0; i < posts-stdinMaxPending; i++ {
		select {
		case ans := <-answers:
			if ans.code != 503 || ans.error != codeStdinBusy {
				t.Fatalf("a post beyond the pending bound: %+v", ans)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("only %d of %d posts answered", i, posts-stdinMaxPending)
		}
	}
	waitFor(t, 30*time.Second, "the pending writes", func() bool { return stdinPending(p) == stdinMaxPending })
	select {
	case ans := <-answers:
		t.Fatalf("a write to a process that never reads returned: %+v", ans)
	default:
	}
	// The clients go away: their writes are abandoned, not kept until the
	// write timeout (10 minutes here).
	cancel()
	waitFor(t, 60*time.Second, "the abandoned writes to end", func() bool { return stdinPending(p) == 0 })
	for range stdinMaxPending {
		if ans := <-answers; !strings.Contains(ans.error, "context canceled") {
			t.Errorf("a cancelled post: %+v", ans)
		}
	}
	// And the process takes writes again (the pipe is full: this one waits
	// too, so only its place is checked).
	slot, err := p.reserveWrite("stdin")
	if err != nil {
		t.Fatalf("after the cancelled writes: %v", err)
	}
	slot.release()
}
