package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestNodeKeyBinaries: gaffer_lookupd --node-key-file registers the
// gafferd whose [gaffer] lookupd_key matches and refuses the one with a
// wrong key; both sides log the refusal, and the refused node keeps
// running (and retrying) without being listed.
func TestNodeKeyBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	gafferd, lookupd := binaries(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "lookupd.key")
	if err := os.WriteFile(keyFile, []byte("s3cret-node-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	lkSock := filepath.Join(dir, "lk.sock")
	lkAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	lk := startChild(t, "gaffer_lookupd", "", lookupd, "--bind", lkAddr, "--bind", "unix:"+lkSock, "--node-key-file", keyFile)
	lkClient := unixClient(lkSock)
	eventually(t, 15*time.Second, "lookupd answers", func() error { return call(lkClient, "GET", "/ping", "", nil) })

	node := func(name, keyLine string) (*child, string) {
		ndir := filepath.Join(dir, name)
		os.Mkdir(ndir, 0o700)
		origin := "http://127.0.0.1:" + strconv.Itoa(freePort(t))
		ini := fmt.Sprintf("[gaffer]\nrequire_key = false\nlookupd_address1 = http://%s\nbroadcast_address = %s\n%s\n", lkAddr, origin, keyLine)
		if err := os.WriteFile(filepath.Join(ndir, "gaffer.ini"), []byte(ini), 0o600); err != nil {
			t.Fatal(err)
		}
		sock := filepath.Join(ndir, "g.sock")
		c := startChild(t, name, "", gafferd, "-c", filepath.Join(ndir, "gaffer.ini"), "--bind", strings.TrimPrefix(origin, "http://"), "--bind", "unix:"+sock)
		eventually(t, 15*time.Second, name+" answers", func() error { return call(unixClient(sock), "GET", "/ping", "", nil) })
		return c, origin
	}
	_, goodOrigin := node("good", "lookupd_key_file = ../lookupd.key")
	bad, badOrigin := node("bad", "lookupd_key = not-the-key")

	eventually(t, 15*time.Second, "the refusal logged by both sides", func() error {
		if !strings.Contains(bad.Output(), "refused this node's key") || !strings.Contains(bad.Output(), "node_key_refused") {
			return errors.New("not in the refused gafferd's log yet")
		}
		if out := lk.Output(); !strings.Contains(out, "wrong node key") || !strings.Contains(out, badOrigin) {
			return errors.New("not in the lookupd's log yet")
		}
		return nil
	})
	var body struct {
		Nodes []struct {
			Origin string `json:"origin"`
		} `json:"nodes"`
	}
	eventually(t, 15*time.Second, "only the node with the key listed", func() error {
		if err := call(lkClient, "GET", "/nodes", "", &body); err != nil {
			return err
		}
		if len(body.Nodes) != 1 || body.Nodes[0].Origin != goodOrigin {
			return fmt.Errorf("nodes %+v, want only %s", body.Nodes, goodOrigin)
		}
		return nil
	})
	for _, out := range []string{lk.Output(), bad.Output()} {
		if strings.Contains(out, "s3cret-node-key") || strings.Contains(out, "not-the-key") {
			t.Fatal("a node key appears in a log")
		}
	}
	select {
	case <-bad.Done:
		t.Fatalf("the refused gafferd exited: %s", bad.Output())
	default:
	}
}
