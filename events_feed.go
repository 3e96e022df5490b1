package gaffer

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// appendWatchEvent appends one event of a /watch feed to b: an SSE event
// named as the subscriber sees it, with its bus sequence number as id
// (eventsource), or one JSON line (continuous).
func appendWatchEvent(b []byte, ev Event, sse bool) []byte {
	js := watchEventJSON(ev)
	if sse {
		return appendSSE(b, ev.Name, ev.seq, js)
	}
	return append(append(b, js...), '\n')
}

// appendWatchGap appends the marker of the events a resuming /watch
// client will never get: "event: gap" with data {"from": N, "to": M}
// (eventsource), or the JSON line {"event": "gap", "from": N, "to": M}
// (continuous). A nil gap appends nothing.
func appendWatchGap(b []byte, g *Gap, sse bool) []byte {
	if g == nil {
		return b
	}
	if sse {
		js, _ := json.Marshal(g)
		return appendSSE(b, "gap", 0, js)
	}
	js, _ := json.Marshal(map[string]any{"event": "gap", "from": g.From, "to": g.To})
	return append(append(b, js...), '\n')
}

// writeWatchLongpoll answers a /watch longpoll with one event (its JSON
// and CRLF); the header X-Gaffer-Seq carries its sequence number (give it
// back as ?since= or Last-Event-ID to resume after it).
func writeWatchLongpoll(w http.ResponseWriter, ev Event) {
	js := watchEventJSON(ev)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Gaffer-Seq", strconv.FormatUint(ev.seq, 10))
	w.Write(append(js, '\r', '\n'))
}

// watchEventJSON is the JSON of an event on /watch: its payload and the
// time it was published, "time" (RFC 3339 in UTC with milliseconds; an
// addition to the documented payload, left out should the payload have a
// "time" of its own).
func watchEventJSON(ev Event) []byte {
	js, err := json.Marshal(ev.Data)
	if err != nil {
		js = []byte(`{"event": ` + strconv.Quote(ev.Name) + `}`)
	}
	if _, has := ev.Data["time"]; has || ev.Time.IsZero() || len(js) < 2 || js[len(js)-1] != '}' {
		return js
	}
	js = js[:len(js)-1]
	if len(js) > 1 {
		js = append(js, ',')
	}
	js = appendCaptureTime(append(js, `"time":"`...), ev.Time)
	return append(js, '"', '}')
}
