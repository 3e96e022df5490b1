package gaffer

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// oaSample fills a documented path with values.
func oaSample(path string, pid int) string {
	return regexp.MustCompile(`\{[a-z]+\}`).ReplaceAllStringFunc(path, func(p string) string {
		switch p {
		case "{pid}":
			return strconv.Itoa(pid)
		case "{sid}":
			return "default"
		case "{action}":
			return "_pids"
		case "{label}", "{stream}":
			return "out"
		case "{transport}":
			return "xhr"
		case "{file}":
			return "index.html"
		}
		return "x" + strings.Trim(p, "{}")
	})
}

// oaRegistered parses the package's sources for the patterns given to
// ServeMux.Handle and HandleFunc (a string literal, or a package-level
// []string such as authRoutes), with the handler's expression, so that a
// route added anywhere is found.
func oaRegistered(t *testing.T) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	lists := map[string][]string{} // package-level []string literals
	var calls []*ast.CallExpr
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(af, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.ValueSpec:
				for i, name := range n.Names {
					if i < len(n.Values) {
						if cl, ok := n.Values[i].(*ast.CompositeLit); ok {
							for _, e := range cl.Elts {
								if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
									s, _ := strconv.Unquote(lit.Value)
									lists[name.Name] = append(lists[name.Name], s)
								}
							}
						}
					}
				}
			case *ast.CallExpr:
				if sel, ok := n.Fun.(*ast.SelectorExpr); ok && (sel.Sel.Name == "HandleFunc" || sel.Sel.Name == "Handle") && len(n.Args) == 2 {
					// The Server's mux only: s.mux, mx or mux (not lookupd's
					// l.extra, nor the daemon's plugin sites).
					switch x := sel.X.(type) {
					case *ast.Ident:
						if x.Name != "mx" && x.Name != "mux" {
							return true
						}
					case *ast.SelectorExpr:
						if x.Sel.Name != "mux" {
							return true
						}
					default:
						return true
					}
					calls = append(calls, n)
				}
			}
			return true
		})
	}
	out := map[string]string{}
	// For a pattern that is a variable: the loop it comes from.
	rangeOf := map[*ast.CallExpr]map[string]ast.Expr{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, _ := parser.ParseFile(fset, f, nil, 0)
		ast.Inspect(af, func(n ast.Node) bool {
			rs, ok := n.(*ast.RangeStmt)
			if !ok {
				return true
			}
			ast.Inspect(rs.Body, func(m ast.Node) bool {
				if c, ok := m.(*ast.CallExpr); ok {
					for _, v := range []ast.Expr{rs.Key, rs.Value} {
						if id, ok := v.(*ast.Ident); ok {
							if rangeOf[c] == nil {
								rangeOf[c] = map[string]ast.Expr{}
							}
							rangeOf[c][id.Name] = rs.X
						}
					}
				}
				return true
			})
			return true
		})
	}
	for _, c := range calls {
		handler := types(fset, c.Args[1])
		switch a := c.Args[0].(type) {
		case *ast.BasicLit:
			s, _ := strconv.Unquote(a.Value)
			out[s] = handler
		case *ast.Ident:
			// Matched by position: the parses above made distinct nodes.
			var x ast.Expr
			for rc, vars := range rangeOf {
				if fset.Position(rc.Pos()) == fset.Position(c.Pos()) {
					x = vars[a.Name]
				}
			}
			id, isIdent := x.(*ast.Ident)
			switch {
			case x == nil || !isIdent:
				// A parameter (Server.Handle) or the embedder's Extra
				// map: routes of plugins and embedders, not the API's.
				continue
			case lists[id.Name] == nil:
				t.Errorf("%s: a route pattern from %s, which the test cannot resolve", fset.Position(c.Pos()), id.Name)
			}
			for _, s := range lists[id.Name] {
				out[s] = handler
			}
		default:
			t.Errorf("%s: a route pattern that is not a literal", fset.Position(c.Pos()))
		}
	}
	return out
}

// types renders a handler expression briefly (lgMethods(...) matters).
func types(fset *token.FileSet, e ast.Expr) string {
	if c, ok := e.(*ast.CallExpr); ok {
		if id, ok := c.Fun.(*ast.Ident); ok {
			return id.Name + "(…)"
		}
	}
	return "handler"
}

// TestOpenAPIDocumentsEveryRoute: every pattern registered in the sources
// is documented, and every documented operation is served by the pattern
// it names (the pid routes by the catch-all, checked by a real request).
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	documented := map[string]bool{}
	for _, r := range oaRoutes {
		documented[r.pattern] = true
	}
	reg := oaRegistered(t)
	if len(reg) < 60 {
		t.Fatalf("found only %d registrations in the sources: the parser misses some", len(reg))
	}
	for p, h := range reg {
		if h == "lgMethods(…)" {
			continue // the JSON 405 of a path's other methods
		}
		if !documented[p] {
			t.Errorf("the route %q is served but not in GET /openapi.json (add it to oaRoutes)", p)
		}
	}
	// The catch-all dispatches the pid routes by hand (handleFallback).
	for _, want := range []string{"get /{pid}", "head /{pid}", "delete /{pid}", "post /{pid}/signal", "get /{pid}/stats",
		"get /{pid}/channel", "get /{pid}/channel/{stream}"} {
		found := false
		for _, r := range oaRoutes {
			found = found || r.method+" "+r.path == want
		}
		if !found {
			t.Errorf("the pid route %s is not documented", want)
		}
	}

	f := lgNewFixture(t, ServerOptions{}, nil)
	if err := f.m.Load("default", childConfig(t, "web", "sleep", nil), nil, true); err != nil {
		t.Fatal(err)
	}
	pid := f.procsOf("default.web")[0]
	srv := NewServer(ServerOptions{Manager: f.m})
	seen := map[string]bool{}
	for _, r := range oaRoutes {
		if seen[r.method+" "+r.path] {
			t.Errorf("%s %s documented twice", r.method, r.path)
		}
		seen[r.method+" "+r.path] = true
		if _, ok := reg[r.pattern]; !ok && r.pattern != "/" {
			t.Errorf("%s %s names the pattern %q, which no source registers", r.method, r.path, r.pattern)
		}
		url := oaSample(r.path, pid)
		req := httptest.NewRequest(strings.ToUpper(r.method), url, nil)
		if _, pattern := srv.mux.Handler(req); pattern != r.pattern {
			t.Errorf("%s %s (%s) is served by %q, not %q", r.method, r.path, url, pattern, r.pattern)
		}
		if r.pattern != "/" {
			continue
		}
		// A real request: the catch-all knows the route (no "no route"
		// 404, no 405).
		body := ""
		if r.body == "Signal" {
			body = `{"signal": "CONT"}`
		}
		st, _, data := f.do(strings.ToUpper(r.method), url, body)
		if st == 405 || (st == 404 && strings.Contains(string(data), "no route")) {
			t.Errorf("%s %s: %d %s", r.method, url, st, data)
		}
	}
}

// TestOpenAPIDocument: GET /openapi.json is an OpenAPI 3.1 document whose
// operations have ids, responses with the error shape, and the two ways
// of giving the key.
func TestOpenAPIDocument(t *testing.T) {
	f := lgNewFixture(t, ServerOptions{}, nil)
	st, h, body := f.do("GET", "/openapi.json", "")
	if st != 200 || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /openapi.json: %d %s", st, h.Get("Content-Type"))
	}
	var doc struct {
		OpenAPI    string                               `json:"openapi"`
		Paths      map[string]map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas         map[string]map[string]any `json:"schemas"`
			SecuritySchemes map[string]map[string]any `json:"securitySchemes"`
		} `json:"components"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q", doc.OpenAPI)
	}
	errSchema := doc.Components.Schemas["Error"]
	if req, _ := errSchema["required"].([]any); len(req) != 3 {
		t.Errorf("the Error schema: %v", errSchema)
	}
	hdr, q := doc.Components.SecuritySchemes["apiKeyHeader"], doc.Components.SecuritySchemes["apiKeyQuery"]
	if hdr["in"] != "header" || hdr["name"] != "X-Api-Key" || q["in"] != "query" || q["name"] != "api_key" {
		t.Errorf("security schemes: %v %v", hdr, q)
	}
	ids := map[string]bool{}
	n := 0
	for path, item := range doc.Paths {
		for method, op := range item {
			n++
			id, _ := op["operationId"].(string)
			if id == "" || ids[id] {
				t.Errorf("%s %s: operationId %q missing or not unique", method, path, id)
			}
			ids[id] = true
			resp, _ := op["responses"].(map[string]any)
			var codes []string
			for c := range resp {
				codes = append(codes, c)
			}
			sort.Strings(codes)
			if !slices.ContainsFunc(codes, func(c string) bool { return c[0] == '4' }) {
				t.Errorf("%s %s: no 4xx response (%v)", method, path, codes)
			}
		}
	}
	if n != len(oaRoutes) {
		t.Errorf("%d operations in the document, %d in the table", n, len(oaRoutes))
	}
	// The error a real 404 answers has the documented shape.
	_, _, eb := f.do("GET", "/jobs/default/nosuch", "")
	var e map[string]any
	json.Unmarshal(eb, &e)
	for _, k := range []string{"error", "reason", "errno"} {
		if _, ok := e[k]; !ok {
			t.Errorf("a real error lacks %s: %s", k, eb)
		}
	}
	if os.Getenv("GAFFER_OPENAPI_OUT") != "" {
		os.WriteFile(os.Getenv("GAFFER_OPENAPI_OUT"), body, 0o644)
	}
	_ = http.MethodGet
}
