// DOM helpers: text always goes in as text nodes (never innerHTML), and
// handlers are attached with addEventListener (the CSP forbids inline ones).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v);
    else if (v !== undefined && v !== null) el.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === undefined || c === null) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function table(headers, rows, empty = 'none') {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  return h('table', {},
    h('thead', {}, h('tr', {}, ...headers.map((x) => h('th', {}, x)))),
    h('tbody', {}, ...rows.map((r) => h('tr', {}, ...r.map((c) => h('td', {}, c ?? ''))))));
}

// when formats a proto Timestamp (RFC 3339 in JSON).
export function when(ts) {
  if (!ts) return '-';
  const d = new Date(ts);
  return isNaN(d) || d.getFullYear() < 1971 ? '-' : d.toLocaleString();
}
