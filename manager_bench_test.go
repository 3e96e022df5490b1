package gaffer

import (
	"context"
	"sort"
	"testing"
	"time"
)

// BenchmarkJobInfoDuringScaleUp reads a job's info in a loop while
// another job is scaled from 0 to 500 /bin/sleep processes, and reports
// the latency percentiles of the reads: what the manager's lock costs an
// API call during a scale-up (bench/api_load.sh measures the same over
// HTTP with wrk).
func BenchmarkJobInfoDuringScaleUp(b *testing.B) {
	for i := 0; i < b.N; i++ {
		m := NewManager(Options{})
		x := NewJobConfig("x", "/bin/sleep 1000")
		if err := m.Load("default", x, nil, true); err != nil {
			b.Fatal(err)
		}
		big := NewJobConfig("big", "/bin/sleep 1001")
		big.NumProcesses = 0
		big.GracefulTimeout = time.Second
		if err := m.Load("default", big, nil, true); err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		lat := make([]time.Duration, 0, 1<<20)
		got := make(chan []time.Duration)
		go func() {
			for n := 0; ; n++ {
				select {
				case <-done:
					got <- lat
					return
				default:
				}
				t0 := time.Now()
				m.JobInfoJSON("default.x", true)
				d := time.Since(t0)
				if len(lat) < cap(lat) {
					lat = append(lat, d)
				} else {
					lat[n%len(lat)] = d
				}
			}
		}()
		m.Scale("default.big", ScaleOp{Set: true, Value: 500})
		close(done)
		l := <-got
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
		b.ReportMetric(float64(l[len(l)*99/100].Nanoseconds()), "p99-ns")
		b.ReportMetric(float64(l[len(l)*999/1000].Nanoseconds()), "p99.9-ns")
		b.ReportMetric(float64(l[len(l)-1].Microseconds()), "max-µs")
		m.Shutdown(context.Background())
	}
}
