// Plugline gateway admin: a little plain JavaScript, no build step. Every text from the
// gateway is put into the page with textContent, never as HTML (descriptions are hostile).
(function () {
  'use strict';

  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.getAttribute('content') : '';
  const $ = (id) => document.getElementById(id);

  async function api(method, url, body) {
    const opts = { method, credentials: 'same-origin', headers: {} };
    if (method !== 'GET') opts.headers['X-CSRF-Token'] = csrf;
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(url, opts);
    if (r.status === 401 && url !== '/api/login') {
      location.href = '/admin/login';
      throw new Error('login required');
    }
    const text = await r.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    const now = r.headers.get('X-Plugline-Now');
    return { status: r.status, ok: r.ok, data, now: now ? Number(now) : null };
  }

  const errorOf = (res) => (res.data && res.data.error) || ('The gateway answered ' + res.status + '.');
  const pad = (n) => String(n).padStart(2, '0');

  function duration(s) {
    s = Math.max(0, Math.floor(s));
    const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    const hms = pad(h) + ':' + pad(m) + ':' + pad(s % 60);
    return d > 0 ? d + ' d ' + hms : hms;
  }
  const leaseText = (s) => (s <= 0 ? 'permanent' : duration(s));
  function agoText(s) {
    s = Math.max(0, Math.floor(s));
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.floor(s / 60) + ' min ago';
    if (s < 86400) return Math.floor(s / 3600) + ' h ago';
    return Math.floor(s / 86400) + ' d ago';
  }
  const localTime = (unix) => new Date(unix * 1000).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
  function setText(el, text) { if (el.textContent !== text) el.textContent = text; }
  function say(el, text, isError) {
    el.textContent = text;
    el.classList.toggle('error', !!isError);
    el.classList.toggle('ok', !isError && !!text);
  }

  function initLogout() {
    const b = $('logout');
    if (!b) return;
    b.addEventListener('click', async () => {
      try { await api('POST', '/api/logout'); } catch (e) { /* going to the login page anyway */ }
      location.href = '/admin/login';
    });
  }

  function initLogin() {
    const form = $('login');
    const err = form.querySelector('.error');
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      err.textContent = '';
      let res;
      try {
        res = await api('POST', '/api/login', { password: form.elements.password.value });
      } catch (e) {
        err.textContent = 'The gateway did not answer.';
        return;
      }
      if (res.ok) { location.href = '/admin/'; return; }
      err.textContent = res.status === 401 ? 'Wrong password.' : errorOf(res);
      form.elements.password.select();
    });
  }

  function initStatus() {
    const up = $('uptime');
    let uptime = Number(up.dataset.seconds) || 0;
    let since = performance.now();
    setInterval(() => setText(up, duration(uptime + (performance.now() - since) / 1000)), 1000);
    async function refresh() {
      let res;
      try { res = await api('GET', '/api/status'); } catch (e) { return; }
      if (!res.ok || !res.data) return;
      const s = res.data;
      setText($('wan-address'), s.external_ip || 'unknown');
      let kind = s.address_kind;
      if (kind === 'private') kind = 'private (double NAT: peers outside see another address)';
      else if (kind === 'reserved' && s.address_range) kind = 'reserved (' + s.address_range + ')';
      setText($('address-kind'), kind);
      setText($('connection-status'), s.connection_status);
      setText($('boot-id'), String(s.boot_id));
      setText($('backend'), s.backend);
      setText($('mapping-count'), String(s.mappings.total));
      setText($('mapping-count-udp'), String(s.mappings.udp));
      setText($('mapping-count-tcp'), String(s.mappings.tcp));
      setText($('protocol-upnp'), s.protocols.upnp ? 'on' : 'off');
      setText($('protocol-natpmp'), s.protocols.natpmp ? 'on' : 'off');
      setText($('protocol-pcp'), s.protocols.pcp ? 'on' : 'off');
      uptime = s.uptime_seconds;
      since = performance.now();
      const tbody = $('per-host').tBodies[0];
      const hosts = Object.keys(s.mappings.per_host);
      tbody.replaceChildren();
      for (const h of hosts) {
        const tr = tbody.insertRow();
        tr.insertCell().textContent = h;
        tr.insertCell().textContent = String(s.mappings.per_host[h]);
      }
      if (!hosts.length) {
        const tr = tbody.insertRow();
        tr.className = 'empty';
        const td = tr.insertCell();
        td.colSpan = 2;
        td.textContent = 'No mappings.';
      }
    }
    setInterval(refresh, 5000);
  }

  // ---- forwarding ----

  const COLUMNS = [
    ['description', 'Description'], ['protocol', 'Protocol'], ['external_port', 'External port'],
    ['internal_client', 'Internal client'], ['internal_port', 'Internal port'],
    ['lease_seconds', 'Lease left'], ['source', 'Source'], ['created_at', 'Created'],
    ['host_last_seen', 'Host last seen'],
  ];
  const CELL_CLASS = {
    description: 'description', protocol: 'protocol', external_port: 'external-port',
    internal_client: 'internal-client', internal_port: 'internal-port', lease_seconds: 'lease',
    source: 'source', created_at: 'created', host_last_seen: 'last-seen',
  };
  const ipNumber = (ip) => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);

  function initForwarding() {
    const table = $('mappings');
    const tbody = table.tBodies[0];
    const status = $('table-status');
    const pageSize = $('page-size');
    const saved = localStorage.getItem('plugline.pageSize');
    if (saved !== null && [...pageSize.options].some((o) => o.value === saved)) pageSize.value = saved;
    const state = {
      rows: null, // null until the first answer: the server-rendered rows stand until then
      fetchedAt: performance.now(),
      serverNow: Number(table.dataset.now) || Math.floor(Date.now() / 1000),
      sort: null, dir: 1, filter: '', pageSize: Number(pageSize.value), page: 0,
      selected: new Set(), busy: false,
    };

    const elapsed = () => (performance.now() - state.fetchedAt) / 1000;
    const remaining = (m) => (m.lease_seconds === 0 ? 0 : Math.max(1, m.lease_seconds - elapsed()));

    function compare(a, b, key) {
      switch (key) {
        case 'internal_client': return ipNumber(a.internal_client) - ipNumber(b.internal_client);
        case 'lease_seconds': {
          const x = a.lease_seconds === 0 ? Infinity : a.lease_seconds;
          const y = b.lease_seconds === 0 ? Infinity : b.lease_seconds;
          return x === y ? 0 : (x < y ? -1 : 1);
        }
        case 'host_last_seen': return (a.host_last_seen || 0) - (b.host_last_seen || 0);
        case 'description': case 'protocol': case 'source':
          return String(a[key]).localeCompare(String(b[key]));
        default: return a[key] - b[key];
      }
    }

    function shown() {
      let rows = state.rows || [];
      const f = state.filter.trim().toLowerCase();
      if (f) {
        rows = rows.filter((m) => [m.description, m.protocol, String(m.external_port), m.internal_client,
          String(m.internal_port), m.source, m.key].some((v) => v.toLowerCase().includes(f)));
      }
      if (state.sort) {
        const k = state.sort, d = state.dir;
        rows = rows.map((m, i) => [m, i]).sort((p, q) => d * compare(p[0], q[0], k) || p[1] - q[1]).map((p) => p[0]);
      }
      return rows;
    }

    function makeRow(key) {
      const tr = document.createElement('tr');
      tr.dataset.key = key;
      const pick = tr.insertCell();
      pick.className = 'pick';
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.className = 'select';
      pick.appendChild(box);
      for (const [field, label] of COLUMNS) {
        const td = tr.insertCell();
        td.className = CELL_CLASS[field];
        td.dataset.label = label;
      }
      const actions = tr.insertCell();
      actions.className = 'actions';
      const toggle = document.createElement('button');
      toggle.type = 'button';
      toggle.className = 'toggle';
      const del = document.createElement('button');
      del.type = 'button';
      del.className = 'delete';
      del.textContent = 'Delete';
      actions.append(toggle, ' ', del);
      return tr;
    }

    const cell = (tr, field) => tr.querySelector('td.' + CELL_CLASS[field]);

    function lastSeenText(m) {
      return m.host_last_seen == null ? 'never (since start)' : agoText(state.serverNow + elapsed() - m.host_last_seen);
    }

    function updateRow(tr, m) {
      const label = m.protocol + ' ' + m.external_port + ' to ' + m.internal_client + ':' + m.internal_port;
      tr.classList.toggle('enabled', m.enabled);
      tr.classList.toggle('disabled', !m.enabled);
      const box = tr.querySelector('input.select');
      box.checked = state.selected.has(m.key);
      box.setAttribute('aria-label', 'Select ' + label);
      setText(cell(tr, 'description'), m.description);
      setText(cell(tr, 'protocol'), m.protocol);
      setText(cell(tr, 'external_port'), String(m.external_port));
      setText(cell(tr, 'internal_client'), m.internal_client);
      setText(cell(tr, 'internal_port'), String(m.internal_port));
      const lease = cell(tr, 'lease_seconds');
      lease.dataset.seconds = String(Math.round(remaining(m)));
      setText(lease, leaseText(remaining(m)));
      setText(cell(tr, 'source'), m.source);
      const created = cell(tr, 'created_at');
      setText(created, localTime(m.created_at));
      created.title = new Date(m.created_at * 1000).toISOString();
      setText(cell(tr, 'host_last_seen'), lastSeenText(m));
      const toggle = tr.querySelector('button.toggle');
      const word = m.enabled ? 'Disable' : 'Enable';
      setText(toggle, word);
      toggle.setAttribute('aria-label', word + ' ' + label);
      tr.querySelector('button.delete').setAttribute('aria-label', 'Delete ' + label);
    }

    function render() {
      if (!state.rows) return;
      const rows = shown();
      const size = state.pageSize > 0 ? state.pageSize : Math.max(rows.length, 1);
      const pages = Math.max(1, Math.ceil(rows.length / size));
      state.page = Math.min(state.page, pages - 1);
      const page = rows.slice(state.page * size, state.page * size + size);
      const existing = new Map();
      for (const tr of tbody.querySelectorAll('tr[data-key]')) existing.set(tr.dataset.key, tr);
      for (const tr of tbody.querySelectorAll('tr.empty')) tr.remove();
      const wanted = page.map((m) => {
        const tr = existing.get(m.key) || makeRow(m.key);
        existing.delete(m.key);
        updateRow(tr, m);
        return tr;
      });
      for (const tr of existing.values()) tr.remove();
      wanted.forEach((tr, i) => {
        const here = tbody.children[i];
        if (here !== tr) tbody.insertBefore(tr, here || null);
      });
      if (!wanted.length) {
        const tr = tbody.insertRow();
        tr.className = 'empty';
        const td = tr.insertCell();
        td.colSpan = COLUMNS.length + 2;
        td.textContent = state.rows.length ? 'No mapping matches the filter.' : 'No mappings.';
      }
      setText($('mapping-total'), String(state.rows.length));
      setText($('page-info'), 'Page ' + (state.page + 1) + ' of ' + pages +
        (rows.length !== state.rows.length ? ' (' + rows.length + ' match)' : ''));
      $('page-prev').disabled = state.page === 0;
      $('page-next').disabled = state.page >= pages - 1;
      const all = $('select-all');
      all.checked = page.length > 0 && page.every((m) => state.selected.has(m.key));
    }

    function tick() {
      if (!state.rows) return;
      const byKey = new Map(state.rows.map((m) => [m.key, m]));
      for (const tr of tbody.querySelectorAll('tr[data-key]')) {
        const m = byKey.get(tr.dataset.key);
        if (!m) continue;
        const lease = cell(tr, 'lease_seconds');
        lease.dataset.seconds = String(Math.round(remaining(m)));
        setText(lease, leaseText(remaining(m)));
        setText(cell(tr, 'host_last_seen'), lastSeenText(m));
      }
    }

    async function refresh() {
      if (state.busy) return;
      state.busy = true;
      try {
        const res = await api('GET', '/api/mappings');
        if (res.ok && Array.isArray(res.data)) {
          state.rows = res.data;
          state.fetchedAt = performance.now();
          state.serverNow = res.now || Math.floor(Date.now() / 1000);
          const keys = new Set(state.rows.map((m) => m.key));
          for (const k of [...state.selected]) if (!keys.has(k)) state.selected.delete(k);
          render();
        }
      } catch (e) {
        /* the next second tries again */
      } finally {
        state.busy = false;
      }
    }

    async function change(method, url, body, done) {
      let res;
      try { res = await api(method, url, body); } catch (e) { say(status, 'The gateway did not answer.', true); return null; }
      if (!res.ok) { say(status, errorOf(res), true); return null; }
      if (done) say(status, done(res), false);
      await refresh();
      return res;
    }

    tbody.addEventListener('click', (ev) => {
      const button = ev.target.closest('button');
      const tr = ev.target.closest('tr[data-key]');
      if (!button || !tr) return;
      const key = tr.dataset.key;
      const [proto, port] = key.split('-');
      if (button.classList.contains('delete')) {
        change('DELETE', '/api/mappings/' + proto + '/' + port, undefined, () => 'Deleted ' + proto + ' ' + port + '.');
      } else if (button.classList.contains('toggle')) {
        const m = (state.rows || []).find((r) => r.key === key);
        const enable = m ? !m.enabled : button.textContent.trim() === 'Enable';
        change('POST', '/api/mappings/' + proto + '/' + port + '/enabled', { enabled: enable },
          () => (enable ? 'Enabled ' : 'Disabled ') + proto + ' ' + port + '.');
      }
    });
    tbody.addEventListener('change', (ev) => {
      if (!ev.target.classList.contains('select')) return;
      const key = ev.target.closest('tr[data-key]').dataset.key;
      if (ev.target.checked) state.selected.add(key); else state.selected.delete(key);
      render();
    });
    $('select-all').addEventListener('change', (ev) => {
      for (const tr of tbody.querySelectorAll('tr[data-key]')) {
        if (ev.target.checked) state.selected.add(tr.dataset.key); else state.selected.delete(tr.dataset.key);
      }
      render();
    });
    $('delete-selected').addEventListener('click', () => {
      // Rows ticked before the script's first answer are picked up from the page.
      for (const box of tbody.querySelectorAll('input.select:checked')) state.selected.add(box.closest('tr').dataset.key);
      const keys = [...state.selected];
      if (!keys.length) { say(status, 'Select mappings first.', true); return; }
      change('POST', '/api/mappings/delete', { keys }, (res) => {
        state.selected.clear();
        return 'Deleted ' + res.data.deleted + ' mapping(s).';
      });
    });
    $('delete-stale').addEventListener('click', () => {
      const minutes = $('stale-minutes').value.trim();
      change('POST', '/api/mappings/delete-stale', { minutes },
        (res) => 'Deleted ' + res.data.deleted + ' mapping(s) of hosts not seen for ' + minutes + ' minutes.');
    });
    $('filter').addEventListener('input', (ev) => { state.filter = ev.target.value; state.page = 0; render(); });
    pageSize.addEventListener('change', () => {
      state.pageSize = Number(pageSize.value);
      localStorage.setItem('plugline.pageSize', pageSize.value);
      state.page = 0;
      render();
    });
    $('page-prev').addEventListener('click', () => { state.page = Math.max(0, state.page - 1); render(); });
    $('page-next').addEventListener('click', () => { state.page += 1; render(); });

    function sortBy(key, dir) {
      state.sort = key || null;
      state.dir = dir;
      state.page = 0;
      for (const th of table.querySelectorAll('th[data-sort]')) {
        th.setAttribute('aria-sort', th.dataset.sort === state.sort ? (dir > 0 ? 'ascending' : 'descending') : 'none');
      }
      render();
    }
    for (const th of table.querySelectorAll('th[data-sort]')) {
      const go = () => sortBy(th.dataset.sort, state.sort === th.dataset.sort ? -state.dir : 1);
      th.addEventListener('click', go);
      th.addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); go(); }
      });
    }
    $('sort-by').addEventListener('change', (ev) => sortBy(ev.target.value, 1));

    const form = $('add-static');
    const addError = $('add-error');
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      addError.textContent = '';
      // A result line from an earlier add must not stand beside this attempt's error.
      status.textContent = '';
      const f = form.elements;
      const body = {
        protocol: f.protocol.value,
        external_port: f.external_port.value.trim(),
        internal_client: f.internal_client.value.trim(),
        internal_port: f.internal_port.value.trim(),
        description: f.description.value,
        lease_seconds: f.lease.value.trim() || '0',
      };
      let res;
      try { res = await api('POST', '/api/mappings', body); } catch (e) { addError.textContent = 'The gateway did not answer.'; return; }
      if (!res.ok) {
        addError.textContent = errorOf(res);
        const field = res.data && res.data.field === 'lease_seconds' ? 'lease' : res.data && res.data.field;
        if (field && f[field]) f[field].focus();
        return;
      }
      const m = res.data;
      say(status, 'Added ' + m.protocol + ' ' + m.external_port + ' to ' + m.internal_client + ':' + m.internal_port + '.', false);
      f.external_port.value = '';
      f.internal_port.value = '';
      f.description.value = '';
      await refresh();
    });

    refresh();
    setInterval(() => { tick(); refresh(); }, 1000);
  }

  function initSettings() {
    const form = $('settings');
    const err = $('settings-error');
    const saved = $('settings-saved');
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      err.textContent = '';
      saved.textContent = '';
      const f = form.elements;
      const body = {
        secure_mode: f.secure_mode.checked,
        upnp_enabled: f.upnp_enabled.checked,
        max_mappings: f.max_mappings.value.trim(),
        max_mappings_per_host: f.max_mappings_per_host.value.trim(),
        max_lease_seconds: f.max_lease_seconds.value.trim(),
      };
      let res;
      try { res = await api('PUT', '/api/settings', body); } catch (e) { err.textContent = 'The gateway did not answer.'; return; }
      if (!res.ok) {
        err.textContent = errorOf(res);
        const field = res.data && res.data.field;
        if (field && f[field]) f[field].focus();
        return;
      }
      const s = res.data;
      f.secure_mode.checked = s.secure_mode;
      f.upnp_enabled.checked = s.upnp_enabled;
      f.max_mappings.value = s.max_mappings;
      f.max_mappings_per_host.value = s.max_mappings_per_host;
      f.max_lease_seconds.value = s.max_lease_seconds;
      saved.textContent = 'Saved and applied.';
    });
  }

  function start() {
    initLogout();
    switch (document.body.dataset.page) {
      case 'login': initLogin(); break;
      case 'status': initStatus(); break;
      case 'forwarding': initForwarding(); break;
      case 'settings': initSettings(); break;
      default: break;
    }
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start); else start();
})();
