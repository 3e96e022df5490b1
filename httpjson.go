package gaffer

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
)

// MaxBodyBytes bounds every request body read by the API.
const MaxBodyBytes = 1 << 20

// ErrorBody is the JSON shape of every API error:
// {"error": "<code>", "reason": "<sentence>", "errno": <status>}.
type ErrorBody struct {
	Error  string `json:"error"`
	Reason string `json:"reason"`
	Errno  int    `json:"errno"`
}

// writeJSON writes v as JSON with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	buf, err := json.Marshal(v)
	if err != nil {
		writeError(w, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(buf)+1))
	w.WriteHeader(status)
	buf = append(buf, '\n')
	w.Write(buf)
}

// writeError writes err in the standard error shape; errors that are not
// *Error become 500 internal_error.
func writeError(w http.ResponseWriter, err error) {
	e := AsError(err)
	reason := e.Reason
	if reason == "" {
		reason = http.StatusText(e.Errno)
	}
	buf, _ := json.Marshal(ErrorBody{Error: e.Code, Reason: reason, Errno: e.Errno})
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(buf)+1))
	h.Del("Content-Encoding")
	w.WriteHeader(e.Errno)
	w.Write(append(buf, '\n'))
}

// readBody reads a request body of at most MaxBodyBytes.
func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		return nil, errBadRequest("cannot read the request body: %v", err)
	}
	if len(data) > MaxBodyBytes {
		return nil, Errorf(CodeTooLarge, http.StatusRequestEntityTooLarge, "the request body is larger than %d bytes", MaxBodyBytes)
	}
	return data, nil
}

// decodeObject reads the body as one JSON object (numbers kept as
// json.Number). An empty body is an error unless allowEmpty, in which case
// it decodes as {}.
func decodeObject(r *http.Request, allowEmpty bool) (map[string]any, error) {
	data, err := readBody(r)
	if err != nil {
		return nil, err
	}
	return decodeObjectBytes(data, allowEmpty)
}

func decodeObjectBytes(data []byte, allowEmpty bool) (map[string]any, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		if allowEmpty {
			return map[string]any{}, nil
		}
		return nil, errBadRequest("the request body is empty; a JSON object is expected")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, errBadRequest("invalid JSON: %v", err)
	}
	if dec.More() {
		return nil, errBadRequest("invalid JSON: trailing data after the object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errBadRequest("invalid JSON: trailing data after the object")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errBadRequest("the body must be a JSON object, got %s", jsonTypeName(v))
	}
	return m, nil
}
