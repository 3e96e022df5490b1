package gaffer

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

// GET /openapi.json describes what the lifecycle adds: every key of a
// real job info, process info and job config of a job with lifecycle
// settings is a documented property, and the states are in the enums.
func TestOpenAPIDescribesLifecycle(t *testing.T) {
	a := newAPI(t, ServerOptions{})
	stamps := filepath.Join(t.TempDir(), "stamps")
	c := lifeConfig(t, "web", "notifyready", stamps, map[string]string{"STATUS": "serving"})
	c.Ready, c.Watchdog, c.Restart, c.RestartDelay, c.Essential = "notify", time.Minute, restartOnFailure, [2]time.Duration{time.Second, 4 * time.Second}, true
	c.Health, c.HealthInterval, c.SuccessExitCodes = "exec:/bin/true", 100*time.Millisecond, []int{0, 3}
	dep := lifeConfig(t, "app", "stamp", stamps, nil)
	dep.DependsOn, dep.RestartWith = []string{"web:healthy"}, []string{"web"}
	for _, cfg := range []JobConfig{c, dep} {
		if err := a.m.Load("default", cfg, nil, true); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "web ready and healthy", func() bool {
		ps := jobState(t, a.m, "default.web").ProcessStates
		return len(ps) == 1 && ps[0].Ready && ps[0].Health == healthHealthy && ps[0].Status == "serving"
	})
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Enum  []string `json:"enum"`
					Items struct {
						Ref string `json:"$ref"`
					} `json:"items"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	_, _, body := a.do("GET", "/openapi.json", "")
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	schemas := doc.Components.Schemas
	check := func(schema, path string, obj map[string]any) {
		t.Helper()
		props := schemas[schema].Properties
		for k, v := range obj {
			p, ok := props[k]
			if !ok {
				t.Errorf("%s: %q (%v) is not a property of the %s schema", path, k, v, schema)
				continue
			}
			if s, isStr := v.(string); isStr && p.Enum != nil && !slices.Contains(p.Enum, s) {
				t.Errorf("%s: %s = %q is not in the %s schema's enum %v", path, k, s, schema, p.Enum)
			}
		}
	}
	getJSON := func(path string) map[string]any {
		t.Helper()
		code, _, b := a.do("GET", path, "")
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil || code != 200 {
			t.Fatalf("GET %s: %d %s", path, code, b)
		}
		return m
	}
	for _, job := range []string{"web", "app"} {
		info := getJSON("/jobs/default/" + job)
		check("JobInfo", "/jobs/default/"+job, info)
		check("JobConfig", "/jobs/default/"+job+" config", info["config"].(map[string]any))
		if schemas["JobInfo"].Properties["process_states"].Items.Ref != "#/components/schemas/ProcessState" {
			t.Fatalf("JobInfo.process_states: %+v", schemas["JobInfo"].Properties["process_states"])
		}
		for _, ps := range info["process_states"].([]any) {
			check("ProcessState", "/jobs/default/"+job+" process_states", ps.(map[string]any))
		}
	}
	web := jobState(t, a.m, "default.web")
	check("ProcessInfo", "/{pid}", getJSON("/"+strconv.Itoa(web.Processes[0])))
	for _, k := range []string{"ready", "ready_timeout", "watchdog", "depends_on", "restart_with", "health", "health_interval",
		"health_timeout", "health_retries", "restart", "success_exit_codes", "restart_delay", "essential", "sockets", "memory_max"} {
		if _, ok := schemas["JobConfig"].Properties[k]; !ok {
			t.Errorf("the JobConfig schema lacks %s", k)
		}
	}
	for _, st := range []string{jobWaiting, jobStarting, jobReady, jobUnhealthy, jobBackoff, jobCompleted} {
		if !slices.Contains(schemas["JobInfo"].Properties["state"].Enum, st) {
			t.Errorf("the JobInfo state enum lacks %s", st)
		}
	}
	// The rolling restart's answer.
	code, _, b := a.do("POST", "/jobs/default/web/restart?rolling=1", "")
	var out map[string]any
	json.Unmarshal(b, &out)
	if code != 200 || out["replaced"] != float64(1) {
		t.Fatalf("rolling restart: %d %s", code, b)
	}
	check("Restarted", "POST restart?rolling=1", out)
}
