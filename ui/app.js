// gaffer web console: a client of gafferd's public HTTP API only.
// Jobs come from GET /jobs?details=1 and GET /jobs/<sid>/<name>/stats,
// actions go to POST /jobs/<sid>/<name>/state and .../numprocesses, the
// output of a process comes from GET /streams/<pid>/<label>?feed=eventsource
// and the events from GET /watch?feed=continuous.
'use strict';

(function () {
  const KEY_STORE = 'gaffer.apiKey';
  const REFRESH_MS = 2000;
  const MAX_EVENTS = 300;
  const MAX_OUTPUT = 512 * 1024;

  const $ = (id) => document.getElementById(id);
  const state = {
    key: sessionStorage.getItem(KEY_STORE) || '',
    jobs: [],
    stats: {},          // job name -> job stats
    output: null,       // {pid, sources: [EventSource], last: {label: seq}}
    watch: null,        // AbortController of the event feed
    refreshTimer: null,
    refreshSoon: null,
    busy: false,
  };

  // --- API -------------------------------------------------------------

  class APIError extends Error {
    constructor(status, body) {
      super((body && (body.reason || body.error)) || ('HTTP ' + status));
      this.status = status;
      this.body = body;
    }
  }

  function headers(extra) {
    const h = Object.assign({}, extra || {});
    if (state.key) h['X-Api-Key'] = state.key;
    return h;
  }

  function needsKey(status, body) {
    if (status === 401) return true;
    const reason = (body && body.reason) || '';
    return status === 403 && /(unknown|malformed) API key/.test(reason);
  }

  async function api(method, path, body) {
    const opts = { method, headers: headers(), cache: 'no-store' };
    if (body !== undefined) {
      opts.body = typeof body === 'string' ? body : JSON.stringify(body);
      opts.headers['Content-Type'] = 'application/json';
    }
    const r = await fetch(path, opts);
    const text = await r.text();
    let js = {};
    if (text) {
      try { js = JSON.parse(text); } catch (e) { js = { raw: text }; }
    }
    if (!r.ok) {
      if (needsKey(r.status, js)) askKey(state.key ? 'This key was refused.' : '');
      throw new APIError(r.status, js);
    }
    return js;
  }

  function jobPath(full) {
    const i = full.indexOf('.');
    const sid = full.slice(0, i), name = full.slice(i + 1);
    return '/jobs/' + encodeURIComponent(sid) + '/' + encodeURIComponent(name);
  }

  // --- status line -----------------------------------------------------

  function setStatus(text, bad) {
    const s = $('status');
    s.textContent = text || '';
    s.classList.toggle('bad', !!bad);
  }

  // --- key handling ----------------------------------------------------

  function askKey(message) {
    stopAll();
    $('app').classList.add('hidden');
    $('login').classList.remove('hidden');
    $('login-error').textContent = message || '';
    $('key-input').focus();
  }

  function useKey(key) {
    state.key = key;
    if (key) sessionStorage.setItem(KEY_STORE, key);
    else sessionStorage.removeItem(KEY_STORE);
    $('forget-key').classList.toggle('hidden', !key);
    start();
  }

  // --- jobs ------------------------------------------------------------

  async function refresh() {
    if (state.busy) return;
    state.busy = true;
    try {
      const js = await api('GET', '/jobs?details=1');
      state.jobs = (js.jobs || []).slice().sort((a, b) => a.name.localeCompare(b.name));
      const stats = {};
      await Promise.all(state.jobs.map(async (j) => {
        if (!j.running) return;
        try { stats[j.name] = await api('GET', jobPath(j.name) + '/stats'); } catch (e) { /* the job may be gone */ }
      }));
      state.stats = stats;
      render();
      setStatus('updated ' + new Date().toLocaleTimeString());
    } catch (e) {
      if (!(e instanceof APIError && needsKey(e.status, e.body))) setStatus('cannot reach gafferd: ' + e.message, true);
    } finally {
      state.busy = false;
    }
  }

  function scheduleRefresh() {
    if (state.refreshSoon) return;
    state.refreshSoon = setTimeout(() => { state.refreshSoon = null; refresh(); }, 150);
  }

  function fmtBytes(n) {
    if (typeof n !== 'number' || !isFinite(n)) return '';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + ' ' + units[i];
  }

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function render() {
    const body = $('jobs-body');
    const ae = document.activeElement;
    const focused = ae && ae.dataset && ae.dataset.scaleInput;
    const typed = focused ? ae.value : null;
    body.replaceChildren();
    $('no-jobs').classList.toggle('hidden', state.jobs.length > 0);
    for (const j of state.jobs) {
      const st = state.stats[j.name];
      let cpu = 0, rss = 0;
      const perPid = {};
      if (st && Array.isArray(st.stats)) {
        for (const p of st.stats) {
          cpu += p.cpu_percent || 0;
          rss += p.rss_bytes || 0;
          if (p.pid) perPid[p.pid] = p;
        }
      }
      const stateName = j.state || (j.active ? 'active' : 'stopped');
      const procs = el('ul', { class: 'procs' });
      for (const pid of j.processes || []) {
        const p = perPid[pid];
        const title = p ? ('os pid ' + p.os_pid + ', cpu ' + (p.cpu_percent || 0).toFixed(1) + '%, rss ' + fmtBytes(p.rss_bytes)) : '';
        const selected = state.output && state.output.pid === pid;
        procs.append(el('li', {},
          el('button', { type: 'button', class: selected ? 'selected' : '', title, 'data-pid': pid,
            'aria-pressed': selected ? 'true' : 'false', onclick: () => showOutput(pid, j.name) }, 'pid ' + pid)));
      }
      const scaleInput = el('input', { type: 'number', min: 0, value: j.max_processes, 'aria-label': 'number of processes for ' + j.name, 'data-scale-input': j.name });
      const row = el('tr', { 'data-job': j.name },
        el('td', {}, el('strong', {}, j.name), procs),
        el('td', {}, el('span', { class: 'state ' + stateName }, stateName), j.spawn_error ? el('div', { class: 'error' }, j.spawn_error) : null),
        el('td', { class: 'num', 'data-field': 'running' }, j.running + ' / ' + j.max_processes),
        el('td', { class: 'num' }, j.restarts || 0),
        el('td', { class: 'num' }, j.flaps || 0),
        el('td', { class: 'num' }, st ? cpu.toFixed(1) : ''),
        el('td', { class: 'num' }, st ? fmtBytes(rss) : ''),
        el('td', { class: 'actions' },
          el('button', { type: 'button', 'data-action': 'start', disabled: j.active, onclick: () => setJobState(j.name, 1) }, 'Start'), ' ',
          el('button', { type: 'button', 'data-action': 'stop', disabled: !j.active, onclick: () => setJobState(j.name, 0) }, 'Stop'), ' ',
          el('button', { type: 'button', 'data-action': 'scale-down', title: 'one process less', onclick: () => scale(j.name, '-1') }, '−'), ' ',
          el('button', { type: 'button', 'data-action': 'scale-up', title: 'one process more', onclick: () => scale(j.name, '+1') }, '+'), ' ',
          scaleInput, ' ',
          el('button', { type: 'button', 'data-action': 'scale-set', onclick: () => scale(j.name, '=' + Math.max(0, parseInt(scaleInput.value, 10) || 0)) }, 'Scale')));
      body.append(row);
      if (focused === j.name) { scaleInput.value = typed; scaleInput.focus(); }
    }
  }

  async function setJobState(full, on) {
    try {
      await api('POST', jobPath(full) + '/state', on ? '1' : '0');
      setStatus((on ? 'started ' : 'stopped ') + full);
    } catch (e) {
      setStatus((on ? 'start ' : 'stop ') + full + ' failed: ' + e.message, true);
    }
    refresh();
  }

  async function scale(full, op) {
    try {
      const js = await api('POST', jobPath(full) + '/numprocesses', { scale: op });
      setStatus(full + ' scaled to ' + js.numprocesses);
    } catch (e) {
      setStatus('scale ' + full + ' failed: ' + e.message, true);
    }
    refresh();
  }

  // --- output of one process -------------------------------------------

  function closeOutput() {
    if (!state.output) return;
    for (const s of state.output.sources) s.close();
    state.output = null;
  }

  function appendOutput(text, cls) {
    const pre = $('output');
    const follow = $('output-follow').checked;
    const span = document.createElement('span');
    if (cls) span.className = cls;
    span.textContent = text;
    pre.append(span);
    // Keep the page light: drop the oldest output past the limit.
    let size = pre.textContent.length;
    while (size > MAX_OUTPUT && pre.firstChild) {
      size -= pre.firstChild.textContent.length;
      pre.firstChild.remove();
    }
    if (follow) pre.scrollTop = pre.scrollHeight;
  }

  async function showOutput(pid, jobName) {
    closeOutput();
    $('output').replaceChildren();
    $('output-target').textContent = 'pid ' + pid + ' (' + jobName + ')';
    let labels = [];
    try {
      const info = await api('GET', '/' + pid);
      labels = Array.from(new Set(info.redirect_output || []));
    } catch (e) {
      $('output-state').textContent = 'cannot read process ' + pid + ': ' + e.message;
      return;
    }
    if (labels.length === 0) {
      $('output-state').textContent = 'this process has no redirected output (set redirect_output)';
      return;
    }
    const out = { pid, sources: [], last: {} };
    state.output = out;
    render();
    for (const label of labels) {
      // since=0 asks for what the ring buffer still holds; after a
      // reconnect the browser also sends Last-Event-ID, and chunks
      // already shown are skipped by their sequence number.
      let url = '/streams/' + pid + '/' + encodeURIComponent(label) + '?feed=eventsource&since=0&heartbeat=15';
      if (state.key) url += '&api_key=' + encodeURIComponent(state.key);
      const es = new EventSource(url);
      out.sources.push(es);
      out.last[label] = 0;
      es.addEventListener(label, (ev) => {
        if (state.output !== out) return;
        const seq = parseInt(ev.lastEventId, 10) || 0;
        if (seq && seq <= out.last[label]) return;
        if (seq) out.last[label] = seq;
        appendOutput(ev.data, label === 'stderr' ? 'stderr' : '');
      });
      es.addEventListener('gap', (ev) => {
        if (state.output !== out) return;
        let g = {};
        try { g = JSON.parse(ev.data); } catch (e) { /* keep the marker */ }
        appendOutput('\n[output ' + g.from + '–' + g.to + ' of ' + label + ' was lost: the buffer no longer holds it]\n', 'gap');
      });
      es.addEventListener('eof', () => {
        es.close();
        if (state.output === out) $('output-state').textContent = label + ' ended (the process exited)';
      });
      es.onopen = () => { if (state.output === out) $('output-state').textContent = 'live'; };
      es.onerror = () => {
        if (state.output !== out) return;
        $('output-state').textContent = es.readyState === EventSource.CLOSED ? 'stream closed' : 'reconnecting…';
      };
    }
  }

  // --- event feed --------------------------------------------------------

  function addEvent(ev) {
    const list = $('events');
    const name = ev.event || '?';
    const rest = Object.assign({}, ev);
    delete rest.event;
    const li = el('li', {}, el('span', { class: 'time' }, new Date().toLocaleTimeString()), el('strong', {}, name), ' ', JSON.stringify(rest));
    list.prepend(li);
    while (list.children.length > MAX_EVENTS) list.lastChild.remove();
  }

  async function watch() {
    const ctl = new AbortController();
    state.watch = ctl;
    let delay = 500;
    while (state.watch === ctl) {
      try {
        const r = await fetch('/watch?feed=continuous&heartbeat=15', { headers: headers(), signal: ctl.signal, cache: 'no-store' });
        if (!r.ok) {
          let js = {};
          try { js = await r.json(); } catch (e) { /* not JSON */ }
          if (r.status === 403 && !needsKey(r.status, js)) {
            $('events-state').textContent = '(this key may not watch events: manage rights on everything are needed)';
            return;
          }
          if (needsKey(r.status, js)) { askKey(state.key ? 'This key was refused.' : ''); return; }
          throw new Error(js.reason || ('HTTP ' + r.status));
        }
        $('events-state').textContent = '(live)';
        delay = 500;
        const reader = r.body.getReader();
        const dec = new TextDecoder();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          let i;
          while ((i = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, i).trim();
            buf = buf.slice(i + 1);
            if (!line) continue;
            try { addEvent(JSON.parse(line)); } catch (e) { continue; }
            scheduleRefresh();
          }
        }
      } catch (e) {
        if (ctl.signal.aborted) return;
        $('events-state').textContent = '(reconnecting: ' + e.message + ')';
      }
      if (state.watch !== ctl) return;
      $('events-state').textContent = '(reconnecting…)';
      await new Promise((res) => setTimeout(res, delay));
      delay = Math.min(delay * 2, 10000);
    }
  }

  // --- lifecycle ---------------------------------------------------------

  function stopAll() {
    closeOutput();
    if (state.watch) { state.watch.abort(); state.watch = null; }
    if (state.refreshTimer) { clearInterval(state.refreshTimer); state.refreshTimer = null; }
  }

  async function start() {
    stopAll();
    try {
      // A route that needs a key when require_key is on tells us whether
      // to ask for one before anything else.
      await api('GET', '/jobs?details=1');
    } catch (e) {
      if (e instanceof APIError && needsKey(e.status, e.body)) return;
      setStatus('cannot reach gafferd: ' + e.message, true);
    }
    $('login').classList.add('hidden');
    $('app').classList.remove('hidden');
    $('forget-key').classList.toggle('hidden', !state.key);
    try {
      const v = await api('GET', '/version');
      $('version').textContent = 'gafferd ' + (v.gaffer_version || v.version);
    } catch (e) { /* optional */ }
    refresh();
    state.refreshTimer = setInterval(refresh, REFRESH_MS);
    watch();
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('login-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const k = $('key-input').value.trim();
      $('key-input').value = '';
      if (k) useKey(k);
    });
    $('forget-key').addEventListener('click', () => { useKey(''); });
    $('output-clear').addEventListener('click', () => { $('output').replaceChildren(); });
    start();
  });
})();
