// moltbot Control UI. Plain ES module, no dependencies.
// The device key is a non-extractable Ed25519 key kept in IndexedDB; the
// session credential and the token live in memory only and travel in
// headers, never in a URL or a cookie.
import { h, table, when } from './dom.js';

const G = 'moltbot.gateway.v1.Gateway/';
const P = 'moltbot.pairing.v1.Pairing/';
const S = 'moltbot.sandbox.v1.Sandbox/';

const state = { session: null, role: null, token: null, device: null, expiresAt: 0, view: 'status', stop: null };

// ---- IndexedDB ----
function db() {
  return new Promise((resolve, reject) => {
    const r = indexedDB.open('moltbot-ui', 1);
    r.onupgradeneeded = () => r.result.createObjectStore('keys');
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
    r.onblocked = () => reject(new Error('the key store is busy: close other tabs of this page and reload'));
    setTimeout(() => reject(new Error('the browser\'s key store (IndexedDB) does not answer: reload the page')), 10000);
  });
}
async function idb(mode, fn) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const tx = d.transaction('keys', mode);
    const r = fn(tx.objectStore('keys'));
    // Close at once: an open connection left by a page being navigated
    // away from would block the next page's open.
    tx.oncomplete = () => { d.close(); resolve(r && r.result); };
    tx.onerror = () => { d.close(); reject(tx.error); };
  });
}
const loadDevice = () => idb('readonly', (s) => s.get('device'));
const saveDevice = (v) => idb('readwrite', (s) => s.put(v, 'device'));
const forgetDevice = () => idb('readwrite', (s) => s.delete('device'));

// ---- device identity ----
const b64 = (u8) => btoa(String.fromCharCode(...u8));
async function fingerprint(raw) {
  const sum = new Uint8Array(await crypto.subtle.digest('SHA-256', raw)).slice(0, 10);
  const hex = Array.from(sum, (b) => b.toString(16).padStart(2, '0')).join('');
  return hex.match(/.{4}/g).join('-');
}
async function newDevice() {
  // extractable=false: the private key can sign but never be read back.
  const kp = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
  const raw = new Uint8Array(await crypto.subtle.exportKey('raw', kp.publicKey));
  const d = { privateKey: kp.privateKey, publicKey: raw, fingerprint: await fingerprint(raw) };
  await saveDevice(d);
  return d;
}

// ---- HTTP ----
function post(path, body, headers = {}, signal) {
  return fetch(path, {
    method: 'POST', credentials: 'omit', cache: 'no-store', signal,
    headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify(body || {}),
  });
}
function credential() {
  if (state.session) return { 'X-Moltbot-Session': state.session };
  if (state.token) return { Authorization: 'Bearer ' + state.token };
  return {};
}
class APIError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}
async function failure(r) {
  let j = {};
  try { j = await r.json(); } catch { /* not JSON */ }
  const e = new APIError(r.status, j.code || String(r.status), j.message || r.statusText);
  if (r.status === 401 && state.session) loggedOut(e.message);
  return e;
}
export async function call(method, body) {
  const r = await post('/api/' + method, body, credential());
  if (!r.ok) throw await failure(r);
  return r.json();
}
// stream reads Server-Sent Events from fetch (so the credential stays in a
// header); onMsg gets each message; resolves with the end status.
export async function stream(method, body, onMsg, signal) {
  const r = await post('/api/' + method, body, credential(), signal);
  if (!r.ok) throw await failure(r);
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return { code: 'Unavailable', message: 'stream closed' };
    buf += value;
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let ev = 'message';
      let data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) ev = line.slice(7);
        else if (line.startsWith('data: ')) data += line.slice(6);
      }
      if (!data) continue;
      const v = JSON.parse(data);
      if (ev === 'end') return v;
      onMsg(v);
    }
  }
}

// ---- messages ----
function say(text, ok = false) {
  const m = document.getElementById('msg');
  m.textContent = text;
  m.className = ok ? 'ok' : '';
  m.hidden = !text;
}
function explain(e) {
  if (e.status === 403 && e.message.startsWith('owner only')) {
    const fp = state.device ? state.device.fingerprint : '<fingerprint>';
    return 'Refused (403): only the owner may do this, and this browser ' + (state.session ? 'was approved as a client' : 'is not approved yet') +
      ' (the owner runs: moltbot devices approve ' + fp + '). ' + e.message;
  }
  if (e.status === 403) return 'Refused (403): ' + e.message;
  return e.message;
}
function banner(text) {
  const b = document.getElementById('banner');
  b.replaceChildren(...(Array.isArray(text) ? text : [text]));
  b.hidden = !text;
}

// ---- login ----
async function openSession(dev) {
  const c = await post('/auth/challenge', { fingerprint: dev.fingerprint });
  if (c.status === 404) return 'unknown';
  if (!c.ok) throw await failure(c);
  const { nonce } = await c.json();
  const msg = new TextEncoder().encode(`moltbot-control-ui-login-v1\n${location.origin}\n${dev.fingerprint}\n${nonce}`);
  const sig = new Uint8Array(await crypto.subtle.sign({ name: 'Ed25519' }, dev.privateKey, msg));
  const r = await post('/auth/session', { fingerprint: dev.fingerprint, nonce, signature: b64(sig) });
  if (r.ok) {
    const j = await r.json();
    state.session = j.session;
    state.role = j.role;
    state.expiresAt = j.expiresAt;
    state.token = null; // the device session replaces it
    // Renew a minute before expiry by signing again.
    setTimeout(() => openSession(dev).catch(() => loggedOut('session renewal failed')), Math.max(5000, j.expiresAt - Date.now() - 60000));
    return 'ok';
  }
  if (r.status === 404) return 'unknown';
  const e = await failure(r);
  if (e.code === 'pending') return 'pending';
  throw e;
}

function showLogin(note) {
  document.getElementById('loading')?.remove();
  document.getElementById('nav').hidden = true;
  document.getElementById('login').hidden = false;
  if (note) say(note);
}

async function register(token) {
  if (!window.isSecureContext || !crypto.subtle) {
    throw new Error('This page is not a secure context: open it on http://127.0.0.1 or through an HTTPS proxy.');
  }
  let dev = state.device || await loadDevice();
  if (!dev) dev = await newDevice();
  state.device = dev;
  const r = await post('/auth/register', { token, publicKey: b64(dev.publicKey), name: navigator.userAgent.replace(/\s*\(.*?\)\s*/g, ' ').slice(0, 60) });
  if (!r.ok) throw await failure(r);
  return r.json();
}

let pendingTimer = null;
function pending(dev) {
  banner([h('span', {}, 'This device is pending approval. Fingerprint: '), h('strong', { class: 'fp', id: 'fingerprint' }, dev.fingerprint),
    h('span', {}, ' — the owner runs '), h('code', {}, 'moltbot devices approve ' + dev.fingerprint),
    h('span', {}, state.token ? '. Meanwhile the token gives read-only client access.' : '.')]);
  clearInterval(pendingTimer);
  pendingTimer = setInterval(async () => {
    try {
      const r = await openSession(dev);
      if (r === 'ok') { clearInterval(pendingTimer); banner(''); start(); }
      if (r === 'unknown') { clearInterval(pendingTimer); showLogin('The owner rejected this device.'); }
    } catch (e) { say(explain(e)); }
  }, 1500);
}

function loggedOut(why) {
  state.session = null;
  state.role = null;
  if (state.stop) state.stop();
  document.getElementById('view').replaceChildren(document.getElementById('login') || h('p', {}, ''));
  showLogin('Logged out: ' + why);
}

function who() {
  const w = document.getElementById('who');
  const fp = state.device ? state.device.fingerprint : '-';
  const forget = h('button', { id: 'forget' }, 'Forget this device');
  forget.addEventListener('click', async () => {
    if (!confirm('Forget this browser\'s device key? You will have to be approved again.')) return;
    await forgetDevice();
    location.reload();
  });
  w.replaceChildren(h('span', { id: 'role' }, (state.role || 'client') + (state.session ? '' : ' (token only)')),
    h('span', { class: 'fp', id: 'my-fingerprint' }, fp), forget);
}

function start() {
  document.getElementById('loading')?.remove();
  const login = document.getElementById('login');
  if (login) login.hidden = true;
  document.getElementById('nav').hidden = false;
  who();
  show(state.view);
}

// ---- views ----
const views = {};

function show(name) {
  if (state.stop) { state.stop(); state.stop = null; }
  state.view = name;
  say('');
  for (const b of document.querySelectorAll('#nav button')) b.classList.toggle('active', b.dataset.view === name);
  const root = h('section', { id: 'view-' + name });
  const login = document.getElementById('login');
  document.getElementById('view').replaceChildren(...(login ? [login] : []), root);
  views[name](root).catch((e) => say(explain(e)));
}

views.status = async (root) => {
  root.append(h('h2', {}, 'Status'));
  const [st, audit] = await Promise.all([call(G + 'Status', { all: true }), call(G + 'Audit', {}).catch((e) => ({ error: e }))]);
  if (audit.error) root.append(h('p', {}, 'Audit: ' + explain(audit.error)));
  else root.append(h('p', {}, 'Audit score: ', h('span', { class: 'score', id: 'audit-score' }, String(audit.score)), ' ' + audit.band));
  root.append(h('h3', {}, 'Services'), table(['service', 'state', 'version', 'address'], (st.services || []).map((s) => [
    s.name, h('span', { class: s.up ? 'up' : 'down' }, s.up ? 'up' : 'down: ' + s.error), s.version, s.address])));
  root.append(h('p', {}, 'Gateway auth: ' + st.authMode + ', token ' + st.tokenStrength));
  root.append(h('h3', {}, 'Certificates'), table(['name', 'expires', 'error'], (st.certs || []).map((c) => [c.name, when(c.notAfter), c.error])));
  root.append(h('h3', {}, 'Key versions'), table(['kid', 'primary', 'created', 'fingerprint'], (st.keys || []).map((k) => [k.kid, k.primary ? 'yes' : '', when(k.createdAt), k.fingerprint])));
  root.append(h('h3', {}, 'Channels'), table(['channel', 'connected', 'DM policy', 'group policy', 'error'], (st.channels || []).map((c) => [
    c.name, c.connected ? 'yes' : 'no', c.dmPolicy, c.groupPolicy, c.error])));
  if ((st.warnings || []).length) root.append(h('h3', {}, 'Warnings'), h('ul', {}, ...st.warnings.map((w) => h('li', {}, w))));
};

function findingsTable(findings) {
  return table(['severity', 'finding', 'detail', 'fix'], (findings || []).map((f) => [
    h('span', { class: 'sev-' + f.severity.toLowerCase() }, f.severity.toUpperCase() + (f.acknowledged ? ' (acknowledged)' : '')), f.title, f.detail, f.remedy]));
}

views.audit = async (root) => {
  root.append(h('h2', {}, 'Security audit'));
  const deep = h('input', { type: 'checkbox', id: 'deep' });
  const rerun = h('button', { id: 'audit-run' }, 'Run again');
  const fix = h('button', { id: 'audit-fix' }, 'Apply safe fixes…');
  const out = h('div', { id: 'audit-out' });
  root.append(h('p', {}, h('label', {}, deep, ' deep (probes the running stack)'), ' ', rerun, ' ', fix), out);
  const run = async () => {
    out.replaceChildren(h('p', {}, 'Running…'));
    const a = await call(G + 'Audit', { deep: deep.checked });
    out.replaceChildren(h('p', {}, 'Score: ', h('span', { class: 'score', id: 'audit-score' }, String(a.score)), ' ' + a.band), findingsTable(a.findings));
  };
  rerun.addEventListener('click', () => run().catch((e) => say(explain(e))));
  fix.addEventListener('click', async () => {
    try {
      const plan = await call(G + 'AuditFix', { deep: deep.checked, dryRun: true });
      const fixes = plan.report.fixes || [];
      if (!fixes.length) { say('No safe fix to apply.', true); return; }
      if (!confirm('Apply these fixes?\n\n' + fixes.join('\n'))) return;
      const done = await call(G + 'AuditFix', { deep: deep.checked });
      say('Applied: ' + (done.report.fixes || []).join('; ') + ` (score ${done.report.scoreBeforeFix} → ${done.report.score})`, true);
      out.replaceChildren(h('p', {}, 'Score: ', h('span', { class: 'score', id: 'audit-score' }, String(done.report.score)), ' ' + done.report.band), findingsTable(done.report.findings));
    } catch (e) { say(explain(e)); }
  });
  await run();
};

views.pairing = async (root) => {
  root.append(h('h2', {}, 'Pairing'), h('p', { class: 'live', id: 'pairing-live' }, 'connecting…'));
  const pend = h('div', { id: 'pairing-pending' });
  const allowed = h('div', { id: 'pairing-allowed' });
  // A code the sender read out can be approved without the list.
  const chan = h('input', { id: 'approve-channel', placeholder: 'channel', value: 'local', size: 10 });
  const code = h('input', { id: 'approve-code', placeholder: 'code', size: 10 });
  const form = h('form', { id: 'approve-form' }, chan, ' ', code, ' ', h('button', { type: 'submit', id: 'approve-code-button' }, 'Approve code'));
  form.addEventListener('submit', (ev) => { ev.preventDefault(); act(() => call(P + 'Approve', { channel: chan.value.trim(), code: code.value.trim() }))(); });
  root.append(h('h3', {}, 'Pending requests'), pend, form, h('h3', {}, 'Allowlist'), allowed);
  const act = (fn) => async () => { try { await fn(); say('Done.', true); await refresh(); } catch (e) { say(explain(e)); } };
  let reqs = [];
  // A List answer can be older than a request shown from a later event
  // (the approve click and its event each refresh): the newest refresh to
  // answer wins, and it keeps the requests that events added after it
  // started. seq counts those events.
  let seq = 0, started = 0, applied = 0;
  const renderPending = () => {
    pend.replaceChildren(table(['channel', 'code', 'sender', 'expires', ''], reqs.map((q) => [
      q.channel, h('code', {}, q.code), q.senderId, when(q.expiresAt),
      h('span', {}, h('button', { class: 'approve', 'data-code': q.code, onclick: act(() => call(P + 'Approve', { channel: q.channel, code: q.code })) }, 'Approve'), ' ',
        h('button', { class: 'reject', onclick: act(() => call(P + 'Reject', { channel: q.channel, code: q.code })) }, 'Reject'))]), 'no pending requests'));
  };
  const refresh = async () => {
    const mine = ++started, mark = seq;
    const [l, a] = await Promise.all([call(P + 'List', {}), call(P + 'ListAllowed', {})]);
    if (mine < applied) return;
    applied = mine;
    const listed = l.requests || [];
    const codes = new Set(listed.map((q) => q.code));
    reqs = listed.concat(reqs.filter((q) => q.seq > mark && !codes.has(q.code)));
    renderPending();
    allowed.replaceChildren(table(['channel', 'sender', 'approved', 'let through', ''], (a.senders || []).map((s) => [
      s.channel, s.senderId, when(s.approvedAt), s.letThrough === undefined ? '?' : (s.letThrough ? 'yes' : 'no: ' + s.blockedBecause),
      h('button', { class: 'revoke', onclick: act(() => { if (confirm('Revoke ' + s.senderId + '?')) return call(P + 'Revoke', { channel: s.channel, senderId: s.senderId }); }) }, 'Revoke')]), 'nobody approved yet'));
  };
  // A new request is shown from the event itself (no round trip); any
  // other event reloads both lists.
  const onEvent = (ev) => {
    if (ev.kind === 'KIND_REQUESTED' && ev.request && !reqs.some((q) => q.code === ev.request.code)) {
      reqs.push({ ...ev.request, seq: ++seq });
      renderPending();
      return;
    }
    refresh().catch((e) => say(explain(e)));
  };
  // Live: every Watch event refreshes the lists.
  const ac = new AbortController();
  state.stop = () => ac.abort();
  const live = root.querySelector('#pairing-live');
  stream(P + 'Watch', {}, onEvent, ac.signal)
    .then((end) => { live.textContent = 'live updates ended: ' + end.message; })
    .catch((e) => { if (!ac.signal.aborted) { live.textContent = 'no live updates: ' + explain(e); } });
  live.textContent = 'live';
  await refresh();
};

views.sandboxes = async (root) => {
  root.append(h('h2', {}, 'Sandboxes'));
  const l = await call(S + 'List', {});
  const out = h('div', { id: 'explain' });
  root.append(table(['session', 'agent', 'state', 'image', 'last used', ''], (l.containers || []).map((c) => [
    c.sessionKey, c.agentId, c.state, c.image, when(c.lastUsedAt),
    h('button', { onclick: async () => {
      try {
        const x = await call(S + 'Explain', { sessionKey: c.sessionKey, agentId: c.agentId });
        out.replaceChildren(h('h3', {}, 'Explain ' + c.sessionKey), table(['setting', 'value', 'why'], (x.items || []).map((i) => [i.name, i.value, i.why])));
      } catch (e) { say(explain(e)); }
    } }, 'Explain')]), 'no sandbox containers'), out);
};

views.seclog = async (root) => {
  root.append(h('h2', {}, 'Security log'));
  const verdict = h('p', { id: 'seclog-verify' }, 'verifying…');
  const pre = h('pre', { id: 'seclog-lines' });
  root.append(verdict, pre);
  const lines = [];
  let verified = false;
  let verr = '';
  const ac = new AbortController();
  state.stop = () => ac.abort();
  const render = () => {
    pre.textContent = lines.slice(-200).join('\n');
    verdict.textContent = verr ? 'verify FAILED: ' + verr : (verified ? 'chain verified (' + lines.length + ' lines), following' : 'following');
  };
  const end = await stream(G + 'SecurityLog', { verify: true, follow: true }, (m) => {
    if (m.verifyError) verr = m.verifyError;
    if (m.verified) verified = true;
    if (m.line) lines.push(m.line);
    render();
  }, ac.signal).catch((e) => { if (!ac.signal.aborted) throw e; });
  if (end && !ac.signal.aborted) verdict.textContent += ' — ended: ' + end.message;
};

views.devices = async (root) => {
  root.append(h('h2', {}, 'Devices'));
  const l = await call(G + 'ListDevices', {});
  if (l.deviceAuthDisabled) root.append(h('p', { class: 'sev-critical' }, 'gateway.controlUi.dangerouslyDisableDeviceAuth is true: pending devices get in as the owner.'));
  const act = (m, fp, q) => async () => {
    if (q && !confirm(q)) return;
    try { await call(G + m, { fingerprint: fp }); show('devices'); } catch (e) { say(explain(e)); }
  };
  root.append(table(['fingerprint', 'state', 'role', 'name', 'origin', 'last seen', 'sessions', ''], (l.devices || []).map((d) => [
    h('span', { class: 'fp' }, d.fingerprint + (state.device && d.fingerprint === state.device.fingerprint ? ' (this browser)' : '')),
    d.state, d.role, d.name, d.origin, when(d.lastSeen), String(d.sessions),
    d.state === 'pending'
      ? h('span', {}, h('button', { onclick: act('ApproveDevice', d.fingerprint) }, 'Approve'), ' ', h('button', { onclick: act('RejectDevice', d.fingerprint) }, 'Reject'))
      : h('button', { onclick: act('RevokeDevice', d.fingerprint, 'Revoke ' + d.fingerprint + '? Its sessions end at once.') }, 'Revoke')]), 'no devices'));
};

// ---- boot ----
async function boot() {
  for (const b of document.querySelectorAll('#nav button')) b.addEventListener('click', () => show(b.dataset.view));
  document.getElementById('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const input = document.getElementById('token');
    const token = input.value.trim();
    input.value = '';
    try {
      await register(token);
      say('');
      const r = await openSession(state.device);
      if (r === 'ok') { start(); return; }
      state.token = token; // memory only: read-only client access while pending
      state.role = 'client';
      pending(state.device);
      start();
    } catch (e) { say(explain(e)); }
  });
  if (!window.isSecureContext || !window.indexedDB) { showLogin('Not a secure context: device login needs http://127.0.0.1 or https.'); return; }
  const dev = await loadDevice();
  if (!dev) { showLogin(); return; }
  state.device = dev;
  const r = await openSession(dev);
  if (r === 'ok') { start(); return; }
  if (r === 'pending') { showLogin(); pending(dev); return; }
  await forgetDevice();
  state.device = null;
  showLogin('This device was rejected or revoked: log in with the token to register again.');
}

boot().catch((e) => say(explain(e)));
