// Administration (admins only; the links are absent for others and the API refuses them anyway):
// users (create, roles, disable, set password) and API keys (create with the secret shown once,
// revoke).

import { h, fill, page, errorBox, enumName, field, announce } from './dom.js';
import { call } from './api.js';

const ROLES = ['ADMIN', 'DEVELOPER', 'AUDITOR'];

function roleBoxes(prefix, chosen = []) {
  return h('fieldset', {}, h('legend', {}, 'Roles'), ROLES.map((r) => h('label', { class: 'inline' },
    h('input', { type: 'checkbox', id: `${prefix}-${r.toLowerCase()}`, value: `ROLE_${r}`, checked: chosen.includes(`ROLE_${r}`) }), ` ${r.toLowerCase()}`)));
}

function checked(root) {
  return [...root.querySelectorAll('input[type=checkbox]:checked')].map((i) => i.value);
}

/** Users. */
export async function usersPage() {
  const out = h('div', {});
  const roles = roleBoxes('new-user');
  const form = h('form', { class: 'stack', 'aria-label': 'create a user' }, h('h2', {}, 'Create a user'),
    field('User name', { id: 'new-username', required: true, autocomplete: 'off' }),
    field('Password (12 characters or more)', { id: 'new-password', type: 'password', required: true, minlength: 12, autocomplete: 'new-password' }),
    roles, h('button', { type: 'submit', class: 'primary' }, 'Create user'), out);
  const list = h('div', {}, h('p', {}, 'Loading…'));
  page('Users', list, form);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await call('POST', '/v1/users', { username: form.querySelector('#new-username').value, password: form.querySelector('#new-password').value, roles: checked(roles) });
      announce('user created');
      usersPage();
    } catch (error) { fill(out, errorBox(error)); }
  });
  try {
    const users = (await call('GET', '/v1/users?pageSize=100')).users || [];
    fill(list, h('div', { class: 'table-wrap' }, h('table', { class: 'list' }, h('caption', { class: 'visually-hidden' }, 'users'),
      h('thead', {}, h('tr', {}, ['User', 'Roles', 'State', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, users.map((u) => {
        const toggle = h('button', { type: 'button' }, u.disabled ? `Enable ${u.username}` : `Disable ${u.username}`);
        toggle.addEventListener('click', async () => {
          try { await call('PATCH', `/v1/users/${encodeURIComponent(u.username)}`, { disabled: !u.disabled, updateMask: 'disabled' }); usersPage(); } catch (error) { list.append(errorBox(error)); }
        });
        const roleEdit = roleBoxes(`roles-${u.username}`, u.roles || []);
        const saveRoles = h('button', { type: 'button' }, `Save roles of ${u.username}`);
        saveRoles.addEventListener('click', async () => {
          try { await call('PATCH', `/v1/users/${encodeURIComponent(u.username)}`, { roles: [...checked(roleEdit), ...(u.roles || []).filter((r) => !ROLES.includes(r.replace('ROLE_', '')))], updateMask: 'roles' }); announce('roles saved'); usersPage(); } catch (error) { list.append(errorBox(error)); }
        });
        const pw = h('button', { type: 'button' }, `Set password of ${u.username}`);
        pw.addEventListener('click', async () => {
          const password = window.prompt(`New password for ${u.username} (12 characters or more)`);
          if (!password) return;
          try { await call('PATCH', `/v1/users/${encodeURIComponent(u.username)}`, { password, updateMask: 'password' }); announce('password set'); } catch (error) { list.append(errorBox(error)); }
        });
        return h('tr', {}, h('td', { 'data-label': 'User' }, u.username),
          h('td', { 'data-label': 'Roles' }, (u.roles || []).map((r) => enumName(r, 'ROLE_')).join(', '), h('details', {}, h('summary', {}, `Edit roles of ${u.username}`), roleEdit, saveRoles)),
          h('td', { 'data-label': 'State' }, u.disabled ? 'disabled' : 'active'),
          h('td', { 'data-label': 'Actions' }, h('div', { class: 'actions' }, toggle, pw)));
      })))));
  } catch (error) { fill(list, errorBox(error)); }
}

/** API keys. */
export async function keysPage() {
  const out = h('div', { id: 'new-key-out' });
  const roles = roleBoxes('new-key', ['ROLE_DEVELOPER']);
  const form = h('form', { class: 'stack', 'aria-label': 'create an API key' }, h('h2', {}, 'Create an API key'),
    field('Name', { id: 'key-name', required: true, autocomplete: 'off' }), roles,
    h('button', { type: 'submit', class: 'primary', id: 'create-key' }, 'Create key'), out);
  const list = h('div', {}, h('p', {}, 'Loading…'));
  page('API keys', form, h('h2', {}, 'Keys'), list);
  const load = async () => {
    try {
      const keys = (await call('GET', '/v1/api-keys?pageSize=100')).apiKeys || [];
      fill(list, keys.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'list', id: 'keys' }, h('caption', { class: 'visually-hidden' }, 'API keys'),
        h('thead', {}, h('tr', {}, ['Name', 'Key id', 'Owner', 'Roles', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, keys.map((k) => {
          const revoke = h('button', { type: 'button', 'data-key': k.keyId }, `Revoke ${k.name}`);
          revoke.addEventListener('click', async () => {
            try { await call('POST', `/v1/api-keys/${encodeURIComponent(k.keyId)}:revoke`, {}); announce(`key ${k.name} revoked`); load(); } catch (error) { list.append(errorBox(error)); }
          });
          return h('tr', {}, h('td', { 'data-label': 'Name' }, k.name), h('td', { 'data-label': 'Key id' }, k.keyId), h('td', { 'data-label': 'Owner' }, k.owner),
            h('td', { 'data-label': 'Roles' }, (k.roles || []).map((r) => enumName(r, 'ROLE_')).join(', ')), h('td', { 'data-label': 'Actions' }, revoke));
        })))) : h('p', { id: 'no-keys' }, 'No live keys.'));
    } catch (error) { fill(list, errorBox(error)); }
  };
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const answer = await call('POST', '/v1/api-keys', { name: form.querySelector('#key-name').value, roles: checked(roles) });
      fill(out, h('p', {}, 'The key\u2019s secret, shown this once; store it now:'), h('p', { class: 'secret', id: 'key-secret' }, answer.secret));
      announce('key created; its secret is shown once');
      load();
    } catch (error) { fill(out, errorBox(error)); }
  });
  load();
}

function bytes(n) {
  const v = Number(n || 0);
  return v >= 1e9 ? `${(v / 1e9).toFixed(1)} GB` : `${Math.round(v / 1e6)} MB`;
}

/** Models and the agent's Ollama endpoints with their health. */
export async function modelsPage() {
  const body = h('div', {}, h('p', {}, 'Loading…'));
  page('Models', body);
  try {
    const answer = await call('GET', '/v1/models');
    const endpoints = answer.endpoints || [];
    const models = answer.models || [];
    fill(body,
      h('h2', {}, 'Ollama endpoints'),
      h('div', { class: 'table-wrap' }, h('table', { class: 'list', id: 'endpoints' }, h('caption', { class: 'visually-hidden' }, 'Ollama endpoints'),
        h('thead', {}, h('tr', {}, ['Endpoint', 'Health', 'Version', 'Calls in flight'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, endpoints.map((e) => h('tr', {},
          h('td', { 'data-label': 'Endpoint' }, e.url),
          h('td', { 'data-label': 'Health' }, e.reachable ? 'reachable' : `unreachable: ${e.error || ''}`),
          h('td', { 'data-label': 'Version' }, e.version || ''),
          h('td', { 'data-label': 'Calls in flight' }, String(e.inFlight || 0))))))),
      h('h2', {}, 'Models'),
      models.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'list', id: 'models' }, h('caption', { class: 'visually-hidden' }, 'models'),
        h('thead', {}, h('tr', {}, ['Name', 'Endpoint', 'Size', 'Parameters', 'Quantization'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, models.map((m) => h('tr', {},
          h('td', { 'data-label': 'Name' }, m.name), h('td', { 'data-label': 'Endpoint' }, m.endpoint || ''),
          h('td', { 'data-label': 'Size' }, bytes(m.sizeBytes)), h('td', { 'data-label': 'Parameters' }, m.parameterSize || ''),
          h('td', { 'data-label': 'Quantization' }, m.quantizationLevel || '')))))) : h('p', {}, 'No models on any endpoint: pull one with prfix models pull NAME.'));
  } catch (error) {
    fill(body, errorBox(error));
  }
}

// Forge connections (admins): each one asked now by the agent, as `prfix forge check` does.
export async function forgesPage() {
  const body = h('div', {}, h('p', {}, 'Loading…'));
  page('Forges', body);
  try {
    const forges = (await call('GET', '/v1/forges')).forges || [];
    if (!forges.length) {
      fill(body, h('p', { id: 'no-forges' }, 'No forge connection is configured: add [agent.forges.<name>] to the agent\'s settings (docs/forges.md).'));
      return;
    }
    fill(body,
      h('div', { class: 'table-wrap' }, h('table', { class: 'list', id: 'forges' }, h('caption', { class: 'visually-hidden' }, 'forge connections'),
        h('thead', {}, h('tr', {}, ['Connection', 'Forge', 'API', 'Status', 'Repositories'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, forges.map((f) => h('tr', {},
          h('td', { 'data-label': 'Connection' }, f.name),
          h('td', { 'data-label': 'Forge' }, f.kind || ''),
          h('td', { 'data-label': 'API' }, f.apiUrl || ''),
          h('td', { 'data-label': 'Status' },
            f.authenticated ? `authenticated as ${f.account || ''}` : `does not authenticate: ${f.error || ''}`),
          h('td', { 'data-label': 'Repositories' }, f.authenticated
            ? `${f.repositoriesReached || 0}: ${(f.repositories || []).join(', ')}${(f.repositoriesReached || 0) > (f.repositories || []).length ? ', …' : ''}`
            : ''))))))
    );
  } catch (error) {
    fill(body, errorBox(error));
  }
}
