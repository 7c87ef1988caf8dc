// API keys: per-system machine credentials with their roles and groups. List (status: active, revoked, expired),
// create - the whole key is shown ONCE, right after creation, with a copy button -, edit (roles, groups, expiry,
// revoked; the API merges a PUT), revoke, delete. Writes for owners and for editors within their systems.
import { h, table, showError, showApplied, confirmDialog, field, uid, canWrite, fmtTime, checksGroup } from '../lib/ui.js';

const NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;

// --- screen-local helpers (single inputs come from lib/ui.js field()) ---
const textField = (prefix, spec) => field(spec, prefix);
const selectField = (prefix, spec) => field({ ...spec, type: 'select' }, prefix);
const boolField = (prefix, spec) => field({ ...spec, type: 'checkbox' }, prefix);
const fail = (path, message) => ({ code: 'invalid', message, path });
// --- end of helpers ---

// "2030-01-02T01:04:05.000Z" -> the datetime-local value in the browser's time zone ("2030-01-02T02:04:05").
function toLocalInput(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return '';
    const p = (n) => String(n).padStart(2, '0');
    return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + 'T' + p(d.getHours()) + ':' +
        p(d.getMinutes()) + ':' + p(d.getSeconds());
}

function status(k) {
    if (k.revoked) return 'revoked';
    if (k.expires_at && new Date(k.expires_at).getTime() <= Date.now()) return 'expired';
    return 'active';
}

export const screen = {
    id: 'api_keys',
    title: 'API keys',
    minRole: 'viewer',
    render(root, ctx) {
        const me = ctx.me || {};
        const msg = h('div', { class: 'messages' });
        const secretBox = h('div', { class: 'secret-holder', 'aria-live': 'polite' });
        const listBox = h('div', { class: 'crud-list' });
        const editBox = h('section', { class: 'crud-edit' });
        const createBox = h('section', { class: 'crud-create' });
        let rows = [];
        let systems = [];
        let roles = [];
        let groups = [];
        let chromeSig = '';

        const namesOf = (list, system) => list.filter((x) => x.system === system).map((x) => ({ value: x.name, label: x.name }));

        function keyForm(prefix, k, submit, onSubmit) {
            const opts = systems.filter((s) => canWrite(me, s.code)).map((s) => ({ value: s.code, label: s.code }));
            const sys = selectField(prefix, { name: 'system', label: 'System', options: opts, value: k ? k.system : undefined,
                required: true });
            const name = textField(prefix, { name: 'name', label: 'Name', value: k ? k.name : '', required: true,
                pattern: '[A-Za-z0-9_.\\-]{1,64}', maxlength: '64', help: 'A-Z, a-z, 0-9, _ . -' });
            const rl = checksGroup(prefix, { name: 'roles', label: 'Roles', empty: 'this system has no role' });
            const gr = checksGroup(prefix, { name: 'groups', label: 'Groups', empty: 'this system has no group' });
            const refill = (r, g) => {
                rl.set(namesOf(roles, sys.get()), r);
                gr.set(namesOf(groups, sys.get()), g);
            };
            refill(k ? k.roles : [], k ? k.groups : []);
            sys.input.addEventListener('change', () => refill([], []));
            const exp = textField(prefix, { name: 'expires_at', label: 'Expires (local time; empty: never)',
                type: 'datetime-local', step: '1', value: k ? toLocalInput(k.expires_at) : '' });
            const revoked = k ? boolField(prefix, { name: 'revoked', label: 'Revoked', value: k.revoked }) : null;
            const form = h('form', { class: 'crud-form' }, sys.node, name.node, rl.node, gr.node, exp.node,
                revoked ? revoked.node : null, h('button', { type: 'submit', class: 'primary' }, submit));
            form.addEventListener('submit', (ev) => {
                ev.preventDefault();
                const v = { system: sys.get(), name: name.get(), roles: rl.get(), groups: gr.get(), expires_at: null };
                if (!v.system) return showError(msg, fail('/system', 'choose a system'));
                if (!NAME_RE.test(v.name)) return showError(msg, fail('/name', 'name: 1-64 of A-Z, a-z, 0-9, _ . -'));
                if (exp.input.value) {
                    const d = new Date(exp.input.value);
                    if (Number.isNaN(d.getTime())) return showError(msg, fail('/expires_at', 'not a valid date and time'));
                    v.expires_at = d.toISOString();
                }
                if (revoked) v.revoked = revoked.get();
                onSubmit(v, form, () => refill([], []));
            });
            return form;
        }

        async function write(method, path, body) {
            msg.replaceChildren();
            try {
                const r = await ctx.api(method, path, body);
                showApplied(msg, r);
                await load();
                return r;
            } catch (err) {
                showError(msg, err);
                return null;
            }
        }

        function showSecret(key) {
            const out = h('code', { class: 'secret', 'data-testid': 'secret' }, key);
            const copy = h('button', { type: 'button', onclick: async () => {
                try {
                    await navigator.clipboard.writeText(key);
                    copy.textContent = 'Copied';
                } catch (e) {
                    copy.textContent = 'Copy failed: select the key';
                }
            } }, 'Copy key');
            secretBox.replaceChildren(h('div', { class: 'secret-once', role: 'status' },
                h('p', {}, 'The new API key - copy it now, it is never shown again:'), out, copy,
                h('button', { type: 'button', onclick: () => secretBox.replaceChildren() }, 'Done')));
        }

        async function remove(k) {
            if (!(await confirmDialog('Delete API key ' + k.system + ':' + k.name + '? It stops working on every data ' +
                'plane with this write.', { confirm: 'Delete', title: 'Delete' }))) return;
            if (await write('DELETE', '/api_keys/' + encodeURIComponent(k.id))) editBox.replaceChildren();
        }

        async function revoke(k) {
            const text = 'Revoke API key ' + k.system + ':' + k.name + '? It stops working on every data plane.';
            if (!(await confirmDialog(text, { confirm: 'Revoke', title: 'Revoke' }))) return;
            await write('PUT', '/api_keys/' + encodeURIComponent(k.id), { revoked: true });
        }

        function edit(k) {
            const form = keyForm('key-edit', k, 'Save', async (v) => {
                if (await write('PUT', '/api_keys/' + encodeURIComponent(k.id), v)) editBox.replaceChildren();
            });
            editBox.replaceChildren(h('h2', {}, 'Edit API key ' + k.system + ':' + k.name + ' (' + k.prefix + ')'), form,
                h('button', { type: 'button', onclick: () => editBox.replaceChildren() }, 'Cancel'));
            editBox.scrollIntoView({ block: 'nearest' });
            form.querySelector('input, select').focus();
        }

        function render() {
            const cols = [
                { label: 'System', key: 'system' },
                { label: 'Name', key: 'name' },
                { label: 'Prefix', render: (k) => h('code', {}, String(k.prefix || '')) },
                { label: 'Roles', render: (k) => (k.roles || []).join(', ') },
                { label: 'Groups', render: (k) => (k.groups || []).join(', ') },
                { label: 'Expires', render: (k) => fmtTime(k.expires_at) || 'never' },
                { label: 'Status', render: status },
                { label: 'Actions', render: (k) => canWrite(me, k.system) ? h('span', { class: 'actions' },
                    h('button', { type: 'button', onclick: () => edit(k) }, 'Edit'),
                    k.revoked ? null : h('button', { type: 'button', onclick: () => revoke(k) }, 'Revoke'),
                    h('button', { type: 'button', class: 'danger', onclick: () => remove(k) }, 'Delete')) : '' },
            ];
            listBox.replaceChildren(table({ columns: cols, rows, empty: 'No API key yet.' }));
        }

        function renderChrome() {
            createBox.replaceChildren();
            if (me.role !== 'owner' && me.role !== 'editor') return;
            const any = systems.some((s) => canWrite(me, s.code));
            createBox.append(h('h2', {}, 'New API key'), any
                ? keyForm('key-new', null, 'Create', async (v, form, clear) => {
                    const r = await write('POST', '/api_keys', v);
                    if (!r) return;
                    const created = r.api_key || {};
                    if (created.key) showSecret(created.key);
                    form.reset();
                    clear();
                })
                : h('p', {}, 'Create a system first.'));
        }

        async function load() {
            try {
                const [k, s, r, g] = await Promise.all([ctx.api('GET', '/api_keys'), ctx.api('GET', '/systems'),
                    ctx.api('GET', '/roles'), ctx.api('GET', '/groups')]);
                rows = k.data || [];
                systems = s.data || [];
                roles = r.data || [];
                groups = g.data || [];
                const sig = JSON.stringify([systems, roles, groups].map((l) => l.map((x) => x.id + ':' +
                    (x.code || x.system + ':' + x.name))));
                if (sig !== chromeSig) renderChrome();
                chromeSig = sig;
                render();
            } catch (err) {
                showError(msg, err);
            }
        }

        root.append(h('h1', {}, 'API keys'), h('p', {}, 'Keys for machines: sent as X-API-Key, Authorization: ApiKey ' +
            'or Basic. Only a prefix and a hash are stored; the key is shown once.'), msg, secretBox, listBox, editBox,
            createBox);
        return load();
    },
};
