// Bulwark dashboard: polls GET /v1/status, streams GET /v1/events/stream, and drives the actions the
// API offers (run/verify/drill a plan, switchover, maintenance window). No framework, no build
// step; uPlot (served from /assets) draws the charts. The token (when the API has one) is kept in
// localStorage and sent as an Authorization header, never in a URL.
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = 'bulwark-token';
  const POLL_MS = 2000;
  const BARS = 40;
  const state = { transitions: new Map(), status: null, role: null, history: new Map(), series: new Map(), charts: new Map(), dbs: new Map(), lastEventId: 0, stream: null, polling: null, buckets: new Map(), p95: new Map() };

  // ------------------------------------------------------------------ formatting
  function esc(s) { return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]); }
  function bytes(n) {
    if (n === null || n === undefined || n === '' || !Number.isFinite(Number(n))) return '–';
    n = Number(n);
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let i = 0;
    while (Math.abs(n) >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i === 0 ? String(n) : n.toFixed(n < 10 ? 2 : n < 100 ? 1 : 0)) + ' ' + u[i];
  }
  function duration(ms) {
    if (ms === null || ms === undefined || !Number.isFinite(Number(ms))) return '–';
    ms = Math.abs(Number(ms));
    if (ms < 1000) return Math.round(ms) + ' ms';
    const s = ms / 1000;
    if (s < 60) return (s < 10 ? s.toFixed(1) : Math.round(s)) + ' s';
    const m = s / 60;
    if (m < 60) return Math.floor(m) + ' min ' + (Math.round(s % 60) ? Math.round(s % 60) + ' s' : '');
    const h = m / 60;
    if (h < 48) return Math.floor(h) + ' h ' + (Math.round(m % 60) ? Math.round(m % 60) + ' min' : '');
    return Math.round(h / 24) + ' d';
  }
  function ago(t) {
    const ms = typeof t === 'number' ? t : Date.parse(t);
    if (!Number.isFinite(ms)) return '–';
    const d = Date.now() - ms;
    if (d < 0) return 'in ' + duration(-d).trim();
    if (d < 5000) return 'just now';
    return duration(d).trim() + ' ago';
  }
  function when(t) {
    const ms = typeof t === 'number' ? t : Date.parse(t);
    return Number.isFinite(ms) ? '<time datetime="' + new Date(ms).toISOString() + '" title="' + esc(new Date(ms).toLocaleString()) + '">' + esc(ago(ms)) + '</time>' : '–';
  }
  function num(n) { return n === null || n === undefined ? '–' : Number(n).toLocaleString(); }
  const GOOD = /^(up|ok|pass|passed|primary|open|met|idle|active|yes|none|leader|true|sync)$/i;
  const BAD = /^(down|fail|failed|error|blocked|breached|firing|violation|false|lost|no)$/i;
  const WARN = /^(unknown|ejected|draining|warning|warn|standby|starting|running|busy|stale|never|at risk|at_risk|passive)$/i;
  function tone(v) {
    const s = String(v ?? '').split(/[\s(]/)[0];
    if (GOOD.test(s)) return 'ok';
    if (BAD.test(s)) return 'bad';
    if (WARN.test(s)) return 'warn';
    return 'unknown';
  }
  function pill(v, t) { return '<span class="pill ' + (t || tone(v)) + '">' + esc(v ?? '–') + '</span>'; }
  const HEADERS = { in_flight: 'in flight', lag_bytes: 'lag', last_success: 'last success', budget_left: 'budget left', burn_1h: 'burn 1h', rule_3_2_1_1_0: '3-2-1-1-0', last_sent_at: 'last sent', last_error: 'last error', write_downtime_ms: 'write downtime' };
  function header(k) { return HEADERS[k] || k.replace(/_/g, ' '); }
  function cell(k, v) {
    if (v === null || v === undefined || v === '') return '<td class="muted">–</td>';
    if (/^(state|role|rpo|verified|writes|alerts|rule_3_2_1_1_0|result|probe|heartbeat)$/.test(k)) return '<td>' + pill(v) + '</td>';
    if (/(bytes|^size)$/.test(k) && Number.isFinite(Number(v))) return '<td class="num">' + esc(bytes(v)) + '</td>';
    if (/_ms$/.test(k) && Number.isFinite(Number(v))) return '<td class="num">' + esc(duration(v)) + '</td>';
    if (/(^since$|^at$|_at$|^last_success$)/.test(k) && typeof v === 'string' && !Number.isNaN(Date.parse(v))) return '<td>' + when(v) + '</td>';
    if (typeof v === 'number') return '<td class="num">' + esc(num(v)) + '</td>';
    if (/^errors?$/.test(k) && Number(v) > 0) return '<td class="num bad">' + esc(v) + '</td>';
    return '<td>' + esc(typeof v === 'object' ? JSON.stringify(v) : v) + '</td>';
  }
  function table(rows, cols, rowAttr) {
    if (!rows || rows.length === 0) return '<p class="muted">none</p>';
    cols = cols || Object.keys(rows[0]).filter((k) => typeof rows[0][k] !== 'object' || rows[0][k] === null);
    return '<div class="table-wrap"><table><thead><tr>' + cols.map((c) => '<th>' + esc(header(c)) + '</th>').join('') + '</tr></thead><tbody>' +
      rows.map((r) => '<tr' + (rowAttr ? rowAttr(r) : '') + '>' + cols.map((c) => cell(c, r[c])).join('') + '</tr>').join('') + '</tbody></table></div>';
  }
  function toast(msg, bad) {
    const t = $('toast');
    t.textContent = msg;
    t.className = bad ? 'bad' : '';
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.hidden = true; }, 6000);
  }

  // ------------------------------------------------------------------ API
  function token() { try { return localStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; } }
  function authHeaders(extra) {
    const h = Object.assign({}, extra || {});
    const t = token();
    if (t) h.authorization = 'Bearer ' + t;
    return h;
  }
  class Unauthorized extends Error {}
  /** State changes always say JSON: the API refuses other content types there. */
  function init0(opts) { return (opts.method || 'GET') === 'GET' ? {} : { 'content-type': 'application/json' }; }
  async function api(path, opts) {
    opts = opts || {};
    const init = { method: opts.method || 'GET', headers: authHeaders(init0(opts)), cache: 'no-store' };
    if (opts.body !== undefined) init.body = JSON.stringify(opts.body);
    const r = await fetch(path, init);
    if (r.status === 401) throw new Unauthorized('the API needs a token');
    const body = await r.json().catch(() => ({}));
    if (!r.ok) {
      const e = body && body.error ? body.error : {};
      throw new Error((e.message || ('HTTP ' + r.status)) + (e.hint ? ' — ' + e.hint : ''));
    }
    return body;
  }
  async function act(label, path, body) {
    try {
      const out = await api(path, { method: 'POST', body: body === undefined ? {} : body });
      toast(label + ': done' + (out && out.started ? ' (' + out.started + ' started)' : ''));
      setTimeout(refresh, 300);
    } catch (e) {
      toast(label + ' failed: ' + e.message, true);
    }
  }

  // ------------------------------------------------------------------ login
  function showLogin(msg) {
    $('login').hidden = false;
    $('login-err').textContent = msg || '';
    $('overall').className = 'pill unknown';
    $('overall').textContent = 'signed out';
    $('token').focus();
  }
  $('login').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const t = $('token').value.trim();
    if (!t) return;
    try { localStorage.setItem(TOKEN_KEY, t); } catch { /* storage off: the token lives until reload */ }
    $('token').value = '';
    const r = await fetch('/v1/status', { headers: authHeaders(), cache: 'no-store' });
    if (r.status === 401) {
      try { localStorage.removeItem(TOKEN_KEY); } catch { /* ignore */ }
      $('login-err').textContent = 'That token was refused.';
      return;
    }
    $('login').hidden = true;
    start();
  });
  $('signout').addEventListener('click', () => {
    try { localStorage.removeItem(TOKEN_KEY); } catch { /* ignore */ }
    stop();
    location.reload();
  });

  // ------------------------------------------------------------------ history & charts
  function remember(key, v) {
    let h = state.history.get(key);
    if (!h) { h = []; state.history.set(key, h); }
    h.push(v);
    if (h.length > BARS) h.shift();
    return h;
  }
  const SLOT_MS = 90_000; // 40 bars x 90 s = the last hour
  /** Kuma-style bars from the health transitions of the last hour (the worst state in each slot), else the page's samples. */
  function bars(key) {
    const subject = key.replace(/^(node|backend):/, '');
    const tr = state.transitions.get(subject);
    if (tr && tr.length) {
      const now = Date.now();
      const cells = [];
      for (let i = BARS - 1; i >= 0; i--) {
        const from = now - (i + 1) * SLOT_MS;
        const to = now - i * SLOT_MS;
        let before = null;
        const inside = [];
        for (const t of tr) { if (t.at <= from) before = t.to; else if (t.at <= to) inside.push(t.to); }
        const seen = [before].concat(inside).filter((x) => x);
        const worst = seen.includes('down') ? 'down' : seen.includes('up') ? 'up' : null; // unknown = not yet probed: no data
        const label = new Date(from).toLocaleTimeString() + '–' + new Date(to).toLocaleTimeString() + ': ' + (worst || 'no data');
        cells.push('<i class="' + (worst ? tone(worst) : '') + '" title="' + esc(label) + '"></i>');
      }
      return '<span class="bars" aria-label="last hour, ' + BARS + ' slots of 90 s">' + cells.join('') + '</span>';
    }
    const h = state.history.get(key) || [];
    const cells = [];
    for (let i = 0; i < BARS - h.length; i++) cells.push('<i></i>');
    for (const s of h) cells.push('<i class="' + tone(s) + '" title="' + esc(s) + '"></i>');
    return '<span class="bars" aria-label="last ' + h.length + ' samples">' + cells.join('') + '</span>';
  }
  function sample(service, t, requests, errors) {
    let s = state.series.get(service);
    if (!s) { s = { t: [], rps: [], eps: [], p95: [], last: null }; state.series.set(service, s); }
    if (s.last && t > s.last.t) {
      const dt = (t - s.last.t) / 1000;
      s.t.push(t / 1000);
      s.rps.push(Math.max(0, (requests - s.last.requests) / dt));
      s.eps.push(Math.max(0, (errors - s.last.errors) / dt));
      const p = state.p95.get(service);
      s.p95.push(p === undefined ? null : p);
      if (s.t.length > 300) { s.t.shift(); s.rps.shift(); s.eps.shift(); s.p95.shift(); }
    }
    s.last = { t, requests, errors };
  }
  function drawCharts() {
    if (typeof uPlot === 'undefined') return;
    for (const [service, s] of state.series) {
      const el = document.querySelector('.chart[data-chart="' + CSS.escape(service) + '"]');
      if (!el) continue;
      if (s.t.length < 2) { el.innerHTML = '<p class="muted">throughput chart: collecting samples…</p>'; continue; }
      if (el.querySelector('p')) el.innerHTML = '';
      const data = [s.t, s.rps, s.eps, s.p95];
      const width = Math.max(260, Math.min(el.parentElement.clientWidth || 600, 1200));
      let c = state.charts.get(service);
      if (c && c.root.parentElement !== el) { c.destroy(); c = undefined; }
      if (!c) {
        c = new uPlot({
          width, height: 180,
          series: [{}, { label: 'requests/s', stroke: '#0969da', width: 2 }, { label: 'errors/s', stroke: '#cf222e', width: 2 }, { label: 'p95 latency', scale: 'ms', stroke: '#9a6700', width: 1.5, dash: [4, 3], value: (u, v) => (v === null || v === undefined ? '–' : duration(v)) }],
          axes: [{}, { size: 50, label: 'per second' }, { scale: 'ms', side: 1, size: 60, grid: { show: false }, values: (u, vals) => vals.map((v) => duration(v)) }],
          scales: { x: { time: true }, ms: { auto: true } },
        }, data, el);
        state.charts.set(service, c);
      } else {
        c.setData(data);
        if (Math.abs(c.width - width) > 20) c.setSize({ width, height: 160 });
      }
    }
  }

  // ------------------------------------------------------------------ renderers
  const tiles = [];
  function tile(kind, name, st, detail) { tiles.push({ kind, name, st, detail }); }

  function renderHealth(d) {
    const rows = d.rows || [];
    for (const r of rows) remember('node:' + r.service + '/' + r.node, r.state);
    return table(rows, d.columns, (r) => ' data-node="' + esc(r.service + '/' + r.node) + '"') +
      '<h3>Heartbeat bars (last hour, newest right)</h3>' +
      '<div class="table-wrap"><table><tbody>' + rows.map((r) => '<tr data-bars="' + esc(r.service + '/' + r.node) + '"><th>' + esc(r.service + '/' + r.node) + '</th><td>' + bars('node:' + r.service + '/' + r.node) + '</td><td>' + pill(r.state) + '</td></tr>').join('') + '</tbody></table></div>';
  }

  function renderProxy(d) {
    const rows = d.rows || [];
    const now = Date.now();
    const byService = new Map();
    for (const r of rows) {
      if (!byService.has(r.service)) byService.set(r.service, []);
      byService.get(r.service).push(r);
      remember('backend:' + r.service + '/' + r.backend, r.state);
    }
    let html = '';
    for (const [service, rs] of byService) {
      sample(service, now, rs.reduce((a, r) => a + (r.requests || 0), 0), rs.reduce((a, r) => a + (r.errors || 0), 0));
      const healthy = rs.filter((r) => r.state === 'up').length;
      const st = healthy === 0 ? 'down' : healthy < rs.length ? 'degraded' : 'up';
      if (!service.startsWith('db:')) tile('service', service, st === 'degraded' ? 'warn' : tone(st), healthy + '/' + rs.length + ' backends up');
      html += '<h3 data-service="' + esc(service) + '">' + esc(service) + ' ' + pill(st, st === 'degraded' ? 'warn' : undefined) + ' <span class="muted">' + esc(d.listeners && d.listeners[service] ? 'listening on ' + d.listeners[service] : '') + '</span></h3>';
      html += '<div class="table-wrap"><table><thead><tr><th>backend</th><th>state</th><th class="hide-narrow">role</th><th>history</th><th class="num">in flight</th><th class="num">requests</th><th class="num">errors</th><th class="hide-narrow">address</th></tr></thead><tbody>' +
        rs.map((r) => '<tr data-backend="' + esc(service + '/' + r.backend) + '"><td>' + esc(r.backend) + '</td><td>' + pill(r.state) + '</td><td class="hide-narrow">' + esc(r.role || '') + '</td><td>' + bars('backend:' + service + '/' + r.backend) + '</td><td class="num">' + num(r.in_flight) + '</td><td class="num">' + num(r.requests) + '</td><td class="num' + (r.errors > 0 ? ' bad' : '') + '">' + num(r.errors) + '</td><td class="hide-narrow muted">' + esc(r.address) + '</td></tr>').join('') +
        '</tbody></table></div>';
      if (!service.startsWith('db:')) html += '<div class="chart" data-chart="' + esc(service) + '" aria-label="throughput of ' + esc(service) + '"></div>';
    }
    return html || '<p class="muted">no services</p>';
  }

  function renderFailover(d) {
    const dbs = d.databases || [];
    let html = '';
    for (const db of dbs) {
      const nodes = (d.rows || []).filter((r) => r.database === db.database);
      const st = db.writes === 'open' ? 'ok' : 'bad';
      tile('database', db.database, st, 'primary ' + (db.primary || 'none') + ', writes ' + db.writes);
      html += '<h3 data-database="' + esc(db.database) + '">' + esc(db.database) + ' ' + pill('writes ' + db.writes, st) + ' <span class="muted">primary ' + esc(db.primary || 'none') + (db.synchronous ? ', synchronous (' + esc((db.sync_standbys || []).join(', ') || 'no safe standby') + ')' : ', asynchronous') + (db.leader === false ? ', this instance does not hold the lease' : '') + '</span></h3>';
      html += table(nodes, ['node', 'role', 'lag_bytes', 'sync', 'streaming', 'timeline', 'address']);
      const standbys = nodes.filter((n) => n.role !== 'primary').map((n) => n.node);
      if (standbys.length) {
        html += '<div class="actions admin"><label>Switch over to <select data-switchover-to="' + esc(db.database) + '">' + standbys.map((n) => '<option>' + esc(n) + '</option>').join('') + '</select></label> <button type="button" class="danger" data-action="switchover" data-db="' + esc(db.database) + '">Switchover</button></div>';
      }
      const info = state.dbs.get(db.database);
      if (info && info.history) {
        html += '<h3>Failover history of ' + esc(db.database) + '</h3>' + table(info.history.slice(0, 10).map((h) => ({ at: new Date(h.started_at).toISOString(), kind: h.kind, from: h.old_primary, to: h.new_primary, result: h.ok ? 'ok' : 'failed', write_downtime_ms: h.write_downtime_ms, message: h.message })), ['at', 'kind', 'from', 'to', 'result', 'write_downtime_ms', 'message']);
      }
    }
    return html || table(d.rows, d.columns);
  }

  function renderSlo(d) {
    const rows = d.rows || [];
    for (const r of rows) {
      const left = parseFloat(r.budget_left);
      const st = r.alerts && r.alerts !== 'none' ? 'bad' : Number.isFinite(left) && left < 25 ? 'warn' : 'ok';
      tile('SLO', r.slo, st, (r.value || 'no data') + ' of ' + r.objective + ', budget ' + (r.budget_left || '–'));
    }
    let html = '<div class="table-wrap"><table><thead><tr><th>SLO</th><th>service</th><th>SLI</th><th>objective</th><th>value</th><th>error budget left</th><th>burn 1h</th><th>alerts</th></tr></thead><tbody>' +
      rows.map((r) => {
        const left = parseFloat(r.budget_left);
        const t = !Number.isFinite(left) ? '' : left < 10 ? 'bad' : left < 25 ? 'warn' : '';
        return '<tr data-slo="' + esc(r.slo) + '"><td>' + esc(r.slo) + '</td><td>' + esc(r.service) + '</td><td>' + esc(r.sli) + '</td><td>' + esc(r.objective) + '</td><td>' + esc(r.value) + '</td><td><span class="budget"><b class="' + t + '" data-w="' + (Number.isFinite(left) ? Math.max(0, Math.min(100, left)) : 0) + '"></b></span>' + esc(r.budget_left) + '</td><td class="num">' + esc(r.burn_1h) + '</td><td>' + pill(r.alerts) + '</td></tr>';
      }).join('') + '</tbody></table></div>';
    html += '<div class="actions admin"><label>Maintenance window for <select id="mw-duration"><option>15m</option><option selected>1h</option><option>4h</option><option>1d</option></select></label> <label>reason <input id="mw-reason" maxlength="200" placeholder="upgrade"></label> <button type="button" data-action="maintenance">Add maintenance window</button></div>';
    return html;
  }

  function renderPlans(d) {
    const rows = d.rows || [];
    const plans = d.plans || [];
    let html = '';
    for (const p of plans) {
      const ts = rows.filter((r) => r.plan === p.plan);
      const failing = ts.some((r) => r.errors > 0 || r.error) || p.rpoBreached;
      tile('plan', p.plan, failing ? 'bad' : p.running ? 'warn' : 'ok', p.rpoBreached ? 'RPO breached' : 'newest ' + (p.ageMs === undefined || p.ageMs === null ? 'never' : duration(p.ageMs) + ' old'));
      html += '<h3 data-plan="' + esc(p.plan) + '">' + esc(p.plan) + ' ' + pill(p.rpoBreached ? 'RPO breached' : 'RPO ok', p.rpoBreached ? 'bad' : 'ok') + ' <span class="muted">' + (p.running ? esc(p.running) + ' running' : 'idle') + (p.next && p.next.backup ? ', next backup ' + esc(ago(p.next.backup)) : '') + '</span></h3>';
      html += table(ts, ['target', 'media', 'last_success', 'age', 'rpo', 'size', 'errors', 'verified', 'rto', 'state', 'error']);
      html += '<div class="actions">' + ts.map((t) => '<button type="button" data-action="browse" data-plan="' + esc(p.plan) + '" data-target="' + esc(t.target) + '">Browse ' + esc(t.target) + '</button>').join('') + '</div>';
      html += '<div class="actions admin">' + ['run', 'verify', 'drill'].map((k) => '<button type="button" data-action="plan" data-kind="' + k + '" data-plan="' + esc(p.plan) + '">' + (k === 'run' ? 'Back up now' : k === 'verify' ? 'Verify' : 'Restore drill') + '</button>').join('') + '</div>';
    }
    return html || table(rows, d.columns);
  }

  function renderAudit(d) {
    const rows = d.rows || [];
    for (const r of rows) tile('3-2-1-1-0', r.plan, r.rule_3_2_1_1_0 === 'PASS' ? 'ok' : 'bad', (r.copies ?? '?') + ' copies, ' + (r.media ?? '?') + ' media, ' + (r.offsite ?? '?') + ' offsite');
    return '<div class="table-wrap"><table><thead><tr><th>plan</th><th>3-2-1-1-0</th><th>3 copies</th><th>2 media</th><th>1 offsite</th><th>1 immutable</th><th>0 errors</th><th>shortfalls</th></tr></thead><tbody>' +
      rows.map((r) => '<tr data-audit="' + esc(r.plan) + '"><td>' + esc(r.plan) + '</td><td>' + pill(r.rule_3_2_1_1_0) + '</td>' +
        [[r.copies, 3], [r.media, 2], [r.offsite, 1], [r.immutable, 1]].map(([v, min]) => '<td class="' + (Number(v) >= min ? 'ok' : 'bad') + '">' + esc(v ?? '–') + '</td>').join('') +
        '<td class="' + (Number(r.errors) === 0 ? 'ok' : 'bad') + '">' + esc(r.errors ?? '–') + '</td><td>' + esc(r.shortfalls || '') + '</td></tr>').join('') + '</tbody></table></div>';
  }

  function renderNotify(d) {
    for (const f of d.firing || []) tile('incident', f.subject, f.severity === 'critical' ? 'bad' : 'warn', f.kind);
    return table(d.rows, d.columns) + (d.firing && d.firing.length ? '<h3>Open incidents</h3>' + table(d.firing, ['kind', 'severity', 'subject', 'message', 'at']) : '');
  }

  function renderGeneric(d) {
    if (d && Array.isArray(d.rows)) return table(d.rows, d.columns);
    let html = '';
    if (d && typeof d === 'object') for (const [k, v] of Object.entries(d)) if (Array.isArray(v) && v.length && typeof v[0] === 'object') html += '<h3>' + esc(k) + '</h3>' + table(v);
    return html + '<details><summary class="muted">raw</summary><pre>' + esc(JSON.stringify(d, null, 2)) + '</pre></details>';
  }

  const RENDERERS = { health: ['Health', renderHealth], proxy: ['Services', renderProxy], failover: ['Databases', renderFailover], slo: ['SLOs', renderSlo], 'backup-plans': ['Backups', renderPlans], audit: ['3-2-1-1-0 audit', renderAudit], notify: ['Notifications', renderNotify] };

  // Cluster mode: the members first (live in etcd or gone, API reachable), then this instance's
  // sections, then every other instance's own sections (plain tables) or why it did not answer.
  function clusterView(s, own) {
    const c = s.cluster;
    if (!c || c.name === null || c.name === undefined) return own;
    const rows = (c.members || []).map((m) => ({ instance: m.name + (m.self ? ' (this)' : ''), api: m.api, zone: m.zone, member: m.state, api_reachable: m.reachable ? 'yes' : 'NO', version: m.version }));
    let html = '<section data-cluster="' + esc(c.name) + '" id="s-cluster"><h2>Cluster ' + esc(c.name) + '</h2>' + table(rows, ['instance', 'api', 'zone', 'member', 'api_reachable', 'version']) + (c.members_error ? '<p class="bad">' + esc(c.members_error) + '</p>' : '') + '</section>';
    for (const m of c.members || []) {
      html += '<div data-instance="' + esc(m.name) + '"><h2>Instance ' + esc(m.name) + (m.zone ? ' · zone ' + esc(m.zone) : '') + (m.self ? ' (this one)' : '') + '</h2>';
      if (m.self) html += own;
      else {
        const v = (c.instances || {})[m.name];
        if (v && v.state === 'up' && v.status) {
          for (const [name, data] of Object.entries(v.status.subsystems || {})) html += '<section data-peer-subsystem="' + esc(name) + '"><h3>' + esc((RENDERERS[name] || [name])[0]) + '</h3>' + renderGeneric(data || {}) + '</section>';
        } else html += '<p class="bad">unreachable: ' + esc((v && v.error && v.error.message) || 'no answer') + '</p>';
      }
      html += '</div>';
    }
    return html;
  }

  function render(s) {
    tiles.length = 0;
    const sections = [];
    const nav = [];
    for (const [name, data] of Object.entries(s.subsystems || {})) {
      const [label, fn] = RENDERERS[name] || [name, renderGeneric];
      let body;
      try { body = fn(data || {}); } catch (e) { body = '<p class="bad">cannot show this section: ' + esc(e.message) + '</p>' + renderGeneric(data); }
      sections.push('<section data-subsystem="' + esc(name) + '" id="s-' + esc(name) + '"><h2>' + esc(label) + '</h2>' + body + '</section>');
      nav.push('<a href="#s-' + esc(name) + '">' + esc(label) + '</a>');
    }
    nav.push('<a href="#timeline-section">Events</a>');
    // Keep what the operator typed in forms across refreshes.
    const keep = {};
    for (const el of document.querySelectorAll('#main select, #main input')) keep[el.id || el.getAttribute('data-switchover-to')] = el.value;
    const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest('#main') ? (document.activeElement.id || null) : null;
    for (const c of state.charts.values()) c.destroy();
    state.charts.clear();
    $('main').innerHTML = clusterView(s, sections.join('') || '<p class="muted">no subsystems configured</p>');
    for (const el of document.querySelectorAll('#main select, #main input')) { const k = el.id || el.getAttribute('data-switchover-to'); if (keep[k] !== undefined) el.value = keep[k]; }
    if (focused && $(focused)) $(focused).focus();
    for (const b of document.querySelectorAll('.budget b[data-w]')) b.style.width = b.getAttribute('data-w') + '%';
    $('nav').innerHTML = nav.join('');
    $('tiles').innerHTML = tiles.map((t) => '<div class="tile ' + t.st + '" data-tile="' + esc(t.kind + ':' + t.name) + '"><div class="k">' + esc(t.kind) + '</div><div class="n">' + esc(t.name) + '</div><div class="muted">' + esc(t.detail) + '</div></div>').join('') || '<p class="muted">nothing configured yet</p>';
    const bad = tiles.filter((t) => t.st === 'bad').length;
    const warn = tiles.filter((t) => t.st === 'warn').length;
    $('overall').className = 'pill ' + (bad ? 'bad' : warn ? 'warn' : 'ok');
    $('overall').textContent = bad ? bad + ' failing' : warn ? warn + ' degraded' : 'all OK';
    document.title = (bad ? '✖ ' : warn ? '! ' : '') + 'Bulwark';
    const admin = state.role !== 'read';
    for (const el of document.querySelectorAll('.admin button, .admin select, .admin input')) el.disabled = !admin;
    drawCharts();
  }

  // ------------------------------------------------------------------ snapshot browser
  function enc(s) { return encodeURIComponent(s); }
  async function openBrowser(plan, target, snapshot, path) {
    const sec = $('browser');
    sec.hidden = false;
    const base = '/v1/backups/' + enc(plan) + '/targets/' + enc(target) + '/snapshots';
    try {
      const list = await api(base);
      const snaps = list.snapshots || [];
      snapshot = snapshot || (snaps[0] && snaps[0].id);
      path = path || '';
      state.browser = { plan, target, snapshot, path };
      let html = '<h2>Snapshots of ' + esc(plan) + ' / ' + esc(target) + ' <button type="button" data-action="close-browser">Close</button></h2>';
      if (!snapshot) { sec.innerHTML = html + '<p class="muted">no snapshots yet</p>'; return; }
      html += '<div class="actions"><label>Snapshot <select id="browser-snapshot">' + snaps.map((s) => '<option value="' + esc(s.id) + '"' + (s.id === snapshot ? ' selected' : '') + '>' + esc(s.short_id + ' · ' + ago(s.time) + ' · ' + num(s.files) + ' files · ' + bytes(s.bytes)) + '</option>').join('') + '</select></label></div>';
      const tree = await api(base + '/' + enc(snapshot) + '/tree?path=' + enc(path));
      const crumbs = [['/', '']].concat(path.split('/').filter(Boolean).map((p, i, all) => [p, all.slice(0, i + 1).join('/')]));
      html += '<p class="crumbs">' + crumbs.map(([n, p]) => '<button type="button" class="link" data-action="browse-dir" data-path="' + esc(p) + '">' + esc(n) + '</button>').join(' / ') + '</p>';
      const admin = state.role !== 'read';
      html += '<div class="table-wrap"><table data-browser-path="' + esc(path) + '"><thead><tr><th>name</th><th class="num">size</th><th>modified</th><th></th></tr></thead><tbody>' +
        tree.entries.map((e) => '<tr data-entry="' + esc(e.path) + '"><td>' + (e.type === 'dir' ? '<button type="button" class="link" data-action="browse-dir" data-path="' + esc(e.path) + '">' + esc(e.name) + '/</button>' : esc(e.name)) + '</td><td class="num">' + (e.type === 'file' ? esc(bytes(e.size)) : '') + '</td><td>' + (e.mtime ? when(e.mtime) : '–') + '</td><td>' +
          (e.type === 'file' ? '<button type="button" data-action="download" data-path="' + esc(e.path) + '"' + (admin ? '' : ' disabled title="needs the admin token"') + '>Restore / download</button>' : '') + '</td></tr>').join('') +
        '</tbody></table></div>';
      sec.innerHTML = html;
    } catch (e) {
      sec.innerHTML = '<h2>Snapshots of ' + esc(plan) + ' / ' + esc(target) + ' <button type="button" data-action="close-browser">Close</button></h2><p class="bad">' + esc(e.message) + '</p>';
    }
  }
  async function download(path) {
    const b = state.browser;
    if (!b) return;
    try {
      const r = await fetch('/v1/backups/' + enc(b.plan) + '/targets/' + enc(b.target) + '/snapshots/' + enc(b.snapshot) + '/restore-file', { method: 'POST', headers: authHeaders({ 'content-type': 'application/json' }), body: JSON.stringify({ path }) });
      if (!r.ok) {
        const e = (await r.json().catch(() => ({}))).error || {};
        throw new Error(e.message || 'HTTP ' + r.status);
      }
      const blob = await r.blob();
      const a = document.createElement('a');
      a.href = URL.createObjectURL(blob);
      a.download = path.split('/').pop() || 'file';
      document.body.appendChild(a);
      a.click();
      setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
      toast('restored ' + path + ' (' + bytes(blob.size) + ')');
    } catch (e) {
      toast('restore of ' + path + ' failed: ' + e.message, true);
    }
  }
  document.addEventListener('change', (ev) => {
    if (ev.target && ev.target.id === 'browser-snapshot' && state.browser) openBrowser(state.browser.plan, state.browser.target, ev.target.value, '');
  });

  document.addEventListener('click', (ev) => {
    const b = ev.target.closest && ev.target.closest('button[data-action]');
    if (!b) return;
    const a = b.getAttribute('data-action');
    if (a === 'browse') { openBrowser(b.getAttribute('data-plan'), b.getAttribute('data-target')); return; }
    if (a === 'browse-dir' && state.browser) { openBrowser(state.browser.plan, state.browser.target, state.browser.snapshot, b.getAttribute('data-path')); return; }
    if (a === 'download') { download(b.getAttribute('data-path')); return; }
    if (a === 'close-browser') { $('browser').hidden = true; state.browser = null; return; }
    if (a === 'plan') {
      const plan = b.getAttribute('data-plan');
      const kind = b.getAttribute('data-kind');
      act(kind + ' ' + plan, '/v1/backups/' + encodeURIComponent(plan) + '/' + kind);
    } else if (a === 'switchover') {
      const db = b.getAttribute('data-db');
      const sel = document.querySelector('select[data-switchover-to="' + CSS.escape(db) + '"]');
      if (!sel || !confirm('Switch ' + db + ' over to ' + sel.value + '? Writes pause for about a second.')) return;
      act('switchover of ' + db, '/v1/db/' + encodeURIComponent(db) + '/switchover', { to: sel.value });
    } else if (a === 'maintenance') {
      const reason = ($('mw-reason') && $('mw-reason').value) || 'from the dashboard';
      act('maintenance window', '/v1/maintenance', { duration: $('mw-duration').value, reason });
    }
  });

  // ------------------------------------------------------------------ health history for the bars
  async function loadTransitions() {
    const out = await api('/v1/events?kind=health.transition&since=65m&limit=1000');
    const m = new Map();
    for (const e of out.events.slice().reverse()) {
      const x = /^(\w+) -> (\w+)/.exec(e.message || '');
      if (!x) continue;
      if (!m.has(e.subject)) m.set(e.subject, []);
      m.get(e.subject).push({ at: e.at, from: x[1], to: x[2] });
    }
    state.transitions = m;
  }

  // ------------------------------------------------------------------ latency from /metrics
  /** p95 latency (ms) per service over the last poll, from the proxy's histogram (like histogram_quantile). */
  async function latency() {
    const r = await fetch('/metrics', { headers: authHeaders(), cache: 'no-store' });
    if (!r.ok) return;
    const text = await r.text();
    const now = new Map();
    const re = /^bulwark_proxy_request_duration_seconds_bucket\{([^}]*)\} ([0-9.e+-]+)$/gm;
    let m;
    while ((m = re.exec(text))) {
      const svc = /service="([^"]*)"/.exec(m[1]);
      const le = /le="([^"]*)"/.exec(m[1]);
      if (!svc || !le) continue;
      const per = now.get(svc[1]) || new Map();
      per.set(le[1], (per.get(le[1]) || 0) + Number(m[2]));
      now.set(svc[1], per);
    }
    for (const [svc, per] of now) {
      const prev = state.buckets.get(svc);
      state.buckets.set(svc, per);
      if (!prev) continue;
      const rows = [...per.entries()].map(([le, v]) => [le === '+Inf' ? Infinity : Number(le), v - (prev.get(le) || 0)]).sort((a, b) => a[0] - b[0]);
      const total = rows.length ? rows[rows.length - 1][1] : 0;
      if (!(total > 0)) { state.p95.set(svc, undefined); continue; }
      const rank = 0.95 * total;
      let lo = 0, loCount = 0, p;
      for (const [le, cum] of rows) {
        if (cum >= rank) {
          p = le === Infinity ? lo : lo + (le - lo) * ((rank - loCount) / Math.max(1e-12, cum - loCount));
          break;
        }
        lo = le; loCount = cum;
      }
      state.p95.set(svc, p === undefined ? undefined : p * 1000);
    }
  }

  // ------------------------------------------------------------------ polling
  let dbTick = 0;
  async function refresh() {
    try {
      const [s] = await Promise.all([api('/v1/status'), latency().catch(() => undefined)]);
      $('err').textContent = '';
      state.status = s;
      $('meta').textContent = 'version ' + s.version + ' · up since ' + new Date(s.started_at).toLocaleString() + ' · updated ' + new Date().toLocaleTimeString();
      if (dbTick % 15 === 0) await loadTransitions().catch(() => undefined);
      if (dbTick++ % 5 === 0 && s.subsystems && s.subsystems.failover && Array.isArray(s.subsystems.failover.databases)) {
        for (const db of s.subsystems.failover.databases) api('/v1/db/' + encodeURIComponent(db.database)).then((info) => state.dbs.set(db.database, info), () => undefined);
      }
      render(s);
    } catch (e) {
      if (e instanceof Unauthorized) { stop(); showLogin(token() ? 'The stored token was refused.' : ''); return; }
      $('err').textContent = 'cannot reach the Bulwark API: ' + e.message;
      $('overall').className = 'pill bad';
      $('overall').textContent = 'API unreachable';
    }
  }

  // ------------------------------------------------------------------ events
  function eventTone(kind, message) {
    if (/(down|fail|failed|violation|breached|blocked|fence|firing|error|lost)/.test(kind) || /->\s*down/.test(message || '')) return 'bad';
    if (/(ejected|warning|maintenance|capped)/.test(kind)) return 'warn';
    if (/(up|ok|resolved|passed|rejoin|sent|start)/.test(kind) || /->\s*up/.test(message || '')) return 'ok';
    return '';
  }
  function addEvent(e, fresh) {
    const li = document.createElement('li');
    const t = eventTone(e.kind, e.message);
    li.className = (t ? 'ev-' + t : '') + (fresh ? ' fresh' : '');
    li.setAttribute('data-kind', e.kind);
    if (fresh && e.kind === 'health.transition') {
      const x = /^(\w+) -> (\w+)/.exec(e.message || '');
      if (x) {
        if (!state.transitions.has(e.subject)) state.transitions.set(e.subject, []);
        state.transitions.get(e.subject).push({ at: e.at, from: x[1], to: x[2] });
      }
    }
    li.setAttribute('data-subject', e.subject);
    li.innerHTML = '<span>' + when(e.at) + '</span><span class="kind">' + esc(e.kind) + ' <span class="muted">' + esc(e.subject) + '</span></span><span class="msg">' + esc(e.message) + '</span>';
    const list = $('timeline');
    list.insertBefore(li, list.firstChild);
    while (list.children.length > 200) list.removeChild(list.lastChild);
    if (e.id > state.lastEventId) state.lastEventId = e.id;
  }
  async function loadEvents() {
    const out = await api('/v1/events?limit=100');
    $('timeline').innerHTML = '';
    for (const e of out.events.slice().reverse()) addEvent(e, false);
  }
  async function streamEvents() {
    const ctl = new AbortController();
    state.stream = ctl;
    for (;;) {
      if (ctl.signal.aborted) return;
      try {
        const r = await fetch('/v1/events/stream' + (state.lastEventId ? '?after=' + state.lastEventId : ''), { headers: authHeaders({ accept: 'text/event-stream' }), signal: ctl.signal, cache: 'no-store' });
        if (r.status === 401) { stop(); showLogin('The stored token was refused.'); return; }
        if (!r.ok || !r.body) throw new Error('HTTP ' + r.status);
        $('stream-state').textContent = '· live';
        const reader = r.body.getReader();
        const dec = new TextDecoder();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const chunk = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const data = chunk.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
            if (data) { try { addEvent(JSON.parse(data), true); } catch { /* not an event */ } }
          }
        }
      } catch {
        if (ctl.signal.aborted) return;
      }
      $('stream-state').textContent = '· reconnecting';
      await new Promise((r) => setTimeout(r, 2000));
    }
  }

  // ------------------------------------------------------------------ lifecycle
  async function whoami() {
    // A POST the read-only token may not make tells the two apart without changing anything.
    if (!token()) { state.role = 'admin'; $('who').textContent = ''; $('signout').hidden = true; return; }
    $('signout').hidden = false;
    const r = await fetch('/v1/whoami', { headers: authHeaders(), cache: 'no-store' }).catch(() => undefined);
    const b = r && r.ok ? await r.json().catch(() => ({})) : {};
    state.role = b.role || 'admin';
    $('who').textContent = state.role === 'read' ? 'read-only token: actions disabled' : 'admin token';
  }
  function stop() {
    if (state.polling) clearInterval(state.polling);
    state.polling = null;
    if (state.stream) state.stream.abort();
    state.stream = null;
  }
  async function start() {
    stop();
    await whoami();
    await refresh();
    if ($('login').hidden === false) return;
    state.polling = setInterval(refresh, POLL_MS);
    loadEvents().then(streamEvents, (e) => { if (e instanceof Unauthorized) showLogin(); });
  }
  window.addEventListener('resize', () => drawCharts());
  start();
})();
