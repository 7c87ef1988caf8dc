// Authorization explain: what a data plane running the current configuration would decide for one request (method,
// path, host) made as nobody, as a user (optionally logging in to a system), with a bearer token or with an API key -
// and the chain of steps behind the decision (POST /authz/explain; nothing is written).
import { h, showError, badge, uid } from '../lib/ui.js';

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

function labelled(id, label, input, help) {
    return h('div', { class: 'field' }, h('label', { for: id }, label), input, help ? h('small', { class: 'help' }, help) : null);
}

function ruleText(r) {
    if (!r) return h('span', { class: 'muted' }, 'none');
    return [h('span', { class: 'method' }, r.method), ' ', h('code', {}, r.path), ' #' + r.id, ' (' + r.kind + (r.public ? ', public' : '') + ')'];
}

function principalText(p) {
    if (!p) return h('span', { class: 'muted' }, 'none (anonymous)');
    return [p.kind + ' ', h('strong', {}, String(p.name ?? p.id)), p.system ? [' in ', h('code', {}, p.system)] : null,
        p.superuser ? [' ', badge('superuser', 'warn')] : null,
        h('div', { class: 'help' }, 'effective roles: ' + ((p.effective_roles || []).join(', ') || 'none') +
            '; groups: ' + ((p.groups || []).join(', ') || 'none'))];
}

function kv(pairs) {
    return h('dl', { class: 'kv' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

export const screen = {
    id: 'explain',
    title: 'Explain',
    minRole: 'viewer',
    async render(root, ctx) {
        const p = ctx.params || {};
        const ids = { method: uid('ex-method'), path: uid('ex-path'), host: uid('ex-host'), as: uid('ex-as'), cred: uid('ex-cred'),
            system: uid('ex-system') };
        const method = h('select', { id: ids.method, name: 'method' }, METHODS.map((m) => h('option', { value: m, selected: m === (p.method || 'GET') }, m)));
        const path = h('input', { id: ids.path, name: 'path', type: 'text', required: true, maxlength: '8192', value: p.path || '',
            placeholder: '/orders/7', class: 'mono', spellcheck: 'false' });
        const host = h('input', { id: ids.host, name: 'host', type: 'text', maxlength: '255', placeholder: 'any', value: p.host || '' });
        const as = h('select', { id: ids.as, name: 'as' },
            [['', 'nobody (no credential)'], ['user', 'a user'], ['token', 'a bearer token'], ['api_key', 'an API key']].map(([v, l]) =>
                h('option', { value: v, selected: v === (p.as || '') }, l)));
        const cred = h('input', { id: ids.cred, name: 'credential', type: 'text', autocomplete: 'off', spellcheck: 'false', value: p.user || '' });
        const credLabel = h('label', { for: ids.cred }, 'Username or id');
        const credField = h('div', { class: 'field' }, credLabel, cred);
        const system = h('input', { id: ids.system, name: 'system', type: 'text', maxlength: '64', placeholder: 'the service\'s', value: p.system || '' });
        const sysField = labelled(ids.system, 'Log in to system', system, 'Optional: default is the matched service\'s system');
        const out = h('div', { class: 'explain-result', 'aria-live': 'polite' });

        function syncCred() {
            const v = as.value;
            credField.hidden = !v;
            sysField.hidden = v !== 'user';
            cred.required = !!v;
            cred.type = v === 'token' || v === 'api_key' ? 'password' : 'text';
            credLabel.textContent = v === 'token' ? 'Bearer token (JWT)' : v === 'api_key' ? 'API key (prefix.secret)' : 'Username or id';
        }
        as.addEventListener('change', syncCred);
        syncCred();

        const f = h('form', { class: 'form explain-form' },
            labelled(ids.method, 'Method', method), labelled(ids.path, 'Path', path, 'As the client sends it; a query is ignored'),
            labelled(ids.host, 'Host', host), labelled(ids.as, 'Request made as', as), credField, sysField,
            h('div', { class: 'form-buttons' }, h('button', { type: 'submit', class: 'primary' }, 'Explain')));
        f.addEventListener('submit', async (ev) => {
            ev.preventDefault();
            if (!f.reportValidity()) return;
            const body = { method: method.value, path: path.value.trim() };
            if (host.value.trim()) body.host = host.value.trim();
            if (as.value) body[as.value] = as.value === 'user' ? cred.value.trim() : cred.value.trim();
            if (as.value === 'user' && system.value.trim()) body.system = system.value.trim();
            if (!body.path.startsWith('/')) {
                showError(out, { code: 'invalid', message: 'the path must start with /', path: '/path' });
                return;
            }
            out.replaceChildren(h('p', { class: 'muted' }, 'Explaining...'));
            try {
                show(await ctx.api('POST', '/authz/explain', body));
            } catch (err) {
                showError(out, err);
            }
        });

        function show(r) {
            const allow = r.decision === 'allow';
            const decision = h('div', { class: 'decision', 'data-testid': 'decision', 'data-decision': r.decision },
                h('span', { class: ['decision-word', allow ? 'decision-allow' : 'decision-deny'] }, allow ? 'Allowed' : 'Refused'),
                badge(r.status + ' ' + r.decision, allow ? 'ok' : 'bad'),
                h('span', {}, 'reason ', h('code', {}, r.reason || '-'), r.granted_by ? [' granted by ', h('code', {}, r.granted_by)] : null),
                h('span', { class: 'muted' }, 'version ' + r.version));
            const details = kv([
                ['Canonical path', r.canonical_path ? h('code', {}, r.canonical_path) : '-'],
                ['Route', r.route ? h('a', { href: '#/routes' }, r.route) : h('span', { class: 'muted' }, 'none')],
                ['Service', r.service ? [h('a', { href: '#/endpoints?service=' + encodeURIComponent(r.service) }, r.service),
                    r.service_system ? [' (system ', h('code', {}, r.service_system), ')'] : ' (no system)'] : '-'],
                r.upstream_path ? ['Upstream path', h('code', {}, r.upstream_path)] : null,
                ['Principal', principalText(r.principal)],
                r.credential ? ['Credential', r.credential.valid ? badge('valid', 'ok') : [badge('refused', 'bad'), ' ', h('code', {}, r.credential.reason)]] : null,
                ['Rule', r.rule ? ruleText(r.rule) : ['none', r.default_access ? [' - default access ', h('code', {}, r.default_access)] : null]],
                r.allow ? ['Allowed methods', r.allow] : null,
                ['Shadow rule', r.shadow ? [ruleText(r.shadow.rule), ' would ', h('strong', {}, r.shadow.decision === 'allow' ? 'allow' : 'deny'),
                    ' (', h('code', {}, r.shadow.reason || '-'), ')'] : h('span', { class: 'muted' }, 'none')],
            ]);
            out.replaceChildren(decision, details, h('h2', {}, 'Decision chain'),
                h('ol', { class: 'chain' }, (r.chain || []).map((line) => h('li', {}, line))));
        }

        root.append(h('h1', {}, 'Explain'),
            h('p', {}, 'What a data plane running the current configuration would answer to one request, and why. ' +
                'Nothing is sent to a data plane and nothing is written; a token or key is never echoed back.'),
            h('section', { class: 'card' }, f), out);
        if (p.path) f.requestSubmit();
    },
};
