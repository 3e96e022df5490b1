package gaffer

// The web console at /ui/: plain HTML, CSS and JavaScript embedded in the
// binary, a client of the public API only (no route of its own besides the
// files).

import (
	"embed"
	"io"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed ui/index.html ui/app.js ui/style.css
var uiFiles embed.FS

// uiStarted is the modification time of the embedded files (for
// If-Modified-Since): the start of the program.
var uiStarted = time.Now()

// UIHandler serves the web console under /ui/: GET and HEAD only, with a
// strict Content-Security-Policy (same-origin scripts, styles and
// connections only; no framing).
func UIHandler() http.Handler {
	sub, _ := fs.Sub(uiFiles, "ui")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			methodNotAllowed(w, "GET, HEAD")
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, "/ui/")
		if !ok {
			http.Redirect(w, r, "/ui/", http.StatusMovedPermanently)
			return
		}
		name = strings.TrimPrefix(path.Clean("/"+name), "/")
		if name == "" {
			name = "index.html"
		}
		f, err := sub.Open(name)
		if err != nil {
			writeError(w, errNotFound("no console file %s", r.URL.Path))
			return
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil || st.IsDir() {
			writeError(w, errNotFound("no console file %s", r.URL.Path))
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, name, uiStarted, f.(io.ReadSeeker))
	})
}

// uiRoutes registers the console: /ui redirects to /ui/, /ui/ serves it.
func (s *Server) uiRoutes() {
	h := UIHandler()
	s.mux.Handle("/ui/", h)
	s.mux.Handle("/ui", h)
}
