package gaffer

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// PBKDF2 with the production iteration count is slow under -race; the
// tests of this package hash with far fewer.
func init() { authPBKDF2Iterations = 1000 }

func TestAuthPermissionRules(t *testing.T) {
	k := &Key{Permissions: Permissions{
		Manage: []string{"test.test", "m"},
		Write:  []string{"w"},
		Read:   []string{"r", "x.job"},
	}}
	cases := []struct {
		target              string
		manage, write, read bool
	}{
		{"test.test", true, true, true},
		{"test", false, false, false}, // a job grant gives nothing on the session
		{"test.other", false, false, false},
		{"m", true, true, true},
		{"m.any", true, true, true}, // session grant covers its jobs
		{"w", false, true, true},
		{"w.j", false, true, true},
		{"r", false, false, true},
		{"r.j", false, false, true},
		{"x.job", false, false, true},
		{"x", false, false, false},
		{"x.other", false, false, false},
		{"*", false, false, false},
		{"", false, false, false},
		{"mm", false, false, false},
	}
	for _, c := range cases {
		if got := k.CanManage(c.target); got != c.manage {
			t.Errorf("CanManage(%q) = %v", c.target, got)
		}
		if got := k.CanWrite(c.target); got != c.write {
			t.Errorf("CanWrite(%q) = %v", c.target, got)
		}
		if got := k.CanRead(c.target); got != c.read {
			t.Errorf("CanRead(%q) = %v", c.target, got)
		}
	}
	if k.CanManageAll() || k.CanWriteAll() || k.CanReadAll() || k.IsAdmin() || k.CanCreateKey() || k.CanCreateUser() {
		t.Error("a scoped key has global rights")
	}

	star := &Key{Permissions: Permissions{Write: []string{"*"}}}
	if star.CanManageAll() || !star.CanWriteAll() || !star.CanReadAll() || !star.CanWrite("a.b") || star.CanManage("a") {
		t.Error("write:* rules")
	}
	readAll := &Key{Permissions: Permissions{Read: []string{"*"}}}
	if !readAll.CanReadAll() || readAll.CanWriteAll() || !readAll.CanRead("*") {
		t.Error("read:* rules")
	}
	admin := &Key{Permissions: Permissions{Admin: true}}
	if !admin.IsAdmin() || !admin.CanManageAll() || !admin.CanReadAll() || !admin.CanManage("x.y") || !admin.CanCreateKey() || !admin.CanCreateUser() {
		t.Error("admin rules")
	}
	ck := &Key{Permissions: Permissions{CreateKey: true, CreateUser: true}}
	if !ck.CanCreateKey() || !ck.CanCreateUser() || ck.IsAdmin() {
		t.Error("create_key/create_user rules")
	}
	// A sub-key creates keys if it holds create_key (its creator had it to
	// give); its creations are its sub-keys, deleted with it.
	if sub := (&Key{Parent: "p", Permissions: Permissions{CreateKey: true}}); !sub.CanCreateKey() {
		t.Error("a sub-key with create_key cannot create keys")
	}
	if sub := (&Key{Parent: "p", Permissions: Permissions{Manage: []string{"*"}}}); sub.CanCreateKey() {
		t.Error("a sub-key without create_key can create keys")
	}
	var nilKey *Key
	if nilKey.IsAdmin() || nilKey.CanRead("a") || nilKey.CanReadAll() || nilKey.CanCreateKey() || nilKey.CanCreateUser() {
		t.Error("a nil key has rights")
	}
}

func TestAuthAnonymousKey(t *testing.T) {
	a := anonymousKey
	if !a.IsAdmin() || !a.CanManage("x.y") || !a.CanWrite("x") || !a.CanRead("*") || !a.CanManageAll() || !a.CanReadAll() {
		t.Error("the anonymous key fails a check it should pass")
	}
	if a.CanCreateKey() || a.CanCreateUser() {
		t.Error("the anonymous key may create keys or users")
	}
	if !a.Clone().IsAnonymous() {
		t.Error("a copy of the anonymous key is not anonymous")
	}
	if KeyFrom(context.Background()) != anonymousKey {
		t.Error("KeyFrom without a key")
	}
	k := &Key{Key: "abc"}
	if KeyFrom(WithKey(context.Background(), k)) != k {
		t.Error("KeyFrom(WithKey(k)) != k")
	}
	if KeyFrom(WithKey(context.Background(), nil)) != anonymousKey {
		t.Error("KeyFrom(WithKey(nil))")
	}
}

func TestAuthCanGrant(t *testing.T) {
	creator := &Key{Key: "c", Permissions: Permissions{CreateKey: true, Manage: []string{"app"}, Write: []string{"w.j"}, Read: []string{"*"}}}
	cases := []struct {
		p    Permissions
		want bool
	}{
		{Permissions{}, true},
		{Permissions{Manage: []string{"app"}}, true},
		{Permissions{Manage: []string{"app.web"}}, true},
		{Permissions{Write: []string{"app"}, Read: []string{"app.x"}}, true},
		{Permissions{Write: []string{"w.j"}}, true},
		{Permissions{Read: []string{"*"}}, true},
		{Permissions{Read: []string{"anything.else"}}, true},
		{Permissions{CreateKey: true, Manage: []string{"app"}}, true},
		{Permissions{Manage: []string{"*"}}, false},
		{Permissions{Manage: []string{"other"}}, false},
		{Permissions{Write: []string{"w"}}, false},
		{Permissions{Manage: []string{"w.j"}}, false},
		{Permissions{Write: []string{"*"}}, false},
		{Permissions{Admin: true}, false},
		{Permissions{CreateUser: true}, false},
	}
	for _, c := range cases {
		if got := authCanGrant(creator, c.p); got != c.want {
			t.Errorf("authCanGrant(%+v) = %v, want %v", c.p, got, c.want)
		}
	}
	if !authCanGrant(&Key{Permissions: Permissions{Admin: true}}, Permissions{Admin: true, Manage: []string{"*"}}) {
		t.Error("an admin cannot grant admin")
	}
	if authCanGrant(anonymousKey, Permissions{}) || authCanGrant(nil, Permissions{}) {
		t.Error("the anonymous or nil key can grant")
	}
}

func TestAuthKeyJSON(t *testing.T) {
	k := Key{Key: "k1", Label: "l", Parent: "p", Extra: map[string]any{"note": "n", "key": "ignored", "label": "ignored"}}
	data, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(data, &m)
	want := map[string]any{"key": "k1", "label": "l", "parent": "p", "note": "n",
		"permissions": map[string]any{"admin": false, "create_key": false, "create_user": false, "manage": []any{}, "write": []any{}, "read": []any{}}}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("key JSON = %s", data)
	}
	var back Key
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if back.Key != "k1" || back.Label != "l" || back.Parent != "p" || len(back.Extra) != 1 || back.Extra["note"] != "n" {
		t.Errorf("round trip: %+v", back)
	}
	if err := json.Unmarshal([]byte(`{"key":"a","permissions":{"admin":"yes"}}`), &back); err == nil {
		t.Error("a string admin flag was accepted")
	}
	if err := json.Unmarshal([]byte(`{"key":"a","permissions":{"mange":["x"]}}`), &back); err == nil {
		t.Error("an unknown permission field was accepted")
	}
	if err := json.Unmarshal([]byte(`{"key":"a","permissions":{"manage":"x"}}`), &back); err == nil {
		t.Error("a string target list was accepted")
	}
	if err := json.Unmarshal([]byte(`{"key":"a","permissions":{"manage":[""]}}`), &back); err == nil {
		t.Error("an empty target was accepted")
	}
	noParent, _ := json.Marshal(Key{Key: "x"})
	if strings.Contains(string(noParent), "parent") {
		t.Errorf("a root key has a parent field: %s", noParent)
	}
}

func TestAuthUserJSON(t *testing.T) {
	u := User{Username: "bob", UserType: 1, Extra: map[string]any{"email": "b@x", "password": "leak"}}
	data, _ := json.Marshal(u)
	var m map[string]any
	json.Unmarshal(data, &m)
	want := map[string]any{"username": "bob", "user_type": float64(1), "key": nil, "email": "b@x"}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("user JSON = %s", data)
	}
	var back User
	if err := json.Unmarshal([]byte(`{"username":"a","user_type":0,"key":"k","password":"x","z":1}`), &back); err != nil {
		t.Fatal(err)
	}
	if back.Username != "a" || back.UserType != 0 || back.Key != "k" || len(back.Extra) != 1 {
		t.Errorf("user round trip: %+v", back)
	}
}

func authBasicHeader(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestParseBasicAuth(t *testing.T) {
	cases := []struct {
		header, user, pass string
		ok                 bool
	}{
		{authBasicHeader("alice", "secret"), "alice", "secret", true},
		{authBasicHeader("alice", "se:cr:et"), "alice", "se:cr:et", true},
		{authBasicHeader("alice", ""), "alice", "", true},
		{"basic " + base64.StdEncoding.EncodeToString([]byte("a:b")), "a", "b", true},
		{"BASIC " + base64.StdEncoding.EncodeToString([]byte("a:b")), "a", "b", true},
		{"  Basic   " + base64.StdEncoding.EncodeToString([]byte("a:b")) + " ", "a", "b", true},
		{"Basic " + base64.StdEncoding.EncodeToString([]byte("nocolon")), "", "", false},
		{"Basic !!!", "", "", false},
		{"Basic YWI6Y", "", "", false}, // truncated
		{"Basic ", "", "", false},
		{"Bearer abc", "", "", false},
		{"", "", "", false},
		{"Basicx YTpi", "", "", false},
	}
	for _, c := range cases {
		u, p, ok := ParseBasicAuth(c.header)
		if u != c.user || p != c.pass || ok != c.ok {
			t.Errorf("ParseBasicAuth(%q) = %q, %q, %v", c.header, u, p, ok)
		}
	}
}

func TestParseAPIKeyHeader(t *testing.T) {
	good := map[string]string{"abc": "abc", "  abc\t": "abc", "0123456789abcdef0123456789abcdef": "0123456789abcdef0123456789abcdef", strings.Repeat("a", 256): strings.Repeat("a", 256)}
	for in, want := range good {
		if got, ok := ParseAPIKeyHeader(in); !ok || got != want {
			t.Errorf("ParseAPIKeyHeader(%q) = %q, %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "   ", strings.Repeat("a", 257), "a\x00b", "a\nb", "a b", "caf\u00e9", "a\x7f"} {
		if got, ok := ParseAPIKeyHeader(in); ok {
			t.Errorf("ParseAPIKeyHeader(%q) accepted as %q", in, got)
		}
	}
}

func TestParseChannelAuth(t *testing.T) {
	if k, ok := ParseChannelAuth("AUTH:abc"); !ok || k != "abc" {
		t.Errorf("AUTH:abc = %q %v", k, ok)
	}
	for _, in := range []string{"AUTH:", "auth:abc", `{"event":"SUB"}`, "AUTHabc", "AUTH:a b", ""} {
		if k, ok := ParseChannelAuth(in); ok {
			t.Errorf("ParseChannelAuth(%q) accepted as %q", in, k)
		}
	}
}

func FuzzParseBasicAuth(f *testing.F) {
	f.Add(authBasicHeader("alice", "secret"))
	f.Add(authBasicHeader("a", "b:c"))
	f.Add("basic Og==")
	f.Add("Basic !!")
	f.Add("Bearer x")
	f.Fuzz(func(t *testing.T, header string) {
		user, pass, ok := ParseBasicAuth(header)
		if !ok {
			if user != "" || pass != "" {
				t.Fatalf("refused but returned %q %q", user, pass)
			}
			return
		}
		if strings.Contains(user, ":") {
			t.Fatalf("user %q contains a colon", user)
		}
		u2, p2, ok2 := ParseBasicAuth(authBasicHeader(user, pass))
		if !ok2 || u2 != user || p2 != pass {
			t.Fatalf("re-encoding %q:%q gives %q:%q %v", user, pass, u2, p2, ok2)
		}
	})
}

func FuzzParseAPIKeyHeader(f *testing.F) {
	f.Add("0123456789abcdef0123456789abcdef")
	f.Add(" key ")
	f.Add("")
	f.Add("a\x00")
	f.Add(strings.Repeat("k", 300))
	f.Fuzz(func(t *testing.T, v string) {
		key, ok := ParseAPIKeyHeader(v)
		if !ok {
			if key != "" {
				t.Fatalf("refused but returned %q", key)
			}
			return
		}
		if key == "" || len(key) > 256 || !strings.Contains(v, key) {
			t.Fatalf("bad key %q from %q", key, v)
		}
		for i := 0; i < len(key); i++ {
			if key[i] <= ' ' || key[i] >= 0x7f {
				t.Fatalf("key %q has byte %#x", key, key[i])
			}
		}
		if again, ok := ParseAPIKeyHeader(key); !ok || again != key {
			t.Fatalf("not idempotent: %q -> %q", key, again)
		}
		if ck, ok := ParseChannelAuth("AUTH:" + key); !ok || ck != key {
			t.Fatalf("channel auth of %q = %q", key, ck)
		}
	})
}
