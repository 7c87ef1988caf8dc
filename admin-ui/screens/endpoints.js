// Endpoint permissions - the main screen. Per service (<select name="service">): a table of its endpoint rules (method,
// path pattern, public, roles, groups, shadow) edited inline (Save / Delete per row), an "Add rule" form, and a
// "Matrix" view: rules x the roles and groups of the service's system, each cell a checkbox that saves on change.
// Writes go through PUT /endpoints/{id} with the whole rule (its rate_limits are carried over untouched) and show
// whether every data plane applied them. Viewers and editors outside the service's system see everything read-only.
import { h, table, showError, showApplied, confirmDialog, canWrite, badge, uid, loading } from '../lib/ui.js';

const METHODS = ['*', 'GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'CONNECT', 'TRACE'];

/** A client-side check of an endpoint path pattern (the server has the last word); null when it looks fine. */
export function checkPattern(p) {
    if (!p || p[0] !== '/') return 'the path must start with /';
    if (p.length > 1024) return 'at most 1024 bytes';
    if (p.includes('//')) return 'no empty segment (//)';
    if (/[?#;\\\s]/.test(p)) return 'no ?, #, ;, \\ or space';
    const segs = p.split('/').slice(1);
    const names = new Set();
    for (let i = 0; i < segs.length; i++) {
        const s = segs[i];
        if (s === '.' || s === '..') return 'no . or .. segment';
        if (s.includes('*') && (s !== '*' || i !== segs.length - 1)) return '* only as the whole last segment';
        if (s.includes('{') || s.includes('}')) {
            const m = /^\{([A-Za-z_][A-Za-z0-9_]{0,31})\}$/.exec(s);
            if (!m) return 'a parameter is a whole segment {name}';
            if (names.has(m[1])) return 'parameter {' + m[1] + '} twice';
            names.add(m[1]);
        }
    }
    return null;
}

const refKey = (r) => r.system + ':' + r.name;
const sameRef = (a, b) => a.system === b.system && a.name === b.name;

function ruleBody(ep, changes) {
    const b = { service: ep.service, method: ep.method, path: ep.path, public: !!ep.public, shadow: !!ep.shadow,
        roles: ep.roles || [], groups: ep.groups || [], rate_limits: ep.rate_limits === undefined ? null : ep.rate_limits };
    Object.assign(b, changes || {});
    if (b.public) {
        b.roles = [];
        b.groups = [];
    }
    return b;
}

function srLabel(id, text) {
    return h('label', { for: id, class: 'sr-only' }, text);
}

// A list of checkboxes, one per role or group reference, each with its own visible label.
function refChecks(kind, options, chosen, disabled, rowLabel) {
    const box = h('div', { class: 'checks', role: 'group', 'aria-label': kind + ' of ' + rowLabel });
    const inputs = [];
    for (const ref of options) {
        const id = uid('ep-' + kind);
        const cb = h('input', { type: 'checkbox', id, name: kind, value: refKey(ref), checked: chosen.some((c) => sameRef(c, ref)),
            disabled });
        cb.ref = ref;
        inputs.push(cb);
        box.appendChild(h('span', { class: 'check' }, cb, h('label', { for: id }, ref.multiSystem ? refKey(ref) : ref.name)));
    }
    if (!options.length) box.appendChild(h('span', { class: 'muted' }, 'none defined'));
    return { box, get: () => inputs.filter((c) => c.checked).map((c) => ({ system: c.ref.system, name: c.ref.name })), inputs };
}

// The rule's own rate limits (edited on the Policies screen) replace the route's when it matches.
function limitsNote(ep) {
    if (!Array.isArray(ep.rate_limits)) return null;
    return h('small', { class: 'help' }, ep.rate_limits.length ? 'own rate limits: ' + ep.rate_limits.map((l) => l.name).join(', ')
        : 'no rate limit (overrides the route\'s)', ' - ', h('a', { href: '#/policies' }, 'Policies'));
}

function refText(list, multi) {
    if (!list || !list.length) return h('span', { class: 'muted' }, '-');
    return list.map((r) => h('span', { class: 'tag' }, multi ? refKey(r) : r.name));
}

export const screen = {
    id: 'endpoints',
    title: 'Endpoint permissions',
    minRole: 'viewer',
    async render(root, ctx) {
        const me = ctx.me || {};
        const st = { services: [], endpoints: [], roles: [], groups: [], shadow: new Map(), service: null,
            view: ctx.params && ctx.params.view === 'matrix' ? 'matrix' : 'table' };
        const msg = h('div', { class: 'messages', 'aria-live': 'polite' });
        const toolbar = h('div', { class: 'toolbar' });
        const body = h('div', { class: 'ep-body' });
        root.append(h('h1', {}, 'Endpoint permissions'),
            h('p', {}, 'Who may call which endpoint of a service. The most specific rule wins (exact, then template, ' +
                'then prefix); a request no rule matches gets its route\'s default access. A shadow rule is only counted, never enforced.'),
            toolbar, msg, body);
        loading(body);

        const svc = () => st.services.find((s) => s.name === st.service) || null;
        const writable = () => !!svc() && canWrite(me, svc().system);
        const rulesOf = () => st.endpoints.filter((e) => e.service === st.service);

        // The roles / groups offered for the current service: its system's (or every one when it has none), plus any
        // a rule already references.
        function options(kind) {
            const s = svc();
            const all = kind === 'roles' ? st.roles : st.groups;
            const list = all.filter((x) => !s || !s.system || x.system === s.system).map((x) => ({ system: x.system, name: x.name }));
            for (const e of rulesOf()) {
                for (const r of e[kind] || []) if (!list.some((x) => sameRef(x, r))) list.push({ system: r.system, name: r.name });
            }
            const multi = new Set(list.map((x) => x.system)).size > 1 || !(s && s.system);
            list.forEach((x) => { x.multiSystem = multi; });
            return list.sort((a, b) => refKey(a).localeCompare(refKey(b)));
        }

        function syncHash() {
            const q = new URLSearchParams();
            if (st.service) q.set('service', st.service);
            if (st.view === 'matrix') q.set('view', 'matrix');
            history.replaceState(null, '', '#/endpoints' + (q.toString() ? '?' + q : ''));
        }

        async function save(ep, changes, origin) {
            msg.replaceChildren();
            try {
                const r = await ctx.api('PUT', '/endpoints/' + encodeURIComponent(ep.id), ruleBody(ep, changes));
                const i = st.endpoints.findIndex((e) => e.id === ep.id);
                if (r && r.endpoint && i >= 0) st.endpoints[i] = r.endpoint;
                showApplied(msg, r);
                return r;
            } catch (err) {
                showError(msg, err);
                if (origin && origin.focus) origin.focus();
                return null;
            }
        }

        async function remove(ep) {
            if (!(await confirmDialog('Delete the rule ' + ep.method + ' ' + ep.path + ' of service ' + ep.service + '?',
                { confirm: 'Delete', title: 'Delete rule' }))) return;
            msg.replaceChildren();
            try {
                const r = await ctx.api('DELETE', '/endpoints/' + encodeURIComponent(ep.id));
                st.endpoints = st.endpoints.filter((e) => e.id !== ep.id);
                showApplied(msg, r);
                const row = body.querySelector('tr[data-id="' + ep.id + '"]');
                if (row && rulesOf().length) row.remove();
                else renderBody();
            } catch (err) {
                showError(msg, err);
            }
        }

        function shadowCell(ep, w) {
            const cb = h('input', { type: 'checkbox', id: uid('ep-shadow'), name: 'shadow', checked: !!ep.shadow, disabled: !w });
            const c = st.shadow.get(ep.id);
            const counts = ep.shadow && c ? h('small', { class: 'help' }, 'would allow ' + c.would_allow + ', deny ' + c.would_deny) : null;
            return { cb, node: [srLabel(cb.id, 'Shadow ' + ep.method + ' ' + ep.path), cb, counts] };
        }

        // One row of the table: read-only text, or inputs with Save / Delete.
        function ruleRow(ep) {
            const w = writable();
            const label = ep.method + ' ' + ep.path;
            const roles = refChecks('roles', options('roles'), ep.roles || [], !w || ep.public, label);
            const groups = refChecks('groups', options('groups'), ep.groups || [], !w || ep.public, label);
            const sh = shadowCell(ep, w);
            if (!w) {
                return h('tr', { 'data-id': String(ep.id) },
                    h('td', {}, h('span', { class: 'method' }, ep.method)), h('td', {}, h('code', {}, ep.path), limitsNote(ep)),
                    h('td', {}, ep.public ? badge('public', 'ok') : 'no'),
                    h('td', {}, refText(ep.roles, options('roles').some((x) => x.multiSystem))),
                    h('td', {}, refText(ep.groups, options('groups').some((x) => x.multiSystem))),
                    h('td', {}, ep.shadow ? badge('shadow', 'warn') : 'no', sh.node[2]));
            }
            const mId = uid('ep-method');
            const pId = uid('ep-path');
            const pubId = uid('ep-public');
            const method = h('select', { id: mId, name: 'method' }, METHODS.map((m) => h('option', { value: m, selected: m === ep.method }, m)));
            const path = h('input', { id: pId, name: 'path', type: 'text', value: ep.path, required: true, maxlength: '1024',
                spellcheck: 'false', class: 'mono' });
            const pub = h('input', { type: 'checkbox', id: pubId, name: 'public', checked: !!ep.public });
            const saveBtn = h('button', { type: 'button', class: 'primary' }, 'Save');
            const tr = h('tr', { 'data-id': String(ep.id) },
                h('td', {}, srLabel(mId, 'Method of rule ' + label), method),
                h('td', {}, srLabel(pId, 'Path pattern of rule ' + label), path, limitsNote(ep)),
                h('td', { class: 'center' }, srLabel(pubId, 'Public ' + label), pub),
                h('td', {}, roles.box), h('td', {}, groups.box),
                h('td', { class: 'center' }, sh.node),
                h('td', {}, h('span', { class: 'actions' }, saveBtn,
                    h('button', { type: 'button', class: 'danger', onclick: () => remove(ep) }, 'Delete'))));
            const markDirty = () => tr.classList.add('dirty');
            tr.addEventListener('input', markDirty);
            tr.addEventListener('change', markDirty);
            pub.addEventListener('change', () => {
                for (const c of roles.inputs.concat(groups.inputs)) c.disabled = pub.checked;
            });
            saveBtn.addEventListener('click', async () => {
                const bad = checkPattern(path.value.trim());
                if (bad) {
                    path.setAttribute('aria-invalid', 'true');
                    showError(msg, { code: 'invalid', message: 'path: ' + bad, path: '/path' });
                    path.focus();
                    return;
                }
                path.removeAttribute('aria-invalid');
                saveBtn.disabled = true;
                const r = await save(ep, { method: method.value, path: path.value.trim(), public: pub.checked,
                    shadow: sh.cb.checked, roles: roles.get(), groups: groups.get() }, saveBtn);
                saveBtn.disabled = false;
                if (r) {
                    // Redraw only this row, so unsaved edits in other rows survive.
                    const fresh = ruleRow(st.endpoints.find((e) => e.id === ep.id) || ep);
                    tr.replaceWith(fresh);
                    const b = fresh.querySelector('button.primary');
                    if (b) b.focus();
                }
            });
            return tr;
        }

        function renderTable() {
            const w = writable();
            const heads = ['Method', 'Path pattern', 'Public', 'Roles', 'Groups', 'Shadow'].concat(w ? ['Actions'] : []);
            const rules = rulesOf();
            const tbody = h('tbody', {}, rules.length ? rules.map(ruleRow)
                : h('tr', { class: 'empty' }, h('td', { colspan: String(heads.length) },
                    'No rule for this service: every request gets its route\'s default access.')));
            const t = h('table', { class: 'data rules' },
                h('caption', {}, 'Endpoint rules of ' + st.service),
                h('thead', {}, h('tr', {}, heads.map((x) => h('th', { scope: 'col' }, x)))), tbody);
            return [h('div', { class: 'table-wrap' }, t), w ? addForm() : null];
        }

        function addForm() {
            const label = 'the new rule';
            const mId = uid('ep-new-method');
            const pId = uid('ep-new-path');
            const pubId = uid('ep-new-public');
            const shId = uid('ep-new-shadow');
            const method = h('select', { id: mId, name: 'method' }, METHODS.map((m) => h('option', { value: m, selected: m === 'GET' }, m)));
            const path = h('input', { id: pId, name: 'path', type: 'text', required: true, maxlength: '1024', placeholder: '/orders/{id}',
                spellcheck: 'false', class: 'mono', 'aria-describedby': pId + '-help' });
            const pub = h('input', { type: 'checkbox', id: pubId, name: 'public' });
            const shadow = h('input', { type: 'checkbox', id: shId, name: 'shadow' });
            const roles = refChecks('roles', options('roles'), [], false, label);
            const groups = refChecks('groups', options('groups'), [], false, label);
            pub.addEventListener('change', () => {
                for (const c of roles.inputs.concat(groups.inputs)) c.disabled = pub.checked;
            });
            const formMsg = h('div', { class: 'form-alert' });
            const f = h('form', { class: 'form add-rule', 'aria-labelledby': 'ep-add-title' },
                h('div', { class: 'field' }, h('label', { for: mId }, 'Method'), method),
                h('div', { class: 'field' }, h('label', { for: pId }, 'Path pattern'), path,
                    h('small', { class: 'help', id: pId + '-help' }, 'Exact /items, template /items/{id}, prefix /files/*')),
                h('div', { class: 'field field-check' }, pub, h('label', { for: pubId }, 'Public (no credential needed)')),
                h('div', { class: 'field field-check' }, shadow, h('label', { for: shId }, 'Shadow (count only, do not enforce)')),
                h('fieldset', {}, h('legend', {}, 'Roles'), roles.box),
                h('fieldset', {}, h('legend', {}, 'Groups'), groups.box),
                formMsg,
                h('div', { class: 'form-buttons' }, h('button', { type: 'submit', class: 'primary' }, 'Add rule')));
            f.addEventListener('submit', async (ev) => {
                ev.preventDefault();
                formMsg.replaceChildren();
                const p = path.value.trim();
                const bad = checkPattern(p);
                if (bad) {
                    path.setAttribute('aria-invalid', 'true');
                    showError(formMsg, { code: 'invalid', message: 'path: ' + bad, path: '/path' });
                    path.focus();
                    return;
                }
                path.removeAttribute('aria-invalid');
                const b = ruleBody({ service: st.service, method: method.value, path: p, public: pub.checked, shadow: shadow.checked,
                    roles: roles.get(), groups: groups.get() });
                delete b.rate_limits;
                try {
                    const r = await ctx.api('POST', '/endpoints', b);
                    if (r && r.endpoint) st.endpoints.push(r.endpoint);
                    renderBody();
                    showApplied(msg, r);
                } catch (err) {
                    showError(formMsg, err);
                }
            });
            return h('section', { class: 'card' }, h('h2', { id: 'ep-add-title' }, 'Add rule'), f);
        }

        function matrixCell(ep, ref, kind, w) {
            const list = ep[kind] || [];
            const who = ref.multiSystem ? refKey(ref) : ref.name;
            const cb = h('input', { type: 'checkbox', checked: list.some((x) => sameRef(x, ref)), disabled: !w || ep.public,
                'aria-label': who + ' may ' + ep.method + ' ' + ep.path, 'data-kind': kind, 'data-name': refKey(ref) });
            const td = h('td', { class: 'cell' }, cb);
            cb.addEventListener('change', async () => {
                const cur = st.endpoints.find((e) => e.id === ep.id) || ep;
                const next = (cur[kind] || []).filter((x) => !sameRef(x, ref));
                if (cb.checked) next.push({ system: ref.system, name: ref.name });
                cb.disabled = true;
                td.classList.add('saving');
                const r = await save(cur, { [kind]: next }, cb);
                td.classList.remove('saving');
                cb.disabled = false;
                if (!r) cb.checked = !cb.checked;
                else Object.assign(ep, st.endpoints.find((e) => e.id === ep.id) || {});
            });
            return td;
        }

        function renderMatrix() {
            const w = writable();
            const roles = options('roles');
            const groups = options('groups');
            const rules = rulesOf();
            if (!rules.length) return h('p', { class: 'muted' }, 'No rule for this service yet: add one in the table view.');
            if (!roles.length && !groups.length) return h('p', { class: 'muted' }, 'The service\'s system has no role or group yet.');
            const col = (ref, kind) => h('th', { scope: 'col', class: 'rot' },
                h('span', { class: 'kind' }, kind === 'roles' ? 'role' : 'group'), ref.multiSystem ? refKey(ref) : ref.name);
            const t = h('table', { class: 'data matrix' },
                h('caption', {}, 'Roles and groups x endpoint rules of ' + st.service + (w ? ' (a change is saved at once)' : '')),
                h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Rule'), h('th', { scope: 'col' }, 'Public'),
                    roles.map((r) => col(r, 'roles')), groups.map((g) => col(g, 'groups')))),
                h('tbody', {}, rules.map((ep) => h('tr', { 'data-id': String(ep.id) },
                    h('th', { scope: 'row' }, h('span', { class: 'method' }, ep.method), ' ', h('code', {}, ep.path),
                        ep.shadow ? [' ', badge('shadow', 'warn')] : null),
                    h('td', { class: 'center' }, ep.public ? badge('public', 'ok') : '-'),
                    roles.map((r) => matrixCell(ep, r, 'roles', w)), groups.map((g) => matrixCell(ep, g, 'groups', w))))));
            return [h('div', { class: 'table-wrap' }, t),
                h('p', { class: 'help' }, 'A checked cell: the role (or the group, and every role of the group) may call the rule. ' +
                    'A public rule admits everyone; a rule with no role or group admits any principal of the service\'s system.')];
        }

        function renderBody() {
            if (!svc()) {
                body.replaceChildren(h('p', { class: 'muted' }, st.services.length ? 'Choose a service.' : 'No service yet: create one first.'));
                return;
            }
            const s = svc();
            const info = h('p', { class: 'muted svc-info' }, 'System: ', s.system ? h('code', {}, s.system) : 'none (roles and groups of every system)',
                writable() ? '' : ' - read only for you');
            body.replaceChildren(info, ...[].concat(st.view === 'matrix' ? renderMatrix() : renderTable()).filter(Boolean));
        }

        function renderToolbar() {
            const id = uid('ep-service');
            const sel = h('select', { id, name: 'service' }, st.services.map((s) =>
                h('option', { value: s.name, selected: s.name === st.service }, s.name + (s.system ? ' (' + s.system + ')' : ''))));
            sel.addEventListener('change', async () => {
                if (!(await leaveOk())) {
                    sel.value = st.service;
                    return;
                }
                st.service = sel.value;
                msg.replaceChildren();
                syncHash();
                renderBody();
            });
            const tableBtn = h('button', { type: 'button', 'aria-pressed': st.view === 'table' ? 'true' : 'false' }, 'Table');
            const matrixBtn = h('button', { type: 'button', 'aria-pressed': st.view === 'matrix' ? 'true' : 'false' }, 'Matrix');
            const setView = async (v) => {
                if (v !== st.view && !(await leaveOk())) return;
                st.view = v;
                tableBtn.setAttribute('aria-pressed', v === 'table' ? 'true' : 'false');
                matrixBtn.setAttribute('aria-pressed', v === 'matrix' ? 'true' : 'false');
                syncHash();
                renderBody();
            };
            tableBtn.addEventListener('click', () => setView('table'));
            matrixBtn.addEventListener('click', () => setView('matrix'));
            const reload = h('button', { type: 'button', onclick: async () => { if (await leaveOk()) load(); } }, 'Reload');
            toolbar.replaceChildren(h('div', { class: 'field' }, h('label', { for: id }, 'Service'), sel),
                h('div', { class: 'actions', role: 'group', 'aria-label': 'View' }, tableBtn, matrixBtn),
                h('span', { class: 'spacer' }), reload);
        }

        // Unsaved inline edits: ask before a redraw throws them away.
        async function leaveOk() {
            const n = body.querySelectorAll('tr.dirty').length;
            if (!n) return true;
            return confirmDialog(n + (n === 1 ? ' rule has' : ' rules have') + ' unsaved changes. Discard them?',
                { confirm: 'Discard', title: 'Unsaved changes' });
        }

        async function load() {
            try {
                const [s, e, r, g] = await Promise.all(['/services', '/endpoints', '/roles', '/groups'].map((p) => ctx.api('GET', p)));
                st.services = s.data || [];
                st.endpoints = e.data || [];
                st.roles = r.data || [];
                st.groups = g.data || [];
                try {
                    const sh = await ctx.api('GET', '/authz/shadow');
                    st.shadow = new Map((sh.endpoints || []).map((x) => [x.id, x]));
                } catch (err) {
                    st.shadow = new Map();
                }
                const wanted = st.service || (ctx.params && ctx.params.service);
                st.service = st.services.some((x) => x.name === wanted) ? wanted : (st.services[0] ? st.services[0].name : null);
                renderToolbar();
                renderBody();
            } catch (err) {
                body.replaceChildren();
                showError(msg, err);
            }
        }
        await load();
    },
};
