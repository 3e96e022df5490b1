package gaffer

import (
	"bytes"
	"io"
	"log/slog"
	"testing"
)

// FuzzLookupdMessage drives one node connection of a lookupd that
// requires the node key "right-key" with arbitrary messages (one a line):
// no input panics, every reply is an ok or an error with an errno, a
// refused key ends the connection, and a node is listed only if its
// IDENTIFY carried the key and a usable origin.
func FuzzLookupdMessage(f *testing.F) {
	for _, s := range []string{
		`{"type":"IDENTIFY","msgid":"1","name":"n","origin":"http://n:5000","version":"0.1","key":"right-key"}` + "\n" +
			`{"type":"REGISTER_JOB","msgid":"2","job_name":"default.web"}` + "\n" +
			`{"type":"REGISTER_PROCESS","msgid":"3","job_name":"default.web","pid":7}`,
		`{"type":"IDENTIFY","msgid":"1","name":"n","origin":"http://n:5000","version":"0.1"}`,
		`{"type":"IDENTIFY","msgid":"1","name":"n","origin":"unix:/x","version":"0.1","key":"right-key"}`,
		`{"type":"IDENTIFY","msgid":"1","name":"n","origin":"http://n:5000","version":"0.1","key":"wrong"}`,
		`{"type":"PING","msgid":"1"}` + "\n" + `[1,2]` + "\n" + `{"type": "PING", `,
	} {
		f.Add([]byte(s))
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		l := NewLookupd(LookupdOptions{Logger: quiet, RequireKey: func(k string) bool { return k == "right-key" }})
		defer l.Close()
		n := l.reg.connect(nil)
		for i, msg := range bytes.Split(data, []byte("\n")) {
			if i >= 32 {
				break
			}
			reply, _, hangUp := l.handleMessage(n, msg, "fuzz")
			if ok, _ := reply["ok"].(bool); !ok {
				if _, has := reply["errno"].(int); !has {
					t.Fatalf("reply %v to %q: neither ok nor an errno", reply, msg)
				}
			}
			if hangUp {
				break
			}
		}
		for _, node := range l.Nodes() {
			if !lkValidOrigin(node.Origin) {
				t.Fatalf("node listed with origin %q", node.Origin)
			}
			if !bytes.Contains(data, []byte("right-key")) {
				t.Fatalf("node %+v listed without the key in the input %q", node, data)
			}
		}
	})
}
