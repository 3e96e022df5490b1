// Keepalive client for gafferd's control channel (driven by
// TestKeepaliveNodeClient).
//
// Usage: node ws_keepalive_client.mjs URL MILLISECONDS
//
// Connects to /channel/websocket, subscribes to EVENTS, then sends nothing
// for MILLISECONDS while ws answers the server's pings by itself (as every
// ws client does); then runs the "sessions" command, expects its answer and
// closes with 1000. Prints "ok: pings=N" on success; a close from the
// server before that is a failure.
import WebSocket from 'ws';

const [url, msArg] = process.argv.slice(2);
const ms = Number(msArg);
if (!url || !(ms > 0)) {
  console.error('usage: node ws_keepalive_client.mjs URL MILLISECONDS');
  process.exit(2);
}
const timer = setTimeout(() => {
  console.error('timeout: the exchange did not finish');
  process.exit(1);
}, ms + 20000);

const ws = new WebSocket(url, { perMessageDeflate: false });
let pings = 0;
let phase = 'subscribe';
ws.on('ping', () => { pings++; });
ws.on('close', (code, reason) => {
  if (phase !== 'done') {
    console.error(`FAIL: the server closed the connection (${code} ${reason}) during ${phase}`);
    process.exit(1);
  }
  clearTimeout(timer);
  console.log(`ok: pings=${pings}`);
  process.exit(0);
});
ws.on('error', (err) => {
  console.error(`FAIL: ${err}`);
  process.exit(1);
});
ws.on('open', () => {
  ws.send(JSON.stringify({ event: 'SUB', data: { topic: 'EVENTS' } }));
});
ws.on('message', (data) => {
  const m = JSON.parse(data.toString());
  if (phase === 'subscribe' && m.event === 'gaffer:subscription_success') {
    phase = 'silence';
    setTimeout(() => {
      phase = 'command';
      ws.send(JSON.stringify({ event: 'CMD', data: { identity: 'k1', name: 'sessions', args: [] } }));
    }, ms);
  } else if (phase === 'command' && m.event === 'gaffer:command_success' && m.data.id === 'k1') {
    phase = 'done';
    ws.close(1000, 'node done');
  }
});
