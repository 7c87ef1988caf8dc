// API reference: renders the control plane's own OpenAPI document (GET /api/v1/openapi.json) as text - operations
// grouped by tag, their parameters, request body and responses, the schemas with $ref resolved (cycle-safe), and the
// security schemes. Everything from the document is inserted as text nodes only.
import { h, showError } from '../lib/ui.js';

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];

// h() with array children flattened and null/false/undefined children dropped.

// parent.append() with arrays flattened and null/false/undefined dropped (append(null) would add the text "null").
function append(parent, ...kids) {
    parent.append(...kids.flat(Infinity).filter((k) => k !== null && k !== undefined && k !== false));
}

function wrapTable(t) {
    return h('div', { class: 'table-wrap' }, t);
}

function refName(ref) {
    return typeof ref === 'string' ? ref.split('/').pop() : '';
}

function resolve(doc, obj) {
    if (!obj || typeof obj !== 'object' || typeof obj.$ref !== 'string') return obj;
    const parts = obj.$ref.replace(/^#\//, '').split('/');
    let cur = doc;
    for (const p of parts) cur = cur && typeof cur === 'object' ? cur[p.replace(/~1/g, '/').replace(/~0/g, '~')] : undefined;
    return cur || {};
}

// A one-line description of a schema's type: "string (enum: a, b)", "array of Route", "Service".
function typeText(doc, schema) {
    if (!schema || typeof schema !== 'object') return 'any';
    if (schema.$ref) return refName(schema.$ref);
    if (schema.allOf) return schema.allOf.map((s) => typeText(doc, s)).join(' + ');
    if (schema.oneOf) return 'one of ' + schema.oneOf.map((s) => typeText(doc, s)).join(' | ');
    if (schema.anyOf) return 'any of ' + schema.anyOf.map((s) => typeText(doc, s)).join(' | ');
    let t = schema.type || 'any';
    if (t === 'array') t = 'array of ' + typeText(doc, schema.items);
    const extra = [];
    if (schema.format) extra.push(schema.format);
    if (Array.isArray(schema.enum)) extra.push('one of: ' + schema.enum.map((v) => JSON.stringify(v)).join(', '));
    if (schema.minimum !== undefined || schema.maximum !== undefined)
        extra.push((schema.minimum ?? '') + '..' + (schema.maximum ?? ''));
    if (schema.minLength !== undefined || schema.maxLength !== undefined)
        extra.push('length ' + (schema.minLength ?? 0) + '..' + (schema.maxLength ?? ''));
    if (schema.pattern) extra.push('pattern ' + schema.pattern);
    if (schema.default !== undefined) extra.push('default ' + JSON.stringify(schema.default));
    if (schema.nullable) extra.push('nullable');
    return extra.length ? t + ' (' + extra.join('; ') + ')' : t;
}

// The properties table of an object schema (allOf merged), one level deep.
function propsTable(doc, schema) {
    const s = resolve(doc, schema);
    const props = {};
    const required = new Set();
    const collect = (x, depth) => {
        const r = resolve(doc, x);
        if (!r || depth > 8) return;
        if (Array.isArray(r.allOf)) r.allOf.forEach((y) => collect(y, depth + 1));
        Object.assign(props, r.properties || {});
        (r.required || []).forEach((n) => required.add(n));
    };
    collect(s, 0);
    const names = Object.keys(props);
    if (!names.length) return h('p', {}, 'Type: ' + typeText(doc, schema));
    return wrapTable(h('table', { class: 'data apiref-props' },
        h('thead', {}, h('tr', {}, h('th', {}, 'field'), h('th', {}, 'type'), h('th', {}, 'required'),
            h('th', {}, 'description'))),
        h('tbody', {}, names.map((n) => {
            const p = props[n] || {};
            const flags = [p.readOnly ? 'read-only' : '', p.writeOnly ? 'write-only' : ''].filter(Boolean).join(', ');
            return h('tr', {}, h('td', {}, h('code', {}, n)), h('td', {}, typeText(doc, p)),
                h('td', {}, required.has(n) ? 'yes' : ''),
                h('td', {}, [p.description || '', flags ? ' [' + flags + ']' : ''].join('')));
        }))));
}

function schemaBlock(doc, schema) {
    if (!schema) return null;
    const name = schema.$ref ? refName(schema.$ref) : null;
    return h('div', { class: 'apiref-schema' }, name ? h('p', {}, 'Schema: ', h('code', {}, name)) : null,
        propsTable(doc, schema));
}

function paramsTable(doc, params) {
    const list = (params || []).map((p) => resolve(doc, p)).filter((p) => p && p.name);
    if (!list.length) return null;
    return wrapTable(h('table', { class: 'data apiref-params' },
        h('thead', {}, h('tr', {}, h('th', {}, 'parameter'), h('th', {}, 'in'), h('th', {}, 'type'),
            h('th', {}, 'required'), h('th', {}, 'description'))),
        h('tbody', {}, list.map((p) => h('tr', {}, h('td', {}, h('code', {}, p.name)), h('td', {}, p.in || ''),
            h('td', {}, typeText(doc, p.schema)), h('td', {}, p.required ? 'yes' : ''),
            h('td', {}, p.description || (p.example !== undefined ? 'e.g. ' + String(p.example) : '')))))));
}

function responsesTable(doc, responses) {
    const codes = Object.keys(responses || {}).sort();
    if (!codes.length) return null;
    return wrapTable(h('table', { class: 'data apiref-responses' },
        h('thead', {}, h('tr', {}, h('th', {}, 'status'), h('th', {}, 'description'), h('th', {}, 'body'))),
        h('tbody', {}, codes.map((c) => {
            const r = resolve(doc, responses[c]) || {};
            const media = r.content && (r.content['application/json'] || Object.values(r.content)[0]);
            return h('tr', {}, h('td', {}, c), h('td', {}, r.description || ''),
                h('td', {}, media && media.schema ? typeText(doc, media.schema) : ''));
        }))));
}

function operationBlock(doc, path, method, op, pathParams) {
    const body = op.requestBody ? resolve(doc, op.requestBody) : null;
    const media = body && body.content && (body.content['application/json'] || Object.values(body.content)[0]);
    const role = op['x-cephalo-role'];
    return h('details', { class: 'apiref-op', 'data-method': method.toUpperCase(), 'data-path': path },
        h('summary', {}, h('code', { class: 'apiref-method' }, method.toUpperCase()), ' ', h('code', {}, path),
            op.summary ? ' - ' + op.summary : ''),
        op.description ? h('p', {}, op.description) : null,
        h('p', {}, [op.operationId ? 'operationId: ' + op.operationId : '', role ? 'admin role: ' + role : '']
            .filter(Boolean).join(' | ')),
        paramsTable(doc, [...(pathParams || []), ...(op.parameters || [])]),
        media ? h('h4', {}, 'Request body' + (body.required ? ' (required)' : '')) : null,
        media ? schemaBlock(doc, media.schema) : null,
        h('h4', {}, 'Responses'), responsesTable(doc, op.responses));
}

function renderDoc(doc, out, filter) {
    out.replaceChildren();
    const f = filter.trim().toLowerCase();
    const groups = new Map();
    for (const [path, item] of Object.entries(doc.paths || {})) {
        for (const m of METHODS) {
            const op = item[m];
            if (!op) continue;
            const hay = (m + ' ' + path + ' ' + (op.summary || '') + ' ' + (op.operationId || '')).toLowerCase();
            if (f && !hay.includes(f)) continue;
            const tag = (op.tags && op.tags[0]) || 'other';
            if (!groups.has(tag)) groups.set(tag, []);
            groups.get(tag).push(operationBlock(doc, path, m, op, item.parameters));
        }
    }
    const order = (doc.tags || []).map((t) => t.name);
    const tags = [...groups.keys()].sort((a, b) => (order.indexOf(a) + 1 || 999) - (order.indexOf(b) + 1 || 999));
    if (!tags.length) append(out, h('p', {}, 'No operation matches.'));
    for (const t of tags) append(out, h('section', { class: 'apiref-tag' }, h('h2', {}, t), groups.get(t)));
}

function securityBlock(doc) {
    const schemes = (doc.components && doc.components.securitySchemes) || {};
    const names = Object.keys(schemes);
    if (!names.length) return null;
    return h('section', {}, h('h2', {}, 'Authentication'),
        h('ul', {}, names.map((n) => {
            const s = schemes[n];
            const how = s.type === 'http' ? 'HTTP ' + (s.scheme || '') : (s.in || '') + ' ' + (s.name || '');
            return h('li', {}, h('code', {}, n), ': ' + how + (s.description ? ' - ' + s.description : ''));
        })));
}

function schemasBlock(doc) {
    const schemas = (doc.components && doc.components.schemas) || {};
    return h('section', {}, h('h2', {}, 'Schemas'),
        Object.keys(schemas).sort().map((n) => h('details', { class: 'apiref-schema-def', id: 'schema-' + n },
            h('summary', {}, h('code', {}, n)),
            schemas[n].description ? h('p', {}, schemas[n].description) : null,
            propsTable(doc, schemas[n]))));
}

export const screen = {
    id: 'apiref',
    title: 'API reference',
    minRole: 'viewer',
    async render(root, ctx) {
        const msg = h('div', { class: 'messages' });
        const out = h('div', { class: 'apiref-ops' });
        const filter = h('input', { id: 'apiref-filter', name: 'filter', type: 'search', autocomplete: 'off' });
        root.append(h('h1', {}, 'API reference'), msg);
        let doc;
        try {
            doc = await ctx.api('GET', '/openapi.json');
        } catch (err) {
            showError(msg, err);
            return;
        }
        const info = doc.info || {};
        append(root,
            h('p', {}, (info.title || 'API') + ' - version ' + (info.version || '?') + ' - OpenAPI ' + (doc.openapi || '?')),
            info.description ? h('p', { class: 'apiref-desc' }, info.description) : null,
            h('p', {}, 'The raw document: ', h('a', { href: '/api/v1/openapi.json' }, '/api/v1/openapi.json'),
                ' (needs your session).'),
            securityBlock(doc),
            h('div', { class: 'apiref-filter' }, h('label', { for: 'apiref-filter' }, 'Filter operations'), filter),
            out, schemasBlock(doc));
        renderDoc(doc, out, '');
        filter.addEventListener('input', () => renderDoc(doc, out, filter.value));
    },
};
