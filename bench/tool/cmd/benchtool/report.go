package main

// benchtool report: the results table of bench/README.md (bench/report.sh
// runs it). gafferd beside each peer, as ratios to the floor of the same
// batch and repetition (median over repetitions), the goals of issue 9 and
// whether gafferd meets them.
//
//	benchtool report -peers results/peers-2026-11-27.jsonl [-stream S.jsonl] [-http H.jsonl] BENCH.jsonl...
//
// Peers measured in BENCH (the latest batch there) are taken from it; peers
// only in -peers (the 2026-11-27 baseline, for those that cannot be
// installed here) are taken from that batch, marked with *: their ratio is
// to the floor of their own batch.

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
)

func readRecs(files ...string) (recs []rec, versions map[string]string) {
	versions = map[string]string{}
	for _, fn := range files {
		if fn == "" {
			continue
		}
		f, err := os.Open(fn)
		if err != nil {
			fmt.Fprintln(os.Stderr, "report:", err)
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var r rec
			if json.Unmarshal(sc.Bytes(), &r) != nil {
				continue
			}
			if r.str("scenario") == "meta" {
				versions[r.str("system")] = r.str("version")
				continue
			}
			recs = append(recs, r)
		}
		f.Close()
	}
	return recs, versions
}

// lastBatch keeps the records of the most recent batch id.
func lastBatch(recs []rec) ([]rec, string) {
	b := ""
	for _, r := range recs {
		if r.str("batch") > b {
			b = r.str("batch")
		}
	}
	var out []rec
	for _, r := range recs {
		if r.str("batch") == b {
			out = append(out, r)
		}
	}
	return out, b
}

// table is one batch's records: key|system|rep -> record.
type table map[string]rec

func newTable(recs []rec) table {
	t := table{}
	for _, r := range recs {
		if v, ok := r["ok"].(bool); ok && !v {
			continue
		}
		t[scenKey(r)+"|"+r.str("system")+"|"+r.str("rep")] = r
	}
	return t
}

func (t table) reps(key, sys string) []string {
	var out []string
	for k := range t {
		if strings.HasPrefix(k, key+"|"+sys+"|") {
			out = append(out, k[len(key+"|"+sys+"|"):])
		}
	}
	sort.Strings(out)
	return out
}

// abs is the median over reps of field.
func (t table) abs(key, sys, field string) float64 {
	var v []float64
	for _, rep := range t.reps(key, sys) {
		if x, ok := t[key+"|"+sys+"|"+rep].num(field); ok {
			v = append(v, x)
		}
	}
	return median(v)
}

// worst is the maximum over reps of the sum of fields.
func (t table) worst(key, sys string, fields ...string) float64 {
	w := math.NaN()
	for _, rep := range t.reps(key, sys) {
		s := 0.0
		for _, f := range fields {
			x, _ := t[key+"|"+sys+"|"+rep].num(f)
			s += x
		}
		if math.IsNaN(w) || s > w {
			w = s
		}
	}
	return w
}

// ratio is the median over reps of sys/floor in the same rep.
func (t table) ratio(key, sys, field string) float64 {
	var v []float64
	for _, rep := range t.reps(key, sys) {
		a, ok1 := t[key+"|"+sys+"|"+rep].num(field)
		f, ok2 := t[key+"|floor|"+rep].num(field)
		if ok1 && ok2 && f > 0 {
			v = append(v, a/f)
		}
	}
	return median(v)
}

func (t table) has(sys string) bool {
	for k := range t {
		if strings.Contains(k, "|"+sys+"|") {
			return true
		}
	}
	return false
}

type row struct {
	title, goal string
	key, field  string
	ratio       bool                              // shown as × floor
	worstOf     []string                          // shown as the worst rep's sum of these fields
	pass        func(v float64) bool              // goal test on gafferd's value
	get         func(t table, sys string) float64 // overrides key/field
}

func cmdReport(args []string) {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	peersFile := fs.String("peers", "", "baseline results of the peers (jsonl)")
	streamFile := fs.String("stream", "", "stream.sh results (jsonl)")
	httpFile := fs.String("http", "", "http.sh results (jsonl)")
	fs.Parse(args)
	recs, versions := readRecs(fs.Args()...)
	cur, batch := lastBatch(recs)
	now := newTable(cur)
	precs, pversions := readRecs(*peersFile)
	pcur, pbatch := lastBatch(precs)
	base := newTable(pcur)
	peers := []string{"supervisord", "pm2", "runit", "goreman", "ochinchina", "immortal"}

	le := func(g float64) func(float64) bool { return func(v float64) bool { return v <= g } }
	ge := func(g float64) func(float64) bool { return func(v float64) bool { return v >= g } }
	rows := []row{
		{title: "spawn 100 (time to all running)", goal: "", key: "spawn N=100", field: "spawn_s", ratio: true},
		{title: "spawn 1000", goal: "≤ 1.3×", key: "spawn N=1000", field: "spawn_s", ratio: true, pass: le(1.3)},
		{title: "memory with 1000 children, PSS MB", goal: "≤ 20 MB", key: "spawn N=1000", field: "settled_pss_mb", pass: le(20)},
		{title: "idle CPU with 1000 children, % of a core", goal: "≤ 0.1 %", key: "spawn N=1000", field: "idle_cpu_pct", pass: le(0.1)},
		{title: "supervisor threads with 100 children", key: "spawn N=100", field: "settled_sup_threads"},
		{title: "supervisor threads with 1000 children", goal: "same as with 100", key: "spawn N=1000", field: "settled_sup_threads",
			get: nil},
		{title: "restart after kill -9, median", goal: "≤ 1.2×", key: "restart N=10", field: "restart_ms_median", ratio: true, pass: le(1.2)},
		{title: "restart after kill -9, p99 ms", goal: "≤ 5 ms", key: "restart N=10", field: "restart_ms_p99", pass: le(5)},
		{title: "output 200 MB to a log file, MB/s", goal: "≥ 0.95×", key: "output 200MB", field: "mb_s", ratio: true, pass: ge(0.95)},
		{title: "output: supervisor CPU seconds", goal: "≤ 1.5×", key: "output 200MB", field: "sup_cpu_s", ratio: true, pass: le(1.5)},
		{title: "output: lines lost + duplicated + split (worst rep)", goal: "0", key: "output 200MB", worstOf: []string{"lines_lost", "lines_dup", "lines_bad"}, pass: le(0)},
		{title: "stop 100 (SIGTERM to all gone)", goal: "≤ 2×", key: "stop N=100", field: "stop_s", ratio: true, pass: le(2)},
		{title: "crash storm, no flapping: spawns in 10 s", goal: "≥ 1× (as fast as the floor)", key: "storm fast", field: "spawns", ratio: true, pass: ge(0.95)},
		{title: "crash storm, no flapping: supervisor PSS growth 2 s → 10 s, MB", goal: "≤ the floor's + 1 MB", key: "storm fast",
			get: func(t table, sys string) float64 {
				return t.abs("storm fast", sys, "sup_pss_mb") - t.abs("storm fast", sys, "sup_pss_2s_mb")
			}},
		{title: "crash storm, flapping: supervisor CPU %", goal: "< 1 %", key: "storm default", field: "sup_cpu_pct", pass: le(1)},
	}
	floorGrowth := rows[13].get(now, "floor")
	rows[13].pass = func(v float64) bool { return v <= floorGrowth+1 } // a Go heap settles too
	threads100 := now.abs("spawn N=100", "gaffer", "settled_sup_threads")
	rows[5].pass = func(v float64) bool { return v <= threads100+2 } // GC/netpoll threads may vary by one or two

	fmt.Printf("Batch `%s` (this machine, one run of `bench.sh`); peers marked * are from the baseline batch `%s` "+
		"(the same harness on the same kind of machine; they could not be installed here), as ratios to the floor of their own batch.\n\n", batch, pbatch)
	fmt.Println("Ratios (×) are system / floor in the same batch and repetition, median over repetitions; other figures are medians. " +
		"Lower is better except for MB/s and spawns.")
	fmt.Println()
	hdr := "| measure | goal | gafferd | met? | floor |"
	sep := "|---|---|---|---|---|"
	for _, p := range peers {
		mark := ""
		if !now.has(p) {
			mark = "*"
		}
		hdr += " " + p + mark + " |"
		sep += "---|"
	}
	fmt.Println(hdr)
	fmt.Println(sep)
	val := func(t table, r row, sys string) float64 {
		switch {
		case r.get != nil:
			return r.get(t, sys)
		case r.worstOf != nil:
			return t.worst(r.key, sys, r.worstOf...)
		case r.ratio && sys != "floor":
			return t.ratio(r.key, sys, r.field)
		}
		return t.abs(r.key, sys, r.field)
	}
	show := func(v float64, r row, sys string) string {
		if math.IsNaN(v) {
			return "–"
		}
		if r.ratio && sys != "floor" && r.get == nil && r.worstOf == nil {
			return fmtNum(v) + "×"
		}
		return fmtNum(v)
	}
	for _, r := range rows {
		g := val(now, r, "gaffer")
		met := ""
		if r.pass != nil && !math.IsNaN(g) {
			met = "yes"
			if !r.pass(g) {
				met = "**no**"
			}
		}
		fl := "–"
		if r.get != nil {
			fl = show(r.get(now, "floor"), r, "floor")
		} else if r.field != "" && r.worstOf == nil {
			fl = fmtNum(now.abs(r.key, "floor", r.field))
		}
		line := fmt.Sprintf("| %s | %s | %s | %s | %s |", r.title, r.goal, show(g, r, "gaffer"), met, fl)
		for _, p := range peers {
			t := now
			if !now.has(p) {
				t = base
			}
			line += " " + show(val(t, r, p), r, p) + " |"
		}
		fmt.Println(line)
	}
	// storm status of gafferd (flapping reported through the API)
	for _, rep := range now.reps("storm default", "gaffer") {
		if st := now["storm default|gaffer|"+rep].str("status"); st != "" {
			fmt.Printf("\ngafferd's state after the flapping storm (rep %s, GET /jobs/default/w): `%s`\n", rep, st)
			break
		}
	}
	reportStream(*streamFile)
	reportHTTP(*httpFile)
	fmt.Println("\nVersions:")
	fmt.Println()
	names := []string{"floor", "gaffer"}
	names = append(names, peers...)
	for _, s := range names {
		v, mark := versions[s], ""
		if v == "" {
			v, mark = pversions[s], " (baseline batch)"
		}
		if v != "" {
			fmt.Printf("- %s: %s%s\n", s, v, mark)
		}
	}
}

// reportStream prints the relay-to-HTTP-clients rows (stream.sh).
func reportStream(path string) {
	if path == "" {
		return
	}
	recs, _ := readRecs(path)
	recs, batch := lastBatch(recs)
	if len(recs) == 0 {
		return
	}
	// per rep: floor file MB/s, gaffer file, continuous, eventsource
	type repv struct{ floor, file, cont, fileCPU, floorCPU float64 }
	reps := map[string]*repv{}
	var es []rec
	for _, r := range recs {
		rp := reps[r.str("rep")]
		if rp == nil {
			rp = &repv{math.NaN(), math.NaN(), math.NaN(), math.NaN(), math.NaN()}
			reps[r.str("rep")] = rp
		}
		mb, _ := r.num("mb_s")
		cpu, _ := r.num("sup_cpu_s")
		switch {
		case r.str("label") == "file" && r.str("system") == "floor":
			rp.floor, rp.floorCPU = mb, cpu
		case r.str("label") == "file" && r.str("system") == "gaffer":
			rp.file, rp.fileCPU = mb, cpu
		case strings.HasPrefix(r.str("label"), "continuous"):
			rp.cont = mb
		case strings.HasPrefix(r.str("label"), "eventsource"):
			es = append(es, r)
		}
	}
	var rFile, rCont, floorMB, contMB []float64
	for _, rp := range reps {
		if rp.floor > 0 {
			floorMB = append(floorMB, rp.floor)
			if !math.IsNaN(rp.file) {
				rFile = append(rFile, rp.file/rp.floor)
			}
			if !math.IsNaN(rp.cont) {
				rCont = append(rCont, rp.cont/rp.floor)
				contMB = append(contMB, rp.cont)
			}
		}
	}
	fmt.Printf("\nRelay to HTTP clients (`stream.sh`, batch `%s`, %d reps; the floor is its pipe-to-file rate in the same rep):\n\n", batch, len(reps))
	fmt.Println("| measure | goal | gafferd | met? | floor |")
	fmt.Println("|---|---|---|---|---|")
	metS := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "**no**"
	}
	if len(rCont) > 0 {
		m := median(rCont)
		fmt.Printf("| one `curl -N` on `feed=continuous`, MB/s | ≥ 0.6× | %s MB/s = %s× | %s | %s MB/s |\n", fmtNum(median(contMB)), fmtNum(m), metS(m >= 0.6), fmtNum(median(floorMB)))
	}
	if len(rFile) > 0 {
		fmt.Printf("| log file (same run), × floor | ≥ 0.95× | %s× | %s | 1× |\n", fmtNum(median(rFile)), metS(median(rFile) >= 0.95))
	}
	for _, r := range es {
		n, _ := r.num("clients")
		c, _ := r.num("clients_complete")
		mb, _ := r.num("mb_s")
		g, _ := r.num("gaps")
		fmt.Printf("| %s eventsource clients, %s MB each (rep %s): clients with every line | all | %s (gaps %s, %s MB/s each) | %s | – |\n",
			fmtNum(n), fmtNum(float64(r["bytes"].(float64))/1e6), r.str("rep"), fmtNum(c), fmtNum(g), fmtNum(mb), metS(c == n))
	}
}

// reportHTTP prints the wrk comparison (http.sh).
func reportHTTP(path string) {
	if path == "" {
		return
	}
	recs, _ := readRecs(path)
	recs, batch := lastBatch(recs)
	if len(recs) == 0 {
		return
	}
	r := recs[len(recs)-1]
	g, _ := r.num("gaffer_rps")
	b, _ := r.num("bare_rps")
	ratio, _ := r.num("ratio")
	met := "yes"
	if ratio < 0.7 {
		met = "**no**"
	}
	fmt.Printf("\nHTTP (`http.sh`, batch `%s`: %s):\n\n", batch, r.str("wrk"))
	fmt.Println("| measure | goal | gafferd | met? | bare net/http |")
	fmt.Println("|---|---|---|---|---|")
	fmt.Printf("| `GET /jobs/default/w`, requests/s (median of %s rounds) | ≥ 0.7× | %s = %s× | %s | %s |\n", r.str("rounds"), fmtNum(g), fmtNum(ratio), met, fmtNum(b))
}
