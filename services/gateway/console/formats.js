// A review's result as SARIF 2.1.0, markdown and JSON, rendered here from the stored task (as
// `prfix review --format sarif|markdown|json` renders it in cli/src/report): one rule per category,
// levels critical/major → error, minor → warning, info → note, locations under %SRCROOT%.

import { severity } from './diff.js';

const LEVEL = { critical: 'error', major: 'error', minor: 'warning', info: 'note' };
const SECURITY = { critical: '9.5', major: '8.0', minor: '5.5', info: '2.0' };

function category(f) {
  return (f.category || 'general').trim().toLowerCase() || 'general';
}

function span(f) {
  const start = Math.max(1, f.line || 1);
  return [start, Math.max(start, f.endLine || start)];
}

function message(f) {
  const title = (f.title || '').trim();
  const body = (f.body || '').trim();
  if (title && body) return `${title}\n\n${body}`;
  return title || body || '(no description)';
}

/** The SARIF log of a review task. */
export function sarif(task) {
  const review = task.result.review;
  const findings = review.findings || [];
  const categories = [...new Set(findings.map(category))];
  const rules = categories.map((name) => {
    const properties = { tags: [name] };
    if (name === 'security') {
      const ranks = ['info', 'minor', 'major', 'critical'];
      const worst = findings.filter((f) => category(f) === 'security').map(severity).sort((a, b) => ranks.indexOf(b) - ranks.indexOf(a))[0] || 'minor';
      properties['security-severity'] = SECURITY[worst];
    }
    return { id: name, shortDescription: { text: `prfix ${name} findings` }, properties };
  });
  const results = findings.map((f) => {
    const [startLine, endLine] = span(f);
    const sev = severity(f);
    const result = {
      ruleId: category(f),
      ruleIndex: categories.indexOf(category(f)),
      level: LEVEL[sev] || 'warning',
      message: { text: message(f) },
      locations: [{ physicalLocation: { artifactLocation: { uri: f.path, uriBaseId: '%SRCROOT%' }, region: { startLine, endLine } } }],
      properties: { severity: sev },
    };
    if (category(f) === 'security') result.properties['security-severity'] = SECURITY[sev];
    return result;
  });
  return JSON.stringify({
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [{
      tool: { driver: { name: 'prfix', rules } },
      originalUriBaseIds: { '%SRCROOT%': { description: { text: 'The root of the repository the reviewed diff was taken in.' } } },
      invocations: [{ executionSuccessful: true }],
      results,
      properties: {
        taskId: task.taskId,
        reanchoredFindings: review.reanchoredFindings || 0,
        droppedFindings: review.droppedFindings || 0,
        redactions: review.redactions || 0,
        chunks: review.chunks || 0,
      },
    }],
  }, null, 2) + '\n';
}

/** The review as markdown. */
export function markdown(task) {
  const findings = task.result.review.findings || [];
  const lines = [`# Review ${task.taskId}`, '', `${findings.length} finding(s).`, ''];
  for (const f of findings) {
    const [start, end] = span(f);
    lines.push(`## ${severity(f)}: ${(f.title || '(untitled)').replace(/\n/g, ' ')}`, '', `\`${f.path}\` line ${start === end ? start : `${start}-${end}`} · ${category(f)}`, '');
    if (f.body) lines.push(f.body, '');
    if (f.suggestion) lines.push('Suggested change:', '', '```suggestion', f.suggestion.replace(/```/g, '`\u200b``').replace(/\n$/, ''), '```', '');
  }
  return lines.join('\n');
}

/** The task as the API returned it. */
export function json(task) {
  return JSON.stringify(task, null, 2) + '\n';
}
