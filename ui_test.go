package gaffer

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestUIHandler(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("/ui/", UIHandler())
	mux.Handle("/ui", UIHandler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(method, path string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	for _, c := range []struct{ path, ctype, has string }{
		{"/ui/", "text/html; charset=utf-8", `<script src="app.js" defer></script>`},
		{"/ui/index.html", "text/html; charset=utf-8", "<title>gaffer console</title>"},
		{"/ui/app.js", "text/javascript; charset=utf-8", "/jobs?details=1"},
		{"/ui/style.css", "text/css; charset=utf-8", "pre#output"},
	} {
		code, body, h := get("GET", c.path)
		if code != 200 || h.Get("Content-Type") != c.ctype || !strings.Contains(body, c.has) {
			t.Errorf("GET %s: %d %q", c.path, code, h.Get("Content-Type"))
		}
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("GET %s: CSP %q", c.path, csp)
		}
	}
	if code, _, h := get("GET", "/ui"); code != 301 || h.Get("Location") != "/ui/" {
		t.Errorf("GET /ui: %d %v", code, h)
	}
	for _, p := range []string{"/ui/nope.js", "/ui/sub/"} {
		if code, body, _ := get("GET", p); code != 404 || !strings.Contains(body, `"not_found"`) {
			t.Errorf("GET %s: %d %s", p, code, body)
		}
	}
	if code, _, _ := get("POST", "/ui/"); code != 405 {
		t.Errorf("POST /ui/: %d", code)
	}
	// The console never inlines scripts or styles (the CSP forbids them).
	_, index, _ := get("GET", "/ui/")
	if strings.Contains(index, "<script>") || strings.Contains(index, "style=") || strings.Contains(index, "onclick=") {
		t.Error("index.html has inline script or style")
	}
	if !strings.Contains(index, `id="job-filter"`) {
		t.Error("index.html has no filter box")
	}
	// The console draws its graphs itself and loads nothing from
	// elsewhere: no URL of another origin in any of its files.
	for _, f := range []string{"/ui/", "/ui/app.js", "/ui/style.css"} {
		_, body, _ := get("GET", f)
		for _, bad := range []string{"http://", "https://", "//cdn", "import("} {
			if i := strings.Index(body, bad); i >= 0 && !strings.HasPrefix(body[i:], "http://www.w3.org/2000/svg") {
				t.Errorf("%s refers to %q: the console must not load anything at run time", f, body[i:min(len(body), i+40)])
			}
		}
	}
	_, app, _ := get("GET", "/ui/app.js")
	for _, want := range []string{"/history", "createElementNS(SVG", "/state', value", "api('DELETE', '/' + pid)", "eventIsAlias", "j.process_states", "/restart?rolling=1", "j.waiting_for", "j.next_try"} {
		if !strings.Contains(app, want) {
			t.Errorf("app.js lacks %q", want)
		}
	}
}
