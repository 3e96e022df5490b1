package gaffer

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"sync"
)

var (
	clockTicks = 100.0 // USER_HZ, 100 on every Linux architecture Go supports
	pageSize   = int64(os.Getpagesize())
	memOnce    sync.Once
	memTotal   int64
)

// readStats reads /proc/<pid>/stat and counts /proc/<pid>/fd.
func readStats(pid int) rawStats {
	var r rawStats
	base := "/proc/" + strconv.Itoa(pid)
	data, err := os.ReadFile(base + "/stat")
	if err != nil {
		return r
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return r
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime 15, threads 20, vsize 23, rss 24.
	if len(f) < 22 {
		return r
	}
	num := func(k int) int64 { n, _ := strconv.ParseInt(f[k-3], 10, 64); return n }
	r.cpuSeconds = float64(num(14)+num(15)) / clockTicks
	r.threads = int(num(20))
	r.vms = num(23)
	r.rss = num(24) * pageSize
	if ents, err := os.ReadDir(base + "/fd"); err == nil {
		r.fds = len(ents)
	}
	if kids, err := os.ReadFile(base + "/task/" + strconv.Itoa(pid) + "/children"); err == nil {
		r.children = len(strings.Fields(string(kids)))
	}
	r.ok = true
	return r
}

// totalMemory returns the physical memory in bytes (MemTotal).
func totalMemory() int64 {
	memOnce.Do(func() {
		data, err := os.ReadFile("/proc/meminfo")
		if err != nil {
			return
		}
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "MemTotal:") {
				f := strings.Fields(line)
				if len(f) >= 2 {
					n, _ := strconv.ParseInt(f[1], 10, 64)
					memTotal = n * 1024
				}
			}
		}
	})
	return memTotal
}
