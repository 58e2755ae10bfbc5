// The audit log: newest first with filters, an event's detail (sequence, hashes, trace id), the
// latest signed checkpoint, the server-side Verify, and the commands to check the log offline.

import { h, fill, page, errorBox, enumName } from './dom.js';
import { call, query } from './api.js';

const RESULTS = ['SUCCESS', 'FAILURE', 'DENIED'];

function hex(b64) {
  if (!b64) return '';
  const bin = atob(b64.replace(/-/g, '+').replace(/_/g, '/'));
  return Array.from(bin, (c) => c.charCodeAt(0).toString(16).padStart(2, '0')).join('');
}

function localToRfc3339(value) {
  return value ? new Date(value).toISOString() : '';
}

/** The audit log page. */
export async function auditPage(params) {
  const f = (id, label, type = 'text') => h('div', {}, h('label', { for: id }, label), h('input', { id, type, value: params.get(id.slice(2)) || '' }));
  const filters = h('form', { class: 'filters', 'aria-label': 'filter audit events' },
    f('a-actor', 'Actor'), f('a-action', 'Action'), f('a-resource', 'Resource'),
    h('div', {}, h('label', { for: 'a-result' }, 'Result'), h('select', { id: 'a-result' }, h('option', { value: '' }, 'any'),
      RESULTS.map((r) => h('option', { value: `AUDIT_RESULT_${r}`, selected: params.get('result') === `AUDIT_RESULT_${r}` }, r.toLowerCase())))),
    f('a-from', 'From', 'datetime-local'), f('a-to', 'To', 'datetime-local'),
    h('button', { type: 'submit' }, 'Apply'));
  filters.addEventListener('submit', (e) => {
    e.preventDefault();
    const v = (id) => filters.querySelector(`#${id}`).value;
    location.hash = `#/audit${query({ actor: v('a-actor'), action: v('a-action'), resource: v('a-resource'), result: v('a-result'), from: v('a-from'), to: v('a-to') })}`;
  });
  const checkpoint = h('section', { 'aria-label': 'latest checkpoint' }, h('h2', {}, 'Latest signed checkpoint'), h('p', {}, 'Loading…'));
  const verify = h('section', { 'aria-label': 'verification' }, h('h2', {}, 'Verify'));
  const list = h('section', { 'aria-label': 'events' }, h('h2', {}, 'Events, newest first'), h('p', {}, 'Loading…'));
  const offline = h('section', { 'aria-label': 'offline verification' }, h('h2', {}, 'Check it offline'),
    h('p', {}, 'Export the log with an auditor\u2019s or admin\u2019s token and verify it against the audit service\u2019s public key:'),
    h('pre', {}, h('code', {}, 'prfix audit export --token "$TOKEN" audit.jsonl\nprfix audit verify audit.jsonl --key @$HOME/.local/share/prfix/audit-verifier-key.txt  # the key prfix up made; in production, the one your operator publishes')));
  page('Audit log', filters, list, checkpoint, verify, offline);
  const verifyButton = h('button', { type: 'button', id: 'verify' }, 'Run Verify on the server');
  const verifyOut = h('div', { role: 'status' });
  verify.append(verifyButton, verifyOut);
  verifyButton.addEventListener('click', async () => {
    fill(verifyOut, h('p', {}, 'Verifying…'));
    try {
      const v = await call('POST', '/v1/audit:verify', {});
      fill(verifyOut, h('p', { class: v.ok ? 'ok' : 'error', id: 'verify-result' },
        v.ok ? `OK: ${v.eventsChecked || 0} events and ${v.checkpointsChecked || 0} checkpoints checked.` : `FAILED: ${(v.problems || []).length} problem(s).`),
      (v.problems || []).length ? h('pre', {}, JSON.stringify(v.problems, null, 2)) : null);
    } catch (error) {
      fill(verifyOut, errorBox(error));
    }
  });
  call('GET', '/v1/audit/checkpoint').then((c) => {
    const cp = c.checkpoint || {};
    fill(checkpoint, h('h2', {}, 'Latest signed checkpoint'), h('dl', { class: 'facts' },
      h('dt', {}, 'Origin'), h('dd', {}, cp.origin || ''), h('dt', {}, 'Tree size'), h('dd', {}, cp.treeSize || '0'),
      h('dt', {}, 'Root hash'), h('dd', {}, hex(cp.rootHash)), h('dt', {}, 'Time'), h('dd', {}, cp.time || '')),
    h('details', {}, h('summary', {}, 'Signed note'), h('pre', {}, cp.signedNote || '')));
  }).catch((error) => fill(checkpoint, h('h2', {}, 'Latest signed checkpoint'), error.status === 404
    ? h('p', { id: 'no-checkpoint' }, 'No signed checkpoint yet: the audit service signs one shortly after the first events.')
    : errorBox(error)));
  try {
    const answer = await call('GET', `/v1/audit/events${query({
      newestFirst: true, pageSize: 50, pageToken: params.get('page'), actor: params.get('actor'), action: params.get('action'),
      resource: params.get('resource'), result: params.get('result'), startTime: localToRfc3339(params.get('from')), endTime: localToRfc3339(params.get('to')),
    })}`);
    const events = answer.events || [];
    const rows = events.map((e) => h('tr', {},
      h('td', { 'data-label': 'Seq' }, e.sequence),
      h('td', { 'data-label': 'Time' }, h('time', { datetime: e.time }, (e.time || '').replace('T', ' ').replace(/\..*Z$/, 'Z'))),
      h('td', { 'data-label': 'Actor' }, e.actor ? e.actor.subject : ''),
      h('td', { 'data-label': 'Action' }, e.action),
      h('td', { 'data-label': 'Resource' }, e.resource || ''),
      h('td', { 'data-label': 'Result' }, enumName(e.result, 'AUDIT_RESULT_')),
      h('td', { 'data-label': 'Detail' }, h('details', {}, h('summary', {}, 'detail'), h('dl', { class: 'facts' },
        h('dt', {}, 'Event id'), h('dd', {}, e.eventId), h('dt', {}, 'Leaf hash'), h('dd', {}, hex(e.leafHash)),
        h('dt', {}, 'Chain hash'), h('dd', {}, hex(e.chainHash)), h('dt', {}, 'Trace id'), h('dd', {}, e.traceId || ''),
        h('dt', {}, 'Request id'), h('dd', {}, e.requestId || ''), h('dt', {}, 'Address'), h('dd', {}, e.actorIp || ''),
        h('dt', {}, 'Metadata'), h('dd', {}, h('pre', {}, JSON.stringify(e.metadata || {}, null, 1))))))));
    const next = new URLSearchParams(params);
    next.set('page', answer.nextPageToken || '');
    fill(list, h('h2', {}, 'Events, newest first'),
      events.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'list', id: 'audit-events' }, h('caption', { class: 'visually-hidden' }, 'audit events'),
        h('thead', {}, h('tr', {}, ['Seq', 'Time', 'Actor', 'Action', 'Resource', 'Result', 'Detail'].map((c) => h('th', { scope: 'col' }, c)))), h('tbody', {}, rows)))
        : h('p', {}, 'No events match.'),
      answer.nextPageToken ? h('p', {}, h('a', { href: `#/audit?${next}` }, 'Older events')) : null);
  } catch (error) {
    fill(list, h('h2', {}, 'Events, newest first'), errorBox(error));
  }
}
