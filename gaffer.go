// Package gaffer is a process supervisor: it launches OS processes grouped
// in jobs, keeps the wanted number of each running, relays their output and
// input, publishes what happens on an event bus, and serves all of it over
// HTTP, websockets and unix sockets.
//
// The package is the whole product; the programs under cmd/ are thin mains.
// A Manager owns sessions → jobs → processes. All of its state sits behind
// one mutex (Manager.mu): every change goes through a Manager method, is
// published on the event bus while the lock is held (so events are totally
// ordered), and no I/O or blocking send happens under the lock. Event
// subscribers, output stream subscribers, the HTTP layer, webhooks and the
// lookupd client each read from bounded queues of their own; a subscriber that
// falls behind is cut off rather than waited for.
//
// Children are reaped by one goroutine (SIGCHLD + wait4), never by one
// blocked thread per child, and forked by one goroutine locked to an OS
// thread that never exits (spawner.go), outside the manager's lock:
// PR_SET_PDEATHSIG ties a child to the thread that forked it.
package gaffer

import (
	"errors"
	"fmt"
	"net/http"
)

// Version is the version of gaffer reported by the API and the programs.
const Version = "0.6.0"

// CompatVersion is the version of the original interface this one serves.
const CompatVersion = "0.5.2"

// Error is the error type of every manager operation. Code is a short
// machine string ("not_found", "process_conflict", "bad_request"…), Reason a
// human sentence and Errno the HTTP status that fits it.
type Error struct {
	Code   string
	Reason string
	Errno  int
}

// Error implements the error interface.
func (e *Error) Error() string {
	if e.Reason == "" || e.Reason == e.Code {
		return e.Code
	}
	return e.Code + ": " + e.Reason
}

// Common error codes.
const (
	CodeNotFound        = "not_found"
	CodeConflict        = "process_conflict"
	CodeBadRequest      = "bad_request"
	CodeBadValue        = "bad_value"
	CodeBadSignal       = "bad_signal"
	CodeBadOperation    = "bad_operation"
	CodeStreamNotFound  = "stream_not_found"
	CodeNotRedirected   = "io_not_redirected"
	CodeSpawnFailed     = "spawn_failed"
	CodeInternal        = "internal_error"
	CodeUnauthorized    = "unauthorized"
	CodeForbidden       = "forbidden"
	CodeMethodNotAllow  = "method_not_allowed"
	CodeTooLarge        = "request_too_large"
	CodeUnavailable     = "unavailable"
	CodeInvalidConfig   = "invalid_config"
	CodeForbiddenWrite  = "forbidden_write"
	CodeBadEventPattern = "bad_event_type"
)

// Errorf returns an *Error with the given code, HTTP status and reason.
func Errorf(code string, errno int, format string, args ...any) *Error {
	return &Error{Code: code, Errno: errno, Reason: fmt.Sprintf(format, args...)}
}

func errNotFound(format string, args ...any) *Error {
	return Errorf(CodeNotFound, http.StatusNotFound, format, args...)
}

func errBadRequest(format string, args ...any) *Error {
	return Errorf(CodeBadRequest, http.StatusBadRequest, format, args...)
}

// AsError converts any error to an *Error, mapping unknown errors to a 500.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Errno: http.StatusInternalServerError, Reason: err.Error()}
}
