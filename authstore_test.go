package gaffer

import (
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func authOpenTestStore(t *testing.T) (*AuthStore, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "auth")
	s, err := OpenAuthStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s, dir
}

func authWantCode(t *testing.T, err error, code string, status int) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Code != code || e.Errno != status {
		t.Fatalf("error = %v, want %s (%d)", err, code, status)
	}
}

func TestAuthStoreOpenEmptyAndModes(t *testing.T) {
	s, dir := authOpenTestStore(t)
	if len(s.Keys()) != 0 || len(s.Users()) != 0 {
		t.Fatal("a new store is not empty")
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode = %v, %v", st.Mode().Perm(), err)
	}
	if _, err := s.CreateKey(nil, "k", Permissions{}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser("bob", "pw", UserTypeApp, "", nil); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"keys.json", "users.json"} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s mode = %v, %v", name, st.Mode().Perm(), err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestAuthStoreCorruptFilesFailOpen(t *testing.T) {
	s, dir := authOpenTestStore(t)
	s.CreateKey(nil, "k", Permissions{Admin: true}, nil)
	s.CreateUser("bob", "pw", UserTypeApp, "", nil)
	keysData, _ := os.ReadFile(filepath.Join(dir, "keys.json"))
	usersData, _ := os.ReadFile(filepath.Join(dir, "users.json"))
	bad := map[string][]string{
		"keys.json": {
			"", string(keysData[:len(keysData)/2]), "{}", `{"version":1}`, `{"version":2,"keys":[]}`,
			`{"version":1,"keys":[]} x`, `{"version":1,"keys":[{"key":"","data":{}}]}`,
			`{"version":1,"keys":[{"key":"a","data":{}},{"key":"a","data":{}}]}`,
			`{"version":1,"keys":[{"key":"a","data":{},"parent":"zz"}]}`,
			`{"version":1,"keys":[{"key":"a","data":{},"parent":"b"},{"key":"b","data":{},"parent":"a"}]}`,
			`{"version":1,"keys":[{"key":"a","data":{"permissions":{"admin":1}}}]}`,
			`{"version":1,"keys":[{"key":"a","data":{}, "surprise":1}]}`,
		},
		"users.json": {
			"", string(usersData[:len(usersData)-5]), `{"version":1,"users":[{"user":"a","pwd":"plain"}]}`,
			`{"version":1,"users":[{"user":"a:b","pwd":"PBKDF2-256$s:1000$00112233445566778899aabbccddeeff0011223344556677"}]}`,
			`{"version":1,"users":[{"user":"a","pwd":"pbkdf2-sha256$0$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA"}]}`,
			`null`,
		},
	}
	for name, contents := range bad {
		for _, c := range contents {
			os.WriteFile(filepath.Join(dir, "keys.json"), keysData, 0o600)
			os.WriteFile(filepath.Join(dir, "users.json"), usersData, 0o600)
			os.WriteFile(filepath.Join(dir, name), []byte(c), 0o600)
			if s2, err := OpenAuthStore(dir); err == nil {
				t.Errorf("%s = %q opened with %d keys, %d users", name, c, len(s2.Keys()), len(s2.Users()))
			}
		}
	}
	os.WriteFile(filepath.Join(dir, "keys.json"), keysData, 0o600)
	os.WriteFile(filepath.Join(dir, "users.json"), usersData, 0o600)
	if _, err := OpenAuthStore(dir); err != nil {
		t.Fatalf("the intact files do not open: %v", err)
	}
}

func TestAuthStoreUnreadableDir(t *testing.T) {
	if os.Getuid() == 0 {
		t.Skip("root reads everything")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "keys.json"), []byte(`{"version":1,"keys":[]}`), 0o000)
	if _, err := OpenAuthStore(dir); err == nil {
		t.Error("an unreadable keys.json opened")
	}
}

func TestAuthStorePersistence(t *testing.T) {
	s, dir := authOpenTestStore(t)
	root, err := s.CreateKey(nil, "root", Permissions{CreateKey: true, Manage: []string{"app"}}, map[string]any{"note": map[string]any{"a": []any{1.0}}})
	if err != nil {
		t.Fatal(err)
	}
	child, err := s.CreateKey(nil, "child", Permissions{Read: []string{"app"}}, map[string]any{"parent": root.Key})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser("alice", "pw:with:colons", UserTypeApp, child.Key, map[string]any{"email": "a@x"}); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenAuthStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	keys := s2.Keys()
	if len(keys) != 2 || keys[0].Key != root.Key || keys[1].Key != child.Key || keys[1].Parent != root.Key {
		t.Fatalf("keys after reopen: %+v", keys)
	}
	if keys[0].Extra["note"] == nil || !keys[0].Permissions.CreateKey || keys[0].Permissions.Manage[0] != "app" {
		t.Errorf("root after reopen: %+v", keys[0])
	}
	u, ok := s2.Authenticate("alice", "pw:with:colons")
	if !ok || u.Key != child.Key || u.Extra["email"] != "a@x" || u.UserType != UserTypeApp {
		t.Fatalf("alice after reopen: %+v %v", u, ok)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "users.json"))
	if strings.Contains(string(data), "pw:with:colons") || !strings.Contains(string(data), "pbkdf2-sha256$") {
		t.Errorf("users.json: %s", data)
	}
}

func TestAuthStoreKeys(t *testing.T) {
	s, _ := authOpenTestStore(t)
	k, err := s.CreateKey(nil, "lbl", Permissions{Read: []string{"a"}}, map[string]any{"key": "mine", "label": "x", "keys": 1, "other": true})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(k.Key) || k.Key == "mine" || k.Label != "lbl" {
		t.Fatalf("created key %+v", k)
	}
	if len(k.Extra) != 1 || k.Extra["other"] != true {
		t.Errorf("extra = %v", k.Extra)
	}
	got, ok := s.LookupKey(k.Key)
	if !ok || got.Label != "lbl" {
		t.Fatal("LookupKey")
	}
	got.Permissions.Read[0] = "changed"
	got.Extra["other"] = false
	if again, _ := s.LookupKey(k.Key); again.Permissions.Read[0] != "a" || again.Extra["other"] != true {
		t.Error("a returned key aliases the stored one")
	}
	if _, ok := s.LookupKey(k.Key[:31]); ok {
		t.Error("a prefix of a key was found")
	}
	if _, ok := s.LookupKey(strings.ToUpper(k.Key)); ok {
		t.Error("lookup is case-insensitive")
	}
	_, err = s.GetKey("nope")
	authWantCode(t, err, CodeNotFound, 404)
	authWantCode(t, s.DeleteKey("nope"), CodeNotFound, 404)
	_, err = s.CreateKey(nil, "x", Permissions{}, map[string]any{"parent": "nope"})
	authWantCode(t, err, CodeBadRequest, 400)

	// A tree: k → a → b, k → c; deleting k deletes all, recursively.
	a, _ := s.CreateKey(nil, "a", Permissions{}, map[string]any{"parent": k.Key})
	b, _ := s.CreateKey(nil, "b", Permissions{}, map[string]any{"parent": a.Key})
	c, _ := s.CreateKey(nil, "c", Permissions{}, map[string]any{"parent": k.Key})
	other, _ := s.CreateKey(nil, "other", Permissions{}, nil)
	if subs := s.SubKeys(k.Key); len(subs) != 2 || subs[0].Key != a.Key || subs[1].Key != c.Key {
		t.Errorf("SubKeys = %v", subs)
	}
	if err := s.DeleteKey(k.Key); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []*Key{k, a, b, c} {
		if _, ok := s.LookupKey(gone.Key); ok {
			t.Errorf("key %s survived its ancestor's deletion", gone.Label)
		}
	}
	if keys := s.Keys(); len(keys) != 1 || keys[0].Key != other.Key {
		t.Errorf("Keys = %v", keys)
	}
}

func TestAuthStoreCreateKeyRules(t *testing.T) {
	s, _ := authOpenTestStore(t)
	admin, _ := s.CreateKey(nil, "admin", Permissions{Admin: true}, nil)
	ck, _ := s.CreateKey(admin, "ck", Permissions{CreateKey: true, Manage: []string{"app"}, Read: []string{"*"}}, nil)
	plain, _ := s.CreateKey(admin, "plain", Permissions{Manage: []string{"*"}}, nil)

	if _, err := s.CreateKey(plain, "x", Permissions{}, nil); err == nil {
		t.Error("a key without create_key created a key")
	}
	if _, err := s.CreateKey(anonymousKey, "x", Permissions{}, nil); err == nil {
		t.Error("the anonymous key created a key")
	}
	_, err := s.CreateKey(ck, "x", Permissions{Admin: true}, nil)
	authWantCode(t, err, CodeForbidden, 403)
	_, err = s.CreateKey(ck, "x", Permissions{Manage: []string{"*"}}, nil)
	authWantCode(t, err, CodeForbidden, 403)
	_, err = s.CreateKey(ck, "x", Permissions{CreateUser: true}, nil)
	authWantCode(t, err, CodeForbidden, 403)
	if _, err := s.CreateKey(ck, "ok", Permissions{Manage: []string{"app.web"}, Write: []string{"app"}, Read: []string{"other"}}, nil); err != nil {
		t.Errorf("a subset was refused: %v", err)
	}
	// Sub-keys: of itself yes, of another key no, and a sub-key cannot create.
	sub, err := s.CreateKey(ck, "sub", Permissions{Read: []string{"app"}}, map[string]any{"parent": ck.Key})
	if err != nil || sub.Parent != ck.Key {
		t.Fatalf("sub-key: %+v %v", sub, err)
	}
	_, err = s.CreateKey(ck, "x", Permissions{}, map[string]any{"parent": plain.Key})
	authWantCode(t, err, CodeForbidden, 403)
	_, err = s.CreateKey(sub, "x", Permissions{}, nil)
	authWantCode(t, err, CodeForbidden, 403)
	// The parent bounds a sub-key even when an admin creates it.
	_, err = s.CreateKey(admin, "x", Permissions{Manage: []string{"other"}}, map[string]any{"parent": ck.Key})
	authWantCode(t, err, CodeForbidden, 403)
	// A deleted creator creates nothing, whatever its stale copy says.
	s.DeleteKey(ck.Key)
	_, err = s.CreateKey(ck, "x", Permissions{}, nil)
	authWantCode(t, err, CodeForbidden, 403)
	// A principal built by the program (no key value) is judged by its own
	// permissions.
	trusted := &Key{Label: "trusted", Permissions: Permissions{Admin: true}}
	if _, err := s.CreateKey(trusted, "x", Permissions{Admin: true}, nil); err != nil {
		t.Errorf("a trusted in-process admin cannot create keys: %v", err)
	}
	_, err = s.CreateKey(&Key{Label: "nothing"}, "x", Permissions{}, nil)
	authWantCode(t, err, CodeForbidden, 403)
	// The stored permissions count, not the caller's copy.
	forged := plain.Clone()
	forged.Permissions.Admin = true
	_, err = s.CreateKey(forged, "x", Permissions{}, nil)
	authWantCode(t, err, CodeForbidden, 403)
}

func TestAuthStoreUsers(t *testing.T) {
	s, _ := authOpenTestStore(t)
	if err := s.CreateUser("alice", "pw", UserTypeApp, "", map[string]any{"password": "x", "team": "ops"}); err != nil {
		t.Fatal(err)
	}
	authWantCode(t, s.CreateUser("alice", "pw2", UserTypeApp, "", nil), authCodeConflict, 409)
	for _, bad := range []struct{ name, pw string }{{"", "pw"}, {"a:b", "pw"}, {"a/b", "pw"}, {"a b", "pw"}, {"ok", ""}} {
		authWantCode(t, s.CreateUser(bad.name, bad.pw, UserTypeApp, "", nil), CodeBadRequest, 400)
	}
	authWantCode(t, s.CreateUser("bob", "pw", UserTypeApp, "bad key", nil), CodeBadRequest, 400)
	if _, ok := s.Authenticate("alice", "wrong"); ok {
		t.Error("wrong password accepted")
	}
	if _, ok := s.Authenticate("nobody", "pw"); ok {
		t.Error("unknown user accepted")
	}
	u, ok := s.Authenticate("alice", "pw")
	if !ok || u.Username != "alice" || u.Extra["team"] != "ops" || u.Extra["password"] != nil {
		t.Fatalf("Authenticate = %+v %v", u, ok)
	}
	if err := s.SetPassword("alice", "new"); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Authenticate("alice", "pw"); ok {
		t.Error("old password still works")
	}
	if _, ok := s.Authenticate("alice", "new"); !ok {
		t.Error("new password refused")
	}
	if err := s.SetUserKey("alice", "k1"); err != nil {
		t.Fatal(err)
	}
	if u, _ := s.GetUser("alice"); u.Key != "k1" {
		t.Error("SetUserKey")
	}
	// UpdateUser: nil key keeps, "" password keeps, extra replaced.
	if err := s.UpdateUser("alice", "", 3, nil, map[string]any{"x": 1.0}); err != nil {
		t.Fatal(err)
	}
	u, _ = s.GetUser("alice")
	if u.Key != "k1" || u.UserType != 3 || u.Extra["x"] != 1.0 || u.Extra["team"] != nil {
		t.Errorf("after UpdateUser: %+v", u)
	}
	if _, ok := s.Authenticate("alice", "new"); !ok {
		t.Error("UpdateUser without a password changed it")
	}
	empty := ""
	s.UpdateUser("alice", "third", 1, &empty, nil)
	if u, ok := s.Authenticate("alice", "third"); !ok || u.Key != "" {
		t.Errorf("UpdateUser with a password and no key: %+v %v", u, ok)
	}
	for _, err := range []error{s.SetPassword("nobody", "x"), s.SetUserKey("nobody", "k"), s.UpdateUser("nobody", "x", 1, nil, nil), s.DeleteUser("nobody")} {
		authWantCode(t, err, CodeNotFound, 404)
	}
	_, err := s.GetUser("nobody")
	authWantCode(t, err, CodeNotFound, 404)
	if err := s.DeleteUser("alice"); err != nil {
		t.Fatal(err)
	}
	if len(s.Users()) != 0 {
		t.Error("DeleteUser")
	}
}

func TestAuthStoreAdminUser(t *testing.T) {
	s, dir := authOpenTestStore(t)
	u, k, err := s.CreateAdminUser("root", "secret")
	if err != nil {
		t.Fatal(err)
	}
	if u.UserType != UserTypeUser || u.Key != k.Key || k.Label != "admin key" || !k.IsAdmin() {
		t.Fatalf("admin user %+v key %+v", u, k)
	}
	_, _, err = s.CreateAdminUser("root", "other")
	authWantCode(t, err, authCodeConflict, 409)
	if len(s.Keys()) != 1 {
		t.Error("a refused admin creation created a key")
	}
	s.CreateUser("app", "pw", UserTypeApp, "", nil)
	s.CreateUser("fake", "pw", UserTypeUser, "notakey", nil)
	s2, _ := OpenAuthStore(dir)
	if admins := s2.Admins(); len(admins) != 1 || admins[0].Username != "root" {
		t.Errorf("Admins = %+v", admins)
	}
}

func TestAuthPasswordHashing(t *testing.T) {
	// The reference's test vector for the 0.5.2 format.
	sum, _ := pbkdf2.Key(sha1.New, "what i want to hash", []byte("the random salt"), 1000, 24)
	if got := hex.EncodeToString(sum); got != "fa7cc8a2b0a932f8e6ea42f9787e9d36e592e0c222ada6a9" {
		t.Fatalf("test vector = %s", got)
	}
	legacy := "PBKDF2-256$the random salt:1000$fa7cc8a2b0a932f8e6ea42f9787e9d36e592e0c222ada6a9"
	if ok, weak := authVerifyPassword(legacy, "what i want to hash"); !ok || !weak {
		t.Errorf("legacy hash: ok=%v weak=%v", ok, weak)
	}
	if ok, _ := authVerifyPassword(legacy, "what i want to hash!"); ok {
		t.Error("legacy hash accepts a wrong password")
	}

	h, err := authHashPassword("pw")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(h, "$")
	if len(parts) != 4 || parts[0] != "pbkdf2-sha256" || parts[1] != fmt.Sprint(authPBKDF2Iterations) {
		t.Fatalf("hash format %q", h)
	}
	salt, _ := base64.RawStdEncoding.DecodeString(parts[2])
	if len(salt) != 16 {
		t.Errorf("salt is %d bytes", len(salt))
	}
	if h2, _ := authHashPassword("pw"); h2 == h {
		t.Error("two hashes of one password are equal (no salt?)")
	}
	if ok, weak := authVerifyPassword(h, "pw"); !ok || weak {
		t.Errorf("fresh hash: ok=%v weak=%v", ok, weak)
	}
	if ok, _ := authVerifyPassword(h, "pW"); ok {
		t.Error("wrong password accepted")
	}

	// The production parameters: 210000 iterations or more, read back from
	// the stored string.
	if authDefaultIterations < 210000 {
		t.Errorf("default iterations %d", authDefaultIterations)
	}
	full, _ := pbkdf2.Key(sha256.New, "pw", salt, authDefaultIterations, 32)
	stored := fmt.Sprintf("pbkdf2-sha256$%d$%s$%s", authDefaultIterations, parts[2], base64.RawStdEncoding.EncodeToString(full))
	if ok, weak := authVerifyPassword(stored, "pw"); !ok || weak {
		t.Errorf("a %d-iteration hash: ok=%v weak=%v", authDefaultIterations, ok, weak)
	}
	for _, bad := range []string{"", "pw", "pbkdf2-sha256$x$a$b", "pbkdf2-sha256$1000$!!$AAAA", "PBKDF2-256$nocolon$00", "PBKDF2-256$s:1000$zz", "pbkdf2-sha256$99999999999$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA"} {
		if ok, _ := authVerifyPassword(bad, "pw"); ok {
			t.Errorf("hash %q verified", bad)
		}
	}
}

func TestAuthLegacyHashUpgrade(t *testing.T) {
	s, dir := authOpenTestStore(t)
	legacy := "PBKDF2-256$the random salt:1000$fa7cc8a2b0a932f8e6ea42f9787e9d36e592e0c222ada6a9"
	doc := `{"version":1,"users":[{"user":"old","pwd":"` + legacy + `","user_type":0,"key":null,"extra":{}}]}`
	os.WriteFile(filepath.Join(dir, "users.json"), []byte(doc), 0o600)
	s, err := OpenAuthStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Authenticate("old", "what i want to hash"); !ok {
		t.Fatal("legacy password refused")
	}
	data, _ := os.ReadFile(filepath.Join(dir, "users.json"))
	if strings.Contains(string(data), "PBKDF2-256$") || !strings.Contains(string(data), "pbkdf2-sha256$") {
		t.Errorf("the legacy hash was not upgraded: %s", data)
	}
	if _, ok := s.Authenticate("old", "what i want to hash"); !ok {
		t.Fatal("upgraded password refused")
	}
}

func TestAuthStoreConcurrent(t *testing.T) {
	s, dir := authOpenTestStore(t)
	admin, _ := s.CreateKey(nil, "admin", Permissions{Admin: true}, nil)
	var wg sync.WaitGroup
	n := 4 * runtime.GOMAXPROCS(0)
	errs := make(chan error, 4*n)
	for i := range n {
		wg.Go(func() {
			k, err := s.CreateKey(admin, fmt.Sprint("k", i), Permissions{Read: []string{"a"}}, nil)
			if err != nil {
				errs <- err
				return
			}
			if _, ok := s.LookupKey(k.Key); !ok {
				errs <- errors.New("created key not found")
			}
			name := fmt.Sprint("u", i)
			if err := s.CreateUser(name, "pw", UserTypeApp, k.Key, nil); err != nil {
				errs <- err
			}
			if _, ok := s.Authenticate(name, "pw"); !ok {
				errs <- errors.New("auth failed")
			}
			s.Keys()
			s.Users()
			if i%2 == 0 {
				if err := s.DeleteKey(k.Key); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s2, err := OpenAuthStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(s2.Keys()), 1+n/2; got != want {
		t.Errorf("%d keys after reopen, want %d", got, want)
	}
	if got := len(s2.Users()); got != n {
		t.Errorf("%d users after reopen, want %d", got, n)
	}
}

func TestAuthStoreWriteFailureChangesNothing(t *testing.T) {
	s, dir := authOpenTestStore(t)
	k, _ := s.CreateKey(nil, "k", Permissions{}, nil)
	// A directory in place of the files makes every rename fail, even as root.
	for _, name := range []string{"keys.json", "users.json"} {
		p := filepath.Join(dir, name)
		os.Remove(p)
		os.MkdirAll(filepath.Join(p, "block"), 0o700)
	}
	if _, err := s.CreateKey(nil, "x", Permissions{}, nil); err == nil {
		t.Fatal("CreateKey succeeded")
	}
	if err := s.DeleteKey(k.Key); err == nil {
		t.Fatal("DeleteKey succeeded")
	}
	if err := s.CreateUser("u", "pw", 1, "", nil); err == nil {
		t.Fatal("CreateUser succeeded")
	}
	if _, _, err := s.CreateAdminUser("root", "pw"); err == nil {
		t.Fatal("CreateAdminUser succeeded")
	}
	if len(s.Keys()) != 1 || len(s.Users()) != 0 {
		t.Error("a failed write changed the store in memory")
	}
	if _, ok := s.LookupKey(k.Key); !ok {
		t.Error("the key is gone after a failed delete")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

// TestAuthStoreOldKeysFile: a keys.json written before keys had parents by
// default (rows without "parent") still loads; those keys are roots, and
// the keys they create from now on are their sub-keys.
func TestAuthStoreOldKeysFile(t *testing.T) {
	dir := t.TempDir()
	old := `{"version": 1, "keys": [
  {"key": "0123456789abcdef0123456789abcdef", "data": {"label": "admin", "permissions": {"admin": true}}},
  {"key": "fedcba9876543210fedcba9876543210", "data": {"label": "made by admin, long ago", "permissions": {"read": ["app"]}}}
]}`
	if err := os.WriteFile(filepath.Join(dir, "keys.json"), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := OpenAuthStore(dir)
	if err != nil {
		t.Fatalf("an old keys.json does not load: %v", err)
	}
	admin, ok := s.LookupKey("0123456789abcdef0123456789abcdef")
	if !ok || admin.Parent != "" {
		t.Fatalf("old admin key: %+v %v", admin, ok)
	}
	k, err := s.CreateKey(admin, "new", Permissions{Read: []string{"app"}}, nil)
	if err != nil || k.Parent != admin.Key {
		t.Fatalf("a key created by an old key: %+v %v", k, err)
	}
	if err := s.DeleteKey(admin.Key); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.LookupKey(k.Key); ok {
		t.Error("the new sub-key survived its creator")
	}
	if _, ok := s.LookupKey("fedcba9876543210fedcba9876543210"); !ok {
		t.Error("an old key without recorded parent was deleted with the admin key")
	}
}
