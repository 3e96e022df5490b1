package gaffer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// keyMatrix creates the keys of the permission tests.
type keyMatrix struct {
	read, write, manage, other, admin string
}

func newKeyMatrix(t *testing.T, store *AuthStore) keyMatrix {
	t.Helper()
	mk := func(label string, p Permissions) string {
		k, err := store.CreateKey(nil, label, p, nil)
		if err != nil {
			t.Fatal(err)
		}
		return k.Key
	}
	return keyMatrix{
		read:   mk("reader", Permissions{Read: []string{"app"}}),
		write:  mk("writer", Permissions{Write: []string{"app"}}),
		manage: mk("manager", Permissions{Manage: []string{"app"}}),
		other:  mk("elsewhere", Permissions{Manage: []string{"other"}}),
		admin:  mk("admin", Permissions{Admin: true}),
	}
}

func TestRoutesRequireKeyMatrix(t *testing.T) {
	store, err := OpenAuthStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	keys := newKeyMatrix(t, store)
	a := newAPI(t, ServerOptions{Auth: store, RequireKey: true})
	if err := a.m.Load("app", childConfig(t, "web", "sleep", nil), nil, true); err != nil {
		t.Fatal(err)
	}
	pids, _ := a.m.Pids("app.web")
	pid := strconv.Itoa(pids[0])
	type route struct {
		method, path, body string
		// expected status for: none, read, write, manage, other, admin
		want [6]int
	}
	routes := []route{
		{"GET", "/", "", [6]int{200, 200, 200, 200, 200, 200}},
		{"GET", "/ping", "", [6]int{200, 200, 200, 200, 200, 200}},
		{"GET", "/version", "", [6]int{200, 200, 200, 200, 200, 200}},
		{"GET", "/pids", "", [6]int{401, 403, 403, 403, 403, 200}},
		{"GET", "/sessions", "", [6]int{401, 403, 403, 403, 403, 200}},
		{"GET", "/jobs", "", [6]int{401, 403, 403, 403, 403, 200}},
		{"GET", "/jobs/app", "", [6]int{401, 200, 200, 200, 403, 200}},
		{"GET", "/jobs/app/web", "", [6]int{401, 200, 200, 200, 403, 200}},
		{"GET", "/jobs/app/web/stats", "", [6]int{401, 200, 200, 200, 403, 200}},
		{"GET", "/jobs/app/web/pids", "", [6]int{401, 200, 200, 200, 403, 200}},
		{"GET", "/jobs/app/web/state", "", [6]int{401, 200, 200, 200, 403, 200}},
		{"GET", "/" + pid, "", [6]int{401, 200, 200, 200, 403, 200}},
		{"GET", "/" + pid + "/stats", "", [6]int{401, 200, 200, 200, 403, 200}},
		{"POST", "/jobs/app/web/numprocesses", `{"scale": 0}`, [6]int{401, 403, 403, 200, 403, 200}},
		{"POST", "/jobs/app/web/signal", `{"signal": "CONT"}`, [6]int{401, 403, 403, 202, 403, 202}},
		{"POST", "/" + pid + "/signal", `{"signal": "CONT"}`, [6]int{401, 403, 403, 202, 403, 202}},
		{"POST", "/streams/" + pid + "/stdin", "x", [6]int{401, 403, 403, 403, 403, 403}}, // no stdin: 403 forbidden_write for writers
		{"POST", "/jobs/app", `{"name": "w2", "cmd": "sleep 30", "start": false}`, [6]int{401, 403, 403, 200, 403, 409}},
		{"POST", "/jobs/app/w2/state", "0", [6]int{401, 403, 403, 202, 403, 202}},
		{"DELETE", "/jobs/app/w2", "", [6]int{401, 403, 403, 200, 403, 404}},
		{"POST", "/reload", "", [6]int{401, 403, 403, 403, 403, 503}},
		{"GET", "/keys", "", [6]int{401, 403, 403, 403, 403, 200}},
	}
	names := []string{"no key", "read", "write", "manage", "other session", "admin"}
	for _, rt := range routes {
		for i, key := range []string{"", keys.read, keys.write, keys.manage, keys.other, keys.admin} {
			var hdr []string
			if key != "" {
				hdr = []string{"X-Api-Key", key}
			}
			before, _ := a.m.JobInfo("app.web", true)
			code, _, body := a.do(rt.method, rt.path, rt.body, hdr...)
			if code != rt.want[i] {
				t.Errorf("%s %s with %s: %d, want %d (%s)", rt.method, rt.path, names[i], code, rt.want[i], body)
			}
			if code == 401 || code == 403 {
				after, _ := a.m.JobInfo("app.web", true)
				if after.MaxProcesses != before.MaxProcesses || after.State != before.State {
					t.Errorf("%s %s refused for %s but the job changed", rt.method, rt.path, names[i])
				}
			}
		}
	}
	// An unknown key is a 403, never a pass.
	if code, _, _ := a.do("GET", "/jobs/app/web", "", "X-Api-Key", "0123456789abcdef0123456789abcdef"); code != 403 {
		t.Fatalf("unknown key: %d", code)
	}
	// Secrets are masked for readers, shown to managers.
	a.m.Update("app", func() JobConfig {
		c := childConfig(t, "web", "sleep", map[string]string{"DB_PASSWORD": "hunter2"})
		return c
	}(), nil, true)
	_, _, body := a.do("GET", "/jobs/app/web", "", "X-Api-Key", keys.read)
	if contains(body, "hunter2") {
		t.Fatalf("a read key sees a secret: %s", body)
	}
	_, _, body = a.do("GET", "/jobs/app/web", "", "X-Api-Key", keys.manage)
	if !contains(body, "hunter2") {
		t.Fatalf("a manage key should see the value: %s", body)
	}
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }

// writeCert writes a self-signed certificate (also usable as its own CA)
// for 127.0.0.1 and returns the cert and key paths.
func writeCert(t *testing.T, dir, name string, client bool) (string, string) {
	t.Helper()
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(priv)
	cert, key := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600)
	return cert, key
}

func TestTLSAndMutualTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir, "server", false)
	ccert, ckey := writeCert(t, dir, "client", true)
	m := newTestManager(t)
	s := NewServer(ServerOptions{Manager: m})
	l, h, err := s.Listen(EndpointConfig{Name: "tls", Bind: "127.0.0.1:0", CertFile: cert, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l, h)
	ml, mh, err := s.Listen(EndpointConfig{Name: "mtls", Bind: "127.0.0.1:0", CertFile: cert, KeyFile: key, ClientCAFile: ccert})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ml, mh)
	t.Cleanup(func() { s.Shutdown(nil) })

	pool := x509.NewCertPool()
	pemData, _ := os.ReadFile(cert)
	pool.AppendCertsFromPEM(pemData)
	plain := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := plain.Get("https://" + l.Addr().String() + "/ping")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("TLS: %v %v", resp, err)
	}
	if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatal("not TLS 1.2+")
	}
	resp.Body.Close()
	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}}}
	if _, err := old.Get("https://" + l.Addr().String() + "/ping"); err == nil {
		t.Fatal("TLS 1.1 accepted")
	}
	if _, err := plain.Get("https://" + ml.Addr().String() + "/ping"); err == nil {
		t.Fatal("mutual TLS endpoint accepted a client without a certificate")
	}
	pair, _ := tls.LoadX509KeyPair(ccert, ckey)
	mc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}}}
	resp, err = mc.Get("https://" + ml.Addr().String() + "/ping")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("mutual TLS with a client certificate: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestAuthGateUpgradeHeaderIsNotAKey is the attack of issue 13: websocket
// upgrade headers on a plain route used to skip the auth gate, so /metrics
// and /stats answered without a key. Only the listed public routes (and the
// in-band-authenticated websockets) pass without a key now.
func TestAuthGateUpgradeHeaderIsNotAKey(t *testing.T) {
	store, err := OpenAuthStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	keys := newKeyMatrix(t, store)
	a := newAPI(t, ServerOptions{Auth: store, RequireKey: true})
	upgrade := []string{"Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Version", "13",
		"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}
	for _, p := range []string{"/metrics", "/stats", "/jobs", "/pids", "/sessions", "/processes", "/wstreams/1", "/jobs/app/web",
		"/channelx", "/1/stats", "/streams/1/stdout", "/watch"} {
		code, _, body := a.do("GET", p, "", upgrade...)
		if code != 401 {
			t.Errorf("GET %s with upgrade headers and no key: %d %s, want 401", p, code, body)
		}
		if !contains(body, `"unauthorized"`) {
			t.Errorf("GET %s: not the JSON error shape: %s", p, body)
		}
	}
	// With a key the upgrade headers are ignored: plain HTTP.
	code, _, body := a.do("GET", "/metrics", "", append(upgrade, "X-Api-Key", keys.read)...)
	if code != 200 || !contains(body, "gaffer_build_info") {
		t.Errorf("GET /metrics with a key and upgrade headers: %d %s", code, body)
	}
	// The public list still passes without a key.
	for p, want := range map[string]int{"/": 200, "/ping": 200, "/version": 200, "/ui/": 200, "/channel/info": 200, "/channel": 200, "/openapi.json": 200} {
		if code, _, body := a.do("GET", p, ""); code != want {
			t.Errorf("GET %s without a key: %d %s, want %d", p, code, body, want)
		}
	}
	// The in-band websockets still upgrade without a header key, and
	// then ask for AUTH.
	ws, _, err := WSDial(t.Context(), "ws"+strings.TrimPrefix(a.srv.URL, "http")+"/channel/websocket", nil, nil)
	if err != nil {
		t.Fatalf("control channel without a header key: %v", err)
	}
	ws.WriteText("AUTH:" + keys.admin)
	if _, msg, err := ws.ReadMessage(); err != nil || !strings.Contains(string(msg), "auth_success") {
		t.Fatalf("AUTH on the control channel: %q %v", msg, err)
	}
	ws.Close(WSCloseNormal, "")
}

// TestTLSOnlyAEADSuites: a TLS 1.2 client that offers only a CBC suite
// (Go's server defaults accept TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA) is
// refused; of every TLS 1.2 suite Go knows, only the ECDHE AEAD ones
// connect.
func TestTLSOnlyAEADSuites(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir, "server", false)
	m := newTestManager(t)
	s := NewServer(ServerOptions{Manager: m})
	l, h, err := s.Listen(EndpointConfig{Name: "tls", Bind: "127.0.0.1:0", CertFile: cert, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l, h)
	t.Cleanup(func() { s.Shutdown(nil) })
	pool := x509.NewCertPool()
	pemData, _ := os.ReadFile(cert)
	pool.AppendCertsFromPEM(pemData)
	dial := func(suite uint16) error {
		c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1",
			MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite}})
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA); err == nil {
		t.Fatal("a client restricted to TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA connected")
	}
	aead := map[uint16]bool{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: true, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: true,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: true}
	for _, cs := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		if !slices.Contains(cs.SupportedVersions, tls.VersionTLS12) {
			continue
		}
		err := dial(cs.ID)
		if aead[cs.ID] && err != nil {
			t.Errorf("%s refused: %v", cs.Name, err)
		}
		if !aead[cs.ID] && err == nil {
			t.Errorf("%s accepted", cs.Name)
		}
	}
}

// TestSecretArgsMasked is the leak of issue 13: env values were masked
// for a read-only key, but the arguments after $VAR expansion showed them
// (--token=tok-leak). Every route a reader can use shows the masked or the
// unexpanded form; a manager still sees what runs.
func TestSecretArgsMasked(t *testing.T) {
	store, err := OpenAuthStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	keys := newKeyMatrix(t, store)
	a := newAPI(t, ServerOptions{Auth: store, RequireKey: true})
	cfg := childConfig(t, "web", "sleep", map[string]string{"API_TOKEN": "tok-leak", "DB_PASSWORD": "pw-leak", "REGION": "eu-west"})
	cfg.Cmd += " --key=$API_TOKEN"
	cfg.Args = []string{"--url=https://app:${DB_PASSWORD}@db", "--region=$REGION", "--token=$API_TOKEN"}
	if err := a.m.Load("app", cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	pids, _ := a.m.Pids("app.web")
	pid := strconv.Itoa(pids[0])
	secrets := []string{"tok-leak", "pw-leak"}
	for _, p := range []string{"/" + pid, "/jobs/app/web", "/jobs?details=1", "/processes/app.web", "/processes/" + pid} {
		code, _, body := a.do("GET", p, "", "X-Api-Key", keys.read)
		if code != 200 {
			t.Errorf("GET %s as a reader: %d %s", p, code, body)
		}
		for _, sec := range secrets {
			if contains(body, sec) {
				t.Errorf("GET %s shows a reader the secret %q: %s", p, sec, body)
			}
		}
	}
	_, _, body := a.do("GET", "/"+pid, "", "X-Api-Key", keys.read)
	var info ProcessInfo
	if err := json.Unmarshal(body, &info); err != nil {
		t.Fatal(err)
	}
	want := []string{"--key=********", "--url=https://app:********@db", "--region=eu-west", "--token=********"}
	if !slices.Equal(info.Args, want) {
		t.Errorf("args shown to a reader: %q, want %q", info.Args, want)
	}
	// A manager sees what runs.
	_, _, body = a.do("GET", "/"+pid, "", "X-Api-Key", keys.manage)
	if !contains(body, "--token=tok-leak") || !contains(body, "app:pw-leak@db") {
		t.Errorf("a manager does not see the arguments as run: %s", body)
	}
	// The channel: process_info needs manage rights, and gives them the
	// values; a reader is refused.
	ws, _, err := WSDial(t.Context(), "ws"+strings.TrimPrefix(a.srv.URL, "http")+"/channel/websocket", http.Header{"X-Api-Key": {keys.read}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ws.WriteText(`{"event": "CMD", "data": {"name": "process_info", "identity": 1, "args": [` + pid + `]}}`)
	_, msg, err := ws.ReadMessage()
	if err != nil || !strings.Contains(string(msg), "command_error") || strings.Contains(string(msg), "leak") {
		t.Errorf("process_info for a reader over the channel: %s %v", msg, err)
	}
	// Once the job changed since the spawn, arguments that contain a
	// secret's value are masked whole.
	env := map[string]string{"API_TOKEN": "tok-leak", "HOME": "/home/x"}
	got := maskedArgv(nil, env, []string{"app", "--token=tok-leak", "/home/x"})
	if !slices.Equal(got, []string{"app", "********", "/home/x"}) {
		t.Errorf("fallback masking: %q", got)
	}
}
