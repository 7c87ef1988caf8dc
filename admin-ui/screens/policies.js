// Rate-limit and cache policies. Per route: its rate limits (policies.rate_limits: up to 8, all must pass) and its
// response cache (policies.cache), saved together with one PUT of the route, plus a cache purge. Per service: the
// endpoint rules' own rate limits, which replace the route's for the requests a rule matches (null = the route's).
// Every value is checked here with the snapshot schema's rules (proto/PROTOCOL.md section 5) before it is sent; the
// server checks again and its error (code, message, JSON pointer) is shown as sent.
import { h, table, showError, showApplied, field, canWrite } from '../lib/ui.js';

const NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;
const HEADER_RE = /^[a-z0-9!#$%&'*+\-.^_`|~]{1,64}$/;
const KEYS = ['ip', 'principal', 'api_key', 'system', 'route', 'header'];
const MAX_LIMITS = 8;

// --- screen-local helpers (single inputs come from lib/ui.js field()) ---
const textField = (prefix, spec) => field(spec, prefix);
const selectField = (prefix, spec) => field({ ...spec, type: 'select' }, prefix);
const boolField = (prefix, spec) => field({ ...spec, type: 'checkbox' }, prefix);
const fail = (path, message) => ({ code: 'invalid', message, path });
// --- end of helpers ---

// A whole number within [min, max], or the error at path. An empty optional field gives undefined.
function intIn(raw, min, max, path, what, optional) {
    const text = raw === null || raw === undefined ? '' : String(raw).trim(); // field() gives numbers or null
    if (text === '' && optional) return { value: undefined };
    if (!/^[0-9]{1,11}$/.test(text)) return { error: fail(path, what + ': a whole number from ' + min + ' to ' + max) };
    const n = Number(text);
    if (n < min || n > max) return { error: fail(path, what + ': from ' + min + ' to ' + max) };
    return { value: n };
}

// The editor of one rate-limit list: a fieldset per limit, "Add limit", "Remove". get(base) -> {value} | {error}
// with the error's JSON pointer under base ("/policies/rate_limits", "/rate_limits").
function limitsEditor(prefix, initial) {
    const list = h('div', { class: 'limits' });
    const items = [];
    const addBtn = h('button', { type: 'button' }, 'Add limit');
    const sync = () => {
        addBtn.disabled = items.length >= MAX_LIMITS;
        items.forEach((it, i) => (it.legend.textContent = 'Rate limit ' + (i + 1)));
        if (!items.length) list.replaceChildren(h('p', { class: 'help' }, 'No rate limit.'));
        else list.replaceChildren(...items.map((it) => it.node));
    };
    const add = (l) => {
        l = l || {};
        const isHeader = typeof l.key === 'string' && l.key.startsWith('header:');
        const f = {
            name: textField(prefix, { name: 'name', label: 'Name', value: l.name || '', required: true, maxlength: '64' }),
            key: selectField(prefix, { name: 'key', label: 'Counted per', value: isHeader ? 'header' : l.key || 'ip',
                options: KEYS.map((k) => ({ value: k, label: k === 'header' ? 'header (name below)' : k })) }),
            header: textField(prefix, { name: 'header', label: 'Header name (lower case)',
                value: isHeader ? l.key.slice(7) : '', maxlength: '64' }),
            rate: textField(prefix, { name: 'rate', label: 'Requests', type: 'number', min: '1', max: '1000000000',
                step: '1', value: l.rate ?? '', required: true }),
            period: textField(prefix, { name: 'period_s', label: 'Per seconds', type: 'number', min: '1', max: '86400',
                step: '1', value: l.period_s ?? '', required: true }),
            burst: textField(prefix, { name: 'burst', label: 'Burst (extra at once)', type: 'number', min: '0',
                max: '1000000000', step: '1', value: l.burst ?? '' }),
            backend: selectField(prefix, { name: 'backend', label: 'Backend', value: l.backend || 'local',
                options: [{ value: 'local', label: 'local (per data plane)' }, { value: 'redis', label: 'redis (shared)' }] }),
            onError: selectField(prefix, { name: 'on_error', label: 'When Redis fails', value: l.on_error || 'open',
                options: [{ value: 'open', label: 'open (allow)' }, { value: 'closed', label: 'closed (503)' }] }),
            headers: boolField(prefix, { name: 'headers', label: 'RateLimit-* headers on every answer', value: l.headers }),
        };
        const showHeader = () => (f.header.node.hidden = f.key.get() !== 'header');
        f.key.input.addEventListener('change', showHeader);
        showHeader();
        const legend = h('legend', {});
        const it = { f, legend };
        const remove = h('button', { type: 'button', class: 'danger', onclick: () => {
            items.splice(items.indexOf(it), 1);
            sync();
        } }, 'Remove limit');
        it.node = h('fieldset', { class: 'limit crud-form' }, legend, Object.values(f).map((x) => x.node), remove);
        items.push(it);
        sync();
    };
    addBtn.addEventListener('click', () => {
        if (items.length < MAX_LIMITS) add(null);
    });
    (initial || []).forEach(add);
    sync();
    const get = (base) => {
        const out = [];
        const seen = new Set();
        for (const [i, { f }] of items.entries()) {
            const p = base + '/' + i;
            const l = { name: f.name.get() };
            if (!NAME_RE.test(l.name)) return { error: fail(p + '/name', 'name: 1-64 of A-Z a-z 0-9 . _ -') };
            if (seen.has(l.name)) return { error: { code: 'duplicate', message: 'name ' + l.name + ' is used twice',
                path: p + '/name' } };
            seen.add(l.name);
            if (f.key.get() === 'header') {
                const hn = f.header.get();
                if (!HEADER_RE.test(hn)) return { error: fail(p + '/key', 'header name: 1-64 lower-case token characters') };
                l.key = 'header:' + hn;
            } else l.key = f.key.get();
            const rate = intIn(f.rate.get(), 1, 1000000000, p + '/rate', 'requests');
            if (rate.error) return rate;
            l.rate = rate.value;
            const period = intIn(f.period.get(), 1, 86400, p + '/period_s', 'seconds');
            if (period.error) return period;
            l.period_s = period.value;
            const burst = intIn(f.burst.get(), 0, 1000000000, p + '/burst', 'burst', true);
            if (burst.error) return burst;
            if (burst.value !== undefined) l.burst = burst.value;
            if (f.backend.get() === 'redis') { // defaults (local, open) are left out: the policy is stored as sent
                l.backend = 'redis';
                if (f.onError.get() === 'closed') l.on_error = 'closed';
            }
            if (f.headers.get()) l.headers = true;
            out.push(l);
        }
        return { value: out };
    };
    return { node: h('div', { class: 'limits-editor' }, list, addBtn), get };
}

// The cache policy fields; get() -> {value: object | undefined (no caching)} | {error}.
function cacheEditor(prefix, c) {
    const on = boolField(prefix, { name: 'cache', label: 'Cache GET and HEAD answers', value: !!c });
    c = c || {};
    const ttl = textField(prefix, { name: 'ttl_s', label: 'Default freshness, s (0: only what the upstream allows)',
        type: 'number', min: '0', max: '31536000', step: '1', value: c.ttl_s ?? '' });
    const max = textField(prefix, { name: 'max_ttl_s', label: 'Longest freshness, s (default 86400)', type: 'number',
        min: '1', max: '31536000', step: '1', value: c.max_ttl_s ?? '' });
    const body = textField(prefix, { name: 'max_body_bytes', label: 'Largest body stored, bytes (default 1048576)',
        type: 'number', min: '1', max: '67108864', step: '1', value: c.max_body_bytes ?? '' });
    const share = boolField(prefix, { name: 'share_authenticated', value: c.share_authenticated,
        label: 'Also for requests with credentials (only public / s-maxage answers)' });
    const fields = h('div', { class: 'cache-fields crud-form' }, ttl.node, max.node, body.node, share.node);
    const toggle = () => (fields.hidden = !on.get());
    on.input.addEventListener('change', toggle);
    toggle();
    const get = () => {
        if (!on.get()) return { value: undefined };
        const out = {};
        const checks = [[ttl, 'ttl_s', 0, 31536000], [max, 'max_ttl_s', 1, 31536000], [body, 'max_body_bytes', 1, 67108864]];
        for (const [f, k, lo, hi] of checks) {
            const r = intIn(f.get(), lo, hi, '/policies/cache/' + k, k, true);
            if (r.error) return r;
            if (r.value !== undefined) out[k] = r.value;
        }
        if (share.get()) out.share_authenticated = true;
        return { value: out };
    };
    return { node: h('div', { class: 'cache-editor' }, on.node, fields), get };
}

function writableBody(obj) {
    const b = { ...obj };
    delete b.id;
    delete b.created_at;
    delete b.updated_at;
    return b;
}

export const screen = {
    id: 'policies',
    title: 'Policies',
    minRole: 'viewer',
    render(root, ctx) {
        const me = ctx.me || {};
        const msg = h('div', { class: 'messages' });
        const routeBox = h('div', { class: 'policy-route' });
        const ruleBox = h('div', { class: 'policy-rules' });
        let services = [];
        let routes = [];

        const systemOf = (serviceName) => {
            const s = services.find((x) => x.name === serviceName);
            return s ? s.system : null;
        };

        async function write(method, path, body) {
            msg.replaceChildren();
            try {
                const r = await ctx.api(method, path, body);
                showApplied(msg, r);
                return r;
            } catch (err) {
                showError(msg, err);
                return null;
            }
        }

        async function showRoute(name) {
            routeBox.replaceChildren();
            if (!name) return;
            let route;
            try {
                route = await ctx.api('GET', '/routes/' + encodeURIComponent(name));
            } catch (err) {
                return showError(msg, err);
            }
            const pol = route.policies || {};
            const editable = canWrite(me, systemOf(route.service));
            const limits = limitsEditor('route-rl', pol.rate_limits || []);
            const cache = cacheEditor('route-cache', pol.cache);
            const summary = h('p', {}, 'Route ' + route.name + ' -> service ' + route.service + ' (' +
                (route.paths || []).join(', ') + '). ' + (pol.rate_limits && pol.rate_limits.length
                ? pol.rate_limits.length + ' rate limit(s)' : 'No rate limit') + ', ' +
                (pol.cache ? 'cached' : 'not cached') + '.');
            const inner = h('fieldset', { class: 'policy-fields' }, h('legend', {}, 'Policies of route ' + route.name),
                h('h3', {}, 'Rate limits (all must pass; 429 otherwise)'), limits.node,
                h('h3', {}, 'Response cache'), cache.node);
            inner.disabled = !editable;
            const form = h('form', { class: 'policy-editor' }, inner,
                editable ? h('button', { type: 'submit', class: 'primary' }, 'Save') : null);
            form.addEventListener('submit', async (ev) => {
                ev.preventDefault();
                const rl = limits.get('/policies/rate_limits');
                if (rl.error) return showError(msg, rl.error);
                const c = cache.get();
                if (c.error) return showError(msg, c.error);
                const body = writableBody(route);
                body.policies = { ...pol };
                if (rl.value.length) body.policies.rate_limits = rl.value;
                else delete body.policies.rate_limits;
                if (c.value) body.policies.cache = c.value;
                else delete body.policies.cache;
                if (await write('PUT', '/routes/' + encodeURIComponent(route.id), body)) await showRoute(route.name);
            });
            routeBox.append(summary, form);
            if (editable && pol.cache) routeBox.append(purgeForm(route.name));
        }

        function purgeForm(routeName) {
            const prefix = textField('purge', { name: 'prefix', label: 'Upstream path prefix (empty: everything)',
                placeholder: '/img/' });
            const form = h('form', { class: 'purge-form' }, prefix.node,
                h('button', { type: 'submit', class: 'primary' }, 'Purge cache'));
            form.addEventListener('submit', async (ev) => {
                ev.preventDefault();
                const p = prefix.get();
                if (p && (!p.startsWith('/') || p.length > 1024 || /\/\/|[?#;\\\s]/.test(p) || /(^|\/)\.\.?(\/|$)/.test(p)))
                    return showError(msg, fail('/prefix', 'prefix: a canonical path starting with /, no //, . or .., ? # ; \\'));
                msg.replaceChildren();
                try {
                    const r = await ctx.api('POST', '/cache/purge', p ? { route: routeName, prefix: p } : { route: routeName });
                    msg.append(h('p', { class: 'ok', role: 'status' }, 'Purge sent to ' + r.purged_on + ' data plane(s).'));
                } catch (err) {
                    showError(msg, err);
                }
            });
            return h('div', {}, h('h3', {}, 'Purge the cache of ' + routeName), form);
        }

        function editRule(rule, holder, editable) {
            const useRoute = boolField('rule-rl', { name: 'use_route_limits', value: rule.rate_limits === null ||
                rule.rate_limits === undefined, label: 'Use the route\'s rate limits' });
            const limits = limitsEditor('rule-rl', rule.rate_limits || []);
            const toggle = () => (limits.node.hidden = useRoute.get());
            useRoute.input.addEventListener('change', toggle);
            toggle();
            const inner = h('fieldset', { class: 'policy-fields' }, h('legend', {}, 'Rate limits of rule ' + rule.method + ' ' +
                rule.path), h('p', { class: 'help' }, 'When this rule matches a request (and is not shadow), these ' +
                'limits replace the route\'s; no limit at all means none for it.'), useRoute.node, limits.node);
            inner.disabled = !editable;
            const form = h('form', { class: 'policy-editor' }, inner,
                editable ? h('button', { type: 'submit', class: 'primary' }, 'Save') : null);
            form.addEventListener('submit', async (ev) => {
                ev.preventDefault();
                const body = writableBody(rule);
                if (useRoute.get()) body.rate_limits = null;
                else {
                    const rl = limits.get('/rate_limits');
                    if (rl.error) return showError(msg, rl.error);
                    body.rate_limits = rl.value;
                }
                if (await write('PUT', '/endpoints/' + encodeURIComponent(rule.id), body)) showService(rule.service);
            });
            holder.replaceChildren(form);
        }

        async function showService(name) {
            ruleBox.replaceChildren();
            if (!name) return;
            let rules;
            try {
                rules = ((await ctx.api('GET', '/endpoints')).data || []).filter((e) => e.service === name);
            } catch (err) {
                return showError(msg, err);
            }
            const editable = canWrite(me, systemOf(name));
            const holder = h('div', { class: 'rule-limits' });
            ruleBox.append(table({
                columns: [
                    { label: 'Method', key: 'method' },
                    { label: 'Path', render: (e) => h('code', {}, e.path) },
                    { label: 'Rate limits', render: (e) => e.rate_limits === null || e.rate_limits === undefined
                        ? 'the route\'s' : e.rate_limits.length ? e.rate_limits.map((l) => l.name + ': ' + l.rate + '/' +
                            l.period_s + 's per ' + l.key).join('; ') : 'none' },
                    { label: 'Actions', render: (e) => h('button', { type: 'button', onclick: () => editRule(e, holder, editable) },
                        editable ? 'Edit limits' : 'Show limits') },
                ],
                rows: rules, empty: 'This service has no endpoint rule.',
            }), holder);
        }

        async function load() {
            try {
                const [s, r] = await Promise.all([ctx.api('GET', '/services'), ctx.api('GET', '/routes')]);
                services = s.data || [];
                routes = r.data || [];
            } catch (err) {
                return showError(msg, err);
            }
            const routePick = selectField('policies', { name: 'route', label: 'Route',
                options: [{ value: '', label: '(choose a route)' }].concat(routes.map((x) => ({ value: x.name,
                    label: x.name + ' - ' + ((x.policies && x.policies.rate_limits || []).length) + ' limit(s)' +
                        (x.policies && x.policies.cache ? ', cached' : '') }))) });
            routePick.input.addEventListener('change', () => showRoute(routePick.get()));
            const servicePick = selectField('policies', { name: 'service', label: 'Service',
                options: [{ value: '', label: '(choose a service)' }]
                    .concat(services.map((x) => ({ value: x.name, label: x.name }))) });
            servicePick.input.addEventListener('change', () => showService(servicePick.get()));
            root.append(
                h('section', {}, h('h2', {}, 'Route policies'), routePick.node, routeBox),
                h('section', {}, h('h2', {}, 'Endpoint rule rate limits'), servicePick.node, ruleBox));
            const want = ctx.params && typeof ctx.params === 'object' ? ctx.params.route : null;
            if (typeof want === 'string' && routes.some((x) => x.name === want)) {
                routePick.input.value = want;
                await showRoute(want);
            }
        }

        root.append(h('h1', {}, 'Rate-limit and cache policies'), msg);
        return load();
    },
};
