package testenv

import (
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gaffer-go/gaffer"
)

var listeningRE = regexp.MustCompile(`msg=listening .*address=(\S+)`)

// Gafferd runs gafferd with args, whose API has one endpoint (--bind), and
// waits until it answers /ping at the address it logs. It returns that
// address ("unix:/path" or "http://host:port") and a client of it with
// opts, closed when the test ends.
func Gafferd(t testing.TB, opts gaffer.ClientOptions, args ...string) (string, *gaffer.Client) {
	t.Helper()
	p := Start(t, "gafferd", exec.Command(Binary(t, "gafferd"), args...))
	addr := ""
	WaitFor(t, 10*time.Second, "gafferd to log its address", func() bool {
		if m := listeningRE.FindStringSubmatch(p.Output()); m != nil {
			addr = m[1]
		}
		return addr != "" || p.Exited()
	})
	if addr == "" {
		t.Fatalf("gafferd exited (%v) before listening", p.Err)
	}
	if strings.HasPrefix(addr, "/") {
		addr = "unix:" + addr
	} else {
		addr = "http://" + addr
	}
	cl, err := gaffer.NewClient(addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	WaitFor(t, 10*time.Second, "gafferd to answer", func() bool { return cl.Ping(context.Background()) == nil })
	return addr, cl
}

var apiKeyRE = regexp.MustCompile(`API Key: (\S+)`)

// AdminKey makes the admin user username (with password) in gafferd's
// data directory data (gafferd --create-admin-user) and returns its API
// key.
func AdminKey(t testing.TB, data, username, password string) string {
	t.Helper()
	out, err := exec.Command(Binary(t, "gafferd"), "--data-dir", data, "--create-admin-user",
		"--username", username, "--password", password).CombinedOutput()
	m := apiKeyRE.FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("create-admin-user: %v %s", err, out)
	}
	return string(m[1])
}
