// Roles: per-system role names. List (filterable by system), create, rename or move, delete - writes only for owners
// and for editors within their systems. A role held by a group, user, API key or endpoint rule cannot be deleted
// (the server answers 409, shown as sent).
import { h, table, showError, showApplied, confirmDialog, field, canWrite, fmtTime } from '../lib/ui.js';

const NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;

// --- screen-local helpers (single inputs come from lib/ui.js field()) ---
const textField = (prefix, spec) => field(spec, prefix);
const selectField = (prefix, spec) => field({ ...spec, type: 'select' }, prefix);
const fail = (path, message) => ({ code: 'invalid', message, path });
// --- end of helpers ---

export const screen = {
    id: 'roles',
    title: 'Roles',
    minRole: 'viewer',
    render(root, ctx) {
        const me = ctx.me || {};
        const msg = h('div', { class: 'messages' });
        const listBox = h('div', { class: 'crud-list' });
        const editBox = h('section', { class: 'crud-edit' });
        const createBox = h('section', { class: 'crud-create' });
        const filterBox = h('div', { class: 'crud-filter toolbar' });
        let rows = [];
        let systems = [];
        let filter = '';

        const systemOptions = () => systems.filter((s) => canWrite(me, s.code))
            .map((s) => ({ value: s.code, label: s.code + ' - ' + s.name }));

        function roleForm(prefix, role, submit, onSubmit) {
            const sys = selectField(prefix, { name: 'system', label: 'System', options: systemOptions(),
                value: role ? role.system : undefined, required: true });
            const name = textField(prefix, { name: 'name', label: 'Name', value: role ? role.name : '', required: true,
                pattern: '[A-Za-z0-9_.\\-]{1,64}', maxlength: '64', help: 'A-Z, a-z, 0-9, _ . -' });
            const form = h('form', { class: 'crud-form' }, sys.node, name.node,
                h('button', { type: 'submit', class: 'primary' }, submit));
            form.addEventListener('submit', (ev) => {
                ev.preventDefault();
                const v = { system: sys.get(), name: name.get() };
                if (!v.system) return showError(msg, fail('/system', 'choose a system'));
                if (!NAME_RE.test(v.name)) return showError(msg, fail('/name', 'name: 1-64 of A-Z, a-z, 0-9, _ . -'));
                onSubmit(v, form);
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

        async function remove(r) {
            if (!(await confirmDialog('Delete role ' + r.system + ':' + r.name + '? Refused while a group, user, API key ' +
                'or endpoint rule holds it.', { confirm: 'Delete', title: 'Delete' }))) return;
            if (await write('DELETE', '/roles/' + encodeURIComponent(r.id))) editBox.replaceChildren();
        }

        function edit(r) {
            const form = roleForm('role-edit', r, 'Save', async (v) => {
                if (await write('PUT', '/roles/' + encodeURIComponent(r.id), v)) editBox.replaceChildren();
            });
            editBox.replaceChildren(h('h2', {}, 'Edit role ' + r.system + ':' + r.name), form,
                h('button', { type: 'button', onclick: () => editBox.replaceChildren() }, 'Cancel'));
            editBox.scrollIntoView({ block: 'nearest' });
            form.querySelector('input, select').focus();
        }

        function render() {
            const shown = filter ? rows.filter((r) => r.system === filter) : rows;
            const cols = [
                { label: 'System', key: 'system' },
                { label: 'Name', key: 'name' },
                { label: 'Updated', render: (r) => fmtTime(r.updated_at) },
                { label: 'Actions', render: (r) => canWrite(me, r.system) ? h('span', { class: 'actions' },
                    h('button', { type: 'button', onclick: () => edit(r) }, 'Edit'),
                    h('button', { type: 'button', class: 'danger', onclick: () => remove(r) }, 'Delete')) : '' },
            ];
            listBox.replaceChildren(table({ columns: cols, rows: shown, empty: 'No role yet.' }));
        }

        function renderChrome() {
            const f = selectField('roles-filter', { name: 'filter_system', label: 'Show system',
                options: [{ value: '', label: 'all systems' }].concat(systems.map((s) => ({ value: s.code, label: s.code }))),
                value: filter });
            f.input.addEventListener('change', () => {
                filter = f.get();
                render();
            });
            filterBox.replaceChildren(f.node);
            createBox.replaceChildren();
            if (me.role === 'owner' || me.role === 'editor') {
                createBox.append(h('h2', {}, 'New role'), systemOptions().length
                    ? roleForm('role-new', null, 'Create', async (v, form) => {
                        if (await write('POST', '/roles', v)) form.reset();
                    })
                    : h('p', {}, 'Create a system first.'));
            }
        }

        async function load() {
            try {
                const [r, s] = await Promise.all([ctx.api('GET', '/roles'), ctx.api('GET', '/systems')]);
                rows = r.data || [];
                const first = !systems.length;
                systems = s.data || [];
                if (first) renderChrome();
                render();
            } catch (err) {
                showError(msg, err);
            }
        }

        root.append(h('h1', {}, 'Roles'), h('p', {}, 'Roles belong to one system; endpoint rules, groups, users and ' +
            'API keys refer to them.'), msg, filterBox, listBox, editBox, createBox);
        return load();
    },
};
