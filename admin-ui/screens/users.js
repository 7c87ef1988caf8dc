// Users and their memberships: the systems a user may log into, and the roles and groups it holds there (only those
// of its systems are offered). List (search, system filter), create, edit (the password only when typed), delete.
// Owners manage everyone; an editor manages users whose systems are all in its scope (and sees only those systems
// in the form). A change of superuser, systems, roles or groups revokes the user's tokens (server side; said here).
import { h, table, showError, showApplied, confirmDialog, field, uid, checksGroup } from '../lib/ui.js';

const USERNAME_RE = /^[A-Za-z0-9_.@+-]{1,128}$/;

// --- screen-local helpers (single inputs come from lib/ui.js field()) ---
const textField = (prefix, spec) => field(spec, prefix);
const selectField = (prefix, spec) => field({ ...spec, type: 'select' }, prefix);
const boolField = (prefix, spec) => field({ ...spec, type: 'checkbox' }, prefix);
const fail = (path, message) => ({ code: 'invalid', message, path });
// --- end of helpers ---

const ref = (x) => x.system + ':' + x.name;
const unref = (s) => {
    const i = s.indexOf(':');
    return { system: s.slice(0, i), name: s.slice(i + 1) };
};

function scope(me) {
    if (!me) return [];
    return me.role === 'owner' ? null : me.role === 'editor' ? me.systems || [] : [];
}
function canEditUser(me, u) {
    const sc = scope(me);
    if (sc === null) return true;
    return sc.length > 0 && (u.systems || []).length > 0 && u.systems.every((s) => sc.includes(s));
}

function validate(v, creating) {
    if (!USERNAME_RE.test(v.username)) return fail('/username', 'username: 1-128 of A-Z a-z 0-9 _ . @ + -');
    if (v.email !== null) {
        const at = v.email.indexOf('@');
        if (v.email.length < 3 || v.email.length > 254 || at < 1 || at !== v.email.lastIndexOf('@') ||
            at === v.email.length - 1 || /[\s\u0000-\u001f\u007f]/.test(v.email))
            return fail('/email', 'email: local@domain, 3-254 characters, no space');
    }
    const pwBytes = new TextEncoder().encode(v.password || '').length;
    if (creating && !v.password) return fail('/password', 'a new user needs a password');
    if (v.password && (pwBytes < 8 || pwBytes > 1024)) return fail('/password', 'password: 8 to 1024 bytes');
    for (const [i, r] of v.roles.entries())
        if (!v.systems.includes(r.system))
            return fail('/roles/' + i + '/system', 'role ' + ref(r) + ': its system is not checked');
    for (const [i, g] of v.groups.entries())
        if (!v.systems.includes(g.system))
            return fail('/groups/' + i + '/system', 'group ' + ref(g) + ': its system is not checked');
    return null;
}

export const screen = {
    id: 'users',
    title: 'Users',
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
        let groups = [];
        let search = '';
        let sysFilter = '';
        let chromeSig = '';

        function userForm(prefix, u, submit, onSubmit) {
            const sc = scope(me);
            const sysOpts = systems.filter((s) => sc === null || sc.includes(s.code))
                .map((s) => ({ value: s.code, label: s.code + ' - ' + s.name }));
            const username = textField(prefix, { name: 'username', label: 'Username', value: u ? u.username : '',
                required: true, maxlength: '128', pattern: '[A-Za-z0-9_.@+\\-]{1,128}', autocomplete: 'off' });
            const email = textField(prefix, { name: 'email', label: 'Email (optional)', type: 'email',
                value: u && u.email ? u.email : '', maxlength: '254' });
            const password = textField(prefix, { name: 'password', label: u ? 'New password (empty: unchanged)' : 'Password',
                type: 'password', required: !u, minlength: '8', autocomplete: 'new-password' });
            const enabled = boolField(prefix, { name: 'enabled', label: 'Enabled', value: u ? u.enabled : true });
            const superuser = me.role === 'owner' ? boolField(prefix, { name: 'superuser', label: 'Superuser',
                value: u ? u.superuser : false, help: 'allowed on every endpoint of every system' }) : null;
            const sys = checksGroup(prefix, { name: 'systems', label: 'Systems', options: sysOpts,
                value: u ? u.systems : [], empty: 'no system you may manage' });
            const rl = checksGroup(prefix, { name: 'roles', label: 'Roles', empty: 'check a system that has roles' });
            const gr = checksGroup(prefix, { name: 'groups', label: 'Groups', empty: 'check a system that has groups' });
            const refill = (keepR, keepG) => {
                const on = new Set(sys.get());
                rl.set(roles.filter((r) => on.has(r.system)).map((r) => ({ value: ref(r), label: ref(r) })), keepR);
                gr.set(groups.filter((g) => on.has(g.system)).map((g) => ({ value: ref(g), label: ref(g) })), keepG);
            };
            refill(u ? (u.roles || []).map(ref) : [], u ? (u.groups || []).map(ref) : []);
            sys.box.addEventListener('change', () => refill(rl.get(), gr.get()));
            const form = h('form', { class: 'crud-form', autocomplete: 'off' }, username.node, email.node, password.node,
                enabled.node, superuser ? superuser.node : null, sys.node, rl.node, gr.node,
                h('button', { type: 'submit', class: 'primary' }, submit));
            form.addEventListener('submit', (ev) => {
                ev.preventDefault();
                const v = { username: username.get(), email: email.get() || null, enabled: enabled.get(),
                    systems: sys.get(), roles: rl.get().map(unref), groups: gr.get().map(unref) };
                v.superuser = superuser ? superuser.get() : u ? !!u.superuser : false;
                const pw = password.input.value;
                if (pw) v.password = pw;
                const bad = validate(v, !u);
                if (bad) return showError(msg, bad);
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

        async function remove(u) {
            if (!(await confirmDialog('Delete user ' + u.username + '? Its memberships and refresh tokens go with it, ' +
                'and its access tokens stop working.', { confirm: 'Delete', title: 'Delete' }))) return;
            if (await write('DELETE', '/users/' + encodeURIComponent(u.id))) editBox.replaceChildren();
        }

        function edit(u) {
            const form = userForm('user-edit', u, 'Save', async (v) => {
                if (await write('PUT', '/users/' + encodeURIComponent(u.id), v)) editBox.replaceChildren();
            });
            editBox.replaceChildren(h('h2', {}, 'Edit user ' + u.username),
                h('p', { class: 'help' }, 'Changing systems, roles, groups, superuser or disabling the user revokes ' +
                    'its current tokens: it logs in again.'), form,
                h('button', { type: 'button', onclick: () => editBox.replaceChildren() }, 'Cancel'));
            editBox.scrollIntoView({ block: 'nearest' });
            form.querySelector('input, select').focus();
        }

        function render() {
            const q = search.toLowerCase();
            const shown = rows.filter((u) => (!sysFilter || (u.systems || []).includes(sysFilter)) &&
                (!q || u.username.toLowerCase().includes(q) || String(u.email || '').toLowerCase().includes(q)));
            const cols = [
                { label: 'Username', key: 'username' },
                { label: 'Email', render: (u) => u.email || '' },
                { label: 'Enabled', render: (u) => (u.enabled ? 'yes' : 'no') },
                { label: 'Superuser', render: (u) => (u.superuser ? 'yes' : '') },
                { label: 'Systems', render: (u) => (u.systems || []).join(', ') },
                { label: 'Roles', render: (u) => (u.roles || []).map(ref).join(', ') },
                { label: 'Groups', render: (u) => (u.groups || []).map(ref).join(', ') },
                { label: 'Actions', render: (u) => canEditUser(me, u) ? h('span', { class: 'actions' },
                    h('button', { type: 'button', onclick: () => edit(u) }, 'Edit'),
                    h('button', { type: 'button', class: 'danger', onclick: () => remove(u) }, 'Delete')) : '' },
            ];
            listBox.replaceChildren(table({ columns: cols, rows: shown, empty: 'No user matches.' }));
        }

        function renderChrome() {
            const s = textField('users-search', { name: 'search', label: 'Search username or email', type: 'search',
                value: search });
            s.input.addEventListener('input', () => {
                search = s.get();
                render();
            });
            const f = selectField('users-filter', { name: 'filter_system', label: 'Show system',
                options: [{ value: '', label: 'all systems' }].concat(systems.map((x) => ({ value: x.code, label: x.code }))),
                value: sysFilter });
            f.input.addEventListener('change', () => {
                sysFilter = f.get();
                render();
            });
            filterBox.replaceChildren(s.node, f.node);
            createBox.replaceChildren();
            if (me.role === 'owner' || (me.role === 'editor' && (me.systems || []).length)) {
                createBox.append(h('h2', {}, 'New user'), userForm('user-new', null, 'Create', async (v, form, clear) => {
                    if (await write('POST', '/users', v)) {
                        form.reset();
                        clear();
                    }
                }));
            }
        }

        async function load() {
            try {
                const [u, s, r, g] = await Promise.all([ctx.api('GET', '/users'), ctx.api('GET', '/systems'),
                    ctx.api('GET', '/roles'), ctx.api('GET', '/groups')]);
                rows = u.data || [];
                systems = s.data || [];
                roles = r.data || [];
                groups = g.data || [];
                const sig = JSON.stringify([systems, roles, groups].map((l) => l.map((x) => x.id + ':' + (x.code || ref(x)))));
                if (sig !== chromeSig) renderChrome();
                chromeSig = sig;
                render();
            } catch (err) {
                showError(msg, err);
            }
        }

        root.append(h('h1', {}, 'Users'), h('p', {}, 'The people who log in through the data planes (/auth/login). ' +
            'A user belongs to systems and holds roles and groups there.'), msg, filterBox, listBox, editBox, createBox);
        return load();
    },
};
