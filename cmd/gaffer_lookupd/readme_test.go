package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gaffer-go/gaffer/cmd/internal/testenv"
)

// readmeLookupdCommands returns the commands of the README's lookupd
// section: its indented lines that start with bin/.
func readmeLookupdCommands(t *testing.T) [][]string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cmds [][]string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = strings.Contains(line, "gaffer_lookupd")
			continue
		}
		if in && strings.HasPrefix(line, "    bin/") {
			cmds = append(cmds, strings.Fields(line))
		}
	}
	if len(cmds) == 0 {
		t.Fatal("no bin/ command in the README's gaffer_lookupd section")
	}
	return cmds
}

// copyExamples copies examples/ into dir and moves its TCP listener from
// port 5000 to port.
func copyExamples(t *testing.T, dir string, port int) {
	t.Helper()
	src := filepath.Join("..", "..", "examples")
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		info, _ := e.Info()
		if e.Name() == "gaffer.ini" {
			if !strings.Contains(string(data), "127.0.0.1:5000") {
				t.Fatal("examples/gaffer.ini no longer binds 127.0.0.1:5000; adapt this test")
			}
			data = []byte(strings.ReplaceAll(string(data), "127.0.0.1:5000", "127.0.0.1:"+strconv.Itoa(port)))
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), data, info.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReadmeLookupdCommands runs the README's lookupd section as printed:
// the same binaries, arguments and example configuration, with only the
// ports (5010, 5000) and the paths (bin/, examples/) changed. gafferd
// announces its default origin, http://<hostname>:<port>, and every
// command, `gaffer ps --all-nodes` included, must succeed against it.
func TestReadmeLookupdCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	binaries(t)
	dir := t.TempDir()
	lkPort, apiPort := freePort(t), freePort(t)
	copyExamples(t, dir, apiPort)
	lkAddr := "127.0.0.1:" + strconv.Itoa(lkPort)
	adapt := func(args []string) []string {
		out := make([]string, len(args))
		for i, a := range args {
			a = strings.ReplaceAll(a, "127.0.0.1:5010", lkAddr)
			a = strings.ReplaceAll(a, "examples/", dir+"/")
			if strings.HasPrefix(a, "bin/") {
				a = testenv.Binary(t, strings.TrimPrefix(a, "bin/"))
			}
			out[i] = a
		}
		return out
	}
	lkClient := &http.Client{Timeout: 5 * time.Second}
	get := func(path string) (string, error) {
		resp, err := lkClient.Get("http://" + lkAddr + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		var b strings.Builder
		bufio.NewReader(resp.Body).WriteTo(&b)
		if resp.StatusCode != 200 {
			return "", fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, b.String())
		}
		return b.String(), nil
	}
	ran := map[string]bool{}
	for _, printed := range readmeLookupdCommands(t) {
		args := adapt(printed)
		prog := filepath.Base(args[0])
		what := strings.Join(printed, " ")
		switch prog {
		case "gaffer_lookupd":
			c := startChild(t, "gaffer_lookupd", "", args[0], args[1:]...)
			eventually(t, 15*time.Second, what+": answers", func() error {
				select {
				case <-c.Done:
					t.Fatalf("%s: exited %d\n%s", what, c.Code(), c.Output())
				default:
				}
				_, err := get("/ping")
				return err
			})
		case "gafferd":
			c := startChild(t, "gafferd", "", args[0], args[1:]...)
			// Registered, with the job running: what the next commands show.
			eventually(t, 20*time.Second, what+": default.dummy registered with a pid", func() error {
				select {
				case <-c.Done:
					t.Fatalf("%s: exited %d\n%s", what, c.Code(), c.Output())
				default:
				}
				body, err := get("/findJob?name=default.dummy")
				if err != nil {
					return err
				}
				if !strings.Contains(body, `"pids":[`) || strings.Contains(body, `"pids":[]`) {
					return fmt.Errorf("findJob: %s", body)
				}
				return nil
			})
		case "gaffer":
			cmd := exec.Command(args[0], args[1:]...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "GAFFER_CONFIG="+filepath.Join(dir, "user.ini"), "GAFFERD_ADDRESS=", "GAFFER_API_KEY=", "NO_COLOR=1")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", what, err, out)
			}
			port := ":" + strconv.Itoa(apiPort)
			switch {
			case strings.Contains(what, "lookup:nodes"), strings.Contains(what, "lookup:job"):
				if !strings.Contains(string(out), port) {
					t.Fatalf("%s: the node's origin is not listed:\n%s", what, out)
				}
			case strings.Contains(what, "ps --all-nodes"):
				if !strings.Contains(string(out), "default.dummy") || !strings.Contains(string(out), "running") ||
					strings.Contains(string(out), "unreachable") {
					t.Fatalf("%s: the node's jobs are not listed:\n%s", what, out)
				}
			}
			t.Logf("%s\n%s", what, out)
		default:
			t.Fatalf("unknown program in the README: %s", what)
		}
		ran[prog+" "+strings.Join(printed[1:2], "")] = true
	}
	for _, must := range []string{"gaffer ps", "gaffer lookup:nodes", "gaffer lookup:job"} {
		if !ran[must] {
			t.Errorf("the README's lookupd section no longer shows %q", must)
		}
	}
}
