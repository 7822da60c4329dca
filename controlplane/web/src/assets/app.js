// Sensor console: a small hash-routed page over /api/v1. Every value that can come from an
// attacker is inserted as text (never innerHTML), and the bearer token stays in sessionStorage
// and in Authorization headers; the live stream uses a single-use ticket.
'use strict';
(function () {
  const API = '/api/v1';
  const main = document.getElementById('main');
  const nav = document.getElementById('nav');
  let token = sessionStorage.getItem('token');
  let me = null;
  let es = null; // the open EventSource, closed on page change
  let timers = [];

  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'on') { for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn); }
      else if (k === 'class') el.className = v;
      else if (v !== null && v !== undefined && v !== false) el.setAttribute(k, v === true ? '' : v);
    }
    for (const kid of kids.flat()) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return el;
  }
  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }
  function fmtTime(ns) { if (!ns) return ''; const d = new Date(Number(ns) / 1e6); return d.toISOString().replace('T', ' ').slice(0, 19); }
  function num(n) { return (n ?? 0).toLocaleString(); }

  async function api(path, opts = {}) {
    const headers = { 'Content-Type': 'application/json' };
    if (token) headers.Authorization = 'Bearer ' + token;
    const r = await fetch(API + path, { method: opts.method || 'GET', headers, body: opts.body ? JSON.stringify(opts.body) : undefined });
    let data = null;
    const text = await r.text();
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
    if (r.status === 401 && path !== '/auth/login' && path !== '/auth/change-password') { logoutLocal(); throw new Error('session expired'); }
    if (r.status === 403 && data && data.error && data.error.code === 'must_change_password') { route('#/change-password'); throw new Error(data.error.message); }
    if (!r.ok) throw new Error(data && data.error ? data.error.message : ('HTTP ' + r.status));
    return data;
  }

  function logoutLocal() { token = null; me = null; sessionStorage.removeItem('token'); stopLive(); location.hash = '#/login'; render(); }
  function stopLive() { if (es) { es.close(); es = null; } timers.forEach(clearInterval); timers = []; }
  function route(hash) { if (location.hash !== hash) location.hash = hash; else render(); }

  // ---------------------------------------------------------------- login / password
  function loginPage() {
    nav.hidden = true;
    const err = h('div', { class: 'err', id: 'login-error' });
    const user = h('input', { id: 'username', autocomplete: 'username', required: true });
    const pass = h('input', { id: 'password', type: 'password', autocomplete: 'current-password', required: true });
    const form = h('form', { class: 'login', on: { submit: async (e) => {
      e.preventDefault(); err.textContent = '';
      try {
        const r = await api('/auth/login', { method: 'POST', body: { username: user.value, password: pass.value } });
        token = r.access_token; sessionStorage.setItem('token', token);
        sessionStorage.setItem('oldpw', r.must_change_password ? pass.value : '');
        route(r.must_change_password ? '#/change-password' : '#/overview');
      } catch (x) { err.textContent = x.message; }
    } } }, h('h1', {}, 'Sensor console'), h('label', { for: 'username' }, 'Username'), user,
      h('label', { for: 'password' }, 'Password'), pass, h('button', { type: 'submit', id: 'login-submit' }, 'Sign in'), err);
    clear(main).append(h('div', { class: 'center' }, form));
    user.focus();
  }

  function changePasswordPage() {
    nav.hidden = true;
    const err = h('div', { class: 'err', id: 'pw-error' });
    const old = h('input', { id: 'old-password', type: 'password', autocomplete: 'current-password' });
    old.value = sessionStorage.getItem('oldpw') || '';
    const p1 = h('input', { id: 'new-password', type: 'password', autocomplete: 'new-password' });
    const p2 = h('input', { id: 'new-password2', type: 'password', autocomplete: 'new-password' });
    const form = h('form', { class: 'login', on: { submit: async (e) => {
      e.preventDefault(); err.textContent = '';
      if (p1.value !== p2.value) { err.textContent = 'The two new passwords differ.'; return; }
      try {
        await api('/auth/change-password', { method: 'POST', body: { old_password: old.value, new_password: p1.value } });
        sessionStorage.removeItem('oldpw'); me = null; route('#/overview');
      } catch (x) { err.textContent = x.message; }
    } } }, h('h1', {}, 'Change password'), h('p', { class: 'muted' }, 'A new password is required before the console opens (at least 8 characters).'),
      h('label', { for: 'old-password' }, 'Current password'), old, h('label', { for: 'new-password' }, 'New password'), p1,
      h('label', { for: 'new-password2' }, 'Repeat new password'), p2, h('button', { type: 'submit', id: 'pw-submit' }, 'Change password'), err);
    clear(main).append(h('div', { class: 'center' }, form));
  }

  // ---------------------------------------------------------------- shared pieces
  function fieldPills(fields) {
    return Object.entries(fields || {}).slice(0, 12).map(([k, v]) => h('span', { class: 'pill' }, k + '=' + String(v).slice(0, 120)));
  }
  function eventRow(e, isNew) {
    return h('tr', { class: isNew ? 'new' : '' },
      h('td', { class: 'mono' }, fmtTime(e.ts_ns)), h('td', {}, e.decky), h('td', {}, e.service),
      h('td', { class: 'sev-' + e.severity }, e.event_type), h('td', { class: 'mono' }, e.attacker_ip || ''),
      h('td', {}, fieldPills(e.fields)));
  }
  function eventTable(id) {
    const body = h('tbody', { id });
    return [h('table', {}, h('thead', {}, h('tr', {}, ['Time', 'Decky', 'Service', 'Event', 'Source', 'Fields'].map((t) => h('th', {}, t)))), body), body];
  }
  function chart(buckets) {
    const W = 800, H = 140, pad = 18;
    const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    svg.setAttribute('viewBox', `0 0 ${W} ${H}`); svg.setAttribute('class', 'chart'); svg.setAttribute('preserveAspectRatio', 'none');
    const max = Math.max(1, ...buckets.map((b) => b.count));
    const bw = (W - pad) / Math.max(1, buckets.length);
    buckets.forEach((b, i) => {
      const r = document.createElementNS(svg.namespaceURI, 'rect');
      const bh = (H - pad) * b.count / max;
      r.setAttribute('x', pad + i * bw + 1); r.setAttribute('width', Math.max(1, bw - 2));
      r.setAttribute('y', H - pad - bh); r.setAttribute('height', bh);
      const t = document.createElementNS(svg.namespaceURI, 'title'); t.textContent = `${b.time}: ${b.count}`; r.append(t);
      svg.append(r);
    });
    const lbl = document.createElementNS(svg.namespaceURI, 'text');
    lbl.setAttribute('x', 2); lbl.setAttribute('y', 10); lbl.textContent = 'max ' + max; svg.append(lbl);
    if (!buckets.length) { const e = document.createElementNS(svg.namespaceURI, 'text'); e.setAttribute('x', W / 2 - 30); e.setAttribute('y', H / 2); e.textContent = 'no events'; svg.append(e); }
    return svg;
  }
  async function openStream(search, onLogs, onStats, onState) {
    const t = await api('/auth/ticket', { method: 'POST' });
    const q = new URLSearchParams({ ticket: t.ticket });
    if (search) q.set('search', search);
    const last = sessionStorage.getItem('lastEventId');
    if (last) q.set('lastEventId', last);
    es = new EventSource(API + '/stream?' + q.toString());
    es.addEventListener('open', () => onState && onState('live'));
    es.addEventListener('logs', (m) => { if (m.lastEventId) sessionStorage.setItem('lastEventId', m.lastEventId); onLogs(JSON.parse(m.data)); });
    es.addEventListener('stats', (m) => onStats && onStats(JSON.parse(m.data).data));
    es.addEventListener('lagged', () => { onState && onState('lagged'); });
    es.addEventListener('error', () => {
      // Tickets are single use: on a drop, fetch a new one and reconnect from the last id.
      onState && onState('reconnecting'); if (es) es.close(); es = null;
      setTimeout(() => { if (!es && token) openStream(search, onLogs, onStats, onState).catch(() => {}); }, 2000);
    });
  }
  function pager(total, limit, offset, go) {
    return h('div', { class: 'pager' }, h('button', { class: 'ghost', disabled: offset <= 0, on: { click: () => go(Math.max(0, offset - limit)) } }, '‹ Prev'),
      `${total ? offset + 1 : 0}–${Math.min(total, offset + limit)} of ${num(total)}`,
      h('button', { class: 'ghost', disabled: offset + limit >= total, on: { click: () => go(offset + limit) } }, 'Next ›'));
  }

  // ---------------------------------------------------------------- pages
  async function overview() {
    const cards = { total_logs: 'Total interactions', unique_attackers: 'Unique attackers', deckies_seen: 'Deckies hit', bounties: 'Bounties' };
    const vals = {};
    const cardEls = Object.entries(cards).map(([k, label]) => { vals[k] = h('div', { class: 'v', id: 'stat-' + k }, '–'); return h('div', { class: 'card' }, h('div', { class: 'k' }, label), vals[k]); });
    const chartBox = h('div', { class: 'panel', id: 'overview-chart' });
    const [table, body] = eventTable('live-feed');
    const badge = h('span', { class: 'badge live', id: 'live-state' }, 'connecting');
    clear(main).append(h('h1', {}, 'Overview'), h('div', { class: 'cards' }, cardEls), h('h2', {}, 'Events over the last 24 h'), chartBox,
      h('h2', {}, 'Live interaction log ', badge), h('div', { class: 'panel' }, table));
    const setStats = (s) => { for (const k of Object.keys(cards)) vals[k].textContent = num(s[k] ?? s.total_events); };
    const st = await api('/stats'); setStats(st);
    const since = Math.floor(Date.now() / 1000) - 86400;
    const drawChart = async () => clear(chartBox).append(chart(await api(`/logs/histogram?interval_minutes=30&start_time=${since}`)));
    await drawChart();
    const recent = await api('/logs?limit=50');
    recent.data.forEach((e) => body.append(eventRow(e, false)));
    sessionStorage.removeItem('lastEventId');
    if (recent.data.length) sessionStorage.setItem('lastEventId', recent.data[0].id);
    await openStream('', (rows) => {
      rows.forEach((e) => body.prepend(eventRow(e, true)));
      while (body.children.length > 200) body.lastChild.remove();
    }, (s) => { vals.total_logs.textContent = num(s.total_events); vals.unique_attackers.textContent = num(s.unique_attackers); vals.deckies_seen.textContent = num(s.deckies_seen); vals.bounties.textContent = num(s.bounties); },
    (state) => { badge.textContent = state; badge.className = 'badge ' + (state === 'live' ? 'live' : 'paused'); });
    timers.push(setInterval(() => drawChart().catch(() => {}), 30000));
  }

  async function logsPage(params) {
    const search = h('input', { class: 'grow', id: 'log-search', placeholder: 'search: decky:web01 service:ssh attacker:10.0.0.5 user=root "free text"', value: params.get('q') || '' });
    const range = h('select', { id: 'log-range' }, [['900', 'Last 15 min'], ['3600', 'Last hour'], ['86400', 'Last 24 h'], ['', 'All time']].map(([v, t]) => h('option', { value: v, selected: (params.get('range') ?? '3600') === v }, t)));
    const mode = h('button', { class: 'ghost', id: 'log-mode' }, params.get('live') === '1' ? 'LIVE' : 'PAUSED');
    const err = h('div', { class: 'err' });
    const chartBox = h('div', { class: 'panel' });
    const [table, body] = eventTable('log-rows');
    const pagerBox = h('div');
    const apply = (extra) => { const p = new URLSearchParams({ q: search.value, range: range.value, live: params.get('live') || '0', ...extra }); location.hash = '#/logs?' + p.toString(); };
    const form = h('form', { class: 'row', on: { submit: (e) => { e.preventDefault(); apply({ offset: 0 }); } } }, search, range, h('button', { type: 'submit' }, 'Search'), mode);
    mode.addEventListener('click', (e) => { e.preventDefault(); apply({ live: params.get('live') === '1' ? '0' : '1' }); });
    range.addEventListener('change', () => apply({ offset: 0 }));
    clear(main).append(h('h1', {}, 'Live logs'), form, err, chartBox, h('h2', {}, 'Events'), h('div', { class: 'panel' }, table, pagerBox));
    const q = new URLSearchParams({ search: search.value, limit: 100, offset: params.get('offset') || 0 });
    if (range.value) q.set('start_time', Math.floor(Date.now() / 1000) - Number(range.value));
    try {
      const interval = range.value === '900' ? 1 : range.value === '3600' ? 5 : 60;
      const hq = new URLSearchParams({ search: search.value, interval_minutes: interval }); if (q.get('start_time')) hq.set('start_time', q.get('start_time'));
      chartBox.append(chart(await api('/logs/histogram?' + hq.toString())));
      const r = await api('/logs?' + q.toString());
      r.data.forEach((e) => body.append(eventRow(e, false)));
      pagerBox.append(pager(r.total, r.limit, r.offset, (o) => apply({ offset: o })));
      if (params.get('live') === '1') {
        sessionStorage.removeItem('lastEventId');
        await openStream(search.value, (rows) => { rows.forEach((e) => body.prepend(eventRow(e, true))); while (body.children.length > 500) body.lastChild.remove(); });
      }
    } catch (x) { err.textContent = x.message; }
  }

  async function bountyPage(params) {
    const type = h('select', { id: 'bounty-type' }, [['', 'All types'], ['credential', 'Credentials'], ['fingerprint', 'Fingerprints'], ['artifact', 'Artifacts']].map(([v, t]) => h('option', { value: v, selected: (params.get('type') || '') === v }, t)));
    const search = h('input', { placeholder: 'attacker IP', value: params.get('ip') || '' });
    const go = (o) => { location.hash = '#/bounty?' + new URLSearchParams({ type: type.value, ip: search.value, offset: o }).toString(); };
    const body = h('tbody', { id: 'bounty-rows' });
    const pagerBox = h('div');
    clear(main).append(h('h1', {}, 'Bounty vault'), h('form', { class: 'row', on: { submit: (e) => { e.preventDefault(); go(0); } } }, type, search, h('button', { type: 'submit' }, 'Filter')),
      h('div', { class: 'panel' }, h('table', {}, h('thead', {}, h('tr', {}, ['Time', 'Type', 'Attacker', 'Decky', 'Service', 'Payload'].map((t) => h('th', {}, t)))), body), pagerBox));
    const q = new URLSearchParams({ limit: 50, offset: params.get('offset') || 0 });
    if (type.value) q.set('bounty_type', type.value); if (search.value) q.set('search', search.value);
    const r = await api('/bounty?' + q.toString());
    r.data.forEach((b) => body.append(h('tr', {}, h('td', { class: 'mono' }, fmtTime(b.ts_ns)), h('td', {}, h('span', { class: 'pill' }, b.bounty_type)), h('td', { class: 'mono' }, b.attacker_ip), h('td', {}, b.decky), h('td', {}, b.service),
      h('td', {}, typeof b.payload === 'object' && b.payload ? fieldPills(b.payload) : String(b.payload)))));
    if (!r.data.length) body.append(h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'Nothing captured yet.')));
    pagerBox.append(pager(r.total, r.limit, r.offset, go));
  }

  async function attackersPage(params) {
    const search = h('input', { id: 'attacker-search', placeholder: 'IP contains…', value: params.get('q') || '' });
    const service = h('input', { placeholder: 'service', value: params.get('service') || '' });
    const sort = h('select', {}, [['recent', 'Most recent'], ['active', 'Most active'], ['score', 'Highest score']].map(([v, t]) => h('option', { value: v, selected: (params.get('sort') || 'recent') === v }, t)));
    const go = (o) => { location.hash = '#/attackers?' + new URLSearchParams({ q: search.value, service: service.value, sort: sort.value, offset: o }).toString(); };
    const body = h('tbody', { id: 'attacker-rows' });
    const pagerBox = h('div');
    clear(main).append(h('h1', {}, 'Attacker profiles'), h('form', { class: 'row', on: { submit: (e) => { e.preventDefault(); go(0); } } }, search, service, sort, h('button', { type: 'submit' }, 'Apply')),
      h('div', { class: 'panel' }, h('table', {}, h('thead', {}, h('tr', {}, ['Address', 'Last seen', 'Events', 'Services', 'Deckies', 'Credentials', 'Score'].map((t) => h('th', {}, t)))), body), pagerBox));
    const q = new URLSearchParams({ limit: 50, offset: params.get('offset') || 0, sort_by: sort.value });
    if (search.value) q.set('search', search.value); if (service.value) q.set('service', service.value);
    const r = await api('/attackers?' + q.toString());
    r.data.forEach((a) => body.append(h('tr', { class: 'click', on: { click: () => route('#/attackers/' + a.uuid) } },
      h('td', { class: 'mono' }, a.ip), h('td', { class: 'mono' }, fmtTime(a.last_seen_ns)), h('td', {}, num(a.event_count)),
      h('td', {}, (Array.isArray(a.services) ? a.services : []).map((s) => h('span', { class: 'pill' }, s))), h('td', {}, num(a.decky_count)), h('td', {}, num(a.credential_count)), h('td', {}, num(a.score)))));
    if (!r.data.length) body.append(h('tr', {}, h('td', { colspan: 7, class: 'muted' }, 'No attackers profiled yet.')));
    pagerBox.append(pager(r.total, r.limit, r.offset, go));
  }

  // The pcap route needs the bearer token, so a plain link cannot fetch it: fetch, then save.
  async function downloadPcap(uuid, ip) {
    const r = await fetch(API + '/attackers/' + encodeURIComponent(uuid) + '/pcap', { headers: { Authorization: 'Bearer ' + token } });
    if (!r.ok) throw new Error('pcap download failed: HTTP ' + r.status);
    const url = URL.createObjectURL(await r.blob());
    const link = h('a', { href: url, download: 'attacker-' + String(ip).replace(/:/g, '_') + '.pcapng' });
    document.body.append(link); link.click(); link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  async function attackerPage(uuid) {
    const a = await api('/attackers/' + encodeURIComponent(uuid));
    const cmds = await api('/attackers/' + encodeURIComponent(uuid) + '/commands?limit=200');
    const sessions = await api('/attackers/' + encodeURIComponent(uuid) + '/sessions');
    const stat = (k, v) => h('div', { class: 'card' }, h('div', { class: 'k' }, k), h('div', { class: 'v' }, num(v)));
    const [tl, tlBody] = eventTable('timeline');
    a.timeline.forEach((e) => tlBody.append(eventRow(e, false)));
    const cmdBody = h('tbody', { id: 'commands' });
    cmds.data.forEach((c) => cmdBody.append(h('tr', {}, h('td', { class: 'mono' }, c.ts_ns ? fmtTime(c.ts_ns) : (c.timestamp || '')), h('td', {}, c.service || ''), h('td', {}, c.decky || ''), h('td', {}, h('pre', {}, c.command ?? c.cmd ?? JSON.stringify(c))))));
    if (!cmds.data.length) cmdBody.append(h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'No commands recorded.')));
    const sessBody = h('tbody', { id: 'sessions' });
    sessions.data.forEach((x) => sessBody.append(h('tr', {}, h('td', { class: 'mono' }, fmtTime(x.start_ns)), h('td', { class: 'mono' }, x.closed ? fmtTime(x.end_ns) : 'open'),
      h('td', {}, x.service), h('td', {}, x.decky), h('td', {}, num(x.event_count)), h('td', {}, x.auth_success ? 'success' : ''),
      h('td', {}, (Array.isArray(x.commands) ? x.commands : []).map((c) => h('pre', {}, typeof c === 'string' ? c : (c.command ?? c.cmd ?? JSON.stringify(c))))))));
    if (!sessions.data.length) sessBody.append(h('tr', {}, h('td', { colspan: 7, class: 'muted' }, 'No sessions yet: they appear once the profiler has run.')));
    const creds = a.bounties.filter((b) => b.bounty_type === 'credential');
    const fps = a.bounties.filter((b) => b.bounty_type === 'fingerprint');
    clear(main).append(h('h1', {}, 'Attacker ', h('span', { class: 'mono' }, a.ip)),
      h('p', { class: 'muted' }, `First seen ${fmtTime(a.first_seen_ns)} · last seen ${fmtTime(a.last_seen_ns)} · `,
        h('a', { href: '#', id: 'pcap-download', on: { click: (ev) => { ev.preventDefault(); const t = ev.currentTarget; downloadPcap(uuid, a.ip).catch((x) => { t.textContent = x.message; }); } } }, 'pcap download')),
      h('div', { class: 'cards' }, stat('Events', a.event_count), stat('Bounties', a.bounty_count), stat('Credentials', a.credential_count), stat('Services', a.service_count), stat('Deckies', a.decky_count), stat('Score', a.score)),
      h('h2', {}, 'Traversal path'), h('div', { class: 'panel mono' }, Array.isArray(a.traversal_path) && a.traversal_path.length ? a.traversal_path.join('  →  ') : 'single decky'),
      h('h2', {}, 'Sessions'), h('div', { class: 'panel' }, h('table', {}, h('thead', {}, h('tr', {}, ['Start', 'End', 'Service', 'Decky', 'Events', 'Auth', 'Commands'].map((t) => h('th', {}, t)))), sessBody)),
      h('h2', {}, 'Commands'), h('div', { class: 'panel' }, h('table', {}, h('thead', {}, h('tr', {}, ['Time', 'Service', 'Decky', 'Command'].map((t) => h('th', {}, t)))), cmdBody)),
      h('div', { class: 'grid2' },
        h('div', {}, h('h2', {}, 'Credentials'), h('div', { class: 'panel' }, creds.length ? creds.map((b) => h('div', {}, fieldPills(b.payload))) : h('span', { class: 'muted' }, 'none'))),
        h('div', {}, h('h2', {}, 'Fingerprints'), h('div', { class: 'panel' }, fps.length ? fps.map((b) => h('div', {}, fieldPills(b.payload))) : h('span', { class: 'muted' }, 'none')))),
      h('h2', {}, 'Timeline'), h('div', { class: 'panel' }, tl));
  }

  async function fleetPage() {
    const d = await api('/deckies');
    const grid = h('div', { class: 'cards' });
    // Minutes back into the API's syntax, in the largest unit that divides them exactly.
    const asInterval = (m) => {
      if (m === null || m === undefined) return '';
      if (m === 0) return 'never';
      for (const [unit, size] of [['y', 525600], ['M', 43200], ['d', 1440], ['m', 1]]) {
        if (m % size === 0 && m / size <= 999999) return `${m / size}${unit}`;
      }
      return `${m}m`;
    };
    const every = (m) => m === null || m === undefined ? 'global interval' : (m === 0 ? 'never' : `every ${m} min`);
    d.forEach((x) => {
      const note = h('div', { class: 'muted' });
      const controls = [];
      if (me.role === 'admin' && x.mutable) {
        const ivl = h('input', { class: 'ivl', placeholder: '30m, 1d, never or empty', value: asInterval(x.mutate_interval_minutes) });
        const act = (fn, ok) => async () => { note.className = 'muted'; note.textContent = '…'; try { const r = await fn(); note.className = 'ok'; note.textContent = ok(r); setTimeout(fleetPage, 1500); } catch (e) { note.className = 'err'; note.textContent = e.message; } };
        controls.push(h('div', { class: 'row' },
          h('button', { class: 'ghost mutate', on: { click: act(() => api(`/deckies/${x.name}/mutate`, { method: 'POST' }), (r) => r.changed ? `Now ${r.after.join(', ')}` : (r.note || 'Unchanged')) } }, 'Mutate now'),
          ivl, h('button', { class: 'ghost', on: { click: act(() => api(`/deckies/${x.name}/mutate-interval`, { method: 'PUT', body: { mutate_interval: ivl.value.trim() || null } }), () => 'Interval saved') } }, 'Set interval')));
      }
      grid.append(h('div', { class: 'card decky', 'data-name': x.name }, h('div', { class: 'k' }, x.state), h('div', { class: 'v' }, x.name),
        h('div', { class: 'mono muted' }, [x.ip, x.hostname].filter(Boolean).join('  ·  ')),
        h('div', {}, (x.services || []).map((s) => h('span', { class: 'pill' }, s))),
        x.mutable ? h('div', { class: 'muted' }, `Mutates ${every(x.mutate_interval_minutes)}` + (x.mutations ? ` · ${x.mutations} so far, last ${fmtTime(x.last_mutated_ns)}` : '')) : null,
        x.last_error ? h('div', { class: 'err' }, x.last_error) : null, ...controls, note));
    });
    if (!d.length) grid.append(h('div', { class: 'muted' }, 'No deckies deployed.'));
    const ini = h('textarea', { id: 'ini', rows: 10, class: 'grow mono', placeholder: '[decky-01]\nservices = ssh, http' });
    const out = h('div', { class: 'err', id: 'deploy-error' });
    const deployBox = me.role === 'admin' ? [h('h2', {}, 'Deploy via INI'), h('div', { class: 'panel' }, h('div', { class: 'row' }, ini), h('button', { id: 'deploy', on: { click: async () => {
      out.textContent = ''; try { await api('/deckies/deploy', { method: 'POST', body: { ini_content: ini.value } }); out.className = 'ok'; out.textContent = 'Deployed.'; } catch (x) { out.className = 'err'; out.textContent = x.message; }
    } } }, 'Deploy'), out)] : [];
    clear(main).append(h('h1', {}, 'Decoy fleet'), grid, ...deployBox);
  }

  async function configPage() {
    const c = await api('/config');
    const err = h('div', { class: 'err', id: 'config-error' });
    const wrap = (fn) => async () => { err.textContent = ''; try { await fn(); render(); } catch (x) { err.textContent = x.message; } };
    const items = [h('h1', {}, 'Configuration'), h('div', { class: 'cards' },
      h('div', { class: 'card' }, h('div', { class: 'k' }, 'Your role'), h('div', { class: 'v' }, c.role)),
      h('div', { class: 'card' }, h('div', { class: 'k' }, 'Deployment limit'), h('div', { class: 'v' }, c.deployment_limit)),
      h('div', { class: 'card' }, h('div', { class: 'k' }, 'Global mutation interval'), h('div', { class: 'v' }, c.global_mutation_interval)))];
    if (c.role === 'admin') {
      const lim = h('input', { type: 'number', min: 1, max: 500, value: c.deployment_limit });
      const ivl = h('input', { value: c.global_mutation_interval });
      items.push(h('h2', {}, 'Limits'), h('div', { class: 'row' }, 'Deployment limit', lim, h('button', { on: { click: wrap(() => api('/config/deployment-limit', { method: 'PUT', body: { deployment_limit: Number(lim.value) } })) } }, 'Save'),
        'Mutation interval', ivl, h('button', { on: { click: wrap(() => api('/config/global-mutation-interval', { method: 'PUT', body: { global_mutation_interval: ivl.value } })) } }, 'Save')));
      const body = h('tbody', { id: 'users' });
      c.users.forEach((u) => body.append(h('tr', {}, h('td', {}, u.username), h('td', {}, u.role), h('td', {}, u.must_change_password ? 'must change' : 'ok'),
        h('td', {}, u.uuid === me.uuid ? h('span', { class: 'muted' }, 'you') : [
          h('button', { class: 'ghost', on: { click: wrap(() => api(`/config/users/${u.uuid}/role`, { method: 'PUT', body: { role: u.role === 'admin' ? 'viewer' : 'admin' } })) } }, u.role === 'admin' ? 'Make viewer' : 'Make admin'), ' ',
          h('button', { class: 'ghost', on: { click: wrap(async () => { const p = prompt('Temporary password for ' + u.username + ' (8+ chars)'); if (p) await api(`/config/users/${u.uuid}/reset-password`, { method: 'PUT', body: { new_password: p } }); }) } }, 'Reset password'), ' ',
          h('button', { class: 'danger', on: { click: wrap(async () => { if (confirm('Delete ' + u.username + '?')) await api(`/config/users/${u.uuid}`, { method: 'DELETE' }); }) } }, 'Delete')]))));
      const nu = h('input', { id: 'new-user', placeholder: 'username' }), np = h('input', { id: 'new-user-password', type: 'password', placeholder: 'temporary password' });
      const nr = h('select', {}, h('option', { value: 'viewer' }, 'viewer'), h('option', { value: 'admin' }, 'admin'));
      items.push(h('h2', {}, 'Users'), h('div', { class: 'panel' }, h('table', {}, h('thead', {}, h('tr', {}, ['User', 'Role', 'Password', ''].map((t) => h('th', {}, t)))), body)),
        h('h2', {}, 'Add user'), h('div', { class: 'row' }, nu, np, nr, h('button', { id: 'add-user', on: { click: wrap(() => api('/config/users', { method: 'POST', body: { username: nu.value, password: np.value, role: nr.value } })) } }, 'Create')));
    }
    items.push(err);
    clear(main).append(...items);
  }

  // ---------------------------------------------------------------- router
  async function render() {
    stopLive();
    const [path, qs] = (location.hash || '#/overview').slice(1).split('?');
    const params = new URLSearchParams(qs || '');
    if (!token) { if (path !== '/login') { location.hash = '#/login'; return; } return loginPage(); }
    if (path === '/login') { location.hash = '#/overview'; return; }
    if (path === '/change-password') return changePasswordPage();
    try {
      if (!me) me = await api('/auth/me');
      if (me.must_change_password) { location.hash = '#/change-password'; return; }
      nav.hidden = false;
      document.getElementById('whoami').textContent = me.username + ' · ' + me.role;
      const page = path.split('/')[1] || 'overview';
      for (const a of nav.querySelectorAll('a')) a.classList.toggle('active', a.dataset.page === page);
      clear(main).append(h('div', { class: 'muted' }, 'Loading…'));
      if (path.startsWith('/attackers/')) await attackerPage(path.slice('/attackers/'.length));
      else if (page === 'logs') await logsPage(params);
      else if (page === 'bounty') await bountyPage(params);
      else if (page === 'attackers') await attackersPage(params);
      else if (page === 'fleet') await fleetPage();
      else if (page === 'config') await configPage();
      else await overview();
    } catch (x) { clear(main).append(h('div', { class: 'err' }, x.message)); }
  }
  document.getElementById('logout').addEventListener('click', async () => { try { await api('/auth/logout', { method: 'POST' }); } catch (_) { /* already gone */ } logoutLocal(); });
  window.addEventListener('hashchange', render);
  render();
})();
