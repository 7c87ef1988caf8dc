// Audit log: every write (actor, time, action, entity, resulting version), newest first, filterable by the API's own
// filters (actor, action, entity type and id, version, time range), paged with "Older entries"; an entry opens its
// before -> after diff and both representations. Filters are checked here before the request (the server checks too).
import { h, table, showError, fmtTime } from '../lib/ui.js';

const ENTITY_TYPES = ['service', 'route', 'endpoint', 'system', 'role', 'group', 'user', 'api_key', 'issuer',
    'signing_key', 'snapshot', 'secret', 'admin_account', 'admin_token', 'admin_session'];
const ACTIONS = ['create', 'update', 'delete', 'rollback', 'rebuild', 'rotate', 'purge', 'login', 'login_failed',
    'logout'];
const FILTERS = ['actor', 'action', 'entity_type', 'entity_id', 'version', 'since', 'until', 'limit'];

function json(v) {
    return v === undefined ? '' : JSON.stringify(v, null, 2);
}

// A changed value: objects and arrays as indented JSON, scalars inline.
function value(v) {
    return v !== null && typeof v === 'object' ? h('pre', {}, json(v)) : h('code', {}, json(v));
}

function changesTable(changes) {
    if (!Array.isArray(changes) || !changes.length) return h('p', { class: 'diff-empty' }, 'No field changed.');
    return h('div', { class: 'table-wrap' }, h('table', { class: 'data diff' },
        h('thead', {}, h('tr', {}, h('th', {}, 'change'), h('th', {}, 'path'), h('th', {}, 'before'),
            h('th', {}, 'after'))),
        h('tbody', {}, changes.map((c) => h('tr', { class: 'diff-' + String(c.op || '') },
            h('td', {}, String(c.op || '')), h('td', {}, h('code', {}, String(c.path || '') || '/')),
            h('td', {}, 'from' in c ? value(c.from) : ''),
            h('td', {}, 'to' in c ? value(c.to) : ''))))));
}

function field(id, label, input, help) {
    return h('div', { class: 'field' }, h('label', { for: id }, label), input,
        help ? h('small', { class: 'help' }, help) : null);
}

// Reads and checks the filter inputs; returns the query string or throws {code, message, path}.
function buildQuery(inputs) {
    const q = new URLSearchParams();
    const bad = (name, message) => {
        throw { code: 'invalid', message, path: '/' + name };
    };
    for (const name of ['actor', 'action', 'entity_type']) {
        const v = inputs[name].value.trim();
        if (v.length > 128) bad(name, name + ' is at most 128 characters');
        if (v) q.set(name, v);
    }
    for (const name of ['entity_id', 'version']) {
        const v = inputs[name].value.trim();
        if (!v) continue;
        if (!/^[0-9]{1,18}$/.test(v)) bad(name, name + ' is a whole number');
        q.set(name, v);
    }
    let since = null;
    for (const name of ['since', 'until']) {
        const v = inputs[name].value;
        if (!v) continue;
        const d = new Date(v);
        if (Number.isNaN(d.getTime())) bad(name, name + ' is not a valid date and time');
        if (name === 'since') since = d;
        else if (since && d < since) bad(name, '"until" is before "since"');
        q.set(name, d.toISOString());
    }
    const limit = inputs.limit.value.trim();
    if (limit) {
        if (!/^[0-9]{1,3}$/.test(limit) || Number(limit) < 1 || Number(limit) > 500) bad('limit', 'limit is 1 to 500');
        q.set('limit', limit);
    }
    return q;
}

export const screen = {
    id: 'audit',
    title: 'Audit log',
    minRole: 'viewer',
    render(root, ctx) {
        const msg = h('div', { class: 'messages' });
        const listBox = h('div', { class: 'audit-list' });
        const more = h('div', { class: 'audit-more' });
        const detail = h('section', { class: 'audit-detail', 'aria-live': 'polite' });
        const dl = (id, values) => h('datalist', { id }, values.map((v) => h('option', { value: v })));
        const inputs = {
            actor: h('input', { id: 'audit-actor', name: 'actor', type: 'text', placeholder: 'account:alice' }),
            action: h('input', { id: 'audit-action', name: 'action', type: 'text' }),
            entity_type: h('input', { id: 'audit-entity_type', name: 'entity_type', type: 'text' }),
            entity_id: h('input', { id: 'audit-entity_id', name: 'entity_id', type: 'number', min: '0', step: '1' }),
            version: h('input', { id: 'audit-version', name: 'version', type: 'number', min: '1', step: '1' }),
            since: h('input', { id: 'audit-since', name: 'since', type: 'datetime-local', step: '1' }),
            until: h('input', { id: 'audit-until', name: 'until', type: 'datetime-local', step: '1' }),
            limit: h('input', { id: 'audit-limit', name: 'limit', type: 'number', min: '1', max: '500', step: '1',
                value: '100' }),
        };
        inputs.action.setAttribute('list', 'audit-actions'); // `list` is a read-only property: set the attribute
        inputs.entity_type.setAttribute('list', 'audit-types');
        const params = ctx.params && typeof ctx.params === 'object' ? ctx.params : {};
        for (const k of FILTERS) if (typeof params[k] === 'string' && k !== 'since' && k !== 'until') inputs[k].value = params[k];

        let items = [];
        let query = null;

        const filterForm = h('form', { class: 'audit-filters crud-form' },
            dl('audit-actions', ACTIONS), dl('audit-types', ENTITY_TYPES),
            field('audit-actor', 'Actor', inputs.actor),
            field('audit-action', 'Action', inputs.action),
            field('audit-entity_type', 'Entity type', inputs.entity_type),
            field('audit-entity_id', 'Entity id', inputs.entity_id),
            field('audit-version', 'Version', inputs.version),
            field('audit-since', 'Since (local time)', inputs.since),
            field('audit-until', 'Until (local time)', inputs.until),
            field('audit-limit', 'Entries per page', inputs.limit),
            h('div', { class: 'form-buttons' }, h('button', { type: 'submit', class: 'primary' }, 'Filter'),
                h('button', { type: 'button', onclick: () => {
                    for (const k of FILTERS) inputs[k].value = k === 'limit' ? '100' : '';
                    run();
                } }, 'Reset')));

        function showEntry(e) {
            detail.replaceChildren(
                h('h2', {}, 'Audit entry ' + e.id),
                h('p', {}, e.at + ' - ' + e.actor + ' - ' + e.action + ' ' + e.entity_type +
                    (e.entity_id !== null && e.entity_id !== undefined ? ' ' + e.entity_id : '') +
                    (e.version !== null && e.version !== undefined ? ' - version ' + e.version : '')),
                changesTable(e.changes),
                h('details', {}, h('summary', {}, 'Before'), h('pre', {}, json(e.before))),
                h('details', {}, h('summary', {}, 'After'), h('pre', {}, json(e.after))));
        }

        function render() {
            const cols = [
                { label: 'Id', key: 'id' },
                { label: 'Time', render: (r) => fmtTime(r.at) },
                { label: 'Actor', key: 'actor' },
                { label: 'Action', key: 'action' },
                { label: 'Entity', render: (r) => String(r.entity_type || '') +
                    (r.entity_id !== null && r.entity_id !== undefined ? ' ' + r.entity_id : '') },
                { label: 'Version', render: (r) => (r.version === null || r.version === undefined ? '' : String(r.version)) },
                { label: 'Changes', render: (r) => String(Array.isArray(r.changes) ? r.changes.length : 0) },
                { label: 'Details', render: (r) => h('button', { type: 'button', 'data-id': String(r.id),
                    onclick: () => showEntry(r) }, 'Show diff') },
            ];
            listBox.replaceChildren(table({ columns: cols, rows: items, empty: 'No audit entry matches.' }));
        }

        async function load(before) {
            msg.replaceChildren();
            try {
                const q = new URLSearchParams(query);
                if (before) q.set('before', String(before));
                const s = q.toString();
                const page = await ctx.api('GET', '/audit' + (s ? '?' + s : ''));
                items = before ? items.concat(page.items || []) : (page.items || []);
                render();
                more.replaceChildren();
                if (page.next !== null && page.next !== undefined)
                    more.append(h('button', { type: 'button', onclick: () => load(page.next) }, 'Older entries'));
            } catch (err) {
                showError(msg, err);
            }
        }

        function run() {
            msg.replaceChildren();
            try {
                query = buildQuery(inputs);
            } catch (err) {
                showError(msg, err);
                return Promise.resolve();
            }
            detail.replaceChildren();
            return load(null);
        }

        filterForm.addEventListener('submit', (ev) => {
            ev.preventDefault();
            run();
        });
        root.append(h('h1', {}, 'Audit log'), filterForm, msg, listBox, more, detail);
        return run();
    },
};
