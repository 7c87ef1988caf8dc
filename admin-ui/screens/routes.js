// Routes: what requests a data plane accepts (paths, hosts, methods) and where they go (a service; or a PDF or
// aggregate route). Lists, creates, edits (a full replace: the route's traffic policies, edited on the Policies
// screen, are carried over unchanged) and deletes routes.
import { h, table, form, showError, showApplied, confirmDialog, canWrite, badge, loading } from '../lib/ui.js';

const NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

/** Splits a textarea or comma list into trimmed, non-empty items. */
export function lines(text) {
    return String(text || '').split(/[\n,]/).map((x) => x.trim()).filter(Boolean);
}

function checkPaths(v) {
    const ps = lines(v);
    if (!ps.length) return 'at least one path';
    for (const p of ps) {
        if (p[0] !== '/') return p + ': a path starts with /';
        if (p === '/auth' || p.startsWith('/auth/')) return p + ': /auth belongs to the gateway';
        if (p.includes('//') || /(^|\/)\.\.?(\/|$)/.test(p)) return p + ': no // and no dot segment';
    }
    return null;
}

function tags(list) {
    return list && list.length ? list.map((x) => h('span', { class: 'tag' }, x)) : h('span', { class: 'muted' }, 'any');
}

const ACCESS_KIND = { public: 'warn', authenticated: 'ok', deny: 'bad' };

export const screen = {
    id: 'routes',
    title: 'Routes',
    minRole: 'viewer',
    async render(root, ctx) {
        const me = ctx.me || {};
        const msg = h('div', { class: 'messages', 'aria-live': 'polite' });
        const list = h('div', { class: 'route-list' });
        const editor = h('section', { class: 'crud-edit' });
        const creator = h('section', { class: 'crud-create' });
        let routes = [];
        let services = [];
        root.append(h('h1', {}, 'Routes'),
            h('p', {}, 'Which requests the gateway accepts and which service answers them. The default access applies to a ' +
                'request that no endpoint rule of the service matches.'),
            msg, list, editor, creator);
        loading(list);

        const sysOf = (name) => {
            const s = services.find((x) => x.name === name);
            return s ? s.system : null;
        };
        const mayWrite = (r) => canWrite(me, sysOf(r.service));

        function routeForm(rt, submit, onDone) {
            const svcOptions = services.filter((s) => canWrite(me, s.system) || (rt && s.name === rt.service))
                .map((s) => ({ value: s.name, label: s.name + (s.system ? ' (' + s.system + ')' : '') }));
            const kind = rt ? rt.kind || 'proxy' : 'proxy';
            const fields = [
                { name: 'name', label: 'Name', required: true, value: rt ? rt.name : '', maxlength: '64', pattern: '[A-Za-z0-9._\\-]{1,64}',
                    check: (v) => (NAME_RE.test(v) ? null : '1-64 of A-Z, a-z, 0-9, . _ -') },
                { name: 'service', label: 'Service', type: 'select', required: true, options: svcOptions, value: rt ? rt.service : undefined },
                { name: 'paths', label: 'Paths', type: 'textarea', rows: 2, required: true, value: rt ? (rt.paths || []).join('\n') : '',
                    placeholder: '/orders', help: 'One per line; a path matches itself and everything below it', check: checkPaths },
                { name: 'hosts', label: 'Hosts', type: 'textarea', rows: 2, value: rt ? (rt.hosts || []).join('\n') : '',
                    help: 'One per line; empty: any host' },
                { name: 'methods', label: 'Methods', type: 'checks', options: METHODS, value: rt ? rt.methods || [] : [],
                    help: 'None selected: any method' },
                { name: 'default_access', label: 'Default access', type: 'select', value: rt ? rt.default_access : 'authenticated',
                    options: ['authenticated', 'public', 'deny'],
                    help: 'When no endpoint rule matches: authenticated = any valid principal of the service\'s system, public = anyone, deny = 403' },
                { name: 'strip_prefix', label: 'Strip the matched path prefix', type: 'checkbox', value: rt ? rt.strip_prefix : false },
                { name: 'kind', label: 'Kind', type: 'select', value: kind, options: ['proxy', 'pdf', 'aggregate'] },
                { name: 'options', label: 'PDF / aggregate settings (JSON)', type: 'json', rows: 4,
                    value: rt && rt.kind === 'pdf' ? rt.pdf : rt && rt.kind === 'aggregate' ? rt.aggregate : '',
                    help: 'Only for kind pdf or aggregate: the "pdf" or "aggregate" object',
                    check: (v, f) => {
                        const k = f.fields.kind.get();
                        if (k === 'proxy') return v === null ? null : 'leave empty for a proxy route';
                        return v && typeof v === 'object' && !Array.isArray(v) ? null : 'a JSON object is required for kind ' + k;
                    } },
            ];
            const f = form({ fields, submit, className: 'route-form',
                cancel: rt ? { label: 'Cancel', onClick: () => editor.replaceChildren() } : null,
                onSubmit: async (v, fe) => {
                    const body = { name: v.name, service: v.service, paths: lines(v.paths), hosts: lines(v.hosts), methods: v.methods,
                        strip_prefix: v.strip_prefix, default_access: v.default_access, kind: v.kind, policies: rt ? rt.policies || {} : {} };
                    if (v.kind !== 'proxy') body[v.kind] = v.options;
                    const r = rt ? await ctx.api('PUT', '/routes/' + encodeURIComponent(rt.id), body) : await ctx.api('POST', '/routes', body);
                    showApplied(msg, r);
                    onDone(fe);
                    await load();
                } });
            const syncKind = () => { f.fields.options.node.hidden = f.fields.kind.get() === 'proxy'; };
            f.fields.kind.input.addEventListener('change', syncKind);
            syncKind();
            return f;
        }

        function edit(rt) {
            editor.replaceChildren(h('h2', {}, 'Edit route ' + rt.name), routeForm(rt, 'Save', () => editor.replaceChildren()));
            const first = editor.querySelector('input');
            if (first) first.focus();
        }

        async function remove(rt) {
            if (!(await confirmDialog('Delete route ' + rt.name + '? Its requests will get 404 from the gateway.',
                { confirm: 'Delete', title: 'Delete route' }))) return;
            msg.replaceChildren();
            try {
                showApplied(msg, await ctx.api('DELETE', '/routes/' + encodeURIComponent(rt.id)));
                editor.replaceChildren();
                await load();
            } catch (err) {
                showError(msg, err);
            }
        }

        function renderList() {
            const cols = [
                { label: 'Name', render: (r) => h('strong', {}, r.name) },
                { label: 'Service', render: (r) => h('a', { href: '#/endpoints?service=' + encodeURIComponent(r.service) }, r.service) },
                { label: 'Paths', render: (r) => (r.paths || []).map((p) => h('div', {}, h('code', {}, p))) },
                { label: 'Hosts', render: (r) => tags(r.hosts) },
                { label: 'Methods', render: (r) => tags(r.methods) },
                { label: 'Default access', render: (r) => badge(r.default_access, ACCESS_KIND[r.default_access]) },
                { label: 'Kind', render: (r) => [r.kind || 'proxy', r.strip_prefix ? h('div', { class: 'help' }, 'strips prefix') : null,
                    r.policies && Object.keys(r.policies).length ? h('div', { class: 'help' }, 'policies: ' + Object.keys(r.policies).join(', ')) : null] },
                { label: 'Actions', render: (r) => (mayWrite(r) ? h('span', { class: 'actions' },
                    h('button', { type: 'button', onclick: () => edit(r) }, 'Edit'),
                    h('button', { type: 'button', class: 'danger', onclick: () => remove(r) }, 'Delete')) : '') },
            ];
            list.replaceChildren(table({ columns: cols, rows: routes, empty: 'No route yet.' }));
        }

        async function load() {
            try {
                const [r, s] = await Promise.all([ctx.api('GET', '/routes'), ctx.api('GET', '/services')]);
                routes = r.data || [];
                const had = services.map((x) => x.name).join();
                services = s.data || [];
                renderList();
                const mayCreate = services.some((x) => canWrite(me, x.system));
                if (mayCreate && (!creator.childElementCount || had !== services.map((x) => x.name).join())) {
                    creator.replaceChildren(h('h2', {}, 'New route'), routeForm(null, 'Create', (f) => f.reset()));
                } else if (!mayCreate && (me.role === 'owner' || me.role === 'editor')) {
                    creator.replaceChildren(h('p', { class: 'muted' }, 'Create a service first (in a system you may edit).'));
                }
            } catch (err) {
                list.replaceChildren();
                showError(msg, err);
            }
        }
        await load();
    },
};
