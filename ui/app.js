// gaffer web console: a client of gafferd's public HTTP API only.
// Jobs come from GET /jobs?details=1, their cpu and memory over the last
// 15 minutes (sampled by gafferd), uptimes, OS pids and last exits from
// GET /jobs/<sid>/<name>/history, actions go to POST /jobs/<sid>/<name>/state
// (1 start, 0 stop, 2 restart), .../numprocesses and DELETE /<pid> (a
// process is replaced by a new one in its slot), the output of a process
// comes from GET /streams/<pid>/<label>?feed=eventsource and the events from
// GET /watch?feed=continuous.
'use strict';

(function () {
  const KEY_STORE = 'gaffer.apiKey';
  const FILTER_STORE = 'gaffer.jobFilter';
  const REFRESH_MS = 2000;
  const MAX_EVENTS = 300;
  const MAX_OUTPUT = 512 * 1024;
  const SVG = 'http://www.w3.org/2000/svg';

  const $ = (id) => document.getElementById(id);
  const state = {
    key: sessionStorage.getItem(KEY_STORE) || '',
    filter: sessionStorage.getItem(FILTER_STORE) || '',
    jobs: [],
    hist: {},           // job name -> merged history (see mergeHistory)
    output: null,       // {pid, sources: [EventSource], last: {label: seq}, lineStart: {label: bool}}
    watch: null,        // AbortController of the event feed
    lastEvent: null,    // the happening the last shown event belongs to (see eventIsAlias)
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

  // --- history (cpu and memory over time) --------------------------------

  // mergeHistory folds an answer of GET …/history (all samples, or those
  // after ?since=) into what the page holds for the job, and drops the
  // samples that left the window.
  function mergeHistory(old, js) {
    const h = {
      interval: js.interval, window: js.window || 900, now: js.now, fetchedAt: Date.now(),
      lastExit: js.last_exit, job: old ? old.job : { t: [], cpu: [], rss: [] }, procs: {},
    };
    const append = (into, s) => {
      const last = into.t.length ? into.t[into.t.length - 1] : -Infinity;
      for (let i = 0; i < s.t.length; i++) {
        if (s.t[i] <= last) continue;
        into.t.push(s.t[i]); into.cpu.push(s.cpu[i]); into.rss.push(s.rss[i]);
        if (into.pids) into.pids.push(s.pids[i]);
      }
      const from = js.now - h.window;
      let k = 0;
      while (k < into.t.length && into.t[k] <= from) k++;
      if (k) for (const f of ['t', 'cpu', 'rss', 'pids']) if (into[f]) into[f].splice(0, k);
      return into;
    };
    append(h.job, js.job);
    for (const p of js.processes || []) {
      const prev = old && old.procs[p.slot];
      const series = prev ? { t: prev.t, cpu: prev.cpu, rss: prev.rss, pids: prev.pids } : { t: [], cpu: [], rss: [], pids: [] };
      h.procs[p.slot] = Object.assign(append(series, p), {
        slot: p.slot, pid: p.pid, os_pid: p.os_pid, uptime: p.uptime, once: p.once, last_exit: p.last_exit,
      });
    }
    return h;
  }

  async function fetchHistory(full) {
    const old = state.hist[full];
    let path = jobPath(full) + '/history';
    // Only the samples we do not hold yet (all of them the first time).
    if (old && old.job.t.length) path += '?since=' + old.job.t[old.job.t.length - 1];
    try {
      state.hist[full] = mergeHistory(old, await api('GET', path));
    } catch (e) {
      if (e instanceof APIError && e.status === 404) delete state.hist[full];
    }
  }

  // serverNow estimates gafferd's clock from the last answer.
  function serverNow(h) {
    return h.now + (Date.now() - h.fetchedAt) / 1000;
  }

  // graphSpan is the time every graph covers, the same for all rows: the
  // history the page holds (at least a minute, at most gafferd's window).
  function graphSpan(now) {
    let oldest = now, win = 900;
    for (const h of Object.values(state.hist)) {
      win = h.window || win;
      if (h.job.t.length) oldest = Math.min(oldest, h.job.t[0]);
    }
    return Math.min(Math.max(now - oldest, 60), win);
  }

  // sparkline draws a series (values of key at times t) over the window
  // as inline SVG. The values are also in data-values (and data-times),
  // which the browser test reads.
  function sparkline(h, s, key, label, fmt) {
    const W = 120, H = 28, pad = 2;
    const values = s[key], times = s.t;
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('class', 'spark ' + key);
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    svg.setAttribute('width', W);
    svg.setAttribute('height', H);
    svg.setAttribute('role', 'img');
    svg.dataset.series = key;
    svg.dataset.values = values.join(',');
    svg.dataset.times = times.join(',');
    let max = 0;
    for (const v of values) max = Math.max(max, v);
    const floor = key === 'cpu' ? 1 : 1024 * 1024;
    const top = Math.max(max, floor) * 1.1;
    const now = serverNow(h), span = graphSpan(now), from = now - span;
    const x = (t) => pad + (W - 2 * pad) * Math.min(Math.max((t - from) / span, 0), 1);
    const y = (v) => H - pad - (H - 2 * pad) * (v / top);
    // A gap longer than two intervals (no process, gafferd restarted)
    // breaks the line.
    const gap = (h.interval || 5) * 2.5;
    let d = '', area = '', segStart = null, prevT = null, prevX = null;
    for (let i = 0; i < values.length; i++) {
      const px = x(times[i]).toFixed(1), py = y(values[i]).toFixed(1);
      if (prevT === null || times[i] - prevT > gap) {
        if (segStart !== null) area += 'L' + prevX + ' ' + (H - pad) + 'L' + segStart + ' ' + (H - pad) + 'Z';
        d += 'M' + px + ' ' + py;
        area += 'M' + px + ' ' + (H - pad) + 'L' + px + ' ' + py;
        segStart = px;
      } else {
        d += 'L' + px + ' ' + py;
        area += 'L' + px + ' ' + py;
      }
      prevT = times[i];
      prevX = px;
    }
    if (segStart !== null) area += 'L' + prevX + ' ' + (H - pad) + 'L' + segStart + ' ' + (H - pad) + 'Z';
    const title = document.createElementNS(SVG, 'title');
    const last = values.length ? values[values.length - 1] : null;
    title.textContent = label + ' over the last ' + fmtDuration(span) +
      (values.length ? ': now ' + fmt(last) + ', highest ' + fmt(max) : ': no sample yet');
    svg.append(title);
    const base = document.createElementNS(SVG, 'line');
    base.setAttribute('x1', pad); base.setAttribute('x2', W - pad);
    base.setAttribute('y1', H - pad); base.setAttribute('y2', H - pad);
    base.setAttribute('class', 'axis');
    svg.append(base);
    if (area) {
      const a = document.createElementNS(SVG, 'path');
      a.setAttribute('d', area);
      a.setAttribute('class', 'area');
      svg.append(a);
    }
    if (d) {
      const p = document.createElementNS(SVG, 'path');
      p.setAttribute('d', d);
      p.setAttribute('class', 'line');
      svg.append(p);
    }
    // Restarts: where the pid of a slot's series changes.
    if (s.pids) {
      for (let i = 1; i < s.pids.length; i++) {
        if (s.pids[i] === s.pids[i - 1]) continue;
        const m = document.createElementNS(SVG, 'line');
        const mx = x(times[i]).toFixed(1);
        m.setAttribute('x1', mx); m.setAttribute('x2', mx);
        m.setAttribute('y1', pad); m.setAttribute('y2', H - pad);
        m.setAttribute('class', 'restart');
        svg.append(m);
      }
    }
    return svg;
  }

  // --- formatting ------------------------------------------------------

  function fmtBytes(n) {
    if (typeof n !== 'number' || !isFinite(n)) return '';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + ' ' + units[i];
  }

  function fmtCPU(v) {
    return typeof v === 'number' ? v.toFixed(1) + ' %' : '';
  }

  function fmtDuration(sec) {
    if (typeof sec !== 'number' || !isFinite(sec) || sec < 0) return '';
    if (sec < 10) return sec.toFixed(1) + 's';
    sec = Math.floor(sec);
    const d = Math.floor(sec / 86400), h = Math.floor(sec / 3600) % 24, m = Math.floor(sec / 60) % 60, s = sec % 60;
    if (d) return d + 'd' + (h ? ' ' + h + 'h' : '');
    if (h) return h + 'h' + (m ? ' ' + m + 'm' : '');
    if (m) return m + 'm' + (s ? ' ' + s + 's' : '');
    return s + 's';
  }

  function fmtClock(date) {
    const p = (n, w) => String(n).padStart(w || 2, '0');
    return p(date.getHours()) + ':' + p(date.getMinutes()) + ':' + p(date.getSeconds()) + '.' + p(date.getMilliseconds(), 3);
  }

  // exitCell describes an exit of GET …/history (or only a status):
  // how it ended and when, then which process and after how long.
  function exitCell(e, status) {
    if (e) {
      const how = e.term_signal ? (e.signal || ('signal ' + e.term_signal)) : ('exit ' + e.exit_status);
      const when = new Date(e.time * 1000);
      const detail = 'pid ' + e.pid + (typeof e.uptime === 'number' ? ', ran ' + fmtDuration(e.uptime) : '');
      return [el('span', { title: when.toString() + ' (OS pid ' + e.os_pid + ')' }, how + ' · ' + when.toLocaleTimeString()),
        el('div', { class: 'muted' }, detail)];
    }
    return typeof status === 'number' ? ['exit ' + status] : [];
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

  // --- jobs ------------------------------------------------------------

  // jobMatches tells whether a job passes the filter box: every word of
  // the filter is in its name (case ignored).
  function jobMatches(name) {
    const words = state.filter.toLowerCase().split(/\s+/).filter(Boolean);
    const n = name.toLowerCase();
    return words.every((w) => n.includes(w));
  }

  async function refresh() {
    if (state.busy) return;
    state.busy = true;
    try {
      const js = await api('GET', '/jobs?details=1');
      state.jobs = (js.jobs || []).slice().sort((a, b) => a.name.localeCompare(b.name));
      const names = new Set(state.jobs.map((j) => j.name));
      for (const n of Object.keys(state.hist)) if (!names.has(n)) delete state.hist[n];
      await Promise.all(state.jobs.filter((j) => jobMatches(j.name)).map((j) => fetchHistory(j.name)));
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

  function lastOf(a) { return a && a.length ? a[a.length - 1] : undefined; }

  function render() {
    const table = $('jobs');
    const ae = document.activeElement;
    const focused = ae && ae.dataset && ae.dataset.scaleInput;
    const typed = focused ? ae.value : null;
    for (const tb of table.querySelectorAll('tbody')) tb.remove();
    const shown = state.jobs.filter((j) => jobMatches(j.name));
    $('no-jobs').classList.toggle('hidden', state.jobs.length > 0);
    const any = Object.values(state.hist)[0];
    $('graph-legend').textContent = !any ? ''
      : any.interval ? 'graphs: up to the last ' + fmtDuration(any.window) + ', sampled by gafferd every ' + any.interval + ' s'
        : 'no graphs: this server keeps no history';
    $('filter-count').textContent = state.filter ? shown.length + ' of ' + state.jobs.length + ' jobs' : state.jobs.length + ' jobs';
    for (const j of shown) {
      const h = state.hist[j.name];
      const up = h ? (Date.now() - h.fetchedAt) / 1000 : 0;
      const stateName = j.state || (j.active ? 'active' : 'stopped');
      const scaleInput = el('input', { type: 'number', min: 0, value: j.max_processes, 'aria-label': 'number of processes for ' + j.name, 'data-scale-input': j.name });
      const tbody = el('tbody', { class: 'job', 'data-job': j.name });
      tbody.append(el('tr', { class: 'job-row' },
        el('td', {}, el('strong', {}, j.name), el('div', { class: 'muted', 'data-field': 'running' }, j.running + ' / ' + j.max_processes + ' processes')),
        el('td', {}, el('span', { class: 'state ' + stateName }, stateName), j.spawn_error ? el('div', { class: 'error' }, j.spawn_error) : null,
          j.waiting_for ? el('div', { class: 'muted', 'data-field': 'waiting-for' }, 'for ' + j.waiting_for) : null,
          j.next_try ? el('div', { class: 'muted', 'data-field': 'next-try' }, 'next try ' + new Date(j.next_try).toLocaleTimeString()) : null),
        el('td', { class: 'num' }, ''),
        el('td', { class: 'num', 'data-field': 'uptime', title: 'the longest-running process' }, jobUptime(j, h, up)),
        el('td', { class: 'num', 'data-field': 'cpu' }, h ? fmtCPU(lastOf(h.job.cpu)) : ''),
        el('td', { class: 'graph' }, h ? sparkline(h, h.job, 'cpu', 'cpu %', fmtCPU) : null),
        el('td', { class: 'num', 'data-field': 'rss' }, h ? fmtBytes(lastOf(h.job.rss)) : ''),
        el('td', { class: 'graph' }, h ? sparkline(h, h.job, 'rss', 'memory', fmtBytes) : null),
        el('td', { class: 'num' }, String(j.restarts || 0) + (j.flaps ? ' (' + j.flaps + ' flaps)' : '')),
        el('td', { class: 'exit', 'data-field': 'last-exit' }, ...exitCell(h && h.lastExit, j.last_exit_status)),
        el('td', { class: 'actions' },
          el('span', { class: 'group' },
            el('button', { type: 'button', 'data-action': 'start', disabled: j.active, onclick: () => setJobState(j.name, '1') }, 'Start'), ' ',
            el('button', { type: 'button', 'data-action': 'stop', disabled: !j.active, onclick: () => setJobState(j.name, '0') }, 'Stop'), ' ',
            el('button', { type: 'button', 'data-action': 'restart', title: 'restart every process of the job', onclick: () => setJobState(j.name, '2') }, 'Restart'), ' ',
            el('button', { type: 'button', 'data-action': 'rolling-restart', title: 'replace the processes one at a time, each new one ready before an old one stops', onclick: () => rollingRestart(j.name) }, 'Rolling')), ' ',
          el('span', { class: 'group' },
            el('button', { type: 'button', 'data-action': 'scale-down', title: 'one process less', onclick: () => scale(j.name, '-1') }, '−'), ' ',
            el('button', { type: 'button', 'data-action': 'scale-up', title: 'one process more', onclick: () => scale(j.name, '+1') }, '+'), ' ',
            scaleInput, ' ',
            el('button', { type: 'button', 'data-action': 'scale-set', onclick: () => scale(j.name, '=' + Math.max(0, parseInt(scaleInput.value, 10) || 0)) }, 'Scale')))));
      // One row per slot: the live processes (from the job info, so a
      // process appears before its first sample), then the slots whose
      // process is gone but whose history is still in the window.
      const rows = [];
      const bySlotPid = {};
      if (h) for (const p of Object.values(h.procs)) if (p.pid) bySlotPid[p.pid] = p;
      for (const pid of j.processes || []) rows.push({ pid, p: bySlotPid[pid] });
      if (h) for (const p of Object.values(h.procs)) if (!p.pid) rows.push({ pid: null, p });
      const life = {};
      for (const ps of j.process_states || []) life[ps.pid] = ps;
      for (const { pid, p } of rows) tbody.append(processRow(j, h, pid, p, up, pid ? life[pid] : null));
      $('jobs').append(tbody);
      if (focused === j.name) { scaleInput.value = typed; scaleInput.focus(); }
    }
  }

  function jobUptime(j, h, up) {
    let best = -1;
    if (h) for (const p of Object.values(h.procs)) if (p.pid && (j.processes || []).includes(p.pid) && typeof p.uptime === 'number') best = Math.max(best, p.uptime);
    return best >= 0 ? fmtDuration(best + up) : '';
  }

  // procState is the lifecycle cell of a process: its state, health and
  // last sd_notify STATUS= line.
  function procState(ps) {
    if (!ps) return '';
    const bits = [el('span', { class: 'state ' + ps.state, 'data-field': 'proc-state' }, ps.state)];
    if (ps.health) bits.push(' ', el('span', { class: 'state ' + ps.health, title: ps.health_error || '' }, ps.health));
    if (ps.status) bits.push(el('div', { class: 'muted', 'data-field': 'status' }, ps.status));
    return bits;
  }

  function processRow(j, h, pid, p, up, ps) {
    // The figures now are those of the last sample, when it was read
    // from this process (right after a restart it was the previous one's).
    const current = p && pid && lastOf(p.pids) === pid;
    const selected = pid && state.output && state.output.pid === pid;
    const who = pid
      ? el('button', { type: 'button', class: selected ? 'selected' : '', 'data-pid': pid, 'aria-pressed': selected ? 'true' : 'false',
        title: 'show the output of pid ' + pid, onclick: () => showOutput(pid, j.name) }, 'pid ' + pid)
      : el('span', { class: 'muted' }, 'no process');
    return el('tr', { class: 'proc-row' + (pid ? '' : ' gone'), 'data-slot': p ? p.slot : '', 'data-proc': pid || '' },
      el('td', { class: 'proc-name' }, who, p ? el('span', { class: 'muted' }, ' slot ' + p.slot) : null, p && p.once ? el('span', { class: 'muted' }, ' one-off') : null),
      el('td', {}, ...[].concat(procState(ps))),
      el('td', { class: 'num', 'data-field': 'os-pid' }, p && p.os_pid ? String(p.os_pid) : ''),
      el('td', { class: 'num', 'data-field': 'uptime' }, p && typeof p.uptime === 'number' ? fmtDuration(p.uptime + up) : ''),
      el('td', { class: 'num' }, current ? fmtCPU(lastOf(p.cpu)) : ''),
      el('td', { class: 'graph' }, p ? sparkline(h, p, 'cpu', 'cpu % of slot ' + p.slot, fmtCPU) : null),
      el('td', { class: 'num' }, current ? fmtBytes(lastOf(p.rss)) : ''),
      el('td', { class: 'graph' }, p ? sparkline(h, p, 'rss', 'memory of slot ' + p.slot, fmtBytes) : null),
      el('td', {}, ''),
      el('td', { class: 'exit', 'data-field': 'last-exit' }, ...(p ? exitCell(p.last_exit) : [])),
      el('td', { class: 'actions' }, pid && !(p && p.once)
        ? el('button', { type: 'button', 'data-action': 'restart-process', 'data-restart': pid, title: 'stop pid ' + pid + '; a new process takes its slot', onclick: () => restartProcess(pid) }, 'Restart')
        : null));
  }

  async function setJobState(full, value) {
    const verb = { '0': 'stop', '1': 'start', '2': 'restart' }[value];
    try {
      await api('POST', jobPath(full) + '/state', value);
      setStatus(verb + ' ' + full + ': done');
    } catch (e) {
      setStatus(verb + ' ' + full + ' failed: ' + e.message, true);
    }
    refresh();
  }

  async function rollingRestart(full) {
    setStatus('rolling restart of ' + full + '…');
    try {
      const js = await api('POST', jobPath(full) + '/restart?rolling=1');
      setStatus('rolling restart of ' + full + ': ' + js.replaced + ' processes replaced');
    } catch (e) {
      setStatus('rolling restart of ' + full + ' failed: ' + e.message, true);
    }
    refresh();
  }

  async function restartProcess(pid) {
    try {
      await api('DELETE', '/' + pid);
      setStatus('pid ' + pid + ' stopped; a new process takes its slot');
    } catch (e) {
      setStatus('restart of pid ' + pid + ' failed: ' + e.message, true);
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

  // appendOutput adds a chunk of output; each line starts with the time
  // it was captured (when: a Date).
  function appendOutput(out, label, text, cls, when) {
    const pre = $('output');
    const follow = $('output-follow').checked;
    const parts = text.split(/(?<=\n)/);
    for (const part of parts) {
      if (out.lineStart[label] !== false) {
        pre.append(el('span', { class: 'ts', title: when.toISOString() + ' (' + label + ')' }, fmtClock(when) + ' '));
      }
      pre.append(el('span', { class: cls || '' }, part));
      out.lineStart[label] = part.endsWith('\n');
    }
    // Keep the page light: drop the oldest output past the limit.
    let size = pre.textContent.length;
    while (size > MAX_OUTPUT && pre.firstChild) {
      size -= pre.firstChild.textContent.length;
      pre.firstChild.remove();
    }
    if (follow) pre.scrollTop = pre.scrollHeight;
  }

  function appendMarker(text, cls) {
    const pre = $('output');
    pre.append(el('span', { class: cls }, text));
    if ($('output-follow').checked) pre.scrollTop = pre.scrollHeight;
  }

  // chunkTime is the capture time of a chunk: the server's when it sends
  // one (an SSE "chunk" event, see showOutput), else now, the time the
  // browser got it.
  function chunkTime(serverTime) {
    if (serverTime) {
      const d = new Date(typeof serverTime === 'number' ? serverTime * 1000 : serverTime);
      if (!isNaN(d.getTime())) return d;
    }
    return new Date();
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
    const out = { pid, sources: [], last: {}, lineStart: {} };
    state.output = out;
    render();
    for (const label of labels) {
      // since=0 asks for what the ring buffer still holds; after a
      // reconnect the browser also sends Last-Event-ID, and chunks
      // already shown are skipped by their sequence number. format=json
      // asks for the chunks with their capture time ("chunk" events,
      // below); a gafferd that does not know it sends the raw chunks as
      // events named after the label.
      let url = '/streams/' + pid + '/' + encodeURIComponent(label) + '?feed=eventsource&since=0&heartbeat=15&format=json';
      if (state.key) url += '&api_key=' + encodeURIComponent(state.key);
      const es = new EventSource(url);
      out.sources.push(es);
      out.last[label] = 0;
      const onChunk = (seq, text, time) => {
        if (state.output !== out) return;
        if (seq && seq <= out.last[label]) return;
        if (seq) out.last[label] = seq;
        appendOutput(out, label, text, label === 'stderr' ? 'stderr' : '', chunkTime(time));
      };
      es.addEventListener(label, (ev) => onChunk(parseInt(ev.lastEventId, 10) || 0, ev.data, null));
      es.addEventListener('chunk', (ev) => {
        let c;
        try { c = JSON.parse(ev.data); } catch (e) { return; }
        onChunk(c.seq || parseInt(ev.lastEventId, 10) || 0, String(c.data === undefined ? '' : c.data), c.time);
      });
      es.addEventListener('gap', (ev) => {
        if (state.output !== out) return;
        let g = {};
        try { g = JSON.parse(ev.data); } catch (e) { /* keep the marker */ }
        appendMarker('\n[output ' + g.from + '–' + g.to + ' of ' + label + ' was lost: the buffer no longer holds it]\n', 'gap');
        out.lineStart[label] = true;
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

  // Today gafferd publishes one happening under several names (an exit
  // as exit, job.<s>.<j>.exit, proc.<s>.<j>.exit and proc.<pid>.exit; a
  // load as load and create; an unload as unload and delete), one right
  // after the other. eventIsAlias tells such a repeat: same kind (the last
  // segment of the name, create and delete read as load and unload), same
  // payload, and a name not yet seen for this happening. Two happenings
  // that look alike (two updates in a row) keep their own lines: the
  // second has a name already seen. A gafferd that publishes each
  // happening once needs no de-duplication, and gets none.
  const KIND_ALIASES = { create: 'load', delete: 'unload' };

  function eventKind(name) {
    const k = name.slice(name.lastIndexOf('.') + 1);
    return KIND_ALIASES[k] || k;
  }

  function eventIsAlias(ev) {
    const name = ev.event || '?';
    const rest = Object.assign({}, ev);
    delete rest.event;
    const key = eventKind(name) + ' ' + JSON.stringify(rest, Object.keys(rest).sort());
    const last = state.lastEvent;
    if (last && last.key === key && !last.names.has(name)) {
      last.names.add(name);
      return true;
    }
    state.lastEvent = { key, names: new Set([name]) };
    return false;
  }

  function addEvent(ev) {
    if (eventIsAlias(ev)) return;
    const list = $('events');
    const name = ev.event || '?';
    const rest = Object.assign({}, ev);
    delete rest.event;
    const li = el('li', { 'data-event': name, 'data-kind': eventKind(name), 'data-pid': rest.pid },
      el('span', { class: 'time' }, new Date().toLocaleTimeString()), el('strong', {}, name), ' ', JSON.stringify(rest));
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
        state.lastEvent = null;
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

  // What the browser test reads: the history the page holds.
  window.gafferConsole = {
    history: (job) => state.hist[job] || null,
  };

  document.addEventListener('DOMContentLoaded', () => {
    $('login-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const k = $('key-input').value.trim();
      $('key-input').value = '';
      if (k) useKey(k);
    });
    $('forget-key').addEventListener('click', () => { useKey(''); });
    $('output-clear').addEventListener('click', () => {
      $('output').replaceChildren();
      if (state.output) state.output.lineStart = {};
    });
    const filter = $('job-filter');
    filter.value = state.filter;
    filter.addEventListener('input', () => {
      state.filter = filter.value;
      if (state.filter) sessionStorage.setItem(FILTER_STORE, state.filter);
      else sessionStorage.removeItem(FILTER_STORE);
      render();
      scheduleRefresh(); // the history of jobs shown again
    });
    start();
  });
})();
