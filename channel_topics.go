package gaffer

// The topics of the control channel (reference §3.5): SOURCE or
// SOURCE:target[?options], and the targets they name.

import (
	"net/url"
	"strconv"
	"strings"
)

// chTopic is a parsed topic (reference §3.5).
type chTopic struct {
	name   string // normalised: SOURCE or SOURCE:target, target case kept
	source string
	target string // without ?options
	opts   url.Values
}

func chParseTopic(raw string) (chTopic, bool) {
	src, target, hasTarget := strings.Cut(strings.TrimSpace(raw), ":")
	t := chTopic{source: strings.ToUpper(strings.TrimSpace(src))}
	t.name = t.source
	if hasTarget {
		t.name += ":" + target
		if base, query, ok := strings.Cut(target, "?"); ok {
			q, err := url.ParseQuery(query)
			if err != nil {
				return t, false
			}
			t.opts, target = q, base
		}
		t.target = target
	}
	switch t.source {
	case "EVENTS":
		return t, true
	case "JOB", "PROCESS", "STATS", "STREAM":
		return t, t.target != ""
	}
	return t, false
}

// chPid parses a pid target: digits only.
func chPid(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, _ := strconv.Atoi(s)
	return n, n > 0
}

// chFullName normalises a job name to session.job.
func chFullName(name string) string {
	sid, job := SplitName(name)
	return sid + "." + job
}
