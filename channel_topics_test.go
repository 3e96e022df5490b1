package gaffer

import (
	"strconv"
	"syscall"
	"testing"
	"time"
)

func TestChannelTopics(t *testing.T) {
	e := chNewEnv(t, false)
	pid := e.load(t, "web", "sleep", nil)
	c := chDial(t, e.url, nil)

	if m := c.sub("EVENTS:spawn"); m["event"] != "gaffer:subscription_success" || m["topic"] != "EVENTS:spawn" {
		t.Fatalf("SUB: %v", m)
	}
	if m := c.sub("job:default.web"); m["topic"] != "JOB:default.web" {
		t.Fatalf("SUB job (source upper-cased): %v", m)
	}
	c.sub("PROCESS:" + strconv.Itoa(pid))
	if _, err := e.m.Scale("default.web", ScaleOp{Value: 1}); err != nil {
		t.Fatal(err)
	}
	got := c.all("spawn events", chEventOf("EVENTS:spawn", "spawn"), chEventOf("JOB:default.web", "spawn"))
	spawn := got[0]["data"].(map[string]any)
	if spawn["name"] != "default.web" || spawn["pid"] == nil || spawn["os_pid"] == nil {
		t.Errorf("spawn event: %v", spawn)
	}

	e.m.Kill(pid, syscall.SIGCONT)
	kill := c.until("process kill", chEventOf("PROCESS:"+strconv.Itoa(pid), "kill"))["data"].(map[string]any)
	if kill["pid"] != float64(pid) {
		t.Errorf("kill event: %v", kill)
	}
	e.m.StopProcess(pid)
	c.all("exit events", chEventOf("JOB:default.web", "exit"), chEventOf("PROCESS:"+strconv.Itoa(pid), "exit"))

	// Reference counting: two SUBs need two UNSUBs.
	c.sub("EVENTS:update")
	c.sub("EVENTS:update")
	c.unsub("EVENTS:update")
	e.m.Scale("default.web", ScaleOp{Value: 0})
	c.until("update after one UNSUB", chEventOf("EVENTS:update", "update"))
	if m := c.unsub("EVENTS:update"); m["event"] != "gaffer:subscription_success" {
		t.Fatalf("UNSUB: %v", m)
	}
	e.m.Scale("default.web", ScaleOp{Value: 0})
	c.ok("sessions") // a round trip: any update event would have come before
	c.quiet(200*time.Millisecond, chEventOf("EVENTS:update", ""))
	if r := chSubReason(t, c.unsub("EVENTS:update")); r != "not_subscribed" {
		t.Errorf("UNSUB of a topic not subscribed: %s", r)
	}

	// Refusals.
	for topic, want := range map[string]string{
		"STATS:999":                     chReasonNotFound,
		"STREAM:999":                    chReasonNotFound,
		"PROCESS:999":                   chReasonNotFound,
		"STATS:default.nope":            chReasonNotFound,
		"JOB:default.nope":              chReasonNotFound,
		"STREAM:x":                      "invalid_process",
		"PROCESS:web":                   "invalid_process",
		"FOO:bar":                       "invalid_topic",
		"JOB":                           "invalid_topic",
		"STREAM:" + strconv.Itoa(pid+1): "stream_not_found", // no redirect_output
	} {
		m := c.sub(topic)
		if r := chSubReason(t, m); r != want || m["topic"] == nil {
			t.Errorf("SUB %s: %v, want %s", topic, m, want)
		}
	}
}
