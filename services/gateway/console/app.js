// The console's entry: hash routes, the sign-in page, and the navigation that shows admin links
// only to admins.

import { h, fill, page, errorBox, field } from './dom.js';
import { current, hasRole, loadSession, signIn, signOut } from './api.js';
import { listPage, newReviewPage, taskPage, stopWatching } from './tasks.js';
import { auditPage } from './audit.js';
import { usersPage, keysPage, modelsPage, forgesPage } from './admin.js';

function signInPage() {
  const out = h('div', {});
  const form = h('form', { class: 'stack', id: 'sign-in', 'aria-label': 'sign in' },
    field('User name', { id: 'username', name: 'username', required: true, autocomplete: 'username' }),
    field('Password', { id: 'password', name: 'password', type: 'password', required: true, autocomplete: 'current-password' }),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Sign in')), out);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await signIn(form.querySelector('#username').value, form.querySelector('#password').value);
      location.hash = '#/tasks';
      route();
    } catch (error) {
      fill(out, errorBox(error));
    }
  });
  page('Sign in', form);
}

function renderNav() {
  const nav = document.getElementById('nav');
  const s = current();
  nav.hidden = !s;
  document.getElementById('whoami').textContent = s ? `${s.username} (${s.roles.join(', ')})` : '';
  // The audit log is for admins and auditors (the API says so too).
  for (const item of document.querySelectorAll('.audit-only')) item.hidden = !(hasRole('admin') || hasRole('auditor'));
  for (const item of document.querySelectorAll('.admin-only')) {
    // Absent, not just hidden from view, for everyone but admins.
    item.hidden = !hasRole('admin');
    if (s && !hasRole('admin')) item.remove();
  }
}

async function route() {
  stopWatching();
  const [path, q] = location.hash.replace(/^#/, '').split('?');
  const params = new URLSearchParams(q || '');
  if (!current()) {
    renderNav();
    return signInPage();
  }
  renderNav();
  const parts = path.split('/').filter(Boolean);
  try {
    if (parts[0] === 'tasks' && parts[1]) return await taskPage(parts[1]);
    if (parts[0] === 'review') return newReviewPage();
    if (parts[0] === 'audit') return await auditPage(params);
    if (parts[0] === 'admin' && parts[1] === 'users' && hasRole('admin')) return await usersPage();
    if (parts[0] === 'admin' && parts[1] === 'keys' && hasRole('admin')) return await keysPage();
    if (parts[0] === 'admin' && parts[1] === 'models' && hasRole('admin')) return await modelsPage();
    if (parts[0] === 'admin' && parts[1] === 'forges' && hasRole('admin')) return await forgesPage();
    return await listPage(params);
  } catch (error) {
    page('Error', errorBox(error));
  }
}

document.getElementById('logout').addEventListener('click', async () => {
  await signOut();
  // A fresh page: nothing of the last user's stays in memory or in the navigation.
  location.assign('/');
});
window.addEventListener('hashchange', route);
loadSession().then(route, () => route());
