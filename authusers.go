package gaffer

import (
	"encoding/json"
	"log/slog"
	"maps"
	"slices"
	"unicode/utf8"
)

// User types (reference §10.1). The type is informational, except that only
// an admin key may create or update a user of type UserTypeUser.
const (
	UserTypeUser = 0 // a person, possibly an admin
	UserTypeApp  = 1 // an application; the default for users created through the API
)

// User is a user of the API as the store returns it. It never carries the
// password hash. Key is "" when the user has no key (JSON null).
type User struct {
	Username string
	UserType int
	Key      string
	Extra    map[string]any // other stored fields, merged into the JSON object
}

// authUserReserved lists the fields of a user object that Extra may not hold.
var authUserReserved = map[string]bool{"username": true, "password": true, "user_type": true, "key": true}

// MarshalJSON writes the user as one object: Extra's fields merged with
// username, user_type and key. The password hash is never written.
func (u User) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, len(u.Extra)+3)
	for name, v := range u.Extra {
		if !authUserReserved[name] {
			m[name] = v
		}
	}
	m["username"] = u.Username
	m["user_type"] = u.UserType
	if u.Key == "" {
		m["key"] = nil
	} else {
		m["key"] = u.Key
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads a user object; unknown fields go to Extra and a
// password field is dropped.
func (u *User) UnmarshalJSON(data []byte) error {
	m, err := decodeObjectBytes(data, false)
	if err != nil {
		return err
	}
	var nu User
	if nu.Username, err = mapString("username", m["username"]); err != nil {
		return err
	}
	if v, ok := m["user_type"]; ok && v != nil {
		if nu.UserType, err = mapInt("user_type", v); err != nil {
			return err
		}
	}
	if v, ok := m["key"]; ok && v != nil {
		if nu.Key, err = mapString("key", v); err != nil {
			return err
		}
	}
	nu.Extra = authExtra(m, authUserReserved)
	*u = nu
	return nil
}

func (u *User) clone() *User {
	c := *u
	c.Extra = authCloneMap(u.Extra)
	return &c
}

// authValidateUsername checks a username: 1 to 128 bytes of UTF-8, no
// space, control character, '/' (it is a URL path segment) or ':' (it is
// the separator of HTTP Basic credentials).
func authValidateUsername(name string) error {
	if name == "" {
		return errBadRequest("username: missing")
	}
	if len(name) > 128 || !utf8.ValidString(name) {
		return errBadRequest("username: longer than 128 bytes or not UTF-8")
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f || r == '/' || r == ':' {
			return errBadRequest("username: %q contains a forbidden character %q", name, r)
		}
	}
	return nil
}

func authValidatePassword(pw string) error {
	if pw == "" {
		return errBadRequest("password: missing or empty")
	}
	if len(pw) > 4096 {
		return errBadRequest("password: longer than 4096 bytes")
	}
	return nil
}

func authValidateUserKey(key string) error {
	if key == "" {
		return nil
	}
	if v, ok := ParseAPIKeyHeader(key); !ok || v != key {
		return errBadRequest("key: not a valid API key")
	}
	return nil
}

// CreateUser creates a user with a password (hashed with PBKDF2-HMAC-SHA256),
// a type, a key ("" for none; it need not exist) and extra fields. An
// existing username is a 409 *Error, an invalid one a 400.
func (s *AuthStore) CreateUser(username, password string, userType int, key string, extra map[string]any) error {
	if err := authCheckUser(username, password, userType, key); err != nil {
		return err
	}
	s.mu.RLock()
	_, exists := s.users[username]
	s.mu.RUnlock()
	if exists { // fail fast before the slow hash
		return authErrConflict("user %q already exists", username)
	}
	hash, err := authHashPassword(password)
	if err != nil {
		return err
	}
	u := &User{Username: username, UserType: userType, Key: key, Extra: authExtra(extra, authUserReserved)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, exists := s.users[username]; exists {
		return authErrConflict("user %q already exists", username)
	}
	users := maps.Clone(s.users)
	users[username] = &authUserRec{user: u, hash: hash, seq: s.seq + 1}
	if err := s.authSaveUsers(users); err != nil {
		return err
	}
	s.seq++
	s.users = users
	return nil
}

func authCheckUser(username, password string, userType int, key string) error {
	if err := authValidateUsername(username); err != nil {
		return err
	}
	if err := authValidatePassword(password); err != nil {
		return err
	}
	if userType < 0 {
		return errBadRequest("user_type: must be 0 (user) or a positive integer (1 is app)")
	}
	return authValidateUserKey(key)
}

// Authenticate checks a username and password. It takes the same time
// whether or not the user exists. A successful check of a hash made with
// weaker parameters (the 0.5.2 format, fewer iterations) re-hashes the
// password with the current ones.
func (s *AuthStore) Authenticate(username, password string) (*User, bool) {
	s.mu.RLock()
	rec := s.users[username]
	s.mu.RUnlock()
	if rec == nil {
		authVerifyPassword(authDummyHash(), password)
		return nil, false
	}
	ok, weak := authVerifyPassword(rec.hash, password)
	if !ok {
		return nil, false
	}
	if weak {
		s.authRehash(rec, password)
	}
	return rec.user.clone(), true
}

func (s *AuthStore) authRehash(old *authUserRec, password string) {
	hash, err := authHashPassword(password)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.users[old.user.Username] != old {
		return // changed meanwhile
	}
	users := maps.Clone(s.users)
	users[old.user.Username] = &authUserRec{user: old.user, hash: hash, seq: old.seq}
	if err := s.authSaveUsers(users); err != nil {
		slog.Warn("auth store: cannot save an upgraded password hash", "user", old.user.Username, "err", err)
		return
	}
	s.users = users
}

// GetUser returns a copy of a user (without its password), or a 404 *Error.
func (s *AuthStore) GetUser(username string) (*User, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rec, ok := s.users[username]
	if !ok {
		return nil, errNotFound("no such user")
	}
	return rec.user.clone(), nil
}

// authUpdate applies change to a copy of a user's record and saves it. An
// unknown user is a 404 *Error.
func (s *AuthStore) authUpdate(username string, change func(u *User, hash *string)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.users[username]
	if !ok {
		return errNotFound("no such user")
	}
	u, hash := rec.user.clone(), rec.hash
	change(u, &hash)
	users := maps.Clone(s.users)
	users[username] = &authUserRec{user: u, hash: hash, seq: rec.seq}
	if err := s.authSaveUsers(users); err != nil {
		return err
	}
	s.users = users
	return nil
}

// UpdateUser replaces a user's record (PUT /users/<u>): password (kept when
// ""), type, key (kept when nil; "" removes it) and extra fields (replaced).
// An unknown user is a 404 *Error.
func (s *AuthStore) UpdateUser(username, password string, userType int, key *string, extra map[string]any) error {
	if userType < 0 {
		return errBadRequest("user_type: must be 0 (user) or a positive integer (1 is app)")
	}
	if key != nil {
		if err := authValidateUserKey(*key); err != nil {
			return err
		}
	}
	hash := ""
	if password != "" {
		if err := authValidatePassword(password); err != nil {
			return err
		}
		if _, err := s.GetUser(username); err != nil {
			return err // fail fast before the slow hash
		}
		var err error
		if hash, err = authHashPassword(password); err != nil {
			return err
		}
	}
	ex := authExtra(extra, authUserReserved)
	return s.authUpdate(username, func(u *User, h *string) {
		if hash != "" {
			*h = hash
		}
		u.UserType = userType
		if key != nil {
			u.Key = *key
		}
		u.Extra = ex
	})
}

// SetPassword changes a user's password. An unknown user is a 404 *Error.
func (s *AuthStore) SetPassword(username, password string) error {
	if err := authValidatePassword(password); err != nil {
		return err
	}
	if _, err := s.GetUser(username); err != nil {
		return err
	}
	hash, err := authHashPassword(password)
	if err != nil {
		return err
	}
	return s.authUpdate(username, func(_ *User, h *string) { *h = hash })
}

// SetUserKey links a user to key ("" removes the link; the key need not
// exist). An unknown user is a 404 *Error.
func (s *AuthStore) SetUserKey(username, key string) error {
	if err := authValidateUserKey(key); err != nil {
		return err
	}
	return s.authUpdate(username, func(u *User, _ *string) { u.Key = key })
}

// DeleteUser deletes a user. An unknown user is a 404 *Error.
func (s *AuthStore) DeleteUser(username string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[username]; !ok {
		return errNotFound("no such user")
	}
	users := maps.Clone(s.users)
	delete(users, username)
	if err := s.authSaveUsers(users); err != nil {
		return err
	}
	s.users = users
	return nil
}

// Users returns copies of all users, in creation order.
func (s *AuthStore) Users() []User {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.authSortedUsers(func(*User) bool { return true })
}

func (s *AuthStore) authSortedUsers(keep func(*User) bool) []User {
	recs := make([]*authUserRec, 0, len(s.users))
	for _, r := range s.users {
		if keep(r.user) {
			recs = append(recs, r)
		}
	}
	slices.SortFunc(recs, func(a, b *authUserRec) int { return authCmpSeq(a.seq, b.seq) })
	out := make([]User, len(recs))
	for i, r := range recs {
		out[i] = *r.user.clone()
	}
	return out
}

// Admins returns the users whose key exists and is an admin key, for
// gafferd --list-admins.
func (s *AuthStore) Admins() []User {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.authSortedUsers(func(u *User) bool {
		if u.Key == "" {
			return false
		}
		r, ok := s.keys[authSum(u.Key)]
		return ok && r.key.Key == u.Key && r.key.IsAdmin()
	})
}

// CreateAdminUser creates, for gafferd --create-admin-user, a key labelled
// "admin key" with {"admin": true} and a user of type 0 linked to it. An
// existing username is a 409 *Error and creates nothing.
func (s *AuthStore) CreateAdminUser(username, password string) (*User, *Key, error) {
	if err := authCheckUser(username, password, UserTypeUser, ""); err != nil {
		return nil, nil, err
	}
	hash, err := authHashPassword(password)
	if err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, exists := s.users[username]; exists {
		return nil, nil, authErrConflict("user %q already exists", username)
	}
	k := &Key{Key: authNewKeyString(), Label: "admin key", Permissions: Permissions{Admin: true}}
	sum := authSum(k.Key)
	if _, dup := s.keys[sum]; dup {
		return nil, nil, authErrConflict("key conflict; try again")
	}
	keys := maps.Clone(s.keys)
	keys[sum] = &authKeyRec{key: k, seq: s.seq + 1}
	u := &User{Username: username, UserType: UserTypeUser, Key: k.Key}
	users := maps.Clone(s.users)
	users[username] = &authUserRec{user: u, hash: hash, seq: s.seq + 2}
	if err := s.authSaveKeys(keys); err != nil {
		return nil, nil, err
	}
	if err := s.authSaveUsers(users); err != nil {
		if rerr := s.authSaveKeys(s.keys); rerr != nil {
			slog.Error("auth store: cannot roll back keys.json after a failed admin creation", "err", rerr)
		}
		return nil, nil, err
	}
	s.seq += 2
	s.keys, s.users = keys, users
	return u.clone(), k.Clone(), nil
}
