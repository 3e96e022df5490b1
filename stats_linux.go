package gaffer

import (
	"bytes"
	"os"
	"sort"
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
	r, ok := readStatLine(pid)
	if !ok {
		return r
	}
	if ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd"); err == nil {
		r.fds = len(ents)
	}
	return r
}

// readStatLine reads the figures of /proc/<pid>/stat alone (no count of
// the descriptors): what memory_restart samples.
func readStatLine(pid int) (rawStats, bool) {
	var r rawStats
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return r, false
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return r, false
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime 15, nice 19,
	// threads 20, starttime 22, vsize 23, rss 24 (proc(5)).
	if len(f) < 22 {
		return r, false
	}
	num := func(k int) int64 { n, _ := strconv.ParseInt(f[k-3], 10, 64); return n }
	r.cpuSeconds = float64(num(14)+num(15)) / clockTicks
	r.nice, r.niceOK = int(num(19)), true
	r.threads = int(num(20))
	r.vms = num(23)
	r.rss = num(24) * pageSize
	r.started = float64(num(22)) / clockTicks
	r.ok = true
	return r, true
}

// readDetails reads the real uid (/proc/<pid>/status), the command line
// (/proc/<pid>/cmdline) and the children of every thread
// (/proc/<pid>/task/*/children: a child belongs to the thread that forked
// it).
func readDetails(pid int) rawDetails {
	d := rawDetails{uid: -1}
	base := "/proc/" + strconv.Itoa(pid)
	if data, err := os.ReadFile(base + "/status"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
				if f := strings.Fields(rest); len(f) > 0 {
					if n, err := strconv.Atoi(f[0]); err == nil {
						d.uid = n
					}
				}
				break
			}
		}
	}
	if data, err := os.ReadFile(base + "/cmdline"); err == nil && len(data) > 0 {
		d.cmdline = strings.Split(strings.TrimSuffix(string(data), "\x00"), "\x00")
	}
	tasks, _ := os.ReadDir(base + "/task")
	for _, t := range tasks {
		kids, err := os.ReadFile(base + "/task/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, k := range strings.Fields(string(kids)) {
			if n, err := strconv.Atoi(k); err == nil {
				d.children = append(d.children, n)
			}
		}
	}
	sort.Ints(d.children)
	return d
}

// processAge returns the seconds since a process started (started is
// rawStats.started), 0 when unknown.
func processAge(started float64) float64 {
	if up := uptime(); up > 0 && started > 0 {
		return max(up-started, 0)
	}
	return 0
}

// uptime returns the seconds since boot (/proc/uptime), 0 when unknown.
func uptime() float64 {
	data, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0
	}
	up, _ := strconv.ParseFloat(f[0], 64)
	return up
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
