// A unified diff parsed into files, hunks and numbered lines, and rendered as a table with each
// finding in a row right after the line it is anchored to (its last line, on its side).

import { h, enumName } from './dom.js';

/** Parses `text` into [{path, oldPath, hunks: [{header, lines: [{kind, old, new, text}]}]}]. */
export function parseDiff(text) {
  const files = [];
  let file = null;
  let hunk = null;
  let oldNo = 0;
  let newNo = 0;
  for (const raw of String(text || '').split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (line.startsWith('diff --git ')) {
      file = { path: '', oldPath: '', hunks: [] };
      files.push(file);
      hunk = null;
      const m = /^diff --git a\/(.*) b\/(.*)$/.exec(line);
      if (m) { file.oldPath = m[1]; file.path = m[2]; }
      continue;
    }
    if (line.startsWith('--- ') && (!hunk || hunk.done)) {
      if (!file) { file = { path: '', oldPath: '', hunks: [] }; files.push(file); }
      const p = line.slice(4).replace(/^a\//, '');
      if (p !== '/dev/null') file.oldPath = p;
      continue;
    }
    if (line.startsWith('+++ ') && file && (!hunk || hunk.done)) {
      const p = line.slice(4).replace(/^b\//, '');
      file.path = p === '/dev/null' ? file.oldPath : p;
      continue;
    }
    const m = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$/.exec(line);
    if (m && file) {
      oldNo = Number(m[1]);
      newNo = Number(m[3]);
      hunk = { header: line, lines: [], left: Number(m[2] ?? 1), right: Number(m[4] ?? 1), done: false };
      file.hunks.push(hunk);
      continue;
    }
    if (!hunk || hunk.done) continue;
    if (line.startsWith('+')) {
      hunk.lines.push({ kind: 'add', old: null, new: newNo++, text: line.slice(1) });
      hunk.right--;
    } else if (line.startsWith('-')) {
      hunk.lines.push({ kind: 'del', old: oldNo++, new: null, text: line.slice(1) });
      hunk.left--;
    } else if (line.startsWith(' ') || line === '') {
      if (line === '' && hunk.left <= 0 && hunk.right <= 0) { hunk.done = true; continue; }
      hunk.lines.push({ kind: 'ctx', old: oldNo++, new: newNo++, text: line.slice(1) });
      hunk.left--; hunk.right--;
    } else if (line.startsWith('\\')) {
      continue;
    }
    if (hunk.left <= 0 && hunk.right <= 0) hunk.done = true;
  }
  return files;
}

/** The severity's short name (`major`). */
export function severity(finding) {
  return enumName(finding.severity || 'SEVERITY_INFO', 'SEVERITY_') || 'info';
}

function side(finding) {
  return finding.side === 'SIDE_OLD' ? 'old' : 'new';
}

/** The finding's box: severity, category, title, body, the suggestion as a diff and a copy button. */
export function findingBox(finding, oldLines) {
  const sev = severity(finding);
  const span = finding.endLine && finding.endLine !== finding.line ? `${finding.line}–${finding.endLine}` : `${finding.line}`;
  const box = h('section', { class: `finding-box sev-${sev}`, 'aria-label': `${sev} finding at ${finding.path} line ${span}`, 'data-line': finding.line, 'data-path': finding.path },
    h('p', {}, h('span', { class: `badge sev-${sev}` }, sev), finding.category ? h('span', { class: 'muted' }, `${finding.category} · `) : null,
      h('strong', {}, finding.title || '(untitled)'), h('span', { class: 'muted' }, ` — ${finding.path}:${span} (${side(finding)})`)),
    finding.body ? h('p', {}, finding.body) : null);
  if (finding.suggestion) {
    const removed = (oldLines || []).map((t) => h('div', { class: 'del' }, `-${t}`));
    const added = finding.suggestion.replace(/\n$/, '').split('\n').map((t) => h('div', { class: 'add' }, `+${t}`));
    const copy = h('button', { type: 'button', onclick: async () => {
      try { await navigator.clipboard.writeText(finding.suggestion); copy.textContent = 'Copied'; } catch (_) { copy.textContent = 'Copy failed'; }
    } }, 'Copy suggestion');
    box.append(h('p', { class: 'muted' }, 'Suggested change:'), h('div', { class: 'suggestion', role: 'group', 'aria-label': 'suggestion as a diff' }, removed, added), h('div', { class: 'actions' }, copy));
  }
  return box;
}

/** The diff of `files` with `findings` inline; findings whose line is not shown are listed after their file. */
export function renderDiff(files, findings) {
  const placed = new Set();
  const out = [];
  for (const file of files) {
    const mine = findings.filter((f) => f.path === file.path);
    const rows = [];
    for (const hunk of file.hunks) {
      rows.push(h('tr', { class: 'hunk' }, h('td', { class: 'num' }, ''), h('td', { class: 'num' }, ''), h('td', {}, hunk.header)));
      hunk.lines.forEach((line) => {
        const mark = line.kind === 'add' ? '+' : line.kind === 'del' ? '-' : ' ';
        rows.push(h('tr', { class: line.kind, 'data-old': line.old ?? '', 'data-new': line.new ?? '' },
          h('td', { class: 'num' }, line.old ?? ''), h('td', { class: 'num' }, line.new ?? ''),
          h('td', { class: 'code' }, h('span', { class: 'visually-hidden' }, line.kind === 'add' ? 'added ' : line.kind === 'del' ? 'removed ' : ''), `${mark}${line.text}`)));
        for (const f of mine) {
          if (placed.has(f)) continue;
          const last = f.endLine || f.line;
          const at = side(f) === 'old' ? line.old : line.new;
          if (at === last) {
            placed.add(f);
            const start = f.line;
            const oldText = hunk.lines.filter((l) => (side(f) === 'old' ? l.old : l.new) >= start && (side(f) === 'old' ? l.old : l.new) <= last).map((l) => l.text);
            rows.push(h('tr', { class: 'finding' }, h('td', { colspan: 3 }, findingBox(f, oldText))));
          }
        }
      });
    }
    const rest = mine.filter((f) => !placed.has(f));
    rest.forEach((f) => placed.add(f));
    out.push(h('section', { class: 'diff-file', 'aria-label': `file ${file.path}` }, h('h2', {}, file.path),
      h('div', { class: 'diff-scroll', tabindex: 0, role: 'region', 'aria-label': `diff of ${file.path}` }, h('table', { class: 'diff' }, h('caption', { class: 'visually-hidden' }, `changes to ${file.path}: old line, new line, code`), h('tbody', {}, rows))),
      rest.map((f) => findingBox(f))));
  }
  const orphans = findings.filter((f) => !placed.has(f));
  if (orphans.length) out.push(h('section', { 'aria-label': 'findings outside the shown diff' }, h('h2', {}, 'Other findings'), orphans.map((f) => findingBox(f))));
  return out;
}
