// Systems: the list (code, name), create (owners), edit (owners, or editors whose scope has the system) and delete
// (owners). Every write waits for the data planes and shows whether they applied it; server errors are shown as sent.
import { h, table, showError, showApplied, confirmDialog, field, canWrite, fmtTime } from '../lib/ui.js';

const CODE_RE = /^[a-z0-9_-]{1,64}$/;

// --- screen-local helpers (single inputs come from lib/ui.js field()) ---
const textField = (prefix, spec) => field(spec, prefix);
const fail = (path, message) => ({ code: 'invalid', message, path });
// --- end of helpers ---

function check(v) {
    if (!CODE_RE.test(v.code)) return fail('/code', 'code: 1-64 of a-z, 0-9, _ and -');
    if (!v.name || v.name.length > 200) return fail('/name', 'name: 1-200 characters');
    if (/[\u0000-\u001f\u007f]/.test(v.name)) return fail('/name', 'name: no control character');
    return null;
}

function systemForm(prefix, sys, submit, onSubmit) {
    const code = textField(prefix, { name: 'code', label: 'Code', value: sys ? sys.code : '', required: true,
        pattern: '[a-z0-9_\\-]{1,64}', maxlength: '64', help: 'a-z, 0-9, _ and -; tokens and rules carry it' });
    const name = textField(prefix, { name: 'name', label: 'Name', value: sys ? sys.name : '', required: true,
        maxlength: '200' });
    const form = h('form', { class: 'crud-form' }, code.node, name.node, h('button', { type: 'submit', class: 'primary' }, submit));
    form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        onSubmit({ code: code.get(), name: name.get() }, form);
    });
    return form;
}

export const screen = {
    id: 'systems',
    title: 'Systems',
    minRole: 'viewer',
    render(root, ctx) {
        const me = ctx.me || {};
        const msg = h('div', { class: 'messages' });
        const listBox = h('div', { class: 'crud-list' });
        const editBox = h('section', { class: 'crud-edit' });
        let rows = [];

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

        async function remove(s) {
            if (!(await confirmDialog('Delete system ' + s.code + '? Refused while services, roles, groups, API keys ' +
                'or users use it.', { confirm: 'Delete', title: 'Delete' }))) return;
            if (await write('DELETE', '/systems/' + encodeURIComponent(s.code))) editBox.replaceChildren();
        }

        function edit(s) {
            const form = systemForm('system-edit', s, 'Save', async (v) => {
                const bad = check(v);
                if (bad) return showError(msg, bad);
                if (await write('PUT', '/systems/' + encodeURIComponent(s.id), v)) editBox.replaceChildren();
            });
            editBox.replaceChildren(h('h2', {}, 'Edit system ' + s.code), form,
                h('button', { type: 'button', onclick: () => editBox.replaceChildren() }, 'Cancel'));
            editBox.scrollIntoView({ block: 'nearest' });
            form.querySelector('input, select').focus();
        }

        function render() {
            const cols = [
                { label: 'Code', key: 'code' },
                { label: 'Name', key: 'name' },
                { label: 'Updated', render: (r) => fmtTime(r.updated_at) },
                { label: 'Actions', render: (s) => h('span', { class: 'actions' },
                    canWrite(me, s.code) ? h('button', { type: 'button', onclick: () => edit(s) }, 'Edit') : null,
                    me.role === 'owner' ? h('button', { type: 'button', class: 'danger', onclick: () => remove(s) },
                        'Delete') : null) },
            ];
            listBox.replaceChildren(table({ columns: cols, rows, empty: 'No system yet.' }));
        }

        async function load() {
            try {
                rows = (await ctx.api('GET', '/systems')).data || [];
                render();
            } catch (err) {
                showError(msg, err);
            }
        }

        root.append(h('h1', {}, 'Systems'),
            h('p', {}, 'A system groups the services, roles, groups, API keys and users of one application.'),
            msg, listBox, editBox);
        if (me.role === 'owner') {
            root.append(h('section', { class: 'crud-create' }, h('h2', {}, 'New system'),
                systemForm('system-new', null, 'Create', async (v, form) => {
                    const bad = check(v);
                    if (bad) return showError(msg, bad);
                    if (await write('POST', '/systems', v)) form.reset();
                })));
        }
        return load();
    },
};
