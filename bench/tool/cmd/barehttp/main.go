// barehttp is the reference point of bench/http.sh: the cheapest net/http
// server that answers GET PATH with a fixed JSON body (the bytes gafferd
// returned for the same path), so that wrk measures what net/http itself
// costs on this machine and nothing else.
//
//	barehttp -addr 127.0.0.1:0 -path /jobs/default/w -body FILE -portfile FILE
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback only)")
	path := flag.String("path", "/jobs/default/w", "the one path served")
	bodyFile := flag.String("body", "", "file holding the response body")
	portFile := flag.String("portfile", "", "write the bound host:port here")
	flag.Parse()
	body := []byte(`{"ok": true}`)
	if *bodyFile != "" {
		b, err := os.ReadFile(*bodyFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "barehttp:", err)
			os.Exit(1)
		}
		body = b
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil || !net.ParseIP(host).IsLoopback() {
		fmt.Fprintln(os.Stderr, "barehttp: -addr must be a loopback host:port")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "barehttp:", err)
		os.Exit(1)
	}
	if *portFile != "" {
		os.WriteFile(*portFile, []byte(ln.Addr().String()+"\n"), 0o644)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+*path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	fmt.Fprintln(os.Stderr, "barehttp: listening on", ln.Addr())
	if err := http.Serve(ln, mux); err != nil {
		fmt.Fprintln(os.Stderr, "barehttp:", err)
		os.Exit(1)
	}
}
