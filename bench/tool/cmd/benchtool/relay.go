package main

// benchtool relay: the measuring half of bench/stream.sh (output relayed to
// HTTP clients). stream.sh starts gafferd with a gated emitter and the
// clients (curl -N), then calls this, which waits for the output to stop
// growing and checks every client's copy line by line.
//
//	benchtool relay -lines L -size S -stamp STAMPFILE -pid GAFFERD_PID [-sse] FILE...
//
// Each FILE is one client's capture. With -sse the captures are SSE
// (`id:`, `event:`, `data:` lines): the data of every stdout event is
// joined back (data lines with "\n", events end to end) before counting, so
// a chunk that ends inside a line is not counted as a split line. Gap
// events are counted. One JSON line on stdout.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

func cmdRelay(args []string) {
	fs := flag.NewFlagSet("relay", flag.ExitOnError)
	lines := fs.Int("lines", 0, "lines the emitter writes")
	size := fs.Int("size", 100, "bytes per line")
	stamp := fs.String("stamp", "", "the emitter's stamp file (S/E lines)")
	pid := fs.Int("pid", 0, "supervisor pid (CPU and PSS are reported)")
	sse := fs.Bool("sse", false, "captures are eventsource streams")
	limit := fs.Duration("timeout", 180*time.Second, "give up after")
	label := fs.String("label", "", "name of the measurement (copied to the JSON)")
	fs.Parse(args)
	files := fs.Args()
	res := map[string]any{"scenario": "relay", "label": *label, "clients": len(files), "lines": *lines,
		"bytes": *lines * *size, "sse": *sse, "time": time.Now().UTC().Format(time.RFC3339)}
	cpu0 := procCPU(*pid)
	t0 := mono()
	var lastSize int64 = -1
	var lastChange, sStart, sEnd int64
	want := int64(*lines * *size)
	for mono()-t0 < limit.Nanoseconds() {
		sz := sizeOf(files)
		now := mono()
		if sz != lastSize {
			lastSize, lastChange = sz, now
		}
		if sStart == 0 || sEnd == 0 {
			sStart, sEnd = readStamp(*stamp)
		}
		stable := time.Duration(now - lastChange)
		// raw captures are complete at want bytes each; SSE ones are bigger
		if sEnd != 0 && (stable >= time.Second && sz >= want*int64(len(files)) || stable >= 5*time.Second) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	res["sup_cpu_s"] = round((procCPU(*pid)-cpu0)/clkTck, 2)
	res["sup_pss_mb"] = round(float64(sumPSS([]int{*pid}))/1024, 1)
	res["sup_threads"] = procThreads(*pid)
	if sStart == 0 || sEnd == 0 {
		res["ok"] = false
		res["error"] = "the emitter did not start or finish"
	} else {
		capture := float64(lastChange-sStart) / 1e9
		res["producer_s"] = round(float64(sEnd-sStart)/1e9, 3)
		res["capture_s"] = round(capture, 3)
		if capture > 0 {
			res["mb_s"] = round(float64(want)/1e6/capture, 1)
		}
	}
	minOK, maxLost, dup, bad, gaps, complete := *lines, 0, 0, 0, 0, 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			maxLost = *lines
			continue
		}
		if *sse {
			var g int
			data, g = decodeSSE(data)
			gaps += g
		}
		ok, d, b := countLines(data, *lines, *size)
		minOK = min(minOK, ok)
		maxLost = max(maxLost, *lines-ok)
		dup += d
		bad += b
		if ok == *lines {
			complete++
		}
	}
	res["clients_complete"] = complete
	res["lines_ok_min"] = minOK
	res["lines_lost_max"] = maxLost
	res["lines_dup"] = dup
	res["lines_bad"] = bad
	res["gaps"] = gaps
	if _, set := res["ok"]; !set {
		res["ok"] = complete == len(files)
		if complete != len(files) {
			res["error"] = fmt.Sprintf("%d of %d clients got every line", complete, len(files))
		}
	}
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
}

func readStamp(path string) (start, end int64) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && f[0] == "S" {
			start, _ = strconv.ParseInt(f[1], 10, 64)
		}
		if len(f) == 2 && f[0] == "E" {
			end, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	return start, end
}

// procCPU returns utime+stime of pid in clock ticks (0 when gone).
func procCPU(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	p := parseStat(b)
	if p == nil {
		return 0
	}
	return float64(p.utime + p.stime)
}

func procThreads(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	if p := parseStat(b); p != nil {
		return p.threads
	}
	return 0
}

// decodeSSE returns the concatenated data of the non-gap events and the
// number of gap events.
func decodeSSE(b []byte) ([]byte, int) {
	var out, ev []byte
	var typ string
	var dataLines, gaps int
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		l := sc.Bytes()
		switch {
		case len(l) == 0: // end of event
			if typ == "gap" {
				gaps++
			} else if typ != "eof" && dataLines > 0 {
				out = append(out, ev...)
			}
			ev, typ, dataLines = ev[:0], "", 0
		case bytes.HasPrefix(l, []byte("data: ")):
			if dataLines > 0 {
				ev = append(ev, '\n')
			}
			ev = append(ev, l[6:]...)
			dataLines++
		case bytes.HasPrefix(l, []byte("event: ")):
			typ = string(l[7:])
		}
	}
	return out, gaps
}

// countLines checks the emitter's lines ("<10-digit seq> x…x\n") in data:
// each sequence number once, nothing else.
func countLines(data []byte, lines, size int) (ok, dup, bad int) {
	seen := make([]bool, lines)
	nx := size - 12
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		var l []byte
		if i < 0 {
			l, data = data, nil
		} else {
			l, data = data[:i], data[i+1:]
		}
		if len(l) == 0 {
			continue
		}
		if len(l) == 11+nx && l[10] == ' ' && bytes.Count(l[11:], []byte{'x'}) == nx {
			seq, err := strconv.Atoi(string(l[:10]))
			if err == nil && seq >= 0 && seq < lines {
				if seen[seq] {
					dup++
				} else {
					seen[seq] = true
					ok++
				}
				continue
			}
		}
		bad++
	}
	return ok, dup, bad
}
