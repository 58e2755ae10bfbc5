// Tasks: the list (ListTasks with paging and filters), a task's page (WatchTask as NDJSON, with a
// GetTask poll as fallback; cancel), and starting a review from a pasted or dropped diff.

import { h, fill, page, errorBox, age, enumName, download, announce } from './dom.js';
import { call, query, stream } from './api.js';
import { parseDiff, renderDiff, severity } from './diff.js';
import * as formats from './formats.js';

const STATES = ['QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED'];
const KINDS = ['REVIEW', 'DESCRIBE', 'FIX'];
const FINAL = ['TASK_STATE_SUCCEEDED', 'TASK_STATE_FAILED', 'TASK_STATE_CANCELLED'];
/** Diffs of reviews started in this tab, by task id: the API does not return a task's change set. */

function select(id, label, values, prefix, chosen) {
  return [h('label', { for: id }, label), h('select', { id },
    h('option', { value: '' }, 'any'), values.map((v) => h('option', { value: `${prefix}${v}`, selected: chosen === `${prefix}${v}` }, v.toLowerCase())))];
}

/** The tasks list. */
export async function listPage(params) {
  const filters = h('form', { class: 'filters', 'aria-label': 'filter tasks' },
    h('div', {}, select('f-state', 'State', STATES, 'TASK_STATE_', params.get('state'))),
    h('div', {}, select('f-kind', 'Kind', KINDS, 'TASK_KIND_', params.get('kind'))),
    h('div', {}, h('label', { for: 'f-owner' }, 'Owner'), h('input', { id: 'f-owner', value: params.get('owner') || '' })),
    h('button', { type: 'submit' }, 'Apply'));
  filters.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = query({ state: filters.querySelector('#f-state').value, kind: filters.querySelector('#f-kind').value, owner: filters.querySelector('#f-owner').value });
    location.hash = `#/tasks${q}`;
  });
  const body = h('div', {}, h('p', {}, 'Loading…'));
  page('Tasks', filters, body);
  try {
    const answer = await call('GET', `/v1/tasks${query({ pageSize: 25, pageToken: params.get('page'), state: params.get('state'), kind: params.get('kind'), owner: params.get('owner') })}`);
    const tasks = answer.tasks || [];
    const rows = tasks.map((t) => h('tr', {},
      h('td', { 'data-label': 'Task' }, h('a', { href: `#/tasks/${t.taskId}` }, t.taskId.slice(0, 8))),
      h('td', { 'data-label': 'State' }, enumName(t.state, 'TASK_STATE_')),
      h('td', { 'data-label': 'Kind' }, enumName(t.kind, 'TASK_KIND_')),
      h('td', { 'data-label': 'Owner' }, t.owner),
      h('td', { 'data-label': 'Pull request' }, t.forgePullRequest ? `${t.forgePullRequest.repository}#${t.forgePullRequest.number}` : ''),
      h('td', { 'data-label': 'Age' }, h('time', { datetime: t.createTime }, age(t.createTime)))));
    const next = new URLSearchParams(params);
    next.set('page', answer.nextPageToken || '');
    fill(body, 
      tasks.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'list' }, h('caption', { class: 'visually-hidden' }, 'tasks, newest first'),
        h('thead', {}, h('tr', {}, ['Task', 'State', 'Kind', 'Owner', 'Pull request', 'Age'].map((c) => h('th', { scope: 'col' }, c)))), h('tbody', {}, rows)))
        : h('p', {}, 'No tasks yet. ', h('a', { href: '#/review/new' }, 'Start a review')),
      h('div', { class: 'actions' }, params.get('page') ? h('a', { href: '#/tasks' }, 'First page') : null,
        answer.nextPageToken ? h('a', { href: `#/tasks?${next}` }, 'Next page') : null));
  } catch (error) {
    fill(body, errorBox(error));
  }
}

/** Starting a review. */
export function newReviewPage() {
  const area = h('textarea', { id: 'diff', name: 'diff', required: true, spellcheck: 'false', 'aria-describedby': 'diff-help' });
  const file = h('input', { type: 'file', id: 'patch', accept: '.patch,.diff,text/x-diff,text/plain' });
  const drop = h('div', { class: 'drop' }, h('label', { for: 'patch' }, 'Or choose or drop a .patch file'), file);
  const read = async (f) => { if (f) { area.value = await f.text(); announce(`${f.name} loaded`); } };
  file.addEventListener('change', () => read(file.files[0]));
  for (const target of [drop, area]) {
    target.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
    target.addEventListener('dragleave', () => drop.classList.remove('over'));
    target.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); read(e.dataTransfer.files[0]); });
  }
  const model = h('input', { id: 'model', placeholder: 'the agent\u2019s default' });
  const min = h('select', { id: 'min-severity' }, h('option', { value: '' }, 'all'), ['MINOR', 'MAJOR', 'CRITICAL'].map((s) => h('option', { value: `SEVERITY_${s}` }, `${s.toLowerCase()} and above`)));
  const out = h('div', {});
  const form = h('form', {},
    h('label', { for: 'diff' }, 'Unified diff'), h('p', { id: 'diff-help', class: 'muted' }, 'Paste the output of git diff, or drop a .patch file here.'), area, drop,
    h('div', { class: 'filters' }, h('div', {}, h('label', { for: 'model' }, 'Model'), model), h('div', {}, h('label', { for: 'min-severity' }, 'Findings'), min)),
    h('button', { type: 'submit', class: 'primary', id: 'start-review' }, 'Start review'), out);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const diff = area.value;
    const options = {};
    if (model.value.trim()) options.model = model.value.trim();
    if (min.value) options.minSeverity = min.value;
    try {
      const answer = await call('POST', '/v1/tasks:review', { changeSet: { diff }, options });
      const id = answer.task.taskId;
      location.hash = `#/tasks/${id}`;
    } catch (error) {
      fill(out, errorBox(error));
    }
  });
  page('New review', form);
}

let watching = null;

/** Stops following a task (the page is left). */
export function stopWatching() {
  if (watching) watching.abort();
  watching = null;
}

/** A task's page: follows it live until it ends, then shows its result. */
export async function taskPage(id) {
  stopWatching();
  const state = h('dd', { id: 'task-state' }, '…');
  const facts = h('dl', { class: 'facts' });
  const events = h('ol', { class: 'muted', 'aria-label': 'progress' });
  const result = h('div', { id: 'result' });
  const cancel = h('button', { type: 'button', id: 'cancel', hidden: true }, 'Cancel task');
  page(`Task ${id.slice(0, 8)}`, facts, h('div', { class: 'actions' }, cancel), h('details', {}, h('summary', {}, 'Progress'), events), result);
  const show = (task) => {
    fill(facts, 
      h('dt', {}, 'Id'), h('dd', {}, task.taskId), h('dt', {}, 'Kind'), h('dd', {}, enumName(task.kind, 'TASK_KIND_')),
      h('dt', {}, 'State'), state, h('dt', {}, 'Owner'), h('dd', {}, task.owner), h('dt', {}, 'Created'), h('dd', {}, h('time', { datetime: task.createTime }, age(task.createTime))),
      task.error ? [h('dt', {}, 'Error'), h('dd', {}, task.error)] : null);
    state.textContent = enumName(task.state, 'TASK_STATE_');
    cancel.hidden = FINAL.includes(task.state);
  };
  cancel.addEventListener('click', async () => {
    try { show((await call('POST', `/v1/tasks/${id}:cancel`, {})).task); announce('task cancelled'); } catch (error) { fill(result, errorBox(error)); }
  });
  let task;
  try {
    task = (await call('GET', `/v1/tasks/${id}`)).task;
  } catch (error) {
    fill(result, errorBox(error));
    return;
  }
  show(task);
  if (!FINAL.includes(task.state)) {
    const controller = new AbortController();
    watching = controller;
    try {
      await stream(`/v1/tasks/${id}:watch`, (message) => {
        const ev = message.event || {};
        const what = ev.stateChange ? `state ${enumName(ev.stateChange.to, 'TASK_STATE_')}`
          : ev.finding ? `finding: ${severity(ev.finding)} ${ev.finding.title}`
          : ev.modelCall ? 'model call' : ev.progress ? `progress ${ev.progress.message || ''}` : 'event';
        events.append(h('li', {}, what));
        if (ev.stateChange) state.textContent = enumName(ev.stateChange.to, 'TASK_STATE_');
      }, controller.signal);
    } catch (error) {
      if (controller.signal.aborted) return;
      // The stream broke: fall back to polling.
      while (!FINAL.includes(task.state) && watching === controller) {
        await new Promise((r) => setTimeout(r, 1000));
        task = (await call('GET', `/v1/tasks/${id}`)).task;
        show(task);
      }
    }
    if (watching !== controller) return;
    watching = null;
    task = (await call('GET', `/v1/tasks/${id}`)).task;
    show(task);
  }
  announce(`task ${enumName(task.state, 'TASK_STATE_')}`);
  fill(result, renderResult(task));
}

function renderResult(task) {
  const r = task.result || {};
  if (r.review) {
    const findings = r.review.findings || [];
    // GetTask carries the change set's diff for tasks created with one.
    const diff = task.diff || '';
    const downloads = h('div', { class: 'actions' },
      h('button', { type: 'button', id: 'download-sarif', onclick: () => download(`review-${task.taskId}.sarif`, 'application/sarif+json', formats.sarif(task)) }, 'Download SARIF'),
      h('button', { type: 'button', id: 'download-markdown', onclick: () => download(`review-${task.taskId}.md`, 'text/markdown', formats.markdown(task)) }, 'Download markdown'),
      h('button', { type: 'button', id: 'download-json', onclick: () => download(`review-${task.taskId}.json`, 'application/json', formats.json(task)) }, 'Download JSON'));
    return [h('h2', {}, `Review: ${findings.length} finding(s)`), downloads,
      diff ? null : h('p', { class: 'muted' }, 'This review has no stored diff (a forge\'s review reads its diff from the pull request), so findings are listed by file.'),
      renderDiff(diff ? parseDiff(diff) : [], findings)];
  }
  if (r.describe) {
    const d = r.describe;
    return [h('h2', {}, d.title || 'Description'), h('pre', {}, d.summary || ''),
      (d.walkthrough || []).map((w) => h('p', {}, h('code', {}, w.path || ''), ' ', w.summary || w.description || '')),
      d.labels && d.labels.length ? h('p', {}, `Labels: ${d.labels.join(', ')}`) : null];
  }
  if (r.fix) {
    const f = r.fix;
    return [h('h2', {}, 'Fix'), f.explanation ? h('p', {}, f.explanation) : null, renderDiff(parseDiff(f.diff || f.patch || ''), [])];
  }
  return [];
}
