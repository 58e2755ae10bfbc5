// Building the page without innerHTML: every text from the API goes in as a text node, so nothing
// a model or a user wrote can become markup or script.

/** An element with attributes (`on*` functions become listeners) and children (strings, nodes, arrays). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the children of `el` (arrays are flattened; null, undefined and false are left out). */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** Replaces the main area with `nodes`, sets the title and moves focus there for screen readers. */
export function page(title, ...nodes) {
  const main = document.getElementById('main');
  fill(main, h('h1', {}, title), nodes);
  document.title = `${title} · prfix console`;
  main.focus();
}

/** Announces `text` to screen readers. */
export function announce(text) {
  document.getElementById('status').textContent = text;
}

/** An error box for a failed call. */
export function errorBox(error) {
  return h('p', { class: 'error', role: 'alert' }, String(error && error.message ? error.message : error));
}

/** "3 min ago" for an RFC 3339 time. */
export function age(time) {
  if (!time) return '';
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(time)) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

/** The readable tail of a proto enum name: `TASK_STATE_RUNNING` → `running`. */
export function enumName(value, prefix) {
  return String(value || '').replace(prefix, '').toLowerCase();
}

/** Offers `text` as a file download. */
export function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** A labelled input. */
export function field(label, attrs) {
  const id = attrs.id || `f-${label.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  return [h('label', { for: id }, label), h('input', { ...attrs, id })];
}
