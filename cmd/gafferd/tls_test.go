package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gaffer-go/gaffer"
	"github.com/gaffer-go/gaffer/cmd/internal/testenv"
)

// tlsCert writes a self-signed certificate for 127.0.0.1 (its own CA).
func tlsCert(t *testing.T, dir, name string) (cert, key string) {
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
	cert, key = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600)
	return cert, key
}

func tlsFreePort(t *testing.T) string { return strconv.Itoa(testenv.FreePort(t)) }

// TestTLSWithCurlAndGoClient serves the API over TLS and mutual TLS and
// reaches it with curl and with the package's Go client.
func TestTLSWithCurlAndGoClient(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed (.ci/install-deps installs it)")
	}
	dir := t.TempDir()
	cert, key := tlsCert(t, dir, "server")
	ccert, ckey := tlsCert(t, dir, "client")
	p1, p2 := tlsFreePort(t), tlsFreePort(t)
	cfg := `[gaffer]
http_endpoints = sock, tls, mtls
[endpoint:sock]
bind = unix:%SOCK%
[endpoint:tls]
bind = 127.0.0.1:` + p1 + `
certfile = ` + cert + `
keyfile = ` + key + `
[endpoint:mtls]
bind = 127.0.0.1:` + p2 + `
certfile = ` + cert + `
keyfile = ` + key + `
cacert = ` + ccert + `
[process:web]
cmd = sleep 300
`
	startDaemon(t, dir, cfg)
	run := func(args ...string) (string, error) {
		out, err := exec.Command("curl", append([]string{"-sS", "--max-time", "10"}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := run("--cacert", cert, "https://127.0.0.1:"+p1+"/ping"); err != nil || out != "OK" {
		t.Fatalf("curl over TLS: %q %v", out, err)
	}
	if out, err := run("--cacert", cert, "--tls-max", "1.1", "https://127.0.0.1:"+p1+"/ping"); err == nil {
		t.Fatalf("TLS 1.1 accepted: %q", out)
	}
	if out, err := run("--cacert", cert, "https://127.0.0.1:"+p2+"/ping"); err == nil {
		t.Fatalf("mutual TLS without a client certificate: %q", out)
	}
	out, err := run("--cacert", cert, "--cert", ccert, "--key", ckey, "https://127.0.0.1:"+p2+"/jobs")
	if err != nil || !strings.Contains(out, "default.web") {
		t.Fatalf("curl with a client certificate: %q %v", out, err)
	}
	cl, err := gaffer.NewClient("https://127.0.0.1:"+p2, gaffer.ClientOptions{CACert: cert, CertFile: ccert, KeyFile: ckey})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	jobs, err := cl.Jobs(context.Background())
	if err != nil || len(jobs) != 1 || jobs[0] != "default.web" {
		t.Fatalf("Go client over mutual TLS: %v %v", jobs, err)
	}
	bad, _ := gaffer.NewClient("https://127.0.0.1:"+p2, gaffer.ClientOptions{CACert: cert})
	if _, err := bad.Jobs(context.Background()); err == nil {
		t.Fatal("Go client without a certificate got through mutual TLS")
	}
}
