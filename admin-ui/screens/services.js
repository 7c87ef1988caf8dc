// Services: the upstreams routes forward to. Lists each service with its targets (and their health as the connected
// data planes report it), load-balancing policy, timeout, system, and its Consul / Vault bindings; creates, edits
// (a PUT is a full replace, so every member is sent back) and deletes them. The resilience policies are edited as
// JSON here (their members are described in docs/admin-api.md).
import { h, table, form, showError, showApplied, confirmDialog, canWrite, badge, loading } from '../lib/ui.js';

const NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;

/** "http://a:1 2\nhttp://b:2" -> [{url, weight}]; throws a readable Error on a bad line. */
export function parseTargets(text) {
    const out = [];
    for (const [i, raw] of String(text || '').split('\n').entries()) {
        const line = raw.trim();
        if (!line) continue;
        const parts = line.split(/\s+/);
        if (parts.length > 2 || !/^https?:\/\/\S+$/.test(parts[0])) throw new Error('line ' + (i + 1) + ': "URL [weight]" expected');
        const t = { url: parts[0], weight: 1 };
        if (parts[1] !== undefined) {
            if (!/^\d+$/.test(parts[1])) throw new Error('line ' + (i + 1) + ': the weight is a whole number');
            t.weight = Number(parts[1]);
        }
        out.push(t);
    }
    return out;
}

function targetsText(targets) {
    return (targets || []).map((t) => t.url + (t.weight !== undefined && t.weight !== 1 ? ' ' + t.weight : '')).join('\n');
}

// The health of one target as every data plane sees it: [{dp, health, breaker}].
function healthOf(report, service, url) {
    const out = [];
    for (const dp of report) {
        const s = (dp.services || []).find((x) => x.name === service);
        const t = s && (s.targets || []).find((x) => x.url === url);
        if (t) out.push({ dp: dp.dp_id, health: t.health, breaker: t.breaker });
    }
    return out;
}

function healthBadge(states) {
    if (!states.length) return badge('no report', 'muted');
    const bad = states.filter((s) => s.health === 'unhealthy' || s.breaker === 'open');
    const title = states.map((s) => s.dp + ': ' + s.health + ', breaker ' + s.breaker).join('; ');
    const b = bad.length ? badge(bad.length === states.length ? 'unhealthy' : 'degraded', 'bad')
        : states.every((s) => s.health === 'unchecked') ? badge('unchecked', 'muted') : badge('healthy', 'ok');
    b.setAttribute('title', title);
    return b;
}

function credentialsText(c) {
    if (!c) return null;
    const how = c.headers ? 'headers ' + Object.keys(c.headers).join(', ') : c.basic ? 'basic auth' : '';
    return 'Vault ' + c.vault_path + (how ? ' (' + how + ')' : '');
}

export const screen = {
    id: 'services',
    title: 'Services',
    minRole: 'viewer',
    async render(root, ctx) {
        const me = ctx.me || {};
        const msg = h('div', { class: 'messages', 'aria-live': 'polite' });
        const list = h('div', { class: 'svc-list' });
        const editor = h('section', { class: 'crud-edit' });
        const creator = h('section', { class: 'crud-create' });
        let systems = [];
        let services = [];
        let health = [];
        root.append(h('h1', {}, 'Services'),
            h('p', {}, 'Upstreams the routes forward to: their targets, load balancing, health checks, and the Consul and Vault bindings.'),
            msg, list, editor, creator);
        loading(list);

        const mayCreate = me.role === 'owner' || me.role === 'editor';
        const sysOptions = () => (me.role === 'owner' ? [{ value: '', label: 'none' }] : []).concat(systems
            .filter((s) => canWrite(me, s.code)).map((s) => ({ value: s.code, label: s.code + ' - ' + s.name })));

        function serviceForm(svc, submit, onDone) {
            const p = svc ? { ...(svc.policies || {}) } : {};
            const lb = p.lb || {};
            delete p.lb;
            const fields = [
                { name: 'name', label: 'Name', required: true, value: svc ? svc.name : '', maxlength: '64', pattern: '[A-Za-z0-9._\\-]{1,64}',
                    help: 'A-Z, a-z, 0-9, . _ -', check: (v) => (NAME_RE.test(v) ? null : '1-64 of A-Z, a-z, 0-9, . _ -') },
                { name: 'system', label: 'System', type: 'select', options: sysOptions(), value: svc && svc.system ? svc.system : '',
                    help: 'Principals of another system are refused (403); none: no system check' },
                { name: 'timeout_ms', label: 'Timeout (ms)', type: 'number', min: '1', value: svc ? svc.timeout_ms : 60000 },
                { name: 'lb_policy', label: 'Load balancing', type: 'select', value: lb.policy || 'round_robin',
                    options: ['round_robin', 'least_conn', 'random', 'consistent_hash'] },
                { name: 'lb_hash_on', label: 'Hash on (consistent_hash)', value: lb.hash_on || '', placeholder: 'ip, principal or header:<name>',
                    check: (v, f) => (f.fields.lb_policy.get() === 'consistent_hash' && !v ? 'required with consistent_hash' : null) },
                { name: 'targets', label: 'Targets', type: 'textarea', rows: 4, value: svc ? targetsText(svc.consul ? [] : svc.targets) : '',
                    placeholder: 'http://10.0.0.1:8080 [weight]', help: 'One per line: URL and an optional weight (default 1). Leave empty with Consul.',
                    check: (v) => { try { parseTargets(v); return null; } catch (e) { return e.message; } } },
                { name: 'consul_service', label: 'Consul service', value: svc && svc.consul ? svc.consul.service : '',
                    help: 'Take the targets from Consul\'s passing instances instead' },
                { name: 'consul_tag', label: 'Consul tag', value: svc && svc.consul && svc.consul.tag ? svc.consul.tag : '' },
                { name: 'policies', label: 'Other policies (JSON)', type: 'json', rows: 5, value: p,
                    help: 'health_check, outlier, limits - see the admin API reference',
                    check: (v) => (v === null || (typeof v === 'object' && !Array.isArray(v)) ? null : 'a JSON object') },
                { name: 'credentials', label: 'Vault credentials (JSON)', type: 'json', rows: 4, value: svc && svc.credentials ? svc.credentials : '',
                    placeholder: '{"vault_path": "services/x", "headers": {"Authorization": "Bearer {{token}}"}}',
                    help: 'Headers added to upstream requests, built from a Vault secret; empty: none',
                    check: (v) => (v === null || (typeof v === 'object' && !Array.isArray(v)) ? null : 'a JSON object or empty') },
            ];
            return form({ fields, submit, className: 'svc-form',
                cancel: svc ? { label: 'Cancel', onClick: () => editor.replaceChildren() } : null,
                onSubmit: async (v, f) => {
                    const policies = { ...(v.policies || {}) };
                    if (v.lb_policy !== 'round_robin' || v.lb_hash_on) {
                        policies.lb = { policy: v.lb_policy };
                        if (v.lb_hash_on) policies.lb.hash_on = v.lb_hash_on;
                    }
                    const body = { name: v.name, system: v.system || null, timeout_ms: v.timeout_ms === null ? 60000 : v.timeout_ms,
                        targets: parseTargets(v.targets), policies };
                    if (v.consul_service) body.consul = v.consul_tag ? { service: v.consul_service, tag: v.consul_tag } : { service: v.consul_service };
                    if (v.credentials) body.credentials = v.credentials;
                    const r = svc ? await ctx.api('PUT', '/services/' + encodeURIComponent(svc.id), body) : await ctx.api('POST', '/services', body);
                    showApplied(msg, r);
                    onDone(f);
                    await load();
                } });
        }

        function edit(svc) {
            editor.replaceChildren(h('h2', {}, 'Edit service ' + svc.name), serviceForm(svc, 'Save', () => editor.replaceChildren()));
            const first = editor.querySelector('input');
            if (first) first.focus();
        }

        async function remove(svc) {
            if (!(await confirmDialog('Delete service ' + svc.name + '? Its endpoint rules are deleted with it; refused while routes use it.',
                { confirm: 'Delete', title: 'Delete service' }))) return;
            msg.replaceChildren();
            try {
                showApplied(msg, await ctx.api('DELETE', '/services/' + encodeURIComponent(svc.id)));
                editor.replaceChildren();
                await load();
            } catch (err) {
                showError(msg, err);
            }
        }

        function renderList() {
            const cols = [
                { label: 'Name', render: (s) => h('strong', {}, s.name) },
                { label: 'System', render: (s) => (s.system ? h('code', {}, s.system) : h('span', { class: 'muted' }, 'none')) },
                { label: 'Targets', render: (s) => (s.targets && s.targets.length ? h('ul', { class: 'plain' }, s.targets.map((t) =>
                    h('li', {}, h('code', {}, t.url), t.weight !== 1 ? ' x' + t.weight : '', ' ', healthBadge(healthOf(health, s.name, t.url)))))
                    : h('span', { class: 'muted' }, s.consul ? 'none passing yet' : 'none')) },
                { label: 'Load balancing', render: (s) => (s.policies && s.policies.lb ? s.policies.lb.policy +
                    (s.policies.lb.hash_on ? ' (' + s.policies.lb.hash_on + ')' : '') : 'round_robin') },
                { label: 'Timeout', class: 'num', render: (s) => s.timeout_ms + ' ms' },
                { label: 'Bindings', render: (s) => [s.consul ? h('div', {}, 'Consul ', h('code', {}, s.consul.service + (s.consul.tag ? ':' + s.consul.tag : ''))) : null,
                    s.credentials ? h('div', {}, credentialsText(s.credentials)) : null,
                    s.policies && s.policies.health_check ? h('div', {}, 'health check ', h('code', {}, s.policies.health_check.path || '')) : null] },
                { label: 'Actions', render: (s) => h('span', { class: 'actions' },
                    h('button', { type: 'button', onclick: () => ctx.navigate('endpoints', { service: s.name }) }, 'Permissions'),
                    canWrite(me, s.system) ? [h('button', { type: 'button', onclick: () => edit(s) }, 'Edit'),
                        h('button', { type: 'button', class: 'danger', onclick: () => remove(s) }, 'Delete')] : null) },
            ];
            list.replaceChildren(table({ columns: cols, rows: services, empty: 'No service yet.' }));
        }

        async function load() {
            try {
                const [s, sys] = await Promise.all([ctx.api('GET', '/services'), ctx.api('GET', '/systems')]);
                services = s.data || [];
                const first = !systems.length && !creator.childElementCount;
                systems = sys.data || [];
                try {
                    health = (await ctx.api('GET', '/health/services')).dataplanes || [];
                } catch (err) {
                    health = [];
                }
                renderList();
                if (first && mayCreate) {
                    creator.replaceChildren(h('h2', {}, 'New service'), serviceForm(null, 'Create', (f) => f.reset()));
                }
            } catch (err) {
                list.replaceChildren();
                showError(msg, err);
            }
        }
        await load();
    },
};
