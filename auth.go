package gaffer

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Permissions is what a key may do (reference §10.3). A target in Manage,
// Write or Read is a session id ("myapp"), a full job name ("myapp.web") or
// "*" (everything).
type Permissions struct {
	Admin      bool     `json:"admin"`
	CreateKey  bool     `json:"create_key"`
	CreateUser bool     `json:"create_user"`
	Manage     []string `json:"manage"`
	Write      []string `json:"write"`
	Read       []string `json:"read"`
}

// MarshalJSON writes the permissions with empty lists as [] rather than null.
func (p Permissions) MarshalJSON() ([]byte, error) {
	type plain Permissions
	q := plain(p)
	q.Manage, q.Write, q.Read = nonNil(q.Manage), nonNil(q.Write), nonNil(q.Read)
	return json.Marshal(q)
}

// Clone returns a deep copy of p.
func (p Permissions) Clone() Permissions {
	p.Manage, p.Write, p.Read = slices.Clone(p.Manage), slices.Clone(p.Write), slices.Clone(p.Read)
	return p
}

// Key is an API key and what it may do. A key with a Parent is a sub-key:
// it is deleted with its parent (a key created through the API is a sub-key
// of the key that created it). Keys returned by an AuthStore are copies;
// changing them changes nothing stored.
type Key struct {
	Key         string         `json:"key"`
	Label       string         `json:"label"`
	Permissions Permissions    `json:"permissions"`
	Parent      string         `json:"parent,omitempty"`
	Extra       map[string]any `json:"-"` // other stored fields, merged into the JSON object

	anonymous bool
}

// authKeyReserved lists the JSON fields of a key object that Extra may not
// hold: they are the Key's own fields, or "keys" that GET /keys/<key> adds.
var authKeyReserved = map[string]bool{"key": true, "label": true, "permissions": true, "parent": true, "keys": true}

// MarshalJSON writes the key as one object: Extra's fields merged with key,
// label, permissions and (for a sub-key) parent.
func (k Key) MarshalJSON() ([]byte, error) { return json.Marshal(k.authObject()) }

// authObject returns the JSON object of k as a map.
func (k *Key) authObject() map[string]any {
	m := make(map[string]any, len(k.Extra)+5)
	for name, v := range k.Extra {
		if !authKeyReserved[name] {
			m[name] = v
		}
	}
	m["key"] = k.Key
	m["label"] = k.Label
	m["permissions"] = k.Permissions
	if k.Parent != "" {
		m["parent"] = k.Parent
	}
	return m
}

// UnmarshalJSON reads a key object; fields other than key, label,
// permissions and parent go to Extra.
func (k *Key) UnmarshalJSON(data []byte) error {
	m, err := decodeObjectBytes(data, false)
	if err != nil {
		return err
	}
	nk, err := authKeyFromMap(m)
	if err != nil {
		return err
	}
	*k = *nk
	return nil
}

// authKeyFromMap builds a Key from a decoded key object.
func authKeyFromMap(m map[string]any) (*Key, error) {
	k := &Key{}
	var err error
	if v, ok := m["key"]; ok && v != nil {
		if k.Key, err = mapString("key", v); err != nil {
			return nil, err
		}
	}
	if v, ok := m["label"]; ok && v != nil {
		if k.Label, err = mapString("label", v); err != nil {
			return nil, err
		}
	}
	if v, ok := m["parent"]; ok && v != nil {
		if k.Parent, err = mapString("parent", v); err != nil {
			return nil, err
		}
	}
	if k.Permissions, err = authParsePermissions(m["permissions"]); err != nil {
		return nil, err
	}
	for name, v := range m {
		if !authKeyReserved[name] {
			if k.Extra == nil {
				k.Extra = map[string]any{}
			}
			k.Extra[name] = v
		}
	}
	return k, nil
}

// authParsePermissions reads a permissions object as decoded from JSON.
// null or a missing object means no permissions; unknown fields and wrong
// types are errors, so a typo never silently grants or drops a right.
func authParsePermissions(v any) (Permissions, error) {
	var p Permissions
	if v == nil {
		return p, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return p, typeErr("permissions", "an object", v)
	}
	for name, fv := range m {
		var err error
		switch name {
		case "admin", "create_key", "create_user":
			b, isBool := fv.(bool)
			if fv != nil && !isBool {
				return p, typeErr("permissions."+name, "a boolean", fv)
			}
			switch name {
			case "admin":
				p.Admin = b
			case "create_key":
				p.CreateKey = b
			default:
				p.CreateUser = b
			}
		case "manage":
			p.Manage, err = authParseTargets(name, fv)
		case "write":
			p.Write, err = authParseTargets(name, fv)
		case "read":
			p.Read, err = authParseTargets(name, fv)
		default:
			return p, errBadRequest("permissions: unknown field %q (known: admin, create_key, create_user, manage, write, read)", name)
		}
		if err != nil {
			return p, err
		}
	}
	return p, nil
}

func authParseTargets(name string, v any) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	a, ok := v.([]any)
	if !ok {
		return nil, typeErr("permissions."+name, "a list of targets", v)
	}
	out := make([]string, 0, len(a))
	for i, e := range a {
		s, ok := e.(string)
		if !ok {
			return nil, typeErr(fmt.Sprintf("permissions.%s[%d]", name, i), "a string", e)
		}
		if s == "" || len(s) > 256 || strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			return nil, errBadRequest("permissions.%s[%d]: %q is not a session id, a job name or \"*\"", name, i, s)
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// Clone returns a deep copy of k.
func (k *Key) Clone() *Key {
	if k == nil {
		return nil
	}
	c := *k
	c.Permissions = k.Permissions.Clone()
	c.Extra = authCloneMap(k.Extra)
	return &c
}

// authHas is has(P, T) of reference §10.3.
func (k *Key) authHas(list []string, target string) bool {
	if k == nil {
		return false
	}
	if k.Permissions.Admin {
		return true
	}
	if slices.Contains(list, "*") || slices.Contains(list, target) {
		return true
	}
	if i := strings.IndexByte(target, '.'); i >= 0 && slices.Contains(list, target[:i]) {
		return true
	}
	return false
}

// IsAdmin reports whether k has every right.
func (k *Key) IsAdmin() bool { return k != nil && k.Permissions.Admin }

// CanCreateKey reports whether k may create keys (with at most its own
// permissions; they are its sub-keys). The anonymous key never may. A
// sub-key may if it holds create_key, which only a creator holding it can
// have granted; what it creates is deleted with it.
func (k *Key) CanCreateKey() bool {
	return k != nil && !k.anonymous && (k.Permissions.Admin || k.Permissions.CreateKey)
}

// CanCreateUser reports whether k may create and manage users. The
// anonymous key never may.
func (k *Key) CanCreateUser() bool {
	return k != nil && !k.anonymous && (k.Permissions.Admin || k.Permissions.CreateUser)
}

// CanManage reports whether k may load, unload, update, start, stop, scale,
// commit and signal target (a session id, "session.job" or "*").
func (k *Key) CanManage(target string) bool {
	return k != nil && k.authHas(k.Permissions.Manage, target)
}

// CanWrite reports whether k may write to the streams of target; manage
// implies write.
func (k *Key) CanWrite(target string) bool {
	return k.CanManage(target) || (k != nil && k.authHas(k.Permissions.Write, target))
}

// CanRead reports whether k may read information, stats and output of
// target; write implies read.
func (k *Key) CanRead(target string) bool {
	return k.CanWrite(target) || (k != nil && k.authHas(k.Permissions.Read, target))
}

// CanManageAll reports whether k may manage everything (admin or "*" in
// manage).
func (k *Key) CanManageAll() bool {
	return k.IsAdmin() || (k != nil && slices.Contains(k.Permissions.Manage, "*"))
}

// CanWriteAll reports whether k may write everything.
func (k *Key) CanWriteAll() bool {
	return k.CanManageAll() || (k != nil && slices.Contains(k.Permissions.Write, "*"))
}

// CanReadAll reports whether k may read everything.
func (k *Key) CanReadAll() bool {
	return k.CanWriteAll() || (k != nil && slices.Contains(k.Permissions.Read, "*"))
}

// authCanGrant reports whether creator may hand out perms (the Recommended
// fix of reference §10.3): admin only by an admin, and every other right
// only if the creator holds it itself.
func authCanGrant(creator *Key, perms Permissions) bool {
	if creator == nil || creator.anonymous {
		return false
	}
	if creator.IsAdmin() {
		return true
	}
	if perms.Admin || (perms.CreateKey && !creator.Permissions.CreateKey) || (perms.CreateUser && !creator.CanCreateUser()) {
		return false
	}
	for _, t := range perms.Manage {
		if !creator.CanManage(t) {
			return false
		}
	}
	for _, t := range perms.Write {
		if !creator.CanWrite(t) {
			return false
		}
	}
	for _, t := range perms.Read {
		if !creator.CanRead(t) {
			return false
		}
	}
	return true
}

// anonymousKey is the caller when require_key is off: every check passes
// except CanCreateKey and CanCreateUser (reference §2.1). The auth routes
// treat it as "no key" (401).
var anonymousKey = &Key{
	Label:       "anonymous",
	Permissions: Permissions{Admin: true, Manage: []string{"*"}, Write: []string{"*"}, Read: []string{"*"}},
	anonymous:   true,
}

// IsAnonymous reports whether k is the caller of a server without
// require_key (every right but creating keys and users), or a copy of it.
func (k *Key) IsAnonymous() bool { return k != nil && k.anonymous }

type authCtxKey struct{}

// WithKey returns a context carrying k as the caller's key.
func WithKey(ctx context.Context, k *Key) context.Context {
	return context.WithValue(ctx, authCtxKey{}, k)
}

// KeyFrom returns the caller's key stored by WithKey. Without one it returns
// the anonymous caller of a server without require_key (IsAnonymous: every
// right but creating keys and users), which is what the HTTP layer runs
// requests with when keys are off; with keys on it always stores a key.
func KeyFrom(ctx context.Context) *Key {
	if k, ok := ctx.Value(authCtxKey{}).(*Key); ok && k != nil {
		return k
	}
	return anonymousKey
}

// authMaxKeyLen bounds an API key as carried in a header or a message.
const authMaxKeyLen = 256

// ParseBasicAuth parses an "Authorization: Basic <base64(user:pass)>"
// header value. The scheme is case-insensitive; the credentials split on the
// first colon, so a password may contain colons (the Recommended fix of
// reference §2.4.5). Bad base64, a missing colon or an encoded part longer
// than 8 KiB gives ok == false.
func ParseBasicAuth(header string) (user, pass string, ok bool) {
	header = strings.TrimSpace(header)
	const prefix = "basic "
	if len(header) < len(prefix) || !strings.EqualFold(header[:len(prefix)], prefix) {
		return "", "", false
	}
	enc := strings.TrimLeft(header[len(prefix):], " ")
	if enc == "" || len(enc) > 8192 {
		return "", "", false
	}
	dec, err := base64.StdEncoding.Strict().DecodeString(enc)
	if err != nil {
		return "", "", false
	}
	user, pass, ok = strings.Cut(string(dec), ":")
	if !ok {
		return "", "", false
	}
	return user, pass, true
}

// ParseAPIKeyHeader checks an X-Api-Key header value: surrounding spaces and
// tabs are trimmed; an empty value, one longer than 256 bytes, or one with a
// control, space or non-ASCII character is refused.
func ParseAPIKeyHeader(v string) (string, bool) {
	v = strings.Trim(v, " \t\r\n")
	if v == "" || len(v) > authMaxKeyLen {
		return "", false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c >= 0x7f {
			return "", false
		}
	}
	return v, true
}

// ParseChannelAuth parses the first message of a control channel when
// require_key is on: "AUTH:<key>" (reference §3.2). The key is checked as
// ParseAPIKeyHeader does.
func ParseChannelAuth(msg string) (key string, ok bool) {
	rest, found := strings.CutPrefix(msg, "AUTH:")
	if !found {
		return "", false
	}
	return ParseAPIKeyHeader(rest)
}
