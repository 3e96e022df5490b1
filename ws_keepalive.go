package gaffer

// Keepalive of server websocket connections: a ping goes out when the
// client has sent nothing for a while, and a client that then stays silent
// (no pong, no message) is dropped, so that half-open connections (a
// client that vanished without a FIN, or that stopped reading) do not hold
// their goroutines and subscriptions forever.
//
// The keepalive runs on one timer per connection (no goroutine of its
// own): the reader stamps every frame it reads, the timer looks at the
// stamps. A client is dropped only for silence while the application was
// reading: an application busy with a message (a long command) cannot see
// the pong that answers, so its time does not count.

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Default keepalive of the servers' websockets.
const (
	wsDefaultPingIdle = 30 * time.Second // silence before a ping
	wsDefaultPongWait = 30 * time.Second // silence after it before the drop
)

// wsKeepalive tunes the keepalive of server connections (WSOptions'
// keepalive): a ping goes out once the client has sent nothing for idle; a
// client that then sends nothing for wait (while the application reads)
// is closed with 1001 and its reader gets a *WSCloseError with that code.
type wsKeepalive struct {
	idle time.Duration
	wait time.Duration
}

// wsDefaultKeepalive returns the keepalive the servers use.
func wsDefaultKeepalive() *wsKeepalive {
	return &wsKeepalive{idle: wsDefaultPingIdle, wait: wsDefaultPongWait}
}

// wsNotReading is wsKeeper.readSince when no ReadMessage is running.
const wsNotReading = -1

// wsKeeper is the keepalive state of one connection. Times are
// nanoseconds of the monotonic clock since epoch.
type wsKeeper struct {
	c          *WSConn
	idle, wait time.Duration
	epoch      time.Time
	lastFrame  atomic.Int64 // when the last frame was read
	readSince  atomic.Int64 // when the running ReadMessage started, or wsNotReading

	mu      sync.Mutex
	timer   *time.Timer
	pingAt  int64 // when the unanswered ping went out; -1: none
	stopped bool
}

// startKeepalive arms the keepalive of a new server connection.
func (c *WSConn) startKeepalive(ka wsKeepalive) {
	if ka.idle <= 0 {
		ka.idle = wsDefaultPingIdle
	}
	if ka.wait <= 0 {
		ka.wait = wsDefaultPongWait
	}
	k := &wsKeeper{c: c, idle: ka.idle, wait: ka.wait, epoch: time.Now(), pingAt: -1}
	k.readSince.Store(wsNotReading)
	c.ka = k
	k.mu.Lock()
	k.timer = time.AfterFunc(k.idle, k.tick)
	k.mu.Unlock()
}

func (k *wsKeeper) now() int64 { return int64(time.Since(k.epoch)) }

// touch records a frame from the peer.
func (k *wsKeeper) touch() { k.lastFrame.Store(k.now()) }

// reading records that a ReadMessage starts (true) or returns (false).
func (k *wsKeeper) reading(on bool) {
	if on {
		k.readSince.Store(k.now())
	} else {
		k.readSince.Store(wsNotReading)
	}
}

// stop disarms the keepalive (the connection is finished).
func (k *wsKeeper) stop() {
	k.mu.Lock()
	k.stopped = true
	if k.timer != nil {
		k.timer.Stop()
	}
	k.mu.Unlock()
}

// tick runs when the connection may have been idle for idle, or a ping
// may have gone unanswered for wait. Ticks may overlap (a ping blocked
// behind a stuck writer): the state is under mu, the writes are not.
func (k *wsKeeper) tick() {
	k.mu.Lock()
	if k.stopped {
		k.mu.Unlock()
		return
	}
	now, last := k.now(), k.lastFrame.Load()
	if k.pingAt >= 0 && last >= k.pingAt {
		k.pingAt = -1 // answered (by a pong or anything else)
	}
	if k.pingAt < 0 {
		if quiet := time.Duration(now - last); quiet < k.idle {
			k.timer.Reset(k.idle - quiet)
			k.mu.Unlock()
			return
		}
		k.pingAt = now
		k.timer.Reset(k.wait) // armed first: the ping may block
		k.mu.Unlock()
		// A failed ping shows up on the next read or write.
		k.c.Ping([]byte("keepalive"))
		return
	}
	since := k.readSince.Load()
	if since == wsNotReading {
		// The application is busy with a message: it cannot see the
		// answer yet. Its silence does not count.
		k.timer.Reset(k.wait)
		k.mu.Unlock()
		return
	}
	if left := time.Duration(max(k.pingAt, since)-now) + k.wait; left > 0 {
		k.timer.Reset(left)
		k.mu.Unlock()
		return
	}
	k.stopped = true
	k.mu.Unlock()
	reason := "no answer to a ping within " + strconv.FormatFloat(k.wait.Seconds(), 'f', -1, 64) + "s"
	k.c.kaErr.Store(&WSCloseError{Code: WSCloseGoingAway, Reason: reason})
	k.c.Close(WSCloseGoingAway, reason)
}
