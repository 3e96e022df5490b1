// Interop client for gaffer's websocket server (driven by TestWSNodeInterop).
//
// Usage: node ws_echo_client.mjs URL [client-close|server-close]
//
// Connects to an echo server, sends a text message, a binary message, a
// large text message in fragments (with a UTF-8 character split across two
// of them) and a ping, and checks the echoes and the pong. Then, in
// client-close mode it closes with 1000 "node done"; in server-close mode it
// sends "please close" and expects the server to close with 1000
// "server done". Either way the close must be clean (close frames both
// ways). Exits 0 on success, 1 with a message on stderr otherwise.
import WebSocket from 'ws';
import assert from 'node:assert/strict';

const [url, mode = 'client-close'] = process.argv.slice(2);
if (!url || !['client-close', 'server-close'].includes(mode)) {
  console.error('usage: node ws_echo_client.mjs URL [client-close|server-close]');
  process.exit(2);
}

const timer = setTimeout(() => {
  console.error('timeout: the exchange did not finish within 20 s');
  process.exit(1);
}, 20000);

const ws = new WebSocket(url, { perMessageDeflate: false });

// Incoming messages, handed out in order by next().
const queue = [];
const waiters = [];
ws.on('message', (data, isBinary) => {
  const m = { data, isBinary };
  const w = waiters.shift();
  if (w) w.resolve(m);
  else queue.push(m);
});
const closed = new Promise((resolve) => {
  ws.addEventListener('close', (ev) => {
    for (const w of waiters.splice(0)) w.reject(new Error(`closed (${ev.code}) while waiting for a message`));
    resolve(ev);
  });
});
function next() {
  if (queue.length) return Promise.resolve(queue.shift());
  return new Promise((resolve, reject) => waiters.push({ resolve, reject }));
}

async function main() {
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });

  // Text.
  const text = 'hello from node: héllo wörld ✓ 日本';
  ws.send(text);
  let m = await next();
  assert.equal(m.isBinary, false, 'text echo came back as binary');
  assert.equal(m.data.toString('utf8'), text);

  // Binary, every byte value.
  const bin = Buffer.alloc(256);
  for (let i = 0; i < 256; i++) bin[i] = i;
  ws.send(bin, { binary: true });
  m = await next();
  assert.equal(m.isBinary, true, 'binary echo came back as text');
  assert.ok(bin.equals(m.data), 'binary echo differs');

  // A large text message in three fragments; "é" (0xc3 0xa9) straddles the
  // first boundary.
  const part = 'x'.repeat(200 * 1024);
  const whole = Buffer.from(part + 'é' + part + 'end of the large message ✓');
  const cut1 = part.length + 1; // inside "é"
  const cut2 = cut1 + 150 * 1024;
  ws.send(whole.subarray(0, cut1), { binary: false, fin: false });
  ws.send(whole.subarray(cut1, cut2), { binary: false, fin: false });
  ws.send(whole.subarray(cut2), { binary: false, fin: true });
  m = await next();
  assert.equal(m.isBinary, false, 'fragmented text echo came back as binary');
  assert.ok(whole.equals(m.data), `fragmented echo differs (${m.data.length} bytes, want ${whole.length})`);

  // Ping → pong with the same payload.
  const pong = new Promise((resolve) => ws.once('pong', resolve));
  ws.ping(Buffer.from('node-ping'));
  const pongData = await pong;
  assert.equal(pongData.toString(), 'node-ping');

  // Close.
  let ev;
  if (mode === 'client-close') {
    ws.close(1000, 'node done');
    ev = await closed; // the server answers with the same code
  } else {
    ws.send('please close');
    ev = await closed;
    assert.equal(ev.reason, 'server done');
  }
  assert.equal(ev.code, 1000);
  assert.equal(ev.wasClean, true, 'the close was not clean');
}

main().then(
  () => {
    clearTimeout(timer);
    console.log(`ok: ${mode}`);
    process.exit(0);
  },
  (err) => {
    console.error(`FAIL (${mode}): ${err && err.stack ? err.stack : err}`);
    process.exit(1);
  },
);
