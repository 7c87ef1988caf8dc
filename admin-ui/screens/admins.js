// Admin accounts and admin API tokens. Everyone sees its own account and its own tokens and may create tokens with a
// role and systems within its own (the token is shown ONCE) and revoke them; owners see and manage every account
// (create, change password / role / systems / disabled, delete) and every token. Token buttons say "Issue token" and
// "Revoke" (not Create / Delete): a viewer may manage its own tokens, and a viewer's page shows no Create or Delete.
// These writes are not configuration (no version, nothing for the data planes to apply): a plain confirmation is
// shown instead of the applied banner.
import { h, table, showError, confirmDialog, field, uid, fmtTime, checksGroup } from '../lib/ui.js';

const ACCOUNT_RE = /^[A-Za-z0-9._@-]{1,64}$/;
const TOKEN_RE = /^[A-Za-z0-9._-]{1,64}$/;
const ROLES = ['viewer', 'editor', 'owner'];

// --- screen-local helpers (single inputs come from lib/ui.js field()) ---
const textField = (prefix, spec) => field(spec, prefix);
const selectField = (prefix, spec) => field({ ...spec, type: 'select' }, prefix);
const boolField = (prefix, spec) => field({ ...spec, type: 'checkbox' }, prefix);
const fail = (path, message) => ({ code: 'invalid', message, path });
function done(box, text) {
    box.replaceChildren(h('p', { class: 'ok', role: 'status' }, text));
}
// --- end of helpers ---

const rank = (r) => ROLES.indexOf(r);
const bytes = (s) => new TextEncoder().encode(s).length;

export const screen = {
    id: 'admins',
    title: 'Admins',
    minRole: 'viewer',
    render(root, ctx) {
        const me = ctx.me || {};
        const isOwner = me.role === 'owner';
        const msg = h('div', { class: 'messages' });
        const accountsBox = h('div', { class: 'crud-list' });
        const accountEdit = h('section', { class: 'crud-edit' });
        const accountCreate = h('section', { class: 'crud-create' });
        const tokensBox = h('div', { class: 'crud-list' });
        const tokenCreate = h('section', { class: 'crud-create' });
        const secretBox = h('div', { class: 'secret-holder', 'aria-live': 'polite' });
        let systems = [];

        const sysOptions = (limit) => systems.filter((s) => !limit || limit.includes(s.code))
            .map((s) => ({ value: s.code, label: s.code }));

        async function call(method, path, body, okText) {
            msg.replaceChildren();
            try {
                const r = await ctx.api(method, path, body);
                done(msg, okText);
                await load();
                return r || {};
            } catch (err) {
                showError(msg, err);
                return null;
            }
        }

        function accountForm(prefix, a, submit, onSubmit) {
            const name = a ? null : textField(prefix, { name: 'name', label: 'Name', required: true, maxlength: '64',
                pattern: '[A-Za-z0-9._@\\-]{1,64}', autocomplete: 'off' });
            const pw = textField(prefix, { name: 'password', type: 'password', required: !a, minlength: '12',
                label: a ? 'New password (empty: unchanged)' : 'Password', autocomplete: 'new-password',
                help: '12 to 1024 bytes' + (a ? '; changing it ends the account\'s sessions and tokens' : '') });
            const role = selectField(prefix, { name: 'role', label: 'Role', value: a ? a.role : 'viewer',
                options: ROLES.map((r) => ({ value: r, label: r })),
                help: 'owner: everything; editor: writes within its systems; viewer: read-only' });
            const sys = checksGroup(prefix, { name: 'systems', label: 'Systems (an editor\'s scope)',
                options: sysOptions(null), value: a ? a.systems : [], empty: 'no system yet' });
            const disabled = a ? boolField(prefix, { name: 'disabled', label: 'Disabled', value: a.disabled }) : null;
            const form = h('form', { class: 'crud-form', autocomplete: 'off' }, name ? name.node : null, pw.node,
                role.node, sys.node, disabled ? disabled.node : null, h('button', { type: 'submit', class: 'primary' }, submit));
            form.addEventListener('submit', (ev) => {
                ev.preventDefault();
                const v = { role: role.get(), systems: sys.get() };
                if (name) {
                    v.name = name.get();
                    if (!ACCOUNT_RE.test(v.name)) return showError(msg, fail('/name', 'name: 1-64 of A-Z a-z 0-9 . _ @ -'));
                }
                const p = pw.input.value;
                if (p || !a) {
                    if (bytes(p) < 12 || bytes(p) > 1024) return showError(msg, fail('/password', 'password: 12 to 1024 bytes'));
                    v.password = p;
                }
                if (disabled) v.disabled = disabled.get();
                onSubmit(v, form);
            });
            return form;
        }

        function editAccount(a) {
            const form = accountForm('account-edit', a, 'Save', async (v) => {
                if (await call('PUT', '/admin_accounts/' + encodeURIComponent(a.id), v, 'Account ' + a.name + ' saved.'))
                    accountEdit.replaceChildren();
            });
            accountEdit.replaceChildren(h('h3', {}, 'Edit admin account ' + a.name), form,
                h('button', { type: 'button', onclick: () => accountEdit.replaceChildren() }, 'Cancel'));
        }

        async function deleteAccount(a) {
            const text = 'Delete admin account ' + a.name + '? Its sessions and tokens end with it.';
            if (!(await confirmDialog(text, { confirm: 'Delete', title: 'Delete' }))) return;
            await call('DELETE', '/admin_accounts/' + encodeURIComponent(a.id), undefined, 'Account ' + a.name + ' deleted.');
            accountEdit.replaceChildren();
        }

        async function deleteToken(t) {
            if (!(await confirmDialog('Revoke admin token ' + t.name + ' (' + (t.prefix || '') + '...)? Scripts using it ' +
                'get 401 from now on.', { confirm: 'Revoke', title: 'Revoke' }))) return;
            await call('DELETE', '/admin_tokens/' + encodeURIComponent(t.id), undefined, 'Token ' + t.name + ' revoked.');
        }

        function showSecret(token) {
            const out = h('code', { class: 'secret', 'data-testid': 'secret' }, token);
            const copy = h('button', { type: 'button', onclick: async () => {
                try {
                    await navigator.clipboard.writeText(token);
                    copy.textContent = 'Copied';
                } catch (e) {
                    copy.textContent = 'Copy failed: select the token';
                }
            } }, 'Copy token');
            secretBox.replaceChildren(h('div', { class: 'secret-once', role: 'status' },
                h('p', {}, 'The new admin token - copy it now, it is never shown again. Send it as ' +
                    '"Authorization: Bearer <token>":'), out, copy,
                h('button', { type: 'button', onclick: () => secretBox.replaceChildren() }, 'Done')));
        }

        function tokenForm() {
            const own = rank(me.role);
            const name = textField('token-new', { name: 'name', label: 'Name', required: true, maxlength: '64',
                pattern: '[A-Za-z0-9._\\-]{1,64}', help: 'what the token is for, e.g. ci' });
            const role = selectField('token-new', { name: 'role', label: 'Role', value: me.role,
                options: ROLES.filter((r) => rank(r) <= own).map((r) => ({ value: r, label: r })),
                help: 'at most your own role' });
            const sys = checksGroup('token-new', { name: 'systems', label: 'Systems (an editor token\'s scope)',
                options: sysOptions(isOwner ? null : me.systems || []), value: isOwner ? [] : me.systems || [],
                empty: 'no system in your scope' });
            const exp = textField('token-new', { name: 'expires_in_s', label: 'Expires in seconds (empty: never)',
                type: 'number', min: '1', step: '1', help: '86400 = one day, 2592000 = 30 days' });
            const form = h('form', { class: 'crud-form' }, name.node, role.node, sys.node, exp.node,
                h('button', { type: 'submit', class: 'primary' }, 'Issue token'));
            form.addEventListener('submit', async (ev) => {
                ev.preventDefault();
                const v = { name: name.get(), role: role.get(), systems: sys.get() };
                if (!TOKEN_RE.test(v.name)) return showError(msg, fail('/name', 'name: 1-64 of A-Z a-z 0-9 . _ -'));
                const e = exp.input.value.trim();
                if (e) {
                    if (!/^[0-9]{1,10}$/.test(e) || Number(e) < 1)
                        return showError(msg, fail('/expires_in_s', 'expires_in_s: a whole number of seconds, at least 1'));
                    v.expires_in_s = Number(e);
                }
                const r = await call('POST', '/admin_tokens', v, 'Token ' + v.name + ' created.');
                if (!r) return;
                const token = r.token || (r.admin_token && r.admin_token.token);
                if (token) showSecret(token);
                form.reset();
            });
            return form;
        }

        async function load() {
            try {
                const [s, t] = await Promise.all([ctx.api('GET', '/systems'), ctx.api('GET', '/admin_tokens')]);
                systems = s.data || [];
                tokensBox.replaceChildren(table({
                    columns: [
                        { label: 'Name', key: 'name' },
                        { label: 'Prefix', render: (x) => (x.prefix ? h('code', {}, x.prefix) : '') },
                        { label: 'Role', key: 'role' },
                        { label: 'Systems', render: (x) => (x.systems || []).join(', ') },
                        { label: 'Account', render: (x) => x.account || '(bootstrap)' },
                        { label: 'Created', render: (r) => fmtTime(r.created_at) },
                        { label: 'Last used', render: (x) => fmtTime(x.last_used_at) || 'never' },
                        { label: 'Expires', render: (x) => fmtTime(x.expires_at) || 'never' },
                        { label: 'Actions', render: (x) => h('button', { type: 'button', class: 'danger',
                            onclick: () => deleteToken(x) }, 'Revoke') },
                    ],
                    rows: t.data || [], empty: 'No admin token.',
                }));
                if (!isOwner) return;
                const a = await ctx.api('GET', '/admin_accounts');
                accountsBox.replaceChildren(table({
                    columns: [
                        { label: 'Name', key: 'name' },
                        { label: 'Role', key: 'role' },
                        { label: 'Systems', render: (x) => (x.systems || []).join(', ') },
                        { label: 'Status', render: (x) => (x.disabled ? 'disabled' : 'enabled') },
                        { label: 'Last login', render: (x) => fmtTime(x.last_login_at) || 'never' },
                        { label: 'Created', render: (r) => fmtTime(r.created_at) },
                        { label: 'Actions', render: (x) => h('span', { class: 'actions' },
                            h('button', { type: 'button', onclick: () => editAccount(x) }, 'Edit'),
                            h('button', { type: 'button', class: 'danger', onclick: () => deleteAccount(x) }, 'Delete')) },
                    ],
                    rows: a.data || [], empty: 'No admin account.',
                }));
            } catch (err) {
                showError(msg, err);
            }
        }

        root.append(h('h1', {}, 'Admins'), msg,
            h('section', { class: 'me' }, h('h2', {}, 'You'),
                h('p', {}, (me.name || '(token)') + ' - role ' + (me.role || '?') +
                    (me.systems && me.systems.length ? ' - systems ' + me.systems.join(', ') : '') +
                    (me.via ? ' - signed in by ' + me.via : ''))));
        const ready = load().then(() => {
            if (isOwner) {
                accountCreate.append(h('h3', {}, 'New admin account'), accountForm('account-new', null, 'Create',
                    async (v, form) => {
                        if (await call('POST', '/admin_accounts', v, 'Account ' + v.name + ' created.')) form.reset();
                    }));
                root.append(h('section', { class: 'accounts' }, h('h2', {}, 'Admin accounts'),
                    h('p', { class: 'help' }, 'The last enabled owner cannot be deleted, disabled or demoted.'),
                    accountsBox, accountEdit, accountCreate));
            }
            root.append(h('section', { class: 'tokens' }, h('h2', {}, isOwner ? 'Admin API tokens' : 'Your admin API tokens'),
                secretBox, tokensBox, h('section', { class: 'crud-create' }, h('h3', {}, 'New admin token'), tokenForm())));
        });
        return ready;
    },
};
