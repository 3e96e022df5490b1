package gaffer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// authFixture is a store behind a test server whose middleware does what
// the real HTTP layer does: X-Api-Key → LookupKey → WithKey.
type authFixture struct {
	t   *testing.T
	s   *AuthStore
	srv *httptest.Server
	// keys, by role
	admin, read, ck, cu, elsewhere string
}

func authTestMiddleware(s *AuthStore, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.Header.Get("X-Api-Key"); v != "" {
			key, ok := ParseAPIKeyHeader(v)
			k, found := s.LookupKey(key)
			if !ok || !found {
				writeError(w, authErrForbidden("unknown API key"))
				return
			}
			r = r.WithContext(WithKey(r.Context(), k))
		}
		next.ServeHTTP(w, r)
	})
}

func authNewFixture(t *testing.T) *authFixture {
	t.Helper()
	s, err := OpenAuthStore(filepath.Join(t.TempDir(), "auth"))
	if err != nil {
		t.Fatal(err)
	}
	f := &authFixture{t: t, s: s}
	_, admin, err := s.CreateAdminUser("root", "rootpw")
	if err != nil {
		t.Fatal(err)
	}
	mk := func(label string, p Permissions) string {
		k, err := s.CreateKey(admin, label, p, nil)
		if err != nil {
			t.Fatal(err)
		}
		return k.Key
	}
	f.admin = admin.Key
	f.read = mk("reader", Permissions{Read: []string{"app"}})
	f.ck = mk("key maker", Permissions{CreateKey: true, Manage: []string{"app"}, Read: []string{"*"}})
	f.cu = mk("user maker", Permissions{CreateUser: true, Manage: []string{"app"}})
	f.elsewhere = mk("elsewhere", Permissions{CreateKey: true, CreateUser: true, Manage: []string{"other"}})
	if err := s.CreateUser("appuser", "apppw", UserTypeApp, f.read, map[string]any{"team": "web"}); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	s.RegisterRoutes(mux)
	f.srv = httptest.NewServer(authTestMiddleware(s, mux))
	t.Cleanup(f.srv.Close)
	return f
}

// do sends a request and returns the status, the decoded JSON body (nil if
// none) and the headers.
func (f *authFixture) do(method, path, key, body string, hdr ...string) (int, map[string]any, http.Header) {
	f.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, f.srv.URL+path, rd)
	if key != "" {
		req.Header.Set("X-Api-Key", key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(data) > 0 {
		if err := json.Unmarshal(data, &m); err != nil {
			f.t.Fatalf("%s %s: body %q is not a JSON object", method, path, data)
		}
		if resp.StatusCode >= 400 {
			if m["error"] == nil || m["reason"] == nil || m["errno"] != float64(resp.StatusCode) {
				f.t.Errorf("%s %s: error body %s", method, path, data)
			}
		}
		if strings.Contains(string(data), "pbkdf2") || strings.Contains(string(data), `"password":`) || strings.Contains(string(data), `"pwd":`) {
			f.t.Errorf("%s %s: body mentions a password: %s", method, path, data)
		}
	}
	return resp.StatusCode, m, resp.Header
}

// snapshot is the whole stored state, hashes included.
func (f *authFixture) snapshot() string {
	f.s.mu.RLock()
	hashes := map[string]string{}
	for name, r := range f.s.users {
		hashes[name] = r.hash
	}
	f.s.mu.RUnlock()
	data, _ := json.Marshal([]any{f.s.Keys(), f.s.Users(), hashes})
	return string(data)
}

type authCase struct {
	who  string // role
	want int
}

// check runs one request per role; a refused request must change nothing.
func (f *authFixture) check(method, path, body string, cases []authCase) {
	f.t.Helper()
	roles := map[string]string{"none": "", "read": f.read, "ck": f.ck, "cu": f.cu, "elsewhere": f.elsewhere, "admin": f.admin}
	for _, c := range cases {
		key, ok := roles[c.who]
		if !ok {
			key = c.who // a literal key
		}
		before := f.snapshot()
		got, _, _ := f.do(method, path, key, body)
		if got != c.want {
			f.t.Errorf("%s %s as %s: status %d, want %d", method, path, c.who, got, c.want)
		}
		if got >= 400 && f.snapshot() != before {
			f.t.Errorf("%s %s as %s: refused (%d) but the store changed", method, path, c.who, got)
		}
	}
}

func TestAuthHTTPAuth(t *testing.T) {
	f := authNewFixture(t)
	code, m, h := f.do("GET", "/auth", "", "", "Authorization", authBasicHeader("appuser", "apppw"))
	if code != 200 || m["api_key"] != f.read || h.Get("X-Api-Key") != f.read {
		t.Errorf("GET /auth = %d %v %v", code, m, h.Get("X-Api-Key"))
	}
	code, m, h = f.do("HEAD", "/auth", "", "", "Authorization", authBasicHeader("appuser", "apppw"))
	if code != 200 || m != nil || h.Get("X-Api-Key") != f.read {
		t.Errorf("HEAD /auth = %d %v", code, m)
	}
	// A password with colons (0.5.2 gave 500).
	f.s.CreateUser("colon", "a:b:c", UserTypeApp, "", nil)
	code, m, _ = f.do("GET", "/auth", "", "", "Authorization", authBasicHeader("colon", "a:b:c"))
	if code != 200 || m["api_key"] != nil {
		t.Errorf("colon password: %d %v", code, m)
	}
	for _, hv := range []string{"", "Bearer x", "Basic !!!", authBasicHeader("appuser", "wrong"), authBasicHeader("nobody", "apppw")} {
		code, m, h := f.do("GET", "/auth", "", "", "Authorization", hv)
		if code != 401 || m["error"] != "unauthorized" || h.Get("WWW-Authenticate") == "" || h.Get("X-Api-Key") != "" {
			t.Errorf("GET /auth with %q = %d %v", hv, code, m)
		}
	}
}

func TestAuthHTTPKeysList(t *testing.T) {
	f := authNewFixture(t)
	f.check("GET", "/keys", "", []authCase{{"none", 401}, {"read", 403}, {"ck", 403}, {"cu", 403}, {"elsewhere", 403}, {"admin", 200}, {"0000", 403}})
	_, m, _ := f.do("GET", "/keys", f.admin, "")
	if keys, _ := m["keys"].([]any); len(keys) != 5 || keys[0] != f.admin {
		t.Errorf("GET /keys = %v", m)
	}
	_, m, _ = f.do("GET", "/keys?include_keys=TRUE", f.admin, "")
	if keys, _ := m["keys"].([]any); len(keys) != 5 || keys[0].(map[string]any)["label"] != "admin key" {
		t.Errorf("GET /keys?include_keys = %v", m)
	}
}

func TestAuthHTTPCreateKey(t *testing.T) {
	f := authNewFixture(t)
	body := `{"label":"new","permissions":{"read":["app.web"]},"key":"chosen","note":"x"}`
	f.check("POST", "/keys", body, []authCase{{"none", 401}, {"read", 403}, {"cu", 403}, {"elsewhere", 403}})
	f.check("POST", "/keys", `{"permissions":{"manage":["*"]}}`, []authCase{{"ck", 403}})
	f.check("POST", "/keys", `{"permissions":{"admin":true}}`, []authCase{{"ck", 403}, {"elsewhere", 403}})
	f.check("POST", "/keys", `{"permissions":{"create_user":true}}`, []authCase{{"ck", 403}})
	f.check("POST", "/keys", `not json`, []authCase{{"ck", 400}, {"read", 403}})
	f.check("POST", "/keys", `{"permissions":{"read":"app"}}`, []authCase{{"ck", 400}})
	f.check("POST", "/keys", `{"label":3}`, []authCase{{"ck", 400}})
	f.check("POST", "/keys", `{"parent":"nope"}`, []authCase{{"ck", 400}})
	f.check("POST", "/keys", `{"parent":"`+f.elsewhere+`"}`, []authCase{{"ck", 403}})

	code, m, h := f.do("POST", "/keys", f.ck, body)
	k, _ := m["api_key"].(string)
	if code != 200 || m["ok"] != true || len(k) != 32 || k == "chosen" || h.Get("X-Api-Key") != k || !strings.HasSuffix(h.Get("Location"), "/keys/"+k) {
		t.Fatalf("POST /keys = %d %v %v", code, m, h)
	}
	got, ok := f.s.LookupKey(k)
	if !ok || got.Label != "new" || got.Extra["note"] != "x" || got.Permissions.Read[0] != "app.web" || got.Parent != f.ck {
		t.Errorf("created key %+v (want a sub-key of its creator)", got)
	}
	// An explicit sub-key of the caller, which without create_key cannot
	// create keys.
	code, m, _ = f.do("POST", "/keys", f.ck, `{"parent":"`+f.ck+`","permissions":{"manage":["app"]}}`)
	sub, _ := m["api_key"].(string)
	if code != 200 {
		t.Fatalf("sub-key: %d %v", code, m)
	}
	if k, _ := f.s.LookupKey(sub); k.Parent != f.ck {
		t.Errorf("sub-key parent %q", k.Parent)
	}
	f.check("POST", "/keys", `{}`, []authCase{{sub, 403}})
	// An admin may create an admin key.
	code, _, _ = f.do("POST", "/keys", f.admin, `{"permissions":{"admin":true}}`)
	if code != 200 {
		t.Errorf("admin creating admin: %d", code)
	}
}

func TestAuthHTTPKey(t *testing.T) {
	f := authNewFixture(t)
	// A key made by the key maker (its sub-key), and a sub-key of that one.
	ck, _ := f.s.LookupKey(f.ck)
	mine, _ := f.s.CreateKey(ck, "mine", Permissions{Read: []string{"app"}}, nil)
	child, _ := f.s.CreateKey(nil, "child", Permissions{Read: []string{"app.web"}}, map[string]any{"parent": mine.Key})
	for _, method := range []string{"HEAD", "GET"} {
		f.check(method, "/keys/"+mine.Key, "", []authCase{{"none", 401}, {"read", 403}, {"cu", 403}, {"elsewhere", 403}, {"ck", 200}, {"admin", 200}, {mine.Key, 200}, {child.Key, 403}})
		f.check(method, "/keys/"+f.admin, "", []authCase{{"ck", 403}, {"elsewhere", 403}, {"admin", 200}})
		// f.read is the admin's sub-key, a sibling of ck: only itself and
		// the admin see it.
		f.check(method, "/keys/"+f.read, "", []authCase{{"read", 200}, {"ck", 403}, {"elsewhere", 403}, {"admin", 200}})
		f.check(method, "/keys/unknownkey", "", []authCase{{"none", 401}, {"read", 403}, {"ck", 404}, {"admin", 404}})
	}
	_, m, _ := f.do("GET", "/keys/"+mine.Key+"?include_keys=true", f.ck, "")
	subs, _ := m["keys"].([]any)
	if m["key"] != mine.Key || m["label"] != "mine" || len(subs) != 1 || subs[0].(map[string]any)["key"] != child.Key {
		t.Errorf("GET /keys/<k>?include_keys = %v", m)
	}
	_, m, _ = f.do("GET", "/keys/"+mine.Key, f.ck, "")
	if _, has := m["keys"]; has {
		t.Error("sub-keys listed without include_keys")
	}

	f.check("DELETE", "/keys/"+mine.Key, "", []authCase{{"none", 401}, {"read", 403}, {"cu", 403}, {"elsewhere", 403}, {child.Key, 403}})
	f.check("DELETE", "/keys/"+f.admin, "", []authCase{{"ck", 403}, {"elsewhere", 403}})
	f.check("DELETE", "/keys/unknownkey", "", []authCase{{"ck", 404}, {"admin", 404}})
	f.check("DELETE", "/keys/"+mine.Key, "", []authCase{{"ck", 200}, {"ck", 404}})
	if _, ok := f.s.LookupKey(child.Key); ok {
		t.Error("deleting a key left its sub-key")
	}
	// A key may delete itself.
	f.check("DELETE", "/keys/"+f.read, "", []authCase{{"read", 200}, {"read", 403}})
	f.check("DELETE", "/keys/"+f.elsewhere, "", []authCase{{"admin", 200}})
}

func TestAuthHTTPUsersList(t *testing.T) {
	f := authNewFixture(t)
	f.check("GET", "/users", "", []authCase{{"none", 401}, {"read", 403}, {"ck", 403}, {"cu", 403}, {"elsewhere", 403}, {"admin", 200}})
	_, m, _ := f.do("GET", "/users", f.admin, "")
	if users, _ := m["users"].([]any); len(users) != 2 || users[0] != "root" || users[1] != "appuser" {
		t.Errorf("GET /users = %v", m)
	}
	_, m, _ = f.do("GET", "/users?include_user=true", f.admin, "")
	users, _ := m["users"].([]any)
	if len(users) != 2 {
		t.Fatalf("GET /users?include_user = %v", m)
	}
	if u := users[1].(map[string]any); u["username"] != "appuser" || u["user_type"] != 1.0 || u["key"] != f.read || u["team"] != "web" {
		t.Errorf("appuser = %v", u)
	}
}

func TestAuthHTTPCreateUser(t *testing.T) {
	f := authNewFixture(t)
	body := `{"username":"new","password":"pw","email":"n@x"}`
	f.check("POST", "/users", body, []authCase{{"none", 401}, {"read", 403}, {"ck", 403}})
	f.check("POST", "/users", `{"username":"t0","password":"pw","user_type":0}`, []authCase{{"cu", 403}, {"elsewhere", 403}})
	f.check("POST", "/users", `{"username":"x","password":"pw","key":"`+f.admin+`"}`, []authCase{{"cu", 403}})
	f.check("POST", "/users", `{"username":"x","password":"pw","key":"`+f.ck+`"}`, []authCase{{"cu", 403}})
	f.check("POST", "/users", `{"password":"pw"}`, []authCase{{"cu", 400}})
	f.check("POST", "/users", `{"username":"x"}`, []authCase{{"cu", 400}})
	f.check("POST", "/users", `{"username":"x","password":null}`, []authCase{{"cu", 400}})
	f.check("POST", "/users", `{"username":"a:b","password":"pw"}`, []authCase{{"cu", 400}})
	f.check("POST", "/users", `[]`, []authCase{{"cu", 400}})
	f.check("POST", "/users", `{"username":"appuser","password":"pw"}`, []authCase{{"cu", 409}})
	f.check("POST", "/users", body, []authCase{{"cu", 200}, {"cu", 409}})
	u, ok := f.s.Authenticate("new", "pw")
	if !ok || u.UserType != UserTypeApp || u.Key != "" || u.Extra["email"] != "n@x" {
		t.Errorf("created %+v", u)
	}
	f.check("POST", "/users", `{"username":"linked","password":"pw","key":"`+f.read+`","user_type":2}`, []authCase{{"cu", 200}})
	f.check("POST", "/users", `{"username":"t0","password":"pw","user_type":0}`, []authCase{{"admin", 200}})
	f.check("POST", "/users", `{"username":"ghost","password":"pw","key":"notyetakey"}`, []authCase{{"elsewhere", 200}})
}

func TestAuthHTTPUser(t *testing.T) {
	f := authNewFixture(t)
	for _, p := range []string{"/users/appuser", "/users/root"} {
		f.check("HEAD", p, "", []authCase{{"none", 401}, {"ck", 404}, {"cu", 200}, {"admin", 200}})
	}
	f.check("HEAD", "/users/appuser", "", []authCase{{"read", 200}})
	f.check("HEAD", "/users/nobody", "", []authCase{{"read", 404}, {"cu", 404}})

	f.check("GET", "/users/appuser", "", []authCase{{"none", 401}, {"ck", 403}, {"read", 200}, {"cu", 200}, {"elsewhere", 403}, {"admin", 200}})
	f.check("GET", "/users/root", "", []authCase{{"read", 403}, {"cu", 403}, {"elsewhere", 403}, {"admin", 200}})
	f.check("GET", "/users/nobody", "", []authCase{{"read", 403}, {"ck", 403}, {"cu", 404}, {"admin", 404}})
	_, m, _ := f.do("GET", "/users/appuser", f.read, "")
	if m["username"] != "appuser" || m["key"] != f.read || m["team"] != "web" || m["user_type"] != 1.0 {
		t.Errorf("GET /users/appuser = %v", m)
	}

	// Full update: create_user only, never by the user's own key.
	put := `{"password":"pw2","team":"ops","username":"ignored"}`
	f.check("PUT", "/users/appuser", put, []authCase{{"none", 401}, {"read", 403}, {"ck", 403}, {"elsewhere", 403}})
	f.check("PUT", "/users/root", put, []authCase{{"cu", 403}, {"elsewhere", 403}})
	f.check("PUT", "/users/nobody", put, []authCase{{"read", 403}, {"cu", 404}, {"admin", 404}})
	f.check("PUT", "/users/appuser", `{"team":"ops"}`, []authCase{{"cu", 400}})
	f.check("PUT", "/users/appuser", `{"password":"x","user_type":0}`, []authCase{{"cu", 403}})
	f.check("PUT", "/users/appuser", `{"password":"x","key":"`+f.admin+`"}`, []authCase{{"cu", 403}})
	f.check("PUT", "/users/appuser", put, []authCase{{"cu", 200}})
	u, ok := f.s.Authenticate("appuser", "pw2")
	if !ok || u.Key != f.read || u.Extra["team"] != "ops" || u.Username != "appuser" {
		t.Errorf("after PUT: %+v %v", u, ok)
	}
	f.check("PUT", "/users/root", `{"password":"rootpw9"}`, []authCase{{"admin", 200}})
	if u, _ := f.s.GetUser("root"); u.UserType != UserTypeUser || u.Key != f.admin {
		t.Errorf("PUT without user_type and key changed them: %+v", u)
	}
	f.check("PUT", "/users/appuser", `{"password":"pw3","key":null}`, []authCase{{"admin", 200}})
	if u, _ := f.s.GetUser("appuser"); u.Key != "" {
		t.Errorf("key: null kept %q", u.Key)
	}

	// Delete: the user's own key, or create_user.
	f.s.CreateUser("selfish", "pw", UserTypeApp, f.ck, nil)
	f.check("DELETE", "/users/selfish", "", []authCase{{"none", 401}, {"read", 403}, {"elsewhere", 403}, {"cu", 403}})
	f.check("DELETE", "/users/root", "", []authCase{{"cu", 403}, {"ck", 403}})
	f.check("DELETE", "/users/nobody", "", []authCase{{"read", 403}, {"cu", 404}})
	f.check("DELETE", "/users/selfish", "", []authCase{{"ck", 200}, {"ck", 403}, {"admin", 404}})
	f.check("DELETE", "/users/appuser", "", []authCase{{"cu", 200}})
}

func TestAuthHTTPUserPasswordAndKey(t *testing.T) {
	f := authNewFixture(t)
	f.check("PUT", "/users/appuser/password", `{"password":"new"}`, []authCase{{"none", 401}, {"ck", 403}, {"elsewhere", 403}})
	f.check("PUT", "/users/root/password", `{"password":"new"}`, []authCase{{"cu", 403}, {"read", 403}, {"elsewhere", 403}})
	f.check("PUT", "/users/nobody/password", `{"password":"new"}`, []authCase{{"read", 403}, {"cu", 404}, {"admin", 404}})
	f.check("PUT", "/users/appuser/password", `{"password":null}`, []authCase{{"read", 400}})
	f.check("PUT", "/users/appuser/password", `{}`, []authCase{{"cu", 400}})
	f.check("PUT", "/users/appuser/password", `{"password":"own"}`, []authCase{{"read", 200}})
	if _, ok := f.s.Authenticate("appuser", "own"); !ok {
		t.Error("own password change")
	}
	f.check("PUT", "/users/appuser/password", `{"password":"bycu"}`, []authCase{{"cu", 200}})
	f.check("PUT", "/users/root/password", `{"password":"rootpw2"}`, []authCase{{"admin", 200}})
	if _, ok := f.s.Authenticate("root", "rootpw2"); !ok {
		t.Error("admin password change")
	}

	f.check("PUT", "/users/appuser/key", `{"key":"`+f.cu+`"}`, []authCase{{"none", 401}, {"ck", 403}, {"elsewhere", 403}})
	f.check("PUT", "/users/appuser/key", `{"key":"`+f.admin+`"}`, []authCase{{"cu", 403}, {"read", 403}})
	f.check("PUT", "/users/root/key", `{"key":"x"}`, []authCase{{"cu", 403}})
	f.check("PUT", "/users/nobody/key", `{"key":"x"}`, []authCase{{"cu", 404}})
	f.check("PUT", "/users/appuser/key", `{}`, []authCase{{"cu", 400}})
	f.check("PUT", "/users/appuser/key", `{"key":"bad key"}`, []authCase{{"cu", 400}})
	f.check("PUT", "/users/appuser/key", `{"key":"`+f.cu+`"}`, []authCase{{"cu", 200}})
	if u, _ := f.s.GetUser("appuser"); u.Key != f.cu {
		t.Error("PUT key")
	}
	f.check("PUT", "/users/appuser/key", `{"key":null}`, []authCase{{"cu", 200}})
	if u, _ := f.s.GetUser("appuser"); u.Key != "" {
		t.Error("PUT key null")
	}
}

func TestAuthHTTPAuthOff(t *testing.T) {
	mux := http.NewServeMux()
	RegisterAuthOffRoutes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, p := range authRoutes {
		method, path, _ := strings.Cut(p, " ")
		path = strings.NewReplacer("{key}", "abc", "{username}", "bob").Replace(path)
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader("{}"))
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("%s %s = %d", method, path, resp.StatusCode)
		}
		if method != "HEAD" && string(data) != `{"error":"not_found","reason":"authentication is off (require_key is false)","errno":404}`+"\n" {
			t.Errorf("%s %s body %s", method, path, data)
		}
	}
}

// authLogBuffer is a concurrency-safe writer for a test logger.
type authLogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *authLogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *authLogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestAuthHTTPAuditLog(t *testing.T) {
	f := authNewFixture(t)
	var logs authLogBuffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	defer slog.SetDefault(old)

	_, m, _ := f.do("POST", "/keys", f.ck, `{"label":"audited"}`)
	newKey, _ := m["api_key"].(string)
	f.do("DELETE", "/keys/"+newKey, f.ck, "")
	f.do("POST", "/users", f.read, `{"username":"u","password":"sekrit-pw"}`)
	f.do("PUT", "/users/appuser/password", f.read, `{"password":"sekrit-pw2"}`)
	f.do("GET", "/auth", "", "", "Authorization", authBasicHeader("appuser", "sekrit-pw2"))
	f.do("GET", "/auth", "", "", "Authorization", authBasicHeader("appuser", "sekrit-wrong"))
	f.do("GET", "/keys", f.admin, "") // not state-changing: not logged

	out := logs.String()
	for _, want := range []string{
		`msg=audit who="key maker" key_id=`, `action="POST /keys" result=200`,
		`action="DELETE /keys/{key}" result=200`,
		`who=reader`, `action="POST /users" result=403`,
		`action="PUT /users/appuser/password" result=200`,
		`who=appuser`, `action="GET /auth" result=200`, `action="GET /auth" result=401`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("audit log lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{f.ck, f.read, f.admin, newKey, "sekrit", "GET /keys\""} {
		if strings.Contains(out, secret) {
			t.Errorf("audit log contains %q:\n%s", secret, out)
		}
	}
	if n := strings.Count(out, "msg=audit"); n != 6 {
		t.Errorf("%d audit lines, want 6:\n%s", n, out)
	}
}

// authClientFrom returns a client whose connections come from the given
// loopback address (Linux accepts any of 127.0.0.0/8 as a source).
func authClientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// authLogin sends GET /auth with Basic credentials from client c.
func authLogin(t *testing.T, c *http.Client, url, user, pass string) (int, http.Header, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"/auth", nil)
	req.Header.Set("Authorization", authBasicHeader(user, pass))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, resp.Header, m
}

// TestAuthHTTPLoginRateLimit is the guessing attack of issue 13 (37
// guesses a second, unlimited): failed logins are limited per client
// address and per user; past the limit /auth answers 429 with Retry-After
// in the JSON error shape, even for the right password, while other users
// from other addresses still log in.
func TestAuthHTTPLoginRateLimit(t *testing.T) {
	f := authNewFixture(t)
	if err := f.s.CreateUser("bob", "bobpw", UserTypeApp, f.read, nil); err != nil {
		t.Fatal(err)
	}
	attacker := authClientFrom("127.0.0.2")
	guesses, limited := 0, false
	for i := 0; i < 100 && !limited; i++ {
		code, h, m := authLogin(t, attacker, f.srv.URL, "appuser", fmt.Sprintf("guess%d", i))
		switch code {
		case 401:
			guesses++
		case 429:
			limited = true
			if ra, err := strconv.Atoi(h.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
				t.Errorf("Retry-After %q", h.Get("Retry-After"))
			}
			if m["error"] != "too_many_requests" || m["errno"] != float64(429) || m["reason"] == "" {
				t.Errorf("429 body %v", m)
			}
		default:
			t.Fatalf("guess %d: %d %v", i, code, m)
		}
	}
	if !limited || guesses != authMaxFailures {
		t.Fatalf("%d wrong passwords accepted for checking (limited=%v), want %d then 429", guesses, limited, authMaxFailures)
	}
	// The right password from the attacking address is refused too: a
	// limited client learns nothing more.
	if code, _, _ := authLogin(t, attacker, f.srv.URL, "appuser", "apppw"); code != 429 {
		t.Errorf("right password from a limited address: %d, want 429", code)
	}
	// So is the attacked user from another address...
	if code, _, _ := authLogin(t, authClientFrom("127.0.0.3"), f.srv.URL, "appuser", "apppw"); code != 429 {
		t.Errorf("limited user from another address: %d, want 429", code)
	}
	// ...but another user from another address logs in.
	if code, _, m := authLogin(t, authClientFrom("127.0.0.3"), f.srv.URL, "bob", "bobpw"); code != 200 || m["api_key"] != f.read {
		t.Errorf("another user from another address: %d %v, want 200", code, m)
	}
	// Spreading guesses over addresses does not escape the per-user
	// count.
	for i := 0; i < authMaxFailures; i++ {
		authLogin(t, authClientFrom(fmt.Sprintf("127.0.1.%d", i+1)), f.srv.URL, "bob", "nope")
	}
	if code, _, _ := authLogin(t, authClientFrom("127.0.2.1"), f.srv.URL, "bob", "bobpw"); code != 429 {
		t.Errorf("user guessed from %d addresses: %d, want 429", authMaxFailures, code)
	}
}

// TestAuthLimiterBoundedAndExpires: the limiter's tables never exceed
// their size, a full table throttles through its overflow entry, and
// every block ends with its window.
func TestAuthLimiterBoundedAndExpires(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newAuthLimiter()
	l.now = func() time.Time { return now }
	l.maxKeys = 64
	for i := range 10000 {
		l.failed(fmt.Sprintf("10.0.%d.%d", i/256, i%256), fmt.Sprintf("user%d", i))
	}
	if len(l.addrs) > l.maxKeys+1 || len(l.users) > l.maxKeys+1 { // + the overflow entry
		t.Fatalf("tables grew to %d and %d entries, bound %d", len(l.addrs), len(l.users), l.maxKeys)
	}
	// The overflow entry took the flood: a new address is throttled.
	if w := l.wait("192.0.2.1", "someone"); w <= 0 || w > l.window {
		t.Fatalf("new address while the table is full of live entries: wait %v", w)
	}
	// A window later everything is forgotten.
	now = now.Add(l.window)
	if w := l.wait("10.0.0.1", "user1"); w != 0 {
		t.Fatalf("after the window: wait %v", w)
	}
	l.failed("192.0.2.1", "someone")
	if len(l.addrs) != 1 || len(l.users) != 1 {
		t.Fatalf("expired entries kept: %d %d", len(l.addrs), len(l.users))
	}
	// A block lasts until its window ends, not longer.
	for range l.max {
		l.failed("192.0.2.9", "x")
	}
	if w := l.wait("192.0.2.9", "y"); w != l.window {
		t.Fatalf("blocked address: wait %v, want %v", w, l.window)
	}
	now = now.Add(l.window - time.Second)
	if w := l.wait("192.0.2.9", "y"); w != time.Second {
		t.Fatalf("blocked address a second before the end: wait %v", w)
	}
	now = now.Add(time.Second)
	if w := l.wait("192.0.2.9", "y"); w != 0 {
		t.Fatalf("blocked address after its window: wait %v", w)
	}
	// IPv6 clients are counted per /64.
	r := &http.Request{RemoteAddr: "[2001:db8::1]:4000"}
	r2 := &http.Request{RemoteAddr: "[2001:db8::ffff:2]:4001"}
	if authClientKey(r) != authClientKey(r2) || authClientKey(&http.Request{RemoteAddr: "@"}) != "unix" {
		t.Fatalf("client keys: %q %q", authClientKey(r), authClientKey(r2))
	}
}

// TestAuthHTTPKeyTree is the revocation hole of issue 13: deleting a key
// left alive the keys it had created unless they named it as "parent".
// Now a key created by a key is its sub-key, deleting a key deletes its
// descendants, and a child cannot delete its parent or its siblings.
func TestAuthHTTPKeyTree(t *testing.T) {
	f := authNewFixture(t)
	create := func(by, body string) string {
		t.Helper()
		code, m, _ := f.do("POST", "/keys", by, body)
		k, _ := m["api_key"].(string)
		if code != 200 || k == "" {
			t.Fatalf("POST /keys %s: %d %v", body, code, m)
		}
		return k
	}
	delegate := `{"label": "team", "permissions": {"create_key": true, "manage": ["app"]}}`
	a := create(f.admin, delegate)
	b := create(a, `{"label": "b", "permissions": {"create_key": true, "manage": ["app"]}}`)
	c := create(b, `{"label": "c", "permissions": {"read": ["app"]}}`)
	a2 := create(a, `{"label": "a2", "permissions": {"read": ["app"]}}`)
	for k, parent := range map[string]string{a: f.admin, b: a, c: b, a2: a} {
		if got, _ := f.s.LookupKey(k); got.Parent != parent {
			t.Errorf("parent of %s: %q, want %q", got.Label, got.Parent, parent)
		}
	}
	// Children do not revoke their parents or siblings.
	f.check("DELETE", "/keys/"+a, "", []authCase{{b, 403}, {c, 403}, {a2, 403}})
	f.check("DELETE", "/keys/"+a2, "", []authCase{{b, 403}, {c, 403}})
	f.check("DELETE", "/keys/"+b, "", []authCase{{a2, 403}, {c, 403}})
	f.check("DELETE", "/keys/"+f.admin, "", []authCase{{a, 403}, {b, 403}})
	// Not even an admin sub-key revokes the admin that made it.
	adminChild := create(f.admin, `{"label": "admin child", "permissions": {"admin": true}}`)
	f.check("DELETE", "/keys/"+f.admin, "", []authCase{{adminChild, 403}})
	// A key reads its descendants, not its siblings.
	f.check("GET", "/keys/"+c, "", []authCase{{a, 200}, {b, 200}, {a2, 403}})
	// Deleting a key deletes every descendant, and only them.
	f.check("DELETE", "/keys/"+a, "", []authCase{{"admin", 200}})
	for _, k := range []string{a, b, c, a2} {
		if _, ok := f.s.LookupKey(k); ok {
			t.Errorf("key %s survived the deletion of its ancestor", k)
		}
		if code, _, _ := f.do("GET", "/keys/"+k, k, ""); code != 403 {
			t.Errorf("a deleted descendant still authenticates: %d", code)
		}
	}
	for _, k := range []string{f.admin, f.ck, f.read, adminChild} {
		if _, ok := f.s.LookupKey(k); !ok {
			t.Errorf("a key outside the deleted subtree was deleted")
		}
	}
	// "parent": null makes a key without parent: admins only.
	f.check("POST", "/keys", `{"parent": null}`, []authCase{{"ck", 403}})
	root := create(f.admin, `{"parent": null, "label": "independent"}`)
	if k, _ := f.s.LookupKey(root); k.Parent != "" {
		t.Fatalf("parent null: parent %q", k.Parent)
	}
	// The tree survives a restart: the store reopened keeps the parents.
	s2, err := OpenAuthStore(f.s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.DeleteKey(f.admin); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]bool{f.ck: false, f.read: false, adminChild: false, root: true} {
		if _, ok := s2.LookupKey(k); ok != want {
			t.Errorf("after deleting the admin key of a reopened store: key present=%v, want %v", ok, want)
		}
	}
}
