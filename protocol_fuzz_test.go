package gaffer

import (
	"bytes"
	"strings"
	"testing"
)

// Fuzz tests of the small protocol parsers: the V1 frames of the process
// I/O websocket, the topics of the control channel, and the SockJS
// payloads. Their seed corpora are in testdata/fuzz/.

func FuzzIOFrame(f *testing.F) {
	f.Add([]byte("V1 message 0123\x00hello"))
	f.Add([]byte("V1 message 0123\x00AUTH:key"))
	f.Add([]byte("V1 response id\x00OK"))
	f.Fuzz(func(t *testing.T, data []byte) {
		typ, id, body, ok := iochParse(data)
		if !ok {
			return
		}
		if typ == "" || id == "" || strings.ContainsAny(typ+id, " \x00") {
			t.Fatalf("accepted a bad header: %q %q", typ, id)
		}
		// A frame we build parses back to the same parts.
		t2, id2, body2, ok := iochParse(iochFrame(typ, id, body))
		if !ok || t2 != typ || id2 != id || !bytes.Equal(body2, body) {
			t.Fatalf("round trip of %q", data)
		}
	})
}

func FuzzChannelTopic(f *testing.F) {
	for _, s := range []string{"EVENTS", "events:spawn", "JOB:default.web", "STREAM:1.stdout", "STATS:3?interval=2", "PROCESS:x", ":", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		topic, ok := chParseTopic(raw)
		if ok && topic.source != strings.ToUpper(topic.source) {
			t.Fatalf("source not upper-cased: %q", topic.source)
		}
	})
}

func FuzzSockJSDecode(f *testing.F) {
	for _, s := range []string{`["a","b"]`, `"x"`, `[]`, `[1]`, `{"a":1}`, `["\u0000"]`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		msgs, err := sjDecode(data)
		if err != nil {
			return
		}
		// What we accept we can send back in a frame that decodes the same.
		frame := sjArrayFrame(msgs)
		again, err := sjDecode([]byte(frame[1:]))
		if err != nil || len(again) != len(msgs) {
			t.Fatalf("frame %q of %q: %v", frame, data, err)
		}
	})
}
