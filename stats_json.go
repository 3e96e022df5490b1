package gaffer

// The JSON form of the stats types: the documented 0.5.2 stats message
// carries formatted strings ("12M", "0:00.25") and "N/A" where a figure
// is unknown; the Go types carry numbers. The wire structs below keep the
// JSON byte for byte what it was (field order, number formatting).

import "encoding/json"

// statsNA is what the JSON says for a figure that is not available.
const statsNA = "N/A"

// procStatsWire is the JSON of a ProcStats.
type procStatsWire struct {
	MemInfo1    any         `json:"mem_info1"` // RSS, human-readable ("12M"), or "N/A"
	MemInfo2    any         `json:"mem_info2"` // VMS, human-readable, or "N/A"
	CPU         any         `json:"cpu"`       // percent of one core, or "N/A"
	Mem         any         `json:"mem"`       // RSS as a percent of physical memory, or "N/A"
	CTime       string      `json:"ctime"`     // total CPU time, M:SS.cc, or "N/A"
	Pid         int         `json:"pid,omitempty"`
	OSPid       int         `json:"os_pid,omitempty"`
	Username    string      `json:"username"` // or "N/A"
	Nice        any         `json:"nice"`     // an integer, or "N/A"
	Cmdline     string      `json:"cmdline"`  // or "N/A"
	Children    []ProcStats `json:"children"`
	RSSBytes    int64       `json:"rss_bytes"`
	VMSBytes    int64       `json:"vms_bytes"`
	CPUPercent  float64     `json:"cpu_percent"`
	CPUSeconds  float64     `json:"cpu_seconds"`
	NumThreads  int         `json:"num_threads"`
	NumFDs      int         `json:"num_fds"`
	NumChildren int         `json:"num_children"`
	Cgroup      string      `json:"cgroup,omitempty"` // the cgroup whose figures these are
}

// wire returns the JSON form of st.
func (st ProcStats) wire() procStatsWire {
	w := procStatsWire{Pid: st.Pid, OSPid: st.OSPid, Children: st.Children,
		RSSBytes: st.RSSBytes, VMSBytes: st.VMSBytes, CPUPercent: st.CPUPercent, CPUSeconds: st.CPUSeconds,
		NumThreads: st.NumThreads, NumFDs: st.NumFDs, NumChildren: st.NumChildren, Cgroup: st.Cgroup}
	if w.Children == nil {
		w.Children = []ProcStats{}
	}
	if !st.Sampled {
		w.MemInfo1, w.MemInfo2, w.CPU, w.Mem, w.CTime = statsNA, statsNA, statsNA, statsNA, statsNA
		w.Username, w.Nice, w.Cmdline = statsNA, statsNA, statsNA
		return w
	}
	w.MemInfo1, w.MemInfo2 = humanSize(st.RSSBytes), humanSize(st.VMSBytes)
	w.CPU, w.Mem = st.CPUPercent, statsPercentOrNA(st.MemPercent)
	w.CTime = formatCTime(st.CPUSeconds)
	w.Username, w.Nice, w.Cmdline = st.Username, st.Nice, st.Cmdline
	if w.Username == "" {
		w.Username = statsNA
	}
	return w
}

// MarshalJSON writes the documented stats message: the formatted fields
// of 0.5.2 (mem_info1 "12M", ctime "0:00.25", "N/A" for what is unknown)
// and the numeric ones.
func (st ProcStats) MarshalJSON() ([]byte, error) { return json.Marshal(st.wire()) }

// UnmarshalJSON reads what MarshalJSON writes: the numbers come from the
// numeric fields, Sampled from mem_info1 not being "N/A".
func (st *ProcStats) UnmarshalJSON(data []byte) error {
	var w procStatsWire
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*st = ProcStats{Pid: w.Pid, OSPid: w.OSPid, Children: w.Children,
		RSSBytes: w.RSSBytes, VMSBytes: w.VMSBytes, CPUPercent: w.CPUPercent, CPUSeconds: w.CPUSeconds,
		NumThreads: w.NumThreads, NumFDs: w.NumFDs, NumChildren: w.NumChildren, Cgroup: w.Cgroup}
	if s, ok := w.MemInfo1.(string); ok && s == statsNA {
		return nil
	}
	st.Sampled = true
	st.MemPercent = -1
	if f, ok := w.Mem.(float64); ok {
		st.MemPercent = f
	}
	if f, ok := w.Nice.(float64); ok {
		st.Nice = int(f)
	}
	if w.Username != statsNA {
		st.Username = w.Username
	}
	st.Cmdline = w.Cmdline
	return nil
}

// statsPercentOrNA is a percent for the JSON: the number, or "N/A" when
// it is negative (unknown).
func statsPercentOrNA(f float64) any {
	if f < 0 {
		return statsNA
	}
	return f
}

// jobStatsWire is the JSON of a JobStats.
type jobStatsWire struct {
	Name   string      `json:"name"`
	Stats  []ProcStats `json:"stats"`
	Mem    any         `json:"mem"`
	MaxMem any         `json:"max_mem"`
	MinMem any         `json:"min_mem"`
	CPU    any         `json:"cpu"`
	MaxCPU any         `json:"max_cpu"`
	MinCPU any         `json:"min_cpu"`
}

// wire returns the JSON form of js.
func (js JobStats) wire() jobStatsWire {
	w := jobStatsWire{Name: js.Name, Stats: js.Stats}
	if w.Stats == nil {
		w.Stats = []ProcStats{}
	}
	if js.Sampled == 0 {
		w.Mem, w.MaxMem, w.MinMem, w.CPU, w.MaxCPU, w.MinCPU = statsNA, statsNA, statsNA, statsNA, statsNA, statsNA
		return w
	}
	w.Mem, w.MaxMem, w.MinMem = js.Mem, js.MaxMem, js.MinMem
	w.CPU, w.MaxCPU, w.MinCPU = js.CPU, js.MaxCPU, js.MinCPU
	return w
}

// MarshalJSON writes the job stats of reference §8.2: "N/A" for the sums
// and extremes when no process could be sampled.
func (js JobStats) MarshalJSON() ([]byte, error) { return json.Marshal(js.wire()) }

// UnmarshalJSON reads what MarshalJSON writes. Sampled is not in the
// JSON: it is the number of stats whose figures are known when the sums
// are given, 0 when they are "N/A".
func (js *JobStats) UnmarshalJSON(data []byte) error {
	var w jobStatsWire
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*js = JobStats{Name: w.Name, Stats: w.Stats}
	num := func(v any) float64 { f, _ := v.(float64); return f }
	if _, ok := w.Mem.(float64); !ok {
		return nil
	}
	for _, st := range w.Stats {
		if st.Sampled && st.MemPercent >= 0 {
			js.Sampled++
		}
	}
	js.Sampled = max(js.Sampled, 1)
	js.Mem, js.MaxMem, js.MinMem = num(w.Mem), num(w.MaxMem), num(w.MinMem)
	js.CPU, js.MaxCPU, js.MinCPU = num(w.CPU), num(w.MaxCPU), num(w.MinCPU)
	return nil
}
