// Browser tests of a running gafferd, with Debian's Chromium driven by
// playwright-core. Started by cmd/gafferd/browser_test.go, which builds and
// starts gafferd and sets:
//
//   GAFFER_URL      http://127.0.0.1:PORT of gafferd (TCP endpoint)
//   GAFFER_KEY      an admin API key (gafferd runs with require_key)
//   GAFFER_JOB      the job the console tests use (session.name), running `cat`
//   SOCKJS_PAGE     path of a page that loads sockjs-client (a plugin site)
//   ARTIFACTS       folder for screenshots
//   CHROMIUM        the browser binary (default /usr/bin/chromium)
//
// Prints one "ok - NAME" or "not ok - NAME: REASON" line per test and a
// closing "N passed, N failed" line; exits 1 when a test failed.

import { chromium } from 'playwright-core';
import path from 'node:path';
import fs from 'node:fs';

const base = process.env.GAFFER_URL;
const key = process.env.GAFFER_KEY || '';
const jobName = process.env.GAFFER_JOB || 'browser.cat';
const sockjsPage = process.env.SOCKJS_PAGE || '/_plugin/sockjs-test/';
const artifacts = process.env.ARTIFACTS || 'artifacts';
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
if (!base) {
  console.error('GAFFER_URL is not set');
  process.exit(2);
}
fs.mkdirSync(artifacts, { recursive: true });

const [sid, name] = [jobName.slice(0, jobName.indexOf('.')), jobName.slice(jobName.indexOf('.') + 1)];

async function api(method, p, body) {
  const headers = { 'X-Api-Key': key };
  const opts = { method, headers };
  if (body !== undefined) {
    opts.body = typeof body === 'string' ? body : JSON.stringify(body);
    headers['Content-Type'] = 'application/json';
  }
  const r = await fetch(base + p, opts);
  const text = await r.text();
  let js = null;
  try { js = JSON.parse(text); } catch { js = text; }
  if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${text}`);
  return js;
}

async function until(what, timeoutMs, fn) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) { last = e; }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ': ' + last.message : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const results = [];
async function test(title, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push({ title, ok: true });
    console.log(`ok - ${title} (${Date.now() - t0} ms)`);
  } catch (e) {
    results.push({ title, ok: false });
    console.log(`not ok - ${title}: ${e && e.stack ? e.stack : e}`);
  }
}

const browser = await chromium.launch({
  executablePath,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
try {
  // --- sockjs-client over each transport, forced one at a time ---------
  for (const transport of ['websocket', 'xhr-streaming', 'xhr-polling', 'eventsource']) {
    await test(`sockjs-client over ${transport}: AUTH, SUB EVENTS, CMD load/unload`, async () => {
      const context = await browser.newContext();
      const page = await context.newPage();
      const consoleLines = [];
      page.on('console', (m) => consoleLines.push(m.text()));
      try {
        await page.goto(base + sockjsPage);
        await page.waitForFunction(() => typeof window.SockJS === 'function');
        const job = 'sj-' + transport;
        const res = await page.evaluate(async ({ transport, key, job }) => {
          return await new Promise((resolve, reject) => {
            const seen = [];
            const sock = new SockJS('/channel', null, { transports: [transport] });
            const timer = setTimeout(() => { sock.close(); reject(new Error('timeout; messages: ' + JSON.stringify(seen))); }, 20000);
            let loaded = false, loadEvent = false, unloaded = false;
            const cmd = (identity, name, args, kwargs) =>
              sock.send(JSON.stringify({ event: 'CMD', data: { identity, name, args, kwargs: kwargs || {} } }));
            sock.onopen = () => {
              if (key) sock.send('AUTH:' + key);
              sock.send(JSON.stringify({ event: 'SUB', data: { topic: 'EVENTS' } }));
            };
            sock.onclose = (e) => { if (!unloaded) { clearTimeout(timer); reject(new Error(`closed ${e.code} ${e.reason}; messages: ` + JSON.stringify(seen))); } };
            sock.onmessage = (e) => {
              const m = JSON.parse(e.data);
              seen.push(m.event + (m.data && m.data.event ? ':' + m.data.event : ''));
              if (m.event === 'gaffer:subscription_success' && m.topic === 'EVENTS') {
                cmd('load', 'load', [{ name: job, cmd: 'sleep 300' }], { sessionid: 'sockjs', start: true });
              } else if (m.event === 'gaffer:command_success' && m.data.id === 'load') {
                loaded = true;
              } else if (m.event === 'gaffer:command_error') {
                reject(new Error('command error ' + JSON.stringify(m.data)));
              } else if (m.event === 'gaffer:event' && m.data.event === 'load' && m.data.name === 'sockjs.' + job) {
                loadEvent = true;
              }
              if (loaded && loadEvent && !unloaded) {
                unloaded = true;
                cmd('unload', 'unload', [job], { sessionid: 'sockjs' });
              }
              if (m.event === 'gaffer:command_success' && m.data.id === 'unload') {
                clearTimeout(timer);
                const transportUsed = sock.transport;
                sock.close();
                resolve({ transportUsed, seen });
              }
            };
          });
        }, { transport, key, job });
        if (res.transportUsed !== transport) throw new Error(`sockjs-client used ${res.transportUsed}, not ${transport}`);
        // The job came and went, as the API sees it.
        const jobs = await api('GET', '/jobs?details=1');
        if (jobs.jobs.some((j) => j.name === 'sockjs.' + job)) throw new Error('the job is still loaded after unload');
        await page.screenshot({ path: path.join(artifacts, `sockjs-${transport}.png`) });
      } catch (e) {
        if (consoleLines.length) e.message += '\nbrowser console:\n' + consoleLines.join('\n');
        throw e;
      } finally {
        await context.close();
      }
    });
  }

  // --- the web console ---------------------------------------------------
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const row = `tr[data-job="${jobName}"]`;

  await test('console asks for the key once and lists the jobs', async () => {
    await page.goto(base + '/ui/');
    if (key) {
      await page.locator('#login').waitFor({ state: 'visible', timeout: 10000 });
      await page.screenshot({ path: path.join(artifacts, 'console-login.png') });
      await page.fill('#key-input', key);
      await page.press('#key-input', 'Enter');
    }
    await page.locator(row).waitFor({ timeout: 10000 });
    // A reload keeps the key (sessionStorage): no second question.
    await page.reload();
    await page.locator(row).waitFor({ timeout: 10000 });
    if (await page.locator('#login').isVisible()) throw new Error('the console asked for the key again after a reload');
  });

  await test('console scales a job with a click (verified through the API)', async () => {
    const before = (await api('GET', `/jobs/${sid}/${name}/numprocesses`)).numprocesses;
    await page.click(`${row} button[data-action="scale-up"]`);
    await until('numprocesses to grow', 5000, async () => (await api('GET', `/jobs/${sid}/${name}/numprocesses`)).numprocesses === before + 1);
    await until('the console to show the new process', 5000, async () => (await page.locator(`${row} button[data-pid]`).count()) === before + 1);
    await until('a spawn event in the event feed', 5000, async () => (await page.textContent('#events')).includes('spawn'));
  });

  await test('console shows a line printed by a child within a second', async () => {
    const pid = parseInt(await page.locator(`${row} button[data-pid]`).first().getAttribute('data-pid'), 10);
    await page.click(`${row} button[data-pid="${pid}"]`);
    await until('the output stream to be live', 5000, async () => (await page.textContent('#output-state')) === 'live');
    const marker = 'hello-from-the-child-' + Date.now();
    const t0 = Date.now();
    await api('POST', `/streams/${pid}/stdin`, marker + '\n');
    await page.waitForFunction((m) => document.getElementById('output').textContent.includes(m), marker, { timeout: 1000 });
    const ms = Date.now() - t0;
    if (ms > 1000) throw new Error(`the line took ${ms} ms to show`);
    await page.screenshot({ path: path.join(artifacts, 'console.png'), fullPage: true });
  });

  await test('console stops and starts a job', async () => {
    await page.click(`${row} button[data-action="stop"]`);
    await until('the job to stop', 10000, async () => (await api('GET', `/jobs/${sid}/${name}`)).active === false);
    await page.click(`${row} button[data-action="start"]`);
    await until('the job to start', 10000, async () => (await api('GET', `/jobs/${sid}/${name}`)).active === true);
  });
  await context.close();
} finally {
  await browser.close();
}

const passed = results.filter((r) => r.ok).length;
const failed = results.length - passed;
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
