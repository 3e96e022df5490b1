package gaffer

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strings"
)

// authRoutes lists the patterns of the auth API (reference §2.4.5–§2.4.8).
var authRoutes = []string{
	"GET /auth", "HEAD /auth",
	"GET /keys", "POST /keys",
	"HEAD /keys/{key}", "GET /keys/{key}", "DELETE /keys/{key}",
	"GET /users", "POST /users",
	"HEAD /users/{username}", "GET /users/{username}", "PUT /users/{username}", "DELETE /users/{username}",
	"PUT /users/{username}/password", "PUT /users/{username}/key",
}

// RegisterRoutes adds the /auth, /keys and /users routes to mux, for when
// require_key is on. The caller's key is KeyFrom(r.Context()): the HTTP
// layer authenticates X-Api-Key with LookupKey and stores the key with
// WithKey. /auth needs no key (it takes HTTP Basic credentials); every other
// route answers 401 when the request has none.
//
// The routes follow reference §2.4.5–§2.4.8 with the Recommended fixes:
// 404 for unknown keys and users, no password hash in any answer, recursive
// key deletion, new keys limited to the creator's own permissions. Keys form
// a tree: a key created by a key is its sub-key unless the body names
// another "parent" (one of the caller's descendants; "parent": null, a key
// without parent, is for admins), and deleting a key deletes its
// descendants. A non-admin key may read and delete only itself and its
// descendants, and no key deletes its own ancestors. Beyond that, so that
// create_key and create_user cannot be turned into admin rights: a
// non-admin key may only act on users whose key's rights it holds itself,
// may not read or change a user of type 0, and may not link a user to a key
// with rights it lacks; a user's own key may read, delete and
// set the password and key of its user, but the full update (PUT
// /users/<u>) needs create_user. PUT /users/<u> without "key" or
// "user_type" keeps the user's ("key": null removes the key).
//
// Every state-changing request, and every /auth attempt, is logged with
// slog.Default() as an "audit" record naming who (key label, or username for
// /auth), the action and the resulting status; keys and passwords never
// appear in the log.
func (s *AuthStore) RegisterRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /auth", s.authAudited(s.handleAuth))
	mux.HandleFunc("HEAD /auth", s.authAudited(s.handleAuth))
	mux.HandleFunc("GET /keys", s.handleKeys)
	mux.HandleFunc("POST /keys", s.authAudited(s.handleCreateKey))
	mux.HandleFunc("HEAD /keys/{key}", s.handleKey)
	mux.HandleFunc("GET /keys/{key}", s.handleKey)
	mux.HandleFunc("DELETE /keys/{key}", s.authAudited(s.handleKey))
	mux.HandleFunc("GET /users", s.handleUsers)
	mux.HandleFunc("POST /users", s.authAudited(s.handleCreateUser))
	mux.HandleFunc("HEAD /users/{username}", s.handleUser)
	mux.HandleFunc("GET /users/{username}", s.handleUser)
	mux.HandleFunc("PUT /users/{username}", s.authAudited(s.handleUser))
	mux.HandleFunc("DELETE /users/{username}", s.authAudited(s.handleUser))
	mux.HandleFunc("PUT /users/{username}/password", s.authAudited(s.handleUserPassword))
	mux.HandleFunc("PUT /users/{username}/key", s.authAudited(s.handleUserKey))
}

// RegisterAuthOffRoutes answers every route of RegisterRoutes with 404
// not_found, for when require_key is off (the Recommended fix of reference
// §2.4.7 and §2.4.8).
func RegisterAuthOffRoutes(mux *http.ServeMux) {
	off := func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errNotFound("authentication is off (require_key is false)"))
	}
	for _, p := range authRoutes {
		mux.HandleFunc(p, off)
	}
}

// authFingerprint names a key in logs without revealing it.
func authFingerprint(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:4])
}

// authAudited logs an audit record once h has answered.
func (s *AuthStore) authAudited(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sw := &auditWriter{ResponseWriter: w}
		h(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		attrs := []any{"who", "anonymous"}
		if r.URL.Path == "/auth" {
			if user, _, ok := ParseBasicAuth(r.Header.Get("Authorization")); ok {
				attrs[1] = user
			}
		} else if k := KeyFrom(r.Context()); !k.IsAnonymous() {
			attrs[1] = k.Label
			if k.Key != "" {
				attrs = append(attrs, "key_id", authFingerprint(k.Key))
			}
		}
		action := r.Method + " " + r.URL.Path
		if target := r.PathValue("key"); target != "" && strings.HasPrefix(r.URL.Path, "/keys/") {
			action = r.Method + " /keys/{key}"
			attrs = append(attrs, "target_key_id", authFingerprint(target))
		}
		attrs = append(attrs, "action", action, "result", sw.status)
		slog.Info("audit", attrs...)
	}
}

func authErrUnauthorized(format string, args ...any) *Error {
	return Errorf(CodeUnauthorized, http.StatusUnauthorized, format, args...)
}

// authCaller returns the caller's key, or answers 401 when the request
// carries none.
func authCaller(w http.ResponseWriter, r *http.Request) (*Key, bool) {
	k := KeyFrom(r.Context())
	if k.IsAnonymous() {
		writeError(w, authErrUnauthorized("an API key is needed (header X-Api-Key)"))
		return nil, false
	}
	return k, true
}

func authSameKey(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func authQueryTrue(r *http.Request, name string) bool {
	return strings.EqualFold(r.URL.Query().Get(name), "true")
}

// handleAuth serves GET and HEAD /auth: HTTP Basic credentials in, the
// user's key out (reference §2.4.5). Failed attempts are limited per client
// address and per username (authLimiter): past the limit the answer is 429
// with Retry-After, before the password is even checked.
func (s *AuthStore) handleAuth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	user, pass, ok := ParseBasicAuth(r.Header.Get("Authorization"))
	if !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="gaffer", charset="UTF-8"`)
		writeError(w, authErrUnauthorized("HTTP Basic credentials are needed (Authorization: Basic ...)"))
		return
	}
	addr := authClientKey(r)
	if wait := s.limiter.wait(addr, user); wait > 0 {
		authTooMany(w, wait)
		return
	}
	u, ok := s.Authenticate(user, pass)
	if !ok {
		s.limiter.failed(addr, user)
		w.Header().Set("WWW-Authenticate", `Basic realm="gaffer", charset="UTF-8"`)
		writeError(w, authErrUnauthorized("wrong username or password"))
		return
	}
	s.limiter.succeeded(user)
	w.Header().Set("X-Api-Key", u.Key)
	var key any
	if u.Key != "" {
		key = u.Key
	}
	writeJSON(w, http.StatusOK, map[string]any{"api_key": key})
}

// handleKeys serves GET /keys (admin).
func (s *AuthStore) handleKeys(w http.ResponseWriter, r *http.Request) {
	authList(w, r, "keys", "include_keys", s.Keys, func(k *Key) string { return k.Key })
}

// authList answers GET /keys and GET /users (admin only): under field,
// the names of every item, or the items themselves with ?<full>=true.
func authList[T any](w http.ResponseWriter, r *http.Request, field, full string, all func() []T, name func(T) string) {
	caller, ok := authCaller(w, r)
	if !ok {
		return
	}
	if !caller.IsAdmin() {
		writeError(w, authErrForbidden("listing %s needs an admin key", field))
		return
	}
	items := all()
	if authQueryTrue(r, full) {
		writeJSON(w, http.StatusOK, map[string]any{field: items})
		return
	}
	names := make([]string, len(items))
	for i, it := range items {
		names[i] = name(it)
	}
	writeJSON(w, http.StatusOK, map[string]any{field: names})
}

// handleCreateKey serves POST /keys (create_key, within the caller's own
// permissions).
func (s *AuthStore) handleCreateKey(w http.ResponseWriter, r *http.Request) {
	caller, body, ok := authCreating(w, r, (*Key).CanCreateKey, "keys")
	if !ok {
		return
	}
	delete(body, "key") // the server always chooses the key
	perms, err := authParsePermissions(body["permissions"])
	if err != nil {
		writeError(w, err)
		return
	}
	label := ""
	if v, ok := body["label"]; ok && v != nil {
		if label, err = mapString("label", v); err != nil {
			writeError(w, err)
			return
		}
	}
	k, err := s.CreateKey(caller, label, perms, body)
	if err != nil {
		writeError(w, err)
		return
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Api-Key", k.Key)
	h.Set("Location", scheme+"://"+r.Host+"/keys/"+k.Key)
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "api_key": k.Key})
}

// authCreating begins POST /keys and POST /users: the caller, who must
// have the right to create (may) what, and the request's JSON object. When
// it returns false it has answered.
func authCreating(w http.ResponseWriter, r *http.Request, may func(*Key) bool, what string) (*Key, map[string]any, bool) {
	caller, ok := authCaller(w, r)
	if !ok {
		return nil, nil, false
	}
	if !may(caller) {
		writeError(w, authErrForbidden("this key may not create %s", what))
		return nil, nil, false
	}
	body, err := decodeObject(r, false)
	if err != nil {
		writeError(w, err)
		return nil, nil, false
	}
	return caller, body, true
}

// authMayActOnKey reports whether caller (not the key itself) may read or
// delete k: an admin any key, another key only its own descendants (the
// keys it created, and theirs). A key never deletes its own ancestors (that
// would delete it too): a child cannot revoke its parent, nor, not being
// their ancestor, its siblings.
func (s *AuthStore) authMayActOnKey(caller, k *Key, deleting bool) error {
	s.mu.RLock()
	desc := caller.Key != "" && authIsAncestor(s.keys, caller.Key, k)
	anc := caller.Key != "" && authIsAncestor(s.keys, k.Key, caller)
	s.mu.RUnlock()
	switch {
	case deleting && anc:
		return authErrForbidden("a key may not delete its parent or another of its ancestors")
	case caller.IsAdmin() || desc:
		return nil
	}
	return authErrForbidden("a key may only act on itself and the keys it created (its sub-keys)")
}

// handleKey serves HEAD, GET and DELETE /keys/{key}: the key itself, one of
// its ancestors, or an admin.
func (s *AuthStore) handleKey(w http.ResponseWriter, r *http.Request) {
	caller, ok := authCaller(w, r)
	if !ok {
		return
	}
	target := r.PathValue("key")
	self := authSameKey(caller.Key, target)
	k, found := s.LookupKey(target)
	if !found {
		if !self && !caller.IsAdmin() && !caller.CanCreateKey() {
			// Without any right on other keys, do not say which exist.
			writeError(w, authErrForbidden("a key may only act on itself and the keys it created (its sub-keys)"))
			return
		}
		writeError(w, errNotFound("no such key"))
		return
	}
	if !self {
		if err := s.authMayActOnKey(caller, k, r.Method == http.MethodDelete); err != nil {
			writeError(w, err)
			return
		}
	}
	switch r.Method {
	case http.MethodHead:
		w.WriteHeader(http.StatusOK)
	case http.MethodGet:
		obj := k.authObject()
		if authQueryTrue(r, "include_keys") {
			obj["keys"] = s.SubKeys(k.Key)
		}
		writeJSON(w, http.StatusOK, obj)
	case http.MethodDelete:
		reply(w, http.StatusOK, map[string]any{"ok": true}, s.DeleteKey(k.Key))
	}
}

// handleUsers serves GET /users (admin).
func (s *AuthStore) handleUsers(w http.ResponseWriter, r *http.Request) {
	authList(w, r, "users", "include_user", s.Users, func(u User) string { return u.Username })
}

// authCheckLinkKey checks that caller may link a user to key: an admin
// always; any other caller only to an unknown key or a non-admin key whose
// permissions it holds.
func (s *AuthStore) authCheckLinkKey(caller *Key, key string) error {
	if key == "" || caller.IsAdmin() {
		return nil
	}
	if k, ok := s.LookupKey(key); ok && (k.Permissions.Admin || !authCanGrant(caller, k.Permissions)) {
		return authErrForbidden("a user may only be linked to a key whose rights this key holds")
	}
	return nil
}

// authMayManageUser reports whether a non-admin caller with create_user may
// act on u: not on a user of type 0, nor on one whose key has rights the
// caller lacks.
func (s *AuthStore) authMayManageUser(caller *Key, u *User) bool {
	if caller.IsAdmin() {
		return true
	}
	if !caller.CanCreateUser() || u.UserType == UserTypeUser {
		return false
	}
	return s.authCheckLinkKey(caller, u.Key) == nil
}

// authBodyUserType reads user_type (def when absent or null) and checks
// that only an admin sets 0.
func authBodyUserType(caller *Key, body map[string]any, def int) (int, error) {
	userType := def
	if v, ok := body["user_type"]; ok && v != nil {
		var err error
		if userType, err = mapInt("user_type", v); err != nil {
			return 0, err
		}
	}
	if _, set := body["user_type"]; set && userType == UserTypeUser && !caller.IsAdmin() {
		return 0, authErrForbidden("only an admin key may make a user of type 0")
	}
	return userType, nil
}

// authBodyKey reads "key": present reports whether the field is there; a
// null or empty key is "".
func authBodyKey(body map[string]any) (key string, present bool, err error) {
	v, present := body["key"]
	if !present || v == nil {
		return "", present, nil
	}
	key, err = mapString("key", v)
	return key, true, err
}

// handleCreateUser serves POST /users (create_user).
func (s *AuthStore) handleCreateUser(w http.ResponseWriter, r *http.Request) {
	caller, body, ok := authCreating(w, r, (*Key).CanCreateUser, "users")
	if !ok {
		return
	}
	var username, password string
	var err error
	if username, err = mapString("username", body["username"]); err != nil {
		writeError(w, errBadRequest("username: missing or not a string"))
		return
	}
	if password, err = mapString("password", body["password"]); err != nil {
		writeError(w, errBadRequest("password: missing or not a string"))
		return
	}
	userType, err := authBodyUserType(caller, body, UserTypeApp)
	if err != nil {
		writeError(w, err)
		return
	}
	key, _, err := authBodyKey(body)
	if err == nil {
		err = s.authCheckLinkKey(caller, key)
	}
	if err == nil {
		err = s.CreateUser(username, password, userType, key, body)
	}
	reply(w, http.StatusOK, map[string]any{"ok": true}, err)
}

// authUserAccess finds the user of the request's path and checks that the
// caller may act on it: as the user's own key (when own is allowed) or with
// create_user. Without either right the answer is 403 whether or not the
// user exists (404 for HEAD, as in 0.5.2); with it, an unknown user is 404.
func (s *AuthStore) authUserAccess(w http.ResponseWriter, r *http.Request, allowOwn bool) (*User, *Key, bool) {
	caller, ok := authCaller(w, r)
	if !ok {
		return nil, nil, false
	}
	u, err := s.GetUser(r.PathValue("username"))
	own := err == nil && allowOwn && authSameKey(u.Key, caller.Key)
	switch {
	case own:
		return u, caller, true
	case !caller.CanCreateUser():
		err = authErrForbidden("only the user's own key or a key that may create users may do this")
	case err != nil:
	case r.Method != http.MethodHead && !s.authMayManageUser(caller, u):
		err = authErrForbidden("this key may not act on this user (type 0, or a key with rights this key lacks)")
	}
	if err != nil {
		if r.Method == http.MethodHead {
			err = errNotFound("no such user")
		}
		writeError(w, err)
		return nil, nil, false
	}
	return u, caller, true
}

// handleUser serves HEAD, GET, PUT and DELETE /users/{username}.
func (s *AuthStore) handleUser(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut {
		s.authUserPut(w, r, false, s.authPutUser)
		return
	}
	u, _, ok := s.authUserAccess(w, r, true)
	if !ok {
		return
	}
	switch r.Method {
	case http.MethodHead:
		w.WriteHeader(http.StatusOK)
	case http.MethodGet:
		writeJSON(w, http.StatusOK, u)
	case http.MethodDelete:
		reply(w, http.StatusOK, map[string]any{"ok": true}, s.DeleteUser(u.Username))
	}
}

// authUserPut serves a PUT on /users/{username}[/…] (authUserAccess, with
// the user's own key when allowOwn): update gets the caller, the user and
// the request's JSON object.
func (s *AuthStore) authUserPut(w http.ResponseWriter, r *http.Request, allowOwn bool, update func(caller *Key, u *User, body map[string]any) error) {
	u, caller, ok := s.authUserAccess(w, r, allowOwn)
	if !ok {
		return
	}
	body, err := decodeObject(r, false)
	if err == nil {
		err = update(caller, u, body)
	}
	reply(w, http.StatusOK, map[string]any{"ok": true}, err)
}

// authBodyPassword reads the non-empty "password" of a PUT.
func authBodyPassword(body map[string]any) (string, error) {
	password, err := mapString("password", body["password"])
	if err != nil || password == "" {
		return "", errBadRequest("password: missing or not a string")
	}
	return password, nil
}

// authPutUser applies PUT /users/{username}: a full update (password
// required, extra fields replaced), except that an absent "key" or
// "user_type" keeps the user's.
func (s *AuthStore) authPutUser(caller *Key, u *User, body map[string]any) error {
	password, err := authBodyPassword(body)
	if err != nil {
		return err
	}
	userType, err := authBodyUserType(caller, body, u.UserType)
	if err != nil {
		return err
	}
	key, present, err := authBodyKey(body)
	if err != nil {
		return err
	}
	var keyp *string
	if present {
		if err := s.authCheckLinkKey(caller, key); err != nil {
			return err
		}
		keyp = &key
	}
	return s.UpdateUser(u.Username, password, userType, keyp, body)
}

// handleUserPassword serves PUT /users/{username}/password.
func (s *AuthStore) handleUserPassword(w http.ResponseWriter, r *http.Request) {
	s.authUserPut(w, r, true, func(_ *Key, u *User, body map[string]any) error {
		password, err := authBodyPassword(body)
		if err != nil {
			return err
		}
		return s.SetPassword(u.Username, password)
	})
}

// handleUserKey serves PUT /users/{username}/key ("key": null removes the
// link).
func (s *AuthStore) handleUserKey(w http.ResponseWriter, r *http.Request) {
	s.authUserPut(w, r, true, func(caller *Key, u *User, body map[string]any) error {
		key, present, err := authBodyKey(body)
		if err == nil && !present {
			err = errBadRequest("key: missing")
		}
		if err == nil {
			err = s.authCheckLinkKey(caller, key)
		}
		if err == nil {
			err = s.SetUserKey(u.Username, key)
		}
		return err
	})
}
