package gaffer

// Rate limiting of failed logins (GET /auth): without it a password could
// be guessed as fast as PBKDF2 runs (37 guesses a second were measured
// with 8 threads).

import (
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Limits of failed logins: authMaxFailures per client address and per
// username within authFailWindow; past that, /auth answers 429 until the
// window ends. Each table holds at most authMaxTracked entries (and one
// overflow entry).
const (
	authFailWindow  = time.Minute
	authMaxFailures = 10
	authMaxTracked  = 4096
	codeTooMany     = "too_many_requests"
)

// authLimiter counts failed logins per client address and per username, in
// fixed windows. It never blocks a login that has no failures against both
// its address and its username, so an attacker locks out only the
// addresses it uses and the usernames it tries. Memory is bounded: an entry
// lives one window, and when a table is full of live entries, new keys
// share one overflow entry (which may then throttle new clients until the
// window ends, rather than letting a flood of addresses reset the counts).
type authLimiter struct {
	window  time.Duration
	max     int
	maxKeys int
	now     func() time.Time

	mu    sync.Mutex
	addrs map[string]*authFailures
	users map[string]*authFailures
}

type authFailures struct {
	n     int
	start time.Time
}

// authOverflowKey is the shared entry of a full table (not a valid address
// or username key: those never start with a NUL).
const authOverflowKey = "\x00overflow"

func newAuthLimiter() *authLimiter {
	return &authLimiter{window: authFailWindow, max: authMaxFailures, maxKeys: authMaxTracked, now: time.Now,
		addrs: map[string]*authFailures{}, users: map[string]*authFailures{}}
}

// authClientKey is the limiter's key for a request's client: its IP
// address, or the /64 network of an IPv6 address (one host usually holds a
// whole /64); "unix" over a unix socket.
func authClientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	switch {
	case ip == nil:
		return "unix"
	case ip.To4() != nil:
		return ip.To4().String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// wait returns how long addr and user must wait before their next attempt;
// 0 means they may try now.
func (l *authLimiter) wait(addr, user string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	return max(l.waitLocked(l.addrs, addr, now), l.waitLocked(l.users, user, now))
}

func (l *authLimiter) waitLocked(table map[string]*authFailures, key string, now time.Time) time.Duration {
	f, ok := table[key]
	if !ok && len(table) >= l.maxKeys {
		f, ok = table[authOverflowKey]
	}
	if !ok || f.n < l.max {
		return 0
	}
	return max(f.start.Add(l.window).Sub(now), 0)
}

// failed counts a failed attempt of addr for user.
func (l *authLimiter) failed(addr, user string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.countLocked(l.addrs, addr, now)
	l.countLocked(l.users, user, now)
}

func (l *authLimiter) countLocked(table map[string]*authFailures, key string, now time.Time) {
	f, ok := table[key]
	if ok && now.Sub(f.start) >= l.window {
		delete(table, key)
		ok = false
	}
	if !ok {
		if len(table) >= l.maxKeys {
			l.sweepLocked(table, now)
		}
		if len(table) >= l.maxKeys {
			key = authOverflowKey
			if f, ok = table[key]; ok && now.Sub(f.start) >= l.window {
				ok = false
			}
		}
		if !ok {
			f = &authFailures{start: now}
			table[key] = f
		}
	}
	if f.n < math.MaxInt32 {
		f.n++
	}
}

// sweepLocked drops the entries whose window has ended.
func (l *authLimiter) sweepLocked(table map[string]*authFailures, now time.Time) {
	for k, f := range table {
		if now.Sub(f.start) >= l.window {
			delete(table, k)
		}
	}
}

// succeeded clears the failures of user (not of the address: a client that
// owns one account must not be able to reset its address's count by
// logging in between guesses at other accounts).
func (l *authLimiter) succeeded(user string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.users, user)
}

// authTooMany answers 429 with Retry-After (whole seconds, rounded up).
func authTooMany(w http.ResponseWriter, wait time.Duration) {
	secs := int(math.Ceil(wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, Errorf(codeTooMany, http.StatusTooManyRequests,
		"too many failed logins from this address or for this user; retry in %d s", secs))
}
