package gaffer

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWSNodeInterop runs test/node/ws_echo_client.mjs (Node's ws package)
// against our server, once closing from the client and once from the
// server. It needs node and test/node/node_modules (npm ci in test/node).
func TestWSNodeInterop(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed; install Node.js, then run npm ci in test/node")
	}
	dir := filepath.Join("test", "node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "ws", "package.json")); err != nil {
		t.Skip("the ws package is missing: run npm ci in test/node")
	}
	for _, mode := range []string{"client-close", "server-close"} {
		t.Run(mode, func(t *testing.T) {
			type result struct {
				sizes []int
				err   error
			}
			results := make(chan result, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := WSUpgrade(w, r, nil)
				if err != nil {
					return
				}
				var res result
				defer func() { results <- res }()
				for {
					op, data, err := c.ReadMessage()
					if err != nil {
						res.err = err
						return
					}
					res.sizes = append(res.sizes, len(data))
					if op == WSText && string(data) == "please close" {
						if err := c.Close(WSCloseNormal, "server done"); err != nil {
							res.err = err
							return
						}
						continue // the next read reports the client's answer
					}
					if err := c.WriteMessage(op, data); err != nil {
						res.err = err
						return
					}
				}
			}))
			defer srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			url := "ws://" + srv.Listener.Addr().String() + "/echo"
			out, err := exec.CommandContext(ctx, node, filepath.Join(dir, "ws_echo_client.mjs"), url, mode).CombinedOutput()
			if err != nil {
				t.Fatalf("node client: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), "ok: "+mode) {
				t.Fatalf("node client output: %s", out)
			}
			var res result
			select {
			case res = <-results:
			case <-time.After(wsTestWait):
				t.Fatal("the server handler did not end")
			}
			var ce *WSCloseError
			if !errors.As(res.err, &ce) || ce.Code != WSCloseNormal {
				t.Fatalf("server ended with %v, want a 1000 close", res.err)
			}
			if mode == "client-close" && ce.Reason != "node done" {
				t.Fatalf("close reason %q", ce.Reason)
			}
			wantMsgs := 3
			if mode == "server-close" {
				wantMsgs = 4
			}
			if len(res.sizes) != wantMsgs || res.sizes[2] < 400*1024 {
				t.Fatalf("server saw messages of sizes %v", res.sizes)
			}
		})
	}
}
