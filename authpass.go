package gaffer

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"runtime"
	"strconv"
	"strings"
	"sync"
)

// Password hashes are stored as
//
//	pbkdf2-sha256$<iterations>$<salt, base64 without padding>$<hash, base64 without padding>
//
// with a 16-byte random salt and a 32-byte PBKDF2-HMAC-SHA256 hash. Hashes
// of gaffer 0.5.2 (reference §10.2), "PBKDF2-256$<salt>:<iterations>$<hex>"
// with PBKDF2-HMAC-SHA1 and the salt used as text, are accepted for
// verification only.
const (
	authHashPrefix        = "pbkdf2-sha256$"
	authLegacyHashPrefix  = "PBKDF2-256$"
	authDefaultIterations = 210000
	authMaxIterations     = 50_000_000
	authSaltLen           = 16
	authHashLen           = 32
)

// authPBKDF2Iterations is the iteration count of new hashes; tests lower it.
var authPBKDF2Iterations = authDefaultIterations

// authHashSlots bounds how many PBKDF2 computations run at once, so that a
// flood of /auth requests queues instead of taking every CPU from gafferd.
var authHashSlots = make(chan struct{}, max(2, runtime.GOMAXPROCS(0)/2))

func authPBKDF2[H hash.Hash](h func() H, password string, salt []byte, iter, n int) ([]byte, error) {
	authHashSlots <- struct{}{}
	defer func() { <-authHashSlots }()
	return pbkdf2.Key(h, password, salt, iter, n)
}

// authHash is a parsed stored password hash.
type authHash struct {
	legacy bool
	iter   int
	salt   []byte
	sum    []byte
}

// authHashPassword hashes a password with a fresh salt and the current
// parameters.
func authHashPassword(password string) (string, error) {
	salt := make([]byte, authSaltLen)
	rand.Read(salt)
	iter := authPBKDF2Iterations
	sum, err := authPBKDF2(sha256.New, password, salt, iter, authHashLen)
	if err != nil {
		return "", err
	}
	enc := base64.RawStdEncoding
	return authHashPrefix + strconv.Itoa(iter) + "$" + enc.EncodeToString(salt) + "$" + enc.EncodeToString(sum), nil
}

func authDecodeB64(s string) ([]byte, error) {
	if b, err := base64.RawStdEncoding.Strict().DecodeString(s); err == nil {
		return b, nil
	}
	return base64.StdEncoding.Strict().DecodeString(s)
}

// authParseHash parses a stored hash in either format.
func authParseHash(stored string) (*authHash, error) {
	if rest, ok := strings.CutPrefix(stored, authHashPrefix); ok {
		parts := strings.Split(rest, "$")
		if len(parts) != 3 {
			return nil, errors.New("password hash: want pbkdf2-sha256$<iterations>$<salt>$<hash>")
		}
		iter, err := authParseIterations(parts[0])
		if err != nil {
			return nil, err
		}
		salt, err := authDecodeB64(parts[1])
		if err != nil || len(salt) < 8 {
			return nil, errors.New("password hash: bad salt")
		}
		sum, err := authDecodeB64(parts[2])
		if err != nil || len(sum) < 16 || len(sum) > 64 {
			return nil, errors.New("password hash: bad hash")
		}
		return &authHash{iter: iter, salt: salt, sum: sum}, nil
	}
	if rest, ok := strings.CutPrefix(stored, authLegacyHashPrefix); ok {
		i := strings.LastIndexByte(rest, '$')
		if i < 0 {
			return nil, errors.New("password hash: want PBKDF2-256$<salt>:<iterations>$<hex>")
		}
		params, hexSum := rest[:i], rest[i+1:]
		j := strings.LastIndexByte(params, ':')
		if j < 0 {
			return nil, errors.New("password hash: want PBKDF2-256$<salt>:<iterations>$<hex>")
		}
		iter, err := authParseIterations(params[j+1:])
		if err != nil {
			return nil, err
		}
		sum, err := hex.DecodeString(hexSum)
		if err != nil || len(sum) < 16 || len(sum) > 64 {
			return nil, errors.New("password hash: bad hex hash")
		}
		return &authHash{legacy: true, iter: iter, salt: []byte(params[:j]), sum: sum}, nil
	}
	return nil, errors.New("password hash: unknown format")
}

func authParseIterations(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > authMaxIterations {
		return 0, fmt.Errorf("password hash: bad iteration count %q", s)
	}
	return n, nil
}

// authVerifyPassword checks password against a stored hash in constant
// time. weak reports a match against a hash made with weaker parameters
// than new hashes get, which the caller may upgrade.
func authVerifyPassword(stored, password string) (ok, weak bool) {
	h, err := authParseHash(stored)
	if err != nil {
		return false, false
	}
	var f func() hash.Hash = sha256.New
	if h.legacy {
		f = sha1.New
	}
	sum, err := authPBKDF2(f, password, h.salt, h.iter, len(h.sum))
	if err != nil || subtle.ConstantTimeCompare(sum, h.sum) != 1 {
		return false, false
	}
	return true, h.legacy || h.iter < authPBKDF2Iterations || len(h.sum) < authHashLen
}

var (
	authDummyOnce sync.Once
	authDummy     string
)

// authDummyHash is checked against when a user does not exist, so that the
// answer takes as long as for a wrong password.
func authDummyHash() string {
	authDummyOnce.Do(func() { authDummy, _ = authHashPassword(authNewKeyString()) })
	return authDummy
}
