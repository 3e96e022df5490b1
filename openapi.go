package gaffer

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// GET /openapi.json: an OpenAPI 3.1 description of every route, rendered
// from oaRoutes below. Each entry names the ServeMux pattern that serves
// it; openapi_test.go checks that every documented request reaches that
// pattern and that every pattern registered in the sources is documented,
// so the table stays true when a route is added.

func (s *Server) openapiRoutes() {
	s.mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, r *http.Request) {
		body := openapiDocument()
		h := w.Header()
		h.Set("Content-Type", "application/json; charset=utf-8")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})
}

// oaRoute is one operation.
type oaRoute struct {
	method, path string
	// pattern is the ServeMux pattern that serves it; "/" for the pid
	// routes that handleFallback dispatches.
	pattern string
	tag     string
	summary string
	query   []oaParam
	// body is the request body: a schema name, or "text" for text/plain.
	body string
	// ok is the success status and its body: a schema name, "text",
	// "stream" (a feed), "html", "metrics", or "" for none.
	ok     int
	okBody string
	errs   []int // error statuses, each with the Error body
	public bool  // no API key needed (see publicPath)
}

// oaParam is a query parameter.
type oaParam struct {
	name, typ, desc string
}

var (
	qDetails  = oaParam{"details", "boolean", "1 or true: the info of every job the key can read instead of the names"}
	qDryRun   = oaParam{"dry_run", "boolean", "1 or true: compute the difference without applying it"}
	qRolling  = oaParam{"rolling", "boolean", "1: one process at a time, each new one ready before an old one stops"}
	qFeed     = oaParam{"feed", "string", "longpoll (default), continuous or eventsource"}
	qSince    = oaParam{"since", "integer", "resume after this event id (also the Last-Event-ID header)"}
	qBeat     = oaParam{"heartbeat", "string", "heartbeat interval of continuous and eventsource feeds"}
	qFormat   = oaParam{"format", "string", "raw (default) or json: each chunk as {label, seq, time, data} with its capture time (eventsource \"chunk\" events, continuous NDJSON)"}
	qRunning  = oaParam{"running", "boolean", "only the running templates"}
	qInterval = oaParam{"interval", "number", "seconds between two samples of a stats feed"}
	qLFeed    = oaParam{"feed", "string", "normal (one answer), continuous or eventsource"}
	qMode     = oaParam{"mode", "string", "what the channel carries: r, w or rw"}
)

func oaNotFound() []int { return []int{400, 401, 403, 404} }

// oaRoutes is every route of the API.
var oaRoutes = []oaRoute{
	{method: "get", path: "/", pattern: "GET /{$}", tag: "server", summary: "Welcome: the name and versions of the server", ok: 200, okBody: "Welcome", public: true},
	{method: "get", path: "/ping", pattern: "GET /ping", tag: "server", summary: "Liveness: answers OK", ok: 200, okBody: "text", public: true},
	{method: "get", path: "/version", pattern: "GET /version", tag: "server", summary: "The interface version (0.5.2's) and this implementation's", ok: 200, okBody: "Welcome", public: true},
	{method: "get", path: "/openapi.json", pattern: "GET /openapi.json", tag: "server", summary: "This description", ok: 200, okBody: "object"},
	{method: "get", path: "/metrics", pattern: "GET /metrics", tag: "server", summary: "Figures in the Prometheus text format, or OpenMetrics when Accept asks for it", ok: 200, okBody: "metrics"},
	{method: "post", path: "/reload", pattern: "POST /reload", tag: "server", summary: "Re-read the configuration file and apply the difference", query: []oaParam{qDryRun}, ok: 200, okBody: "ReloadDiff", errs: []int{400, 401, 403, 503}},
	{method: "get", path: "/pids", pattern: "GET /pids", tag: "jobs", summary: "Internal pids of every live process", ok: 200, okBody: "Pids"},
	{method: "get", path: "/sessions", pattern: "GET /sessions", tag: "jobs", summary: "The sessions (applications)", ok: 200, okBody: "Sessions"},
	{method: "get", path: "/jobs", pattern: "GET /jobs", tag: "jobs", summary: "Every job's name, or with details the info of every job the key can read", query: []oaParam{qDetails}, ok: 200, okBody: "Jobs"},
	{method: "get", path: "/jobs/{sid}", pattern: "GET /jobs/{sid}", tag: "jobs", summary: "The jobs of a session", ok: 200, okBody: "SessionJobs", errs: oaNotFound()},
	{method: "post", path: "/jobs/{sid}", pattern: "POST /jobs/{sid}", tag: "jobs", summary: "Load a job in a session (started unless start is false)", body: "JobConfig", ok: 200, okBody: "Ok", errs: []int{400, 401, 403, 409}},
	{method: "get", path: "/jobs/{sid}/{name}", pattern: "GET /jobs/{sid}/{name}", tag: "jobs", summary: "A job's info: state, counts, processes, config", ok: 200, okBody: "JobInfo", errs: oaNotFound()},
	{method: "put", path: "/jobs/{sid}/{name}", pattern: "PUT /jobs/{sid}/{name}", tag: "jobs", summary: "Replace a job's config; its processes restart with it", body: "JobConfig", ok: 201, okBody: "Ok", errs: oaNotFound()},
	{method: "delete", path: "/jobs/{sid}/{name}", pattern: "DELETE /jobs/{sid}/{name}", tag: "jobs", summary: "Unload a job and stop its processes", ok: 200, okBody: "Ok", errs: oaNotFound()},
	{method: "get", path: "/jobs/{sid}/{name}/stats", pattern: "GET /jobs/{sid}/{name}/stats", tag: "jobs", summary: "CPU and memory of the job's processes", ok: 200, okBody: "JobStats", errs: oaNotFound()},
	{method: "get", path: "/jobs/{sid}/{name}/history", pattern: "GET /jobs/{sid}/{name}/history", tag: "jobs", summary: "CPU and memory of the job and of each process slot over the last 15 minutes, with uptimes and last exits (the console's graphs)", query: []oaParam{{"since", "number", "only the samples after this time (seconds since the Unix epoch)"}}, ok: 200, okBody: "JobHistory", errs: oaNotFound()},
	{method: "get", path: "/jobs/{sid}/{name}/numprocesses", pattern: "GET /jobs/{sid}/{name}/numprocesses", tag: "jobs", summary: "The job's target number of processes", ok: 200, okBody: "NumProcesses", errs: oaNotFound()},
	{method: "post", path: "/jobs/{sid}/{name}/numprocesses", pattern: "POST /jobs/{sid}/{name}/numprocesses", tag: "jobs", summary: "Scale: set (N, =N), add (+N) or remove (-N) processes", body: "Scale", ok: 200, okBody: "NumProcesses", errs: oaNotFound()},
	{method: "post", path: "/jobs/{sid}/{name}/signal", pattern: "POST /jobs/{sid}/{name}/signal", tag: "jobs", summary: "Send a signal to every process of the job", body: "Signal", ok: 202, okBody: "Ok", errs: oaNotFound()},
	{method: "get", path: "/jobs/{sid}/{name}/state", pattern: "GET /jobs/{sid}/{name}/state", tag: "jobs", summary: "1 when the job has live processes, else 0", ok: 200, okBody: "text", errs: oaNotFound()},
	{method: "post", path: "/jobs/{sid}/{name}/state", pattern: "POST /jobs/{sid}/{name}/state", tag: "jobs", summary: "Start (body 1), stop (0) or restart (2) the job", body: "text", ok: 202, okBody: "Ok", errs: oaNotFound()},
	{method: "get", path: "/jobs/{sid}/{name}/pids", pattern: "GET /jobs/{sid}/{name}/pids", tag: "jobs", summary: "Internal pids of the job's processes", ok: 200, okBody: "Pids", errs: oaNotFound()},
	{method: "post", path: "/jobs/{sid}/{name}/commit", pattern: "POST /jobs/{sid}/{name}/commit", tag: "jobs", summary: "Start a one-off process of the job, never restarted", body: "Commit", ok: 200, okBody: "Pid", errs: oaNotFound()},
	{method: "post", path: "/jobs/{sid}/{name}/restart", pattern: "POST /jobs/{sid}/{name}/restart", tag: "jobs", summary: "Restart the job's processes: all at once, or one at a time with rolling=1 (answers once done; a new process that fails stops it, the others keep running)", query: []oaParam{qRolling}, ok: 200, okBody: "Restarted", errs: []int{400, 401, 403, 404, 409, 500}},

	{method: "get", path: "/{pid}", pattern: "/", tag: "processes", summary: "A live process's info", ok: 200, okBody: "ProcessInfo", errs: oaNotFound()},
	{method: "head", path: "/{pid}", pattern: "/", tag: "processes", summary: "200 when the process is alive, else 404", ok: 200, errs: oaNotFound()},
	{method: "delete", path: "/{pid}", pattern: "/", tag: "processes", summary: "Stop a process (gracefully)", ok: 202, okBody: "Ok", errs: oaNotFound()},
	{method: "post", path: "/{pid}/signal", pattern: "/", tag: "processes", summary: "Send a signal to a process", body: "Signal", ok: 202, okBody: "Ok", errs: oaNotFound()},
	{method: "get", path: "/{pid}/stats", pattern: "/", tag: "processes", summary: "CPU and memory of a process", ok: 200, okBody: "ProcessStats", errs: oaNotFound()},
	{method: "get", path: "/{pid}/channel", pattern: "/", tag: "processes", summary: "Websocket to a process's stdin and output", query: []oaParam{qMode, qSince}, ok: 101, errs: oaNotFound()},
	{method: "get", path: "/{pid}/channel/{stream}", pattern: "/", tag: "processes", summary: "Websocket to one stream of a process", query: []oaParam{qMode, qSince}, ok: 101, errs: oaNotFound()},

	{method: "get", path: "/streams/{pid}/{label}", pattern: "GET /streams/{pid}/{label}", tag: "feeds", summary: "A process's output: longpoll, continuous or eventsource", query: []oaParam{qFeed, qSince, qBeat, qFormat}, ok: 200, okBody: "stream", errs: oaNotFound()},
	{method: "post", path: "/streams/{pid}/{label}", pattern: "POST /streams/{pid}/{label}", tag: "feeds", summary: "Write to a process's stdin or custom stream", body: "bytes", ok: 202, okBody: "Ok", errs: oaNotFound()},
	{method: "get", path: "/wstreams/{pid}", pattern: "GET /wstreams/{pid}", tag: "feeds", summary: "Websocket to a process's stdio (0.5.2's)", ok: 101, errs: oaNotFound()},
	{method: "get", path: "/watch", pattern: "GET /watch", tag: "feeds", summary: "Every manager event, as a feed", query: []oaParam{qFeed, qBeat}, ok: 200, okBody: "stream", errs: []int{400, 401}},
	{method: "get", path: "/watch/{a}", pattern: "GET /watch/{a}", tag: "feeds", summary: "Events whose name starts with a", query: []oaParam{qFeed, qBeat}, ok: 200, okBody: "stream", errs: []int{400, 401}},
	{method: "get", path: "/watch/{a}/{b}", pattern: "GET /watch/{a}/{b}", tag: "feeds", summary: "Events whose name starts with a.b", query: []oaParam{qFeed, qBeat}, ok: 200, okBody: "stream", errs: []int{400, 401}},
	{method: "get", path: "/watch/{a}/{b}/{c}", pattern: "GET /watch/{a}/{b}/{c}", tag: "feeds", summary: "Events whose name starts with a.b.c", query: []oaParam{qFeed, qBeat}, ok: 200, okBody: "stream", errs: []int{400, 401}},

	{method: "get", path: "/channel/websocket", pattern: "/channel/websocket", tag: "channel", summary: "The control channel over a raw websocket", ok: 101, errs: []int{400}, public: true},
	{method: "get", path: "/channel", pattern: "/channel", tag: "channel", summary: "SockJS greeting of the control channel", ok: 200, okBody: "text", public: true},
	{method: "get", path: "/channel/info", pattern: "/channel/", tag: "channel", summary: "SockJS info of the control channel", ok: 200, okBody: "object", public: true},
	{method: "get", path: "/channel/{server}/{session}/{transport}", pattern: "/channel/", tag: "channel", summary: "SockJS receiving transports: websocket, eventsource, htmlfile, jsonp", ok: 200, okBody: "stream", errs: []int{404}, public: true},
	{method: "post", path: "/channel/{server}/{session}/{transport}", pattern: "/channel/", tag: "channel", summary: "SockJS polling and sending transports: xhr, xhr_streaming, xhr_send, jsonp_send", body: "bytes", ok: 200, okBody: "stream", errs: []int{404}, public: true},
	{method: "get", path: "/ui", pattern: "/ui", tag: "console", summary: "Redirects to the web console", ok: 301, public: true},
	{method: "get", path: "/ui/{file}", pattern: "/ui/", tag: "console", summary: "The web console (/ui/ is its page)", ok: 200, okBody: "html", errs: []int{404}, public: true},

	{method: "get", path: "/auth", pattern: "GET /auth", tag: "auth", summary: "The API key of a user, for HTTP Basic credentials", ok: 200, okBody: "AuthKey", errs: []int{401, 404}, public: true},
	{method: "head", path: "/auth", pattern: "HEAD /auth", tag: "auth", summary: "Check HTTP Basic credentials", ok: 200, errs: []int{401, 404}, public: true},
	{method: "get", path: "/keys", pattern: "GET /keys", tag: "auth", summary: "The keys the caller may see", ok: 200, okBody: "Keys", errs: []int{401, 403, 404}},
	{method: "post", path: "/keys", pattern: "POST /keys", tag: "auth", summary: "Create a key (within the caller's own permissions)", body: "KeyCreate", ok: 200, okBody: "KeyCreated", errs: []int{400, 401, 403, 404}},
	{method: "head", path: "/keys/{key}", pattern: "HEAD /keys/{key}", tag: "auth", summary: "200 when the key exists", ok: 200, errs: oaNotFound()},
	{method: "get", path: "/keys/{key}", pattern: "GET /keys/{key}", tag: "auth", summary: "A key and its permissions", ok: 200, okBody: "Key", errs: oaNotFound()},
	{method: "delete", path: "/keys/{key}", pattern: "DELETE /keys/{key}", tag: "auth", summary: "Delete a key and its sub-keys", ok: 200, okBody: "Ok", errs: oaNotFound()},
	{method: "get", path: "/users", pattern: "GET /users", tag: "auth", summary: "The users", ok: 200, okBody: "Users", errs: []int{401, 403, 404}},
	{method: "post", path: "/users", pattern: "POST /users", tag: "auth", summary: "Create a user", body: "UserCreate", ok: 200, okBody: "Ok", errs: []int{400, 401, 403, 404, 409}},
	{method: "head", path: "/users/{username}", pattern: "HEAD /users/{username}", tag: "auth", summary: "200 when the user exists", ok: 200, errs: oaNotFound()},
	{method: "get", path: "/users/{username}", pattern: "GET /users/{username}", tag: "auth", summary: "A user", ok: 200, okBody: "User", errs: oaNotFound()},
	{method: "put", path: "/users/{username}", pattern: "PUT /users/{username}", tag: "auth", summary: "Update a user", body: "UserCreate", ok: 200, okBody: "Ok", errs: oaNotFound()},
	{method: "delete", path: "/users/{username}", pattern: "DELETE /users/{username}", tag: "auth", summary: "Delete a user", ok: 200, okBody: "Ok", errs: oaNotFound()},
	{method: "put", path: "/users/{username}/password", pattern: "PUT /users/{username}/password", tag: "auth", summary: "Set a user's password", body: "Password", ok: 200, okBody: "Ok", errs: oaNotFound()},
	{method: "put", path: "/users/{username}/key", pattern: "PUT /users/{username}/key", tag: "auth", summary: "Link a user to a key", body: "UserKey", ok: 200, okBody: "Ok", errs: oaNotFound()},

	{method: "get", path: "/processes", pattern: "GET /processes", tag: "legacy", summary: "0.4: the templates' names (or with running, the pids)", query: []oaParam{qRunning}, ok: 200, okBody: "array", errs: []int{401, 403}},
	{method: "post", path: "/processes", pattern: "POST /processes", tag: "legacy", summary: "0.4: add a template", body: "JobConfig", ok: 200, okBody: "Ok", errs: []int{400, 401, 403, 409}},
	{method: "get", path: "/processes/{name}", pattern: "GET /processes/{name}", tag: "legacy", summary: "0.4: a template's config", ok: 200, okBody: "JobConfig", errs: oaNotFound()},
	{method: "put", path: "/processes/{name}", pattern: "PUT /processes/{name}", tag: "legacy", summary: "0.4: update a template", body: "JobConfig", ok: 200, okBody: "Ok", errs: oaNotFound()},
	{method: "delete", path: "/processes/{name}", pattern: "DELETE /processes/{name}", tag: "legacy", summary: "0.4: remove a template", ok: 200, okBody: "Ok", errs: oaNotFound()},
	{method: "get", path: "/processes/{name}/{action}", pattern: "GET /processes/{name}/{action}", tag: "legacy", summary: "0.4: _pids of a template", ok: 200, okBody: "object", errs: oaNotFound()},
	{method: "post", path: "/processes/{name}/{action}", pattern: "POST /processes/{name}/{action}", tag: "legacy", summary: "0.4: _start, _stop, _restart, _add, _sub or _signal a template (or a pid)", body: "object", ok: 200, okBody: "object", errs: oaNotFound()},
	{method: "post", path: "/processes/{name}/{action}/{arg}", pattern: "POST /processes/{name}/{action}/{arg}", tag: "legacy", summary: "0.4: _add/N, _sub/N or _signal/SIG", ok: 200, okBody: "object", errs: oaNotFound()},
	{method: "get", path: "/status/{name}", pattern: "GET /status/{name}", tag: "legacy", summary: "0.4: a template's status", ok: 200, okBody: "object", errs: oaNotFound()},
	{method: "get", path: "/groups", pattern: "GET /groups", tag: "legacy", summary: "0.4: the groups (sessions)", ok: 200, okBody: "array", errs: []int{401, 403}},
	{method: "get", path: "/groups/{g}", pattern: "GET /groups/{g}", tag: "legacy", summary: "0.4: the templates of a group", ok: 200, okBody: "array", errs: oaNotFound()},
	{method: "delete", path: "/groups/{g}", pattern: "DELETE /groups/{g}", tag: "legacy", summary: "0.4: remove every template of a group", ok: 200, okBody: "Ok", errs: oaNotFound()},
	{method: "post", path: "/groups/{g}/{action}", pattern: "POST /groups/{g}/{action}", tag: "legacy", summary: "0.4: _start, _stop or _restart a group", ok: 200, okBody: "Ok", errs: oaNotFound()},
	{method: "get", path: "/stats", pattern: "GET /stats", tag: "legacy", summary: "0.4: stats of every template, once or as a feed", query: []oaParam{qLFeed, qInterval}, ok: 200, okBody: "stream", errs: []int{400, 401, 403}},
	{method: "get", path: "/stats/{name}", pattern: "GET /stats/{name}", tag: "legacy", summary: "0.4: stats of a template", query: []oaParam{qLFeed, qInterval}, ok: 200, okBody: "stream", errs: oaNotFound()},
	{method: "get", path: "/stats/{name}/{pid}", pattern: "GET /stats/{name}/{pid}", tag: "legacy", summary: "0.4: stats of one process of a template", query: []oaParam{qLFeed, qInterval}, ok: 200, okBody: "stream", errs: oaNotFound()},
}

// oaPathParams describes the path parameters by name.
var oaPathParams = map[string]oaParam{
	"sid":       {"sid", "string", "session (application) name"},
	"name":      {"name", "string", "job name within the session (0.4 routes: web, or app:web)"},
	"pid":       {"pid", "integer", "internal pid (never reused), not the OS pid"},
	"label":     {"label", "string", "output label or custom stream (redirect_output, custom_streams)"},
	"stream":    {"stream", "string", "output label or custom stream"},
	"key":       {"key", "string", "an API key"},
	"username":  {"username", "string", "a user name"},
	"action":    {"action", "string", "an action: _start, _stop, _restart, _add, _sub, _signal or _pids"},
	"arg":       {"arg", "string", "the action's argument: a number or a signal"},
	"g":         {"g", "string", "group (session) name"},
	"a":         {"a", "string", "first segment of an event name pattern"},
	"b":         {"b", "string", "second segment of an event name pattern"},
	"c":         {"c", "string", "third segment of an event name pattern"},
	"server":    {"server", "string", "SockJS server id"},
	"session":   {"session", "string", "SockJS session id"},
	"transport": {"transport", "string", "SockJS transport"},
	"file":      {"file", "string", "a file of the console"},
}

var (
	oaOnce sync.Once
	oaJSON []byte
)

// openapiDocument renders oaRoutes (once).
func openapiDocument() []byte {
	oaOnce.Do(func() {
		b, err := json.MarshalIndent(openapiMap(), "", "  ")
		if err != nil {
			panic("openapi: " + err.Error()) // the document is static: a test catches this
		}
		oaJSON = append(b, '\n')
	})
	return oaJSON
}

func openapiMap() map[string]any {
	paths := map[string]any{}
	ids := map[string]int{}
	for _, r := range oaRoutes {
		item, _ := paths[r.path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[r.path] = item
		}
		var params []any
		for _, seg := range strings.Split(r.path, "/") {
			if strings.HasPrefix(seg, "{") {
				p := oaPathParams[strings.Trim(seg, "{}")]
				sch := map[string]any{"type": p.typ}
				if p.typ == "integer" {
					sch["minimum"] = 1
				}
				if p.name == "pid" {
					sch["type"], sch["pattern"] = "string", "^[0-9]+$" // digits: /{pid} never takes /jobs
					delete(sch, "minimum")
				}
				params = append(params, map[string]any{"name": p.name, "in": "path", "required": true, "description": p.desc, "schema": sch})
			}
		}
		for _, q := range r.query {
			params = append(params, map[string]any{"name": q.name, "in": "query", "description": q.desc, "schema": map[string]any{"type": q.typ}})
		}
		id := oaOperationID(r)
		ids[id]++
		if ids[id] > 1 {
			id += strconv.Itoa(ids[id])
		}
		op := map[string]any{"operationId": id, "summary": r.summary, "tags": []string{r.tag}, "responses": oaResponses(r)}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if r.body != "" {
			op["requestBody"] = map[string]any{"required": r.body != "Commit", "content": oaContent(r.body)}
		}
		if r.public {
			op["security"] = []any{map[string]any{}}
			if r.tag == "auth" {
				op["security"] = []any{map[string]any{"basic": []string{}}}
			}
		}
		item[r.method] = op
	}
	tags := []any{}
	for _, t := range [][2]string{{"server", "The server itself"}, {"jobs", "Sessions, jobs and their processes"},
		{"processes", "One process, by internal pid"}, {"feeds", "Process output and manager events as feeds"},
		{"channel", "The control channel (websocket and SockJS)"}, {"console", "The web console"},
		{"auth", "Users and API keys (404 when require_key is off)"}, {"legacy", "The 0.4 API that gafferctl uses"}} {
		tags = append(tags, map[string]any{"name": t[0], "description": t[1]})
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "gafferd HTTP API", "version": Version,
			"description": "The HTTP API of gafferd, the gaffer process supervisor. Every error answers " +
				"{\"error\": code, \"reason\": sentence, \"errno\": status}. With require_key on, every route but the " +
				"public ones needs an API key, in the X-Api-Key header or, on GET, the api_key query parameter.",
			"license": map[string]any{"name": "Public domain", "identifier": "Unlicense"}},
		"servers":  []any{map[string]any{"url": "http://127.0.0.1:5000", "description": "gafferd's default endpoint"}},
		"tags":     tags,
		"security": []any{map[string]any{"apiKeyHeader": []string{}}, map[string]any{"apiKeyQuery": []string{}}},
		"paths":    paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{
				"apiKeyHeader": map[string]any{"type": "apiKey", "in": "header", "name": "X-Api-Key"},
				"apiKeyQuery":  map[string]any{"type": "apiKey", "in": "query", "name": "api_key", "description": "GET only (EventSource cannot set headers)"},
				"basic":        map[string]any{"type": "http", "scheme": "basic"},
			},
			"responses": map[string]any{"Error": map[string]any{"description": "An error",
				"content": map[string]any{"application/json": map[string]any{"schema": oaRef("Error")}}}},
			"schemas": oaSchemas(),
		},
	}
}

// oaOperationID is method + path in camel case: getJobsSidNameStats.
func oaOperationID(r oaRoute) string {
	id := r.method
	for _, seg := range strings.FieldsFunc(r.path, func(c rune) bool { return c == '/' || c == '{' || c == '}' || c == '.' || c == '_' }) {
		id += strings.ToUpper(seg[:1]) + seg[1:]
	}
	if r.path == "/" {
		id += "Root"
	}
	return id
}

func oaRef(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }

// oaContent is the content of a body kind.
func oaContent(kind string) map[string]any {
	switch kind {
	case "text":
		return map[string]any{"text/plain": map[string]any{"schema": map[string]any{"type": "string"}}}
	case "bytes":
		return map[string]any{"application/octet-stream": map[string]any{"schema": map[string]any{"type": "string", "contentMediaType": "application/octet-stream"}}}
	case "html":
		return map[string]any{"text/html": map[string]any{"schema": map[string]any{"type": "string"}}}
	case "metrics":
		return map[string]any{
			"text/plain":                   map[string]any{"schema": map[string]any{"type": "string", "description": "text format 0.0.4"}},
			"application/openmetrics-text": map[string]any{"schema": map[string]any{"type": "string", "description": "OpenMetrics 1.0"}},
		}
	case "stream":
		return map[string]any{
			"application/json":  map[string]any{"schema": map[string]any{"description": "one answer (longpoll, normal)"}},
			"text/event-stream": map[string]any{"schema": map[string]any{"type": "string", "description": "eventsource feed"}},
		}
	case "object":
		return map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object"}}}
	case "array":
		return map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "array"}}}
	}
	return map[string]any{"application/json": map[string]any{"schema": oaRef(kind)}}
}

func oaResponses(r oaRoute) map[string]any {
	out := map[string]any{}
	okDesc := map[int]string{101: "Switching to the websocket protocol", 200: "OK", 201: "Created", 202: "Accepted", 301: "Moved"}[r.ok]
	ok := map[string]any{"description": okDesc}
	if r.okBody != "" && r.method != "head" {
		ok["content"] = oaContent(r.okBody)
	}
	out[strconv.Itoa(r.ok)] = ok
	errs := append([]int(nil), r.errs...)
	if !r.public && !containsInt(errs, 401) {
		errs = append(errs, 401)
	}
	if len(errs) == 0 {
		errs = []int{400}
	}
	if r.method != "head" && !containsInt(errs, 405) {
		errs = append(errs, 405)
	}
	sort.Ints(errs)
	for _, e := range errs {
		if r.method == "head" {
			out[strconv.Itoa(e)] = map[string]any{"description": http.StatusText(e) + " (no body)"}
			continue
		}
		out[strconv.Itoa(e)] = map[string]any{"$ref": "#/components/responses/Error"}
	}
	return out
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
