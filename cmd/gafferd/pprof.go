//go:build gafferd_pprof

package main

// A profiling build of gafferd, for bench/ only: built with
// `go build -tags gafferd_pprof ./cmd/gafferd`, it serves net/http/pprof
// on the loopback address in $GAFFERD_PPROF (e.g. 127.0.0.1:6060) and
// records mutex and blocking profiles. The product build has none of it.

import (
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
)

func init() {
	addr := os.Getenv("GAFFERD_PPROF")
	if addr == "" {
		return
	}
	runtime.SetMutexProfileFraction(10)
	runtime.SetBlockProfileRate(100000) // one blocking event per 100 µs blocked
	l, err := net.Listen("tcp", addr)
	if err != nil {
		os.Stderr.WriteString("gafferd: pprof: " + err.Error() + "\n")
		return
	}
	go http.Serve(l, nil)
}
