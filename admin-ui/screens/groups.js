// Groups: per-system groups and the roles they grant. List (filterable by system), create, edit (name, system, roles
// of that system as checkboxes), delete - writes only for owners and for editors within their systems.
import { h, table, showError, showApplied, confirmDialog, field, uid, canWrite, checksGroup } from '../lib/ui.js';

const NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;

// --- screen-local helpers (single inputs come from lib/ui.js field()) ---
const textField = (prefix, spec) => field(spec, prefix);
const selectField = (prefix, spec) => field({ ...spec, type: 'select' }, prefix);
const fail = (path, message) => ({ code: 'invalid', message, path });
// --- end of helpers ---

export const screen = {
    id: 'groups',
    title: 'Groups',
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
        let roles = [];
        let filter = '';
        let chromeSig = '';

        const roleOptions = (system) => roles.filter((r) => r.system === system).map((r) => ({ value: r.name, label: r.name }));

        function groupForm(prefix, group, submit, onSubmit) {
            const opts = systems.filter((s) => canWrite(me, s.code)).map((s) => ({ value: s.code, label: s.code }));
            const sys = selectField(prefix, { name: 'system', label: 'System', options: opts,
                value: group ? group.system : undefined, required: true });
            const name = textField(prefix, { name: 'name', label: 'Name', value: group ? group.name : '', required: true,
                pattern: '[A-Za-z0-9_.\\-]{1,64}', maxlength: '64', help: 'A-Z, a-z, 0-9, _ . -' });
            const rl = checksGroup(prefix, { name: 'roles', label: 'Roles granted', empty: 'this system has no role' });
            rl.set(roleOptions(sys.get()), group ? group.roles : []);
            sys.input.addEventListener('change', () => rl.set(roleOptions(sys.get()), []));
            const form = h('form', { class: 'crud-form' }, sys.node, name.node, rl.node,
                h('button', { type: 'submit', class: 'primary' }, submit));
            form.addEventListener('submit', (ev) => {
                ev.preventDefault();
                const v = { system: sys.get(), name: name.get(), roles: rl.get() };
                if (!v.system) return showError(msg, fail('/system', 'choose a system'));
                if (!NAME_RE.test(v.name)) return showError(msg, fail('/name', 'name: 1-64 of A-Z, a-z, 0-9, _ . -'));
                onSubmit(v, form, () => rl.set(roleOptions(sys.get()), []));
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

        async function remove(g) {
            if (!(await confirmDialog('Delete group ' + g.system + ':' + g.name + '? Refused while a user, API key or ' +
                'endpoint rule holds it.', { confirm: 'Delete', title: 'Delete' }))) return;
            if (await write('DELETE', '/groups/' + encodeURIComponent(g.id))) editBox.replaceChildren();
        }

        function edit(g) {
            const form = groupForm('group-edit', g, 'Save', async (v) => {
                if (await write('PUT', '/groups/' + encodeURIComponent(g.id), v)) editBox.replaceChildren();
            });
            editBox.replaceChildren(h('h2', {}, 'Edit group ' + g.system + ':' + g.name), form,
                h('button', { type: 'button', onclick: () => editBox.replaceChildren() }, 'Cancel'));
            editBox.scrollIntoView({ block: 'nearest' });
            form.querySelector('input, select').focus();
        }

        function render() {
            const shown = filter ? rows.filter((g) => g.system === filter) : rows;
            const cols = [
                { label: 'System', key: 'system' },
                { label: 'Name', key: 'name' },
                { label: 'Roles', render: (g) => (g.roles || []).join(', ') },
                { label: 'Actions', render: (g) => canWrite(me, g.system) ? h('span', { class: 'actions' },
                    h('button', { type: 'button', onclick: () => edit(g) }, 'Edit'),
                    h('button', { type: 'button', class: 'danger', onclick: () => remove(g) }, 'Delete')) : '' },
            ];
            listBox.replaceChildren(table({ columns: cols, rows: shown, empty: 'No group yet.' }));
        }

        function renderChrome() {
            const f = selectField('groups-filter', { name: 'filter_system', label: 'Show system',
                options: [{ value: '', label: 'all systems' }].concat(systems.map((s) => ({ value: s.code, label: s.code }))),
                value: filter });
            f.input.addEventListener('change', () => {
                filter = f.get();
                render();
            });
            filterBox.replaceChildren(f.node);
            createBox.replaceChildren();
            if (me.role === 'owner' || me.role === 'editor') {
                const any = systems.some((s) => canWrite(me, s.code));
                createBox.append(h('h2', {}, 'New group'), any
                    ? groupForm('group-new', null, 'Create', async (v, form, clear) => {
                        if (await write('POST', '/groups', v)) {
                            form.reset();
                            clear();
                        }
                    })
                    : h('p', {}, 'Create a system first.'));
            }
        }

        async function load() {
            try {
                const [g, s, r] = await Promise.all([ctx.api('GET', '/groups'), ctx.api('GET', '/systems'),
                    ctx.api('GET', '/roles')]);
                rows = g.data || [];
                const sig = JSON.stringify([s.data, r.data]);
                systems = s.data || [];
                roles = r.data || [];
                if (sig !== chromeSig) renderChrome();
                chromeSig = sig;
                render();
            } catch (err) {
                showError(msg, err);
            }
        }

        root.append(h('h1', {}, 'Groups'), h('p', {}, 'A group grants its roles to its members (users and API keys ' +
            'of the same system); endpoint rules may also name a group.'), msg, filterBox, listBox, editBox, createBox);
        return load();
    },
};
