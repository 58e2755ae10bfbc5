// The REST API with the console session: the browser sends the HttpOnly cookie, this module adds
// the CSRF token (read from GET /console/session) to every call that changes state. No bearer
// token ever exists in the page.

let session = null;

/** The signed-in session ({username, roles, csrf_token, expires_at}) or null. */
export function current() {
  return session;
}

/** Whether the signed-in user has `role`. */
export function hasRole(role) {
  return !!session && session.roles.includes(role);
}

/** An error of a call, with the HTTP status and the problem's detail. */
export class ApiError extends Error {
  constructor(status, detail, code) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

async function failure(response) {
  let detail = `${response.status} ${response.statusText}`;
  let code = '';
  try {
    const problem = await response.json();
    detail = `${problem.title || response.status}: ${problem.detail || ''}`;
    code = problem.code || '';
  } catch (_) { /* not JSON */ }
  return new ApiError(response.status, detail, code);
}

/** Loads the session from the cookie; null when signed out. */
export async function loadSession() {
  const response = await fetch('/console/session', { credentials: 'same-origin' });
  session = response.ok ? await response.json() : null;
  return session;
}

/** Signs in; throws ApiError on refusal. */
export async function signIn(username, password) {
  const response = await fetch('/console/session', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  if (!response.ok) throw await failure(response);
  session = await response.json();
  return session;
}

/** Ends the session. */
export async function signOut() {
  if (!session) return;
  await fetch('/console/session', {
    method: 'DELETE',
    credentials: 'same-origin',
    headers: { 'x-csrf-token': session.csrf_token },
  });
  session = null;
}

function options(method, body, accept) {
  const headers = { accept: accept || 'application/json' };
  if (method !== 'GET' && session) headers['x-csrf-token'] = session.csrf_token;
  if (body !== undefined) headers['content-type'] = 'application/json';
  return { method, credentials: 'same-origin', headers, body: body === undefined ? undefined : JSON.stringify(body) };
}

/** A REST call; resolves to the JSON answer, throws ApiError. */
export async function call(method, path, body) {
  const response = await fetch(path, options(method, body));
  if (!response.ok) throw await failure(response);
  const text = await response.text();
  return text ? JSON.parse(text) : {};
}

/** A query string of the non-empty entries of `params`. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** A server stream as NDJSON: calls `onMessage` with each JSON line until the end or `signal` aborts. */
export async function stream(path, onMessage, signal) {
  const response = await fetch(path, { ...options('GET', undefined, 'application/x-ndjson'), signal });
  if (!response.ok) throw await failure(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, end).trim();
      buffer = buffer.slice(end + 1);
      if (line) onMessage(JSON.parse(line));
    }
  }
  if (buffer.trim()) onMessage(JSON.parse(buffer));
}
