// Snapshot history: the configuration versions newest first (author, time, summary), the diff of any two versions
// (or of one against the current version), a version's redacted body, and - for owners - a rollback to a restorable
// version after a confirmation dialog. The rollback answer shows whether every data plane applied the new version.
import { h, table, showError, showApplied, confirmDialog, toast, fmtTime } from '../lib/ui.js';

const PAGE = 50;

function json(v) {
    return v === undefined ? '' : JSON.stringify(v, null, 2);
}

// A changed value: objects and arrays as indented JSON, scalars inline.
function value(v) {
    return v !== null && typeof v === 'object' ? h('pre', {}, json(v)) : h('code', {}, json(v));
}

// The changes of a diff as a table: op, JSON pointer, old value, new value.
function changesTable(changes) {
    if (!Array.isArray(changes) || !changes.length) return h('p', { class: 'diff-empty' }, 'No difference.');
    return h('div', { class: 'table-wrap' }, h('table', { class: 'data diff' },
        h('thead', {}, h('tr', {}, h('th', {}, 'change'), h('th', {}, 'path'), h('th', {}, 'from'), h('th', {}, 'to'))),
        h('tbody', {}, changes.map((c) => h('tr', { class: 'diff-' + String(c.op || '') },
            h('td', {}, String(c.op || '')), h('td', {}, h('code', {}, String(c.path || '') || '/')),
            h('td', {}, 'from' in c ? value(c.from) : ''),
            h('td', {}, 'to' in c ? value(c.to) : ''))))));
}

function parseVersion(s) {
    const t = String(s || '').trim();
    if (!t) return null;
    if (!/^[0-9]{1,18}$/.test(t) || Number(t) < 1) throw new Error('a version is a positive whole number');
    return Number(t);
}

export const screen = {
    id: 'history',
    title: 'History',
    minRole: 'viewer',
    render(root, ctx) {
        const isOwner = ctx.me && ctx.me.role === 'owner';
        const msg = h('div', { class: 'messages' });
        const listBox = h('div', { class: 'history-list' });
        const more = h('div', { class: 'history-more' });
        const detail = h('section', { class: 'history-detail', 'aria-live': 'polite' });
        let items = [];
        let current = null; // the newest version: nothing to roll back to or diff against

        const fromIn = h('input', { id: 'history-from', name: 'from', type: 'number', min: '1', step: '1', required: true });
        const toIn = h('input', { id: 'history-to', name: 'to', type: 'number', min: '1', step: '1',
            placeholder: 'current' });
        const diffForm = h('form', { class: 'history-diff-form crud-form' },
            h('div', { class: 'field' }, h('label', { for: 'history-from' }, 'From version'), fromIn),
            h('div', { class: 'field' }, h('label', { for: 'history-to' }, 'To version (empty: current)'), toIn),
            h('button', { type: 'submit', class: 'primary' }, 'Diff'));

        async function showDiff(from, to) {
            msg.replaceChildren();
            try {
                const q = to ? '?to=' + encodeURIComponent(to) : '';
                const d = await ctx.api('GET', '/snapshots/' + encodeURIComponent(from) + '/diff' + q);
                const n = (d.changes || []).length;
                detail.replaceChildren(h('h2', {}, 'Diff of version ' + d.from + ' to version ' + d.to),
                    h('p', {}, n + (n === 1 ? ' change' : ' changes')), changesTable(d.changes));
            } catch (err) {
                showError(msg, err);
            }
        }

        diffForm.addEventListener('submit', (ev) => {
            ev.preventDefault();
            let from, to;
            try {
                from = parseVersion(fromIn.value);
                to = parseVersion(toIn.value);
                if (from === null) throw new Error('enter the version to diff from');
            } catch (e) {
                showError(msg, { code: 'invalid', message: e.message, path: '' });
                return;
            }
            showDiff(from, to);
        });

        async function view(v) {
            msg.replaceChildren();
            try {
                const s = await ctx.api('GET', '/snapshots/' + encodeURIComponent(v));
                detail.replaceChildren(h('h2', {}, 'Version ' + v),
                    h('p', {}, 'Author ' + (s.author || '-') + ', ' + (s.created_at || '') + ', hash ' + (s.hash || '')),
                    h('pre', { class: 'snapshot-body' }, json(s.body)));
            } catch (err) {
                showError(msg, err);
            }
        }

        async function rollback(v) {
            msg.replaceChildren();
            const ok = await confirmDialog('Roll back to version ' + v + '? This writes a new version with the ' +
                'configuration of version ' + v + ' (services, routes, systems, roles, groups, endpoint rules, ' +
                'issuers). Users, API keys, passwords and signing keys are not changed.',
            { confirm: 'Roll back', title: 'Roll back' });
            if (!ok) return;
            try {
                const r = await ctx.api('POST', '/snapshots/' + encodeURIComponent(v) + '/rollback', {});
                showApplied(msg, r);
                msg.append(h('p', { class: 'rollback-result' }, 'Rolled back to version ' + r.rolled_back_to +
                    ': new version ' + r.version + (r.same_body ? ', the same configuration as version ' + v
                        : ' (the body differs from version ' + v + ': users or keys changed since)') + '.'));
                if (typeof toast === 'function') toast('Rolled back to version ' + v);
                await load(null);
            } catch (err) {
                showError(msg, err);
            }
        }

        function render() {
            const cols = [
                { label: 'Version', key: 'version' },
                { label: 'Time', render: (r) => fmtTime(r.created_at) },
                { label: 'Author', render: (r) => r.author || '-' },
                { label: 'Summary', render: (r) => r.summary || '' },
                { label: 'Hash', render: (r) => h('code', { title: String(r.hash || '') },
                    String(r.hash || '').replace(/^sha256:/, '').slice(0, 12)) },
                { label: 'Restorable', render: (r) => (r.restorable ? 'yes' : 'no') },
                {
                    label: 'Actions',
                    render: (r) => h('span', { class: 'actions' },
                        h('button', { type: 'button', 'data-version': String(r.version), onclick: () => view(r.version) },
                            'View'),
                        r.version === current ? h('span', { class: 'muted' }, 'current') : h('button', { type: 'button',
                            'data-version': String(r.version), onclick: () => {
                            fromIn.value = String(r.version);
                            toIn.value = '';
                            showDiff(r.version, null);
                        } }, 'Diff to current'),
                        isOwner && r.restorable && r.version !== current
                            ? h('button', { type: 'button', class: 'danger', 'data-version': String(r.version),
                                onclick: () => rollback(r.version) }, 'Roll back')
                            : null),
                },
            ];
            listBox.replaceChildren(table({ columns: cols, rows: items, empty: 'No snapshot yet.' }));
        }

        async function load(before) {
            try {
                const q = '?limit=' + PAGE + (before ? '&before=' + encodeURIComponent(before) : '');
                const page = await ctx.api('GET', '/snapshots' + q);
                items = before ? items.concat(page.items || []) : (page.items || []);
                if (!before) current = items.length ? items[0].version : null;
                render();
                more.replaceChildren();
                if (page.next !== null && page.next !== undefined)
                    more.append(h('button', { type: 'button', onclick: () => load(page.next) }, 'Older versions'));
            } catch (err) {
                showError(msg, err);
            }
        }

        root.append(h('h1', {}, 'Snapshot history'),
            h('p', {}, 'Every configuration write makes a new version. Compare any two, or roll back to an older one' +
                (isOwner ? '.' : ' (owners only).')),
            msg, h('section', {}, h('h2', {}, 'Compare versions'), diffForm), listBox, more, detail);
        return load(null);
    },
};
