package gaffer

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
)

// AuthStore keeps API keys and users in two JSON files of a directory
// (keys.json and users.json, mode 0600), replaced atomically on every
// change. It is safe for concurrent use: one RWMutex guards both tables.
// Lookups take it for reading only; a change holds it for writing while the
// file is written and synced (changes are rare), but password hashing never
// happens under it. Changes are copy-on-write: a change that cannot be
// written to disk changes nothing in memory.
type AuthStore struct {
	dir     string
	limiter *authLimiter // failed logins of GET /auth

	mu    sync.RWMutex
	keys  map[[32]byte]*authKeyRec // indexed by SHA-256 of the key
	users map[string]*authUserRec
	seq   uint64 // creation order
}

type authKeyRec struct {
	key *Key // never mutated once stored
	seq uint64
}

type authUserRec struct {
	user *User // never mutated once stored
	hash string
	seq  uint64
}

const (
	authKeysFile     = "keys.json"
	authUsersFile    = "users.json"
	authFileVersion  = 1
	authCodeConflict = "conflict"
)

func authSum(key string) [32]byte { return sha256.Sum256([]byte(key)) }

func authErrConflict(format string, args ...any) *Error {
	return Errorf(authCodeConflict, http.StatusConflict, format, args...)
}

func authErrForbidden(format string, args ...any) *Error {
	return Errorf(CodeForbidden, http.StatusForbidden, format, args...)
}

// OpenAuthStore opens (creating with mode 0700 if needed) the directory dir
// and loads keys.json and users.json from it. A missing file is an empty
// table; a file that cannot be read or parsed, or whose content is
// inconsistent, is an error: the store never silently starts empty.
func OpenAuthStore(dir string) (*AuthStore, error) {
	if dir == "" {
		return nil, errors.New("auth store: empty directory name")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	s := &AuthStore{dir: dir, limiter: newAuthLimiter(), keys: map[[32]byte]*authKeyRec{}, users: map[string]*authUserRec{}}
	if err := s.loadKeys(); err != nil {
		return nil, err
	}
	if err := s.loadUsers(); err != nil {
		return nil, err
	}
	return s, nil
}

// Dir returns the directory holding the store's files.
func (s *AuthStore) Dir() string { return s.dir }

// authKeyRow and authUserRow mirror the 0.5.2 SQLite tables (reference
// §10.1): keys(key, data, parent) and auth(user, pwd, user_type, key, extra).
type authKeyRow struct {
	Key    string         `json:"key"`
	Data   map[string]any `json:"data"`
	Parent *string        `json:"parent"`
}

type authUserRow struct {
	User     string         `json:"user"`
	Pwd      string         `json:"pwd"`
	UserType int            `json:"user_type"`
	Key      *string        `json:"key"`
	Extra    map[string]any `json:"extra"`
}

type authKeysDoc struct {
	Version int          `json:"version"`
	Keys    []authKeyRow `json:"keys"`
}

type authUsersDoc struct {
	Version int           `json:"version"`
	Users   []authUserRow `json:"users"`
}

// authReadDoc reads a whole JSON file strictly into v. It returns
// os.ErrNotExist (wrapped) when the file is missing.
func (s *AuthStore) authReadDoc(name string, v any) error {
	path := filepath.Join(s.dir, name)
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("auth store: %s is corrupt: %v", path, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("auth store: %s is corrupt: trailing data after the JSON object", path)
	}
	return nil
}

func (s *AuthStore) loadKeys() error {
	var doc authKeysDoc
	path := filepath.Join(s.dir, authKeysFile)
	if err := s.authReadDoc(authKeysFile, &doc); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	if doc.Version != authFileVersion || doc.Keys == nil {
		return fmt.Errorf("auth store: %s is corrupt: want {\"version\": %d, \"keys\": [...]}", path, authFileVersion)
	}
	for i, row := range doc.Keys {
		if v, ok := ParseAPIKeyHeader(row.Key); !ok || v != row.Key {
			return fmt.Errorf("auth store: %s: keys[%d]: invalid key", path, i)
		}
		if row.Data == nil {
			row.Data = map[string]any{}
		}
		k, err := authKeyFromMap(row.Data)
		if err != nil {
			return fmt.Errorf("auth store: %s: keys[%d]: %v", path, i, err)
		}
		k.Key = row.Key
		k.Parent = ""
		if row.Parent != nil {
			k.Parent = *row.Parent
		}
		sum := authSum(k.Key)
		if _, dup := s.keys[sum]; dup {
			return fmt.Errorf("auth store: %s: keys[%d]: duplicate key", path, i)
		}
		s.seq++
		s.keys[sum] = &authKeyRec{key: k, seq: s.seq}
	}
	// Every parent must exist, and following parents must end at a root.
	for _, rec := range s.keys {
		seen := 0
		for k := rec.key; k.Parent != ""; seen++ {
			p, ok := s.keys[authSum(k.Parent)]
			if !ok {
				return fmt.Errorf("auth store: %s: key labelled %q has an unknown parent", path, k.Label)
			}
			if seen > len(s.keys) {
				return fmt.Errorf("auth store: %s: the parents of key labelled %q form a cycle", path, rec.key.Label)
			}
			k = p.key
		}
	}
	return nil
}

func (s *AuthStore) loadUsers() error {
	var doc authUsersDoc
	path := filepath.Join(s.dir, authUsersFile)
	if err := s.authReadDoc(authUsersFile, &doc); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	if doc.Version != authFileVersion || doc.Users == nil {
		return fmt.Errorf("auth store: %s is corrupt: want {\"version\": %d, \"users\": [...]}", path, authFileVersion)
	}
	for i, row := range doc.Users {
		if err := authValidateUsername(row.User); err != nil {
			return fmt.Errorf("auth store: %s: users[%d]: %v", path, i, err)
		}
		if _, err := authParseHash(row.Pwd); err != nil {
			return fmt.Errorf("auth store: %s: users[%d] (%q): %v", path, i, row.User, err)
		}
		if _, dup := s.users[row.User]; dup {
			return fmt.Errorf("auth store: %s: users[%d]: duplicate user %q", path, i, row.User)
		}
		u := &User{Username: row.User, UserType: row.UserType, Extra: authExtra(row.Extra, authUserReserved)}
		if row.Key != nil {
			u.Key = *row.Key
		}
		s.seq++
		s.users[row.User] = &authUserRec{user: u, hash: row.Pwd, seq: s.seq}
	}
	return nil
}

// authSaveKeys writes keys (a table not yet installed) to keys.json.
func (s *AuthStore) authSaveKeys(keys map[[32]byte]*authKeyRec) error {
	recs := slices.SortedFunc(maps.Values(keys), func(a, b *authKeyRec) int { return authCmpSeq(a.seq, b.seq) })
	doc := authKeysDoc{Version: authFileVersion, Keys: make([]authKeyRow, 0, len(recs))}
	for _, r := range recs {
		data := authCloneMap(r.key.Extra)
		if data == nil {
			data = map[string]any{}
		}
		data["label"] = r.key.Label
		data["permissions"] = r.key.Permissions
		row := authKeyRow{Key: r.key.Key, Data: data}
		if r.key.Parent != "" {
			p := r.key.Parent
			row.Parent = &p
		}
		doc.Keys = append(doc.Keys, row)
	}
	return s.authWriteDoc(authKeysFile, doc)
}

// authSaveUsers writes users (a table not yet installed) to users.json.
func (s *AuthStore) authSaveUsers(users map[string]*authUserRec) error {
	recs := slices.SortedFunc(maps.Values(users), func(a, b *authUserRec) int { return authCmpSeq(a.seq, b.seq) })
	doc := authUsersDoc{Version: authFileVersion, Users: make([]authUserRow, 0, len(recs))}
	for _, r := range recs {
		row := authUserRow{User: r.user.Username, Pwd: r.hash, UserType: r.user.UserType, Extra: r.user.Extra}
		if row.Extra == nil {
			row.Extra = map[string]any{}
		}
		if r.user.Key != "" {
			k := r.user.Key
			row.Key = &k
		}
		doc.Users = append(doc.Users, row)
	}
	return s.authWriteDoc(authUsersFile, doc)
}

func authCmpSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// authWriteDoc replaces the file name in the store's directory atomically:
// a temporary file in the same directory (mode 0600), fsync, rename, fsync
// of the directory.
func (s *AuthStore) authWriteDoc(name string, doc any) error {
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	tmp, err := os.CreateTemp(s.dir, "."+name+".tmp-*")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmpName, filepath.Join(s.dir, name)); err != nil {
		return err
	}
	ok = true
	d, err := os.Open(s.dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return err
	}
	return nil
}

// authExtra returns the fields of m not in reserved, deep-copied.
func authExtra(m map[string]any, reserved map[string]bool) map[string]any {
	var out map[string]any
	for name, v := range m {
		if reserved[name] {
			continue
		}
		if out == nil {
			out = map[string]any{}
		}
		out[name] = authCloneValue(v)
	}
	return out
}

func authCloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = authCloneValue(v)
	}
	return out
}

func authCloneValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		return authCloneMap(t)
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = authCloneValue(e)
		}
		return out
	}
	return v
}

func (r *authKeyRec) copyKey() *Key { return r.key.Clone() }

// authNewKeyString returns 128 random bits as 32 lower-case hex characters.
func authNewKeyString() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand panics rather than return an error)
	return hex.EncodeToString(b[:])
}

// authIsAncestor reports whether anc is k or one of k's parents, in keys.
func authIsAncestor(keys map[[32]byte]*authKeyRec, anc string, k *Key) bool {
	for n := 0; k != nil && n <= len(keys); n++ {
		if subtle.ConstantTimeCompare([]byte(k.Key), []byte(anc)) == 1 {
			return true
		}
		if k.Parent == "" {
			return false
		}
		p, ok := keys[authSum(k.Parent)]
		if !ok {
			return false
		}
		k = p.key
	}
	return false
}

// CreateKey creates a key with a random 128-bit value (32 hex characters),
// the given label, permissions and extra fields, and returns a copy of it.
//
// creator is the key asking for it, or nil for gafferd itself (the CLI's
// --create-admin-user, plugin keys), which bypasses the checks. A creator
// with an empty Key value is a principal built by the program (such as the
// trusted unix-socket caller), never one authenticated from a request, and
// is judged by its own permissions; any other creator by the permissions
// stored for its key (a deleted key creates nothing). A creator
// must be able to create keys (CanCreateKey: never a sub-key), may grant
// only permissions it holds itself, and admin only if it is admin (the
// Recommended fix of reference §10.3); otherwise the error is 403.
//
// The new key is a sub-key (a child) of its creator, so that deleting the
// creator deletes it: extra["parent"], when a non-empty string, makes it a
// sub-key of that key instead, which must exist (400), be the creator or
// one of its descendants unless the creator is an admin (403), and hold the
// new permissions. "parent": null (or "") makes a key without a parent,
// which only an admin may ask for. Keys created by gafferd itself (creator
// nil) and by a principal built by the program (creator.Key empty) have no
// parent unless one is named. Reserved fields (key, label, permissions,
// parent, keys) are never stored in Extra.
func (s *AuthStore) CreateKey(creator *Key, label string, perms Permissions, extra map[string]any) (*Key, error) {
	parent, root := "", false
	if v, ok := extra["parent"]; ok {
		switch p := v.(type) {
		case nil:
			root = true
		case string:
			parent, root = p, p == ""
		default:
			return nil, typeErr("parent", "a key", v)
		}
	}
	if len(label) > 1024 {
		return nil, errBadRequest("label: longer than 1024 bytes")
	}
	k := &Key{Label: label, Permissions: perms.Clone(), Parent: parent, Extra: authExtra(extra, authKeyReserved)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if creator != nil {
		if creator.IsAnonymous() {
			return nil, authErrForbidden("an API key is needed to create keys")
		}
		if creator.Key != "" {
			cur, ok := s.keys[authSum(creator.Key)]
			if !ok {
				return nil, authErrForbidden("the creating key does not exist")
			}
			creator = cur.key // the stored permissions, not a stale copy
		}
		if !creator.CanCreateKey() {
			return nil, authErrForbidden("this key may not create keys")
		}
		if perms.Admin && !creator.IsAdmin() {
			return nil, authErrForbidden("only an admin key may create an admin key")
		}
		if !authCanGrant(creator, perms) {
			return nil, authErrForbidden("a key may only create keys with permissions it holds itself")
		}
		switch {
		case root && !creator.IsAdmin():
			return nil, authErrForbidden(`only an admin key may create a key without a parent ("parent": null)`)
		case parent == "" && !root:
			parent = creator.Key // "" for a principal built by the program
		}
		k.Parent = parent
	}
	if parent != "" {
		p, ok := s.keys[authSum(parent)]
		if !ok {
			return nil, errBadRequest("parent: no such key")
		}
		if creator != nil && !creator.IsAdmin() && !authIsAncestor(s.keys, creator.Key, p.key) {
			return nil, authErrForbidden("a key may only create sub-keys of itself")
		}
		if !authCanGrant(p.key, perms) {
			return nil, authErrForbidden("a sub-key may only have permissions its parent holds")
		}
	}
	for range 3 {
		k.Key = authNewKeyString()
		if _, dup := s.keys[authSum(k.Key)]; !dup {
			break
		}
	}
	sum := authSum(k.Key)
	if _, dup := s.keys[sum]; dup {
		return nil, authErrConflict("key conflict; try again")
	}
	keys := maps.Clone(s.keys)
	rec := &authKeyRec{key: k, seq: s.seq + 1}
	keys[sum] = rec
	if err := s.authSaveKeys(keys); err != nil {
		return nil, err
	}
	s.seq++
	s.keys = keys
	return rec.copyKey(), nil
}

// LookupKey returns a copy of the key whose value is key, for
// authenticating a request. The table is indexed by the SHA-256 of the key
// and the match confirmed with a constant-time comparison, so the time taken
// reveals nothing about stored keys.
func (s *AuthStore) LookupKey(key string) (*Key, bool) {
	sum := authSum(key)
	s.mu.RLock()
	rec, ok := s.keys[sum]
	s.mu.RUnlock()
	if !ok || subtle.ConstantTimeCompare([]byte(rec.key.Key), []byte(key)) != 1 {
		return nil, false
	}
	return rec.copyKey(), true
}

// GetKey returns a copy of a key, or a 404 *Error.
func (s *AuthStore) GetKey(key string) (*Key, error) {
	k, ok := s.LookupKey(key)
	if !ok {
		return nil, errNotFound("no such key")
	}
	return k, nil
}

// DeleteKey deletes a key and, recursively, all its sub-keys (the
// Recommended fix of reference §2.4.7). An unknown key is a 404 *Error.
// Users linked to a deleted key keep the dangling reference, which no longer
// authenticates.
func (s *AuthStore) DeleteKey(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.keys[authSum(key)]
	if !ok || subtle.ConstantTimeCompare([]byte(rec.key.Key), []byte(key)) != 1 {
		return errNotFound("no such key")
	}
	keys := maps.Clone(s.keys)
	doomed := map[string]bool{rec.key.Key: true}
	for changed := true; changed; {
		changed = false
		for _, r := range keys {
			if r.key.Parent != "" && doomed[r.key.Parent] && !doomed[r.key.Key] {
				doomed[r.key.Key] = true
				changed = true
			}
		}
	}
	for k := range doomed {
		delete(keys, authSum(k))
	}
	if err := s.authSaveKeys(keys); err != nil {
		return err
	}
	s.keys = keys
	return nil
}

// Keys returns copies of all keys, in creation order.
func (s *AuthStore) Keys() []*Key {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.authSortedKeys(func(*Key) bool { return true })
}

// SubKeys returns copies of the direct sub-keys of key, in creation order.
func (s *AuthStore) SubKeys(key string) []*Key {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.authSortedKeys(func(k *Key) bool { return k.Parent != "" && k.Parent == key })
}

func (s *AuthStore) authSortedKeys(keep func(*Key) bool) []*Key {
	recs := make([]*authKeyRec, 0, len(s.keys))
	for _, r := range s.keys {
		if keep(r.key) {
			recs = append(recs, r)
		}
	}
	slices.SortFunc(recs, func(a, b *authKeyRec) int { return authCmpSeq(a.seq, b.seq) })
	out := make([]*Key, len(recs))
	for i, r := range recs {
		out[i] = r.copyKey()
	}
	return out
}
