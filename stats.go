package gaffer

import (
	"fmt"
	"math"
	"time"
)

// ProcStats are the figures of one process: the five fields of the
// original (reference §8.1) and numeric ones a program can use.
type ProcStats struct {
	MemInfo1   any     `json:"mem_info1"` // RSS, human-readable ("12M"), or "N/A"
	MemInfo2   any     `json:"mem_info2"` // VMS, human-readable, or "N/A"
	CPU        any     `json:"cpu"`       // percent of one core since the last sample, or "N/A"
	Mem        any     `json:"mem"`       // RSS as a percent of physical memory, or "N/A"
	CTime      string  `json:"ctime"`     // total CPU time, M:SS.cc
	RSSBytes   int64   `json:"rss_bytes"`
	VMSBytes   int64   `json:"vms_bytes"`
	CPUPercent float64 `json:"cpu_percent"`
	CPUSeconds float64 `json:"cpu_seconds"`
	NumThreads int     `json:"num_threads"`
	NumFDs     int     `json:"num_fds"`
	Children   int     `json:"children"`
	Pid        int     `json:"pid,omitempty"`
	OSPid      int     `json:"os_pid,omitempty"`
}

// rawStats is what the platform code reads about a process.
type rawStats struct {
	rss, vms   int64
	cpuSeconds float64
	threads    int
	fds        int
	children   int
	ok         bool
}

// humanSize formats a byte count as the original did: "1023B", "12K",
// "3M"… (1024-based, truncated).
func humanSize(n int64) string {
	units := []string{"K", "M", "G", "T", "P", "E"}
	if n < 1024 {
		return fmt.Sprintf("%dB", n)
	}
	v := float64(n)
	u := ""
	for _, unit := range units {
		if v < 1024 {
			break
		}
		v /= 1024
		u = unit
	}
	return fmt.Sprintf("%d%s", int64(v), u)
}

// formatCTime formats CPU seconds as M:SS.cc (minutes not wrapped).
func formatCTime(sec float64) string {
	cs := int64(math.Round(sec * 100))
	return fmt.Sprintf("%d:%02d.%02d", cs/6000, (cs/100)%60, cs%100)
}

// Stats samples the process's figures now. CPU percent covers the time
// since the previous sample (or since the start for the first one).
func (p *Process) Stats() ProcStats {
	st := ProcStats{Pid: p.ID, OSPid: p.OSPid}
	raw := readStats(p.OSPid)
	if !raw.ok {
		st.MemInfo1, st.MemInfo2, st.CPU, st.Mem, st.CTime = "N/A", "N/A", "N/A", "N/A", "N/A"
		return st
	}
	now := time.Now()
	p.statsMu.Lock()
	wall := now.Sub(p.lastWall).Seconds()
	cpu := 0.0
	if wall > 0 {
		cpu = (raw.cpuSeconds - p.lastCPU) / wall * 100
	}
	if cpu < 0 {
		cpu = 0
	}
	p.lastCPU, p.lastWall = raw.cpuSeconds, now
	p.statsMu.Unlock()
	cpu = math.Round(cpu*10) / 10
	st.RSSBytes, st.VMSBytes = raw.rss, raw.vms
	st.CPUPercent, st.CPUSeconds = cpu, raw.cpuSeconds
	st.NumThreads, st.NumFDs, st.Children = raw.threads, raw.fds, raw.children
	st.MemInfo1, st.MemInfo2 = humanSize(raw.rss), humanSize(raw.vms)
	st.CPU = cpu
	if total := totalMemory(); total > 0 {
		st.Mem = math.Round(float64(raw.rss)/float64(total)*1000) / 10
	} else {
		st.Mem = "N/A"
	}
	st.CTime = formatCTime(raw.cpuSeconds)
	return st
}
