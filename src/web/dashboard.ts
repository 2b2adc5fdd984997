// Owns the dashboard page: one self-contained HTML document (no build step, no external assets)
// that polls GET /v1/status and renders every subsystem's section. Subsystems appear as they
// report status; a subsystem with a dedicated renderer gets a table, others a JSON view.

export function dashboardHtml(): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Bulwark</title>
<style>
  :root { color-scheme: light dark; --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; --muted: #6e7781; }
  body { font: 14px/1.45 system-ui, sans-serif; margin: 0; padding: 1.5rem; max-width: 1200px; }
  h1 { font-size: 1.4rem; margin: 0 0 .25rem; }
  h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; border-bottom: 1px solid #8884; padding-bottom: .25rem; }
  table { border-collapse: collapse; width: 100%; margin-bottom: .5rem; }
  th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #8883; }
  th { color: var(--muted); font-weight: 600; }
  .up, .ok, .primary, .pass { color: var(--ok); font-weight: 600; }
  .down, .bad, .fail { color: var(--bad); font-weight: 600; }
  .unknown, .warn { color: var(--warn); font-weight: 600; }
  .muted { color: var(--muted); }
  pre { background: #8881; padding: .5rem; overflow: auto; }
  #err { color: var(--bad); }
</style>
</head>
<body>
<h1>Bulwark</h1>
<div class="muted" id="meta">loading…</div>
<div id="err" role="alert"></div>
<main id="main"></main>
<script>
const main = document.getElementById('main');
const meta = document.getElementById('meta');
const errBox = document.getElementById('err');
function esc(s) { return String(s).replace(/[&<>"']/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c])); }
function cell(v) { if (v === null || v === undefined) return '<td class="muted">–</td>'; const s = String(v); return '<td class="' + esc(s.split(' ')[0]) + '">' + esc(s) + '</td>'; }
function table(rows, cols) {
  if (!rows || rows.length === 0) return '<p class="muted">none</p>';
  cols = cols || Object.keys(rows[0]).filter(k => typeof rows[0][k] !== 'object' || rows[0][k] === null);
  return '<table><thead><tr>' + cols.map(c => '<th>' + esc(c) + '</th>').join('') + '</tr></thead><tbody>' +
    rows.map(r => '<tr>' + cols.map(c => cell(r[c])).join('') + '</tr>').join('') + '</tbody></table>';
}
function section(name, data) {
  let html = '<section data-subsystem="' + esc(name) + '"><h2>' + esc(name) + '</h2>';
  if (data && Array.isArray(data.rows)) html += table(data.rows, data.columns);
  else if (data && typeof data === 'object') {
    for (const [k, v] of Object.entries(data)) {
      if (Array.isArray(v) && v.length && typeof v[0] === 'object') html += '<h3>' + esc(k) + '</h3>' + table(v);
    }
    html += '<details><summary class="muted">raw</summary><pre>' + esc(JSON.stringify(data, null, 2)) + '</pre></details>';
  }
  return html + '</section>';
}
function sections(subsystems) {
  return Object.entries(subsystems || {}).map(([k, v]) => section(k, v)).join('') || '<p class="muted">no subsystems configured</p>';
}
// Cluster mode: the members first (up/gone in etcd, API reachable), then every instance's sections.
function render(s) {
  const c = s.cluster;
  if (!c || c.name === null) return sections(s.subsystems);
  const rows = c.members.map(m => ({ instance: m.name + (m.self ? ' (this)' : ''), api: m.api, zone: m.zone, member: m.state, api_reachable: m.reachable ? 'up' : 'down unreachable', version: m.version }));
  let html = '<section data-cluster="' + esc(c.name) + '"><h2>cluster ' + esc(c.name) + '</h2>' + table(rows, ['instance', 'api', 'zone', 'member', 'api_reachable', 'version']) + '</section>';
  for (const m of c.members) {
    html += '<div data-instance="' + esc(m.name) + '"><h2>instance ' + esc(m.name) + (m.zone ? ' · zone ' + esc(m.zone) : '') + '</h2>';
    if (m.self) html += sections(s.subsystems);
    else {
      const v = c.instances[m.name];
      html += v && v.state === 'up' && v.status ? sections(v.status.subsystems) : '<p class="bad">unreachable: ' + esc((v && v.error && v.error.message) || 'no answer') + '</p>';
    }
    html += '</div>';
  }
  return html;
}
async function refresh() {
  try {
    const headers = {};
    const token = localStorage.getItem('bulwark-token');
    if (token) headers.authorization = 'Bearer ' + token;
    const r = await fetch('/v1/status', { headers });
    if (r.status === 401) {
      const t = prompt('API token');
      if (t) localStorage.setItem('bulwark-token', t);
      return;
    }
    const s = await r.json();
    errBox.textContent = '';
    meta.textContent = 'version ' + s.version + ' · up since ' + new Date(s.started_at).toLocaleString() + ' · updated ' + new Date().toLocaleTimeString();
    main.innerHTML = render(s);
  } catch (e) {
    errBox.textContent = 'cannot reach the Bulwark API: ' + e.message;
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
`;
}
