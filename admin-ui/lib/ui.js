// DOM helpers of the admin page. The page runs under a strict CSP (no inline script or style) and never parses
// HTML: every element is built with h(), and every piece of data is inserted as a text node, so a name such as
// "<script>" is shown, never run. Also: tables, forms with labels and validation, error and "applied" banners,
// a modal confirmation dialog and toasts.

const BOOL_PROPS = new Set(['checked', 'disabled', 'required', 'selected', 'multiple', 'readOnly', 'readonly', 'hidden',
    'open', 'autofocus', 'novalidate', 'noValidate']);
const PROP_ATTRS = new Set(['value', 'checked', 'selected', 'disabled', 'required', 'multiple', 'indeterminate']);

function addChild(el, c) {
    if (c === null || c === undefined || c === false || c === true) return;
    if (Array.isArray(c)) {
        for (const x of c) addChild(el, x);
    } else if (c instanceof Node) {
        el.appendChild(c);
    } else {
        el.appendChild(document.createTextNode(String(c)));
    }
}

/**
 * Creates an element: h('button', {class: 'danger', onclick: fn, 'aria-label': 'x'}, 'Delete').
 * attrs: `class` (string or array), `for`, `on<event>` functions (listeners), `dataset` object, data-* / aria-* /
 * other attributes (null/false leave them out, true sets them empty), `value`/`checked`/... set as properties.
 * `style` is refused (the CSP forbids it; use a class). Children: nodes, strings, numbers, arrays; null skipped.
 */
export function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
        if (v === undefined || v === null || v === false) {
            if (k === 'value' && v === null) el.value = '';
            continue;
        }
        if (k === 'style') throw new Error('h(): style attributes are not allowed (CSP); use a class');
        if (k === 'class' || k === 'className') {
            el.className = Array.isArray(v) ? v.filter(Boolean).join(' ') : String(v);
        } else if (k === 'for' || k === 'htmlFor') {
            el.htmlFor = String(v);
        } else if (k === 'dataset') {
            Object.assign(el.dataset, v);
        } else if (k.startsWith('on') && typeof v === 'function') {
            el.addEventListener(k.slice(2).toLowerCase(), v);
        } else if (k === 'innerHTML' || k === 'outerHTML') {
            throw new Error('h(): ' + k + ' is not allowed');
        } else if (PROP_ATTRS.has(k)) {
            if (k === 'value' && (tag === 'input' || tag === 'option')) el.setAttribute('value', String(v));
            el[k] = v;
            if (k !== 'value' && k !== 'indeterminate') el.setAttribute(k, '');
        } else if (v === true || BOOL_PROPS.has(k)) {
            el.setAttribute(k, '');
        } else {
            el.setAttribute(k, String(v));
        }
    }
    for (const c of children) addChild(el, c);
    return el;
}

/** Removes every child of el, then appends the given children (as h() does). Returns el. */
export function mount(el, ...children) {
    el.replaceChildren();
    for (const c of children) addChild(el, c);
    return el;
}

let idSeq = 0;
/** A unique element id with the given prefix (for <label for>). */
export function uid(prefix) {
    idSeq += 1;
    return (prefix || 'f') + '-' + idSeq;
}

function cellContent(col, row, i) {
    if (col.render) return col.render(row, i);
    const v = row[col.key];
    if (v === null || v === undefined) return '';
    if (Array.isArray(v)) return v.map((x) => (x && typeof x === 'object' ? (x.system ? x.system + ':' : '') + x.name : String(x))).join(', ');
    if (typeof v === 'boolean') return v ? 'yes' : 'no';
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
}

/**
 * A real <table> in a scrolling wrapper: columns [{label, key | render(row, i) -> node|string, class, title}],
 * rows (array of objects), empty (text shown in one row when there is none), caption (optional, visually shown),
 * rowAttrs(row) (optional attributes of each <tr>), stack (default true: under 720px each row becomes a card with
 * labelled cells; false keeps a scrolling table). Returns the wrapper element; wrapper.table is the <table>.
 */
export function table({ columns, rows, empty, caption, rowAttrs, className, stack }) {
    const head = h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.class, title: c.title }, c.label))));
    const body = h('tbody');
    const list = rows || [];
    if (!list.length) {
        body.appendChild(h('tr', { class: 'empty' }, h('td', { colspan: String(columns.length) }, empty || 'Nothing yet.')));
    }
    list.forEach((row, i) => {
        body.appendChild(h('tr', rowAttrs ? rowAttrs(row, i) : {},
            columns.map((c) => h('td', { class: c.class, 'data-label': c.label }, h('span', { class: 'cv' }, cellContent(c, row, i))))));
    });
    const t = h('table', { class: ['data', stack === false ? null : 'stack', className] }, caption ? h('caption', {}, caption) : null, head, body);
    const wrap = h('div', { class: 'table-wrap' }, t);
    wrap.table = t;
    return wrap;
}

function optionList(options, value, multiple) {
    const chosen = multiple ? new Set((value || []).map(String)) : new Set([value === undefined || value === null ? '' : String(value)]);
    return (options || []).map((o) => {
        const opt = typeof o === 'object' && o !== null ? o : { value: o, label: o };
        const v = String(opt.value);
        return h('option', { value: v, selected: chosen.has(v) }, opt.label === undefined ? v : opt.label);
    });
}

/**
 * One labelled input. spec: {name, label, type: text|password|number|email|url|textarea|json|checkbox|select|
 * multiselect|checks (checkboxes, value an array)|datetime-local, options ([{value,label}] or strings), required, value, help, placeholder, pattern, min,
 * max, maxlength, rows, disabled, autocomplete, check(value) -> error text | null}. Returns {node, input, get(), spec}.
 */
export function field(spec, idPrefix) {
    const id = uid((idPrefix || 'f') + '-' + spec.name);
    const type = spec.type || 'text';
    const helpId = spec.help ? id + '-help' : null;
    const common = { id, name: spec.name, required: !!spec.required && type !== 'checkbox', disabled: !!spec.disabled,
        'aria-describedby': helpId, placeholder: spec.placeholder, autocomplete: spec.autocomplete };
    let input;
    if (type === 'checks') {
        // A group of checkboxes (one per option, each with its own label); get() is the array of checked values.
        const chosen = new Set((spec.value || []).map(String));
        const boxes = (spec.options || []).map((o) => {
            const opt = typeof o === 'object' && o !== null ? o : { value: o, label: o };
            const cid = uid(id);
            const cb = h('input', { type: 'checkbox', id: cid, name: spec.name, value: String(opt.value), checked: chosen.has(String(opt.value)),
                disabled: !!spec.disabled });
            return h('span', { class: 'check' }, cb, h('label', { for: cid }, opt.label === undefined ? String(opt.value) : opt.label));
        });
        const fs = h('fieldset', { class: 'field checks-field', id, 'aria-describedby': helpId },
            h('legend', {}, spec.label || spec.name), h('div', { class: 'checks' }, boxes, boxes.length ? null : h('span', { class: 'muted' }, 'none')),
            spec.help ? h('small', { class: 'help', id: helpId }, spec.help) : null);
        const inputs = () => Array.from(fs.querySelectorAll('input[type=checkbox]'));
        return { node: fs, input: fs, get: () => inputs().filter((c) => c.checked).map((c) => c.value), spec };
    }
    if (type === 'select' || type === 'multiselect') {
        input = h('select', { ...common, multiple: type === 'multiselect', size: type === 'multiselect'
            ? String(Math.min(6, Math.max(3, (spec.options || []).length))) : null },
        optionList(spec.options, spec.value, type === 'multiselect'));
    } else if (type === 'textarea' || type === 'json') {
        const v = type === 'json' && spec.value !== undefined && typeof spec.value !== 'string'
            ? JSON.stringify(spec.value, null, 2) : spec.value;
        input = h('textarea', { ...common, rows: String(spec.rows || (type === 'json' ? 6 : 3)), maxlength: spec.maxlength,
            class: type === 'json' ? 'mono' : null, spellcheck: type === 'json' ? 'false' : null });
        input.value = v === undefined || v === null ? '' : String(v);
    } else if (type === 'checkbox') {
        input = h('input', { ...common, type: 'checkbox', checked: !!spec.value });
    } else {
        input = h('input', { ...common, type, pattern: spec.pattern, min: spec.min, max: spec.max, step: spec.step,
            maxlength: spec.maxlength, value: spec.value === undefined || spec.value === null ? '' : String(spec.value) });
    }
    const label = h('label', { for: id }, spec.label || spec.name, spec.required ? h('span', { class: 'req', 'aria-hidden': 'true' }, ' *') : null);
    const help = spec.help ? h('small', { class: 'help', id: helpId }, spec.help) : null;
    const node = type === 'checkbox'
        ? h('div', { class: 'field field-check' }, input, label, help)
        : h('div', { class: 'field' }, label, input, help);
    const get = () => {
        if (type === 'checkbox') return input.checked;
        if (type === 'multiselect') return Array.from(input.selectedOptions).map((o) => o.value);
        if (type === 'number') return input.value === '' ? null : Number(input.value);
        if (type === 'json') return input.value.trim() === '' ? null : JSON.parse(input.value);
        if (type === 'password') return input.value;
        return input.value.trim();
    };
    return { node, input, get, spec };
}

/**
 * A form: {fields: [spec...] (see field()), submit: 'Save', onSubmit(values, formEl) (may be async; a thrown error is
 * shown in the form's alert area), cancel: {label, onClick} (optional), className, extra (nodes before the buttons)}.
 * Native validation first (required, pattern, min/max), then each spec.check(value). values are keyed by field name:
 * strings trimmed, numbers as Number (null when empty), checkboxes boolean, multiselects arrays, json parsed.
 * Returns the <form>; form.values() reads the current values, form.fields the field objects by name.
 */
export function form({ fields, submit, onSubmit, cancel, className, extra }) {
    const objs = fields.map((spec) => field(spec, 'form'));
    const alertBox = h('div', { class: 'form-alert' });
    const button = h('button', { type: 'submit', class: 'primary' }, submit || 'Save');
    const buttons = h('div', { class: 'form-buttons' }, button,
        cancel ? h('button', { type: 'button', onclick: cancel.onClick }, cancel.label || 'Cancel') : null);
    const el = h('form', { class: ['form', className] }, objs.map((f) => f.node), extra || null, alertBox, buttons);
    el.fields = Object.fromEntries(objs.map((f) => [f.spec.name, f]));
    el.values = () => {
        const out = {};
        for (const f of objs) out[f.spec.name] = f.get();
        return out;
    };
    el.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        alertBox.replaceChildren();
        for (const f of objs) f.input.removeAttribute('aria-invalid');
        if (!el.checkValidity()) {
            el.reportValidity();
            return;
        }
        let values;
        try {
            for (const f of objs) {
                let v;
                try {
                    v = f.get();
                } catch (e) {
                    throw invalidField(f, 'not valid JSON (' + e.message + ')');
                }
                const msg = f.spec.check ? f.spec.check(v, el) : null;
                if (msg) throw invalidField(f, msg);
            }
            values = el.values();
        } catch (e) {
            showError(alertBox, e);
            return;
        }
        button.disabled = true;
        el.setAttribute('aria-busy', 'true');
        try {
            await onSubmit(values, el);
        } catch (e) {
            showError(alertBox, e);
        } finally {
            button.disabled = false;
            el.removeAttribute('aria-busy');
        }
    });
    return el;
}

function invalidField(f, message) {
    f.input.setAttribute('aria-invalid', 'true');
    f.input.focus();
    return { code: 'invalid', message: (f.spec.label || f.spec.name) + ': ' + message, path: '/' + f.spec.name };
}

/**
 * Shows an error in container (replacing its content) as a role="alert" box with the code, the message and the JSON
 * pointer / request path. err: an ApiError, an Error, {code|error, message, path} or a string. Returns the box.
 */
export function showError(container, err) {
    let code = 'error';
    let message = '';
    let path = null;
    let requestPath = null;
    let status = null;
    if (typeof err === 'string') {
        message = err;
    } else if (err) {
        code = err.code || err.error || (err.name && err.name !== 'Error' ? err.name : 'error');
        message = err.message || '';
        path = err.path || null;
        requestPath = err.requestPath || null;
        status = err.status || null;
    }
    const box = h('div', { class: 'alert alert-error', role: 'alert' },
        h('strong', { class: 'alert-code' }, (status ? status + ' ' : '') + code),
        message ? h('span', { class: 'alert-message' }, ' ' + message) : null,
        path ? h('span', { class: 'alert-path' }, ' at ', h('code', {}, path)) : null,
        requestPath ? h('span', { class: 'alert-req' }, ' (', h('code', {}, requestPath), ')') : null);
    if (container) {
        container.replaceChildren(box);
        reveal(box);
    }
    return box;
}

function dpReason(dp) {
    const e = dp.error;
    if (e && typeof e === 'object') return [e.code, e.path ? 'at ' + e.path : null, e.message].filter(Boolean).join(' ');
    if (e) return String(e);
    if (dp.status === 'nacked') return 'nacked';
    return 'still at version ' + (dp.version === undefined || dp.version === null ? '?' : dp.version) +
        (dp.status ? ' (' + dp.status + ')' : '');
}

/**
 * Shows what became of a write (resp = the API's answer) in container, as an element with data-testid="applied":
 * "Applied on all data planes (version N)" when resp.applied.settled and no data plane nacked, else
 * "Not applied: <dp>: <reason>; ..." (the NACKs, or the data planes not there yet). A write without `applied` (no
 * version: accounts, tokens) shows "Saved". Returns the element.
 */
export function showApplied(container, resp) {
    const version = resp && resp.version !== undefined ? resp.version : null;
    const applied = resp && resp.applied;
    let el;
    if (applied && typeof applied === 'object') {
        const dps = Array.isArray(applied.dataplanes) ? applied.dataplanes : [];
        const bad = dps.filter((d) => d.status === 'nacked' || d.error ||
            (!applied.settled && !(typeof d.version === 'number' && version !== null && d.version >= version)));
        if (applied.settled && !bad.length) {
            el = h('div', { class: 'alert alert-ok', role: 'status', 'data-testid': 'applied', 'data-version': version },
                'Applied on all data planes (version ' + version + ')',
                dps.length ? '' : h('span', { class: 'muted' }, ' - no data plane is connected'));
        } else {
            const list = bad.length ? bad : dps;
            el = h('div', { class: 'alert alert-warn', role: 'alert', 'data-testid': 'applied', 'data-version': version },
                h('strong', {}, 'Not applied'), ': ',
                list.length ? list.map((d, i) => [i ? '; ' : '', h('code', {}, String(d.id)), ': ', dpReason(d)])
                    : 'the data planes did not answer within 5 s',
                version !== null ? h('span', { class: 'muted' }, ' (written as version ' + version + ')') : '');
        }
    } else {
        el = h('div', { class: 'alert alert-ok', role: 'status', 'data-testid': 'applied', 'data-version': version },
            version !== null ? 'Saved (version ' + version + ')' : 'Saved');
    }
    if (container) {
        container.replaceChildren(el);
        reveal(el);
    }
    return el;
}

// Scrolls a message into view when it is off screen (a write started at the bottom of a long form).
function reveal(el) {
    if (!el.isConnected || typeof el.scrollIntoView !== 'function') return;
    const r = el.getBoundingClientRect();
    if (r.top < 60 || r.bottom > window.innerHeight) el.scrollIntoView({ block: 'nearest' });
}

/**
 * A modal <dialog> asking text; resolves true on the confirm button, false on Cancel or Escape. opts: {confirm:
 * label of the confirm button (default "Confirm"), danger: true for a red button, title}. Focus returns to where it was.
 */
export function confirmDialog(text, opts = {}) {
    return new Promise((resolve) => {
        const before = document.activeElement;
        const titleId = uid('dlg-title');
        const textId = uid('dlg-text');
        const ok = h('button', { type: 'button', class: opts.danger === false ? 'primary' : 'primary danger', value: 'ok' },
            opts.confirm || 'Confirm');
        const cancel = h('button', { type: 'button', value: 'cancel' }, 'Cancel');
        const dlg = h('dialog', { class: 'dialog', 'aria-labelledby': titleId, 'aria-describedby': textId, 'data-testid': 'confirm' },
            h('h2', { id: titleId }, opts.title || 'Please confirm'),
            h('p', { id: textId }, text),
            h('div', { class: 'form-buttons' }, ok, cancel));
        let done = false;
        const finish = (v) => {
            if (done) return;
            done = true;
            if (dlg.open) dlg.close();
            dlg.remove();
            if (before && typeof before.focus === 'function' && document.contains(before)) before.focus();
            resolve(v);
        };
        ok.addEventListener('click', () => finish(true));
        cancel.addEventListener('click', () => finish(false));
        dlg.addEventListener('cancel', (ev) => {
            ev.preventDefault();
            finish(false);
        });
        dlg.addEventListener('close', () => finish(false));
        document.body.appendChild(dlg);
        dlg.showModal();
        cancel.focus();
    });
}

/** A short message in the bottom corner (aria-live polite), gone after a few seconds. kind: 'ok' | 'error'. */
export function toast(text, kind) {
    let region = document.getElementById('toasts');
    if (!region) {
        region = h('div', { id: 'toasts', class: 'toasts', 'aria-live': 'polite', role: 'status' });
        document.body.appendChild(region);
    }
    const t = h('div', { class: ['toast', kind === 'error' ? 'toast-error' : null] }, text);
    region.appendChild(t);
    setTimeout(() => t.remove(), kind === 'error' ? 8000 : 4000);
    return t;
}

/** A "Loading..." placeholder put into container. */
export function loading(container, text) {
    const el = h('p', { class: 'loading muted', 'aria-busy': 'true' }, text || 'Loading...');
    if (container) container.replaceChildren(el);
    return el;
}

/** A small coloured label: badge('synced', 'ok' | 'warn' | 'bad' | 'muted'). */
export function badge(text, kind) {
    return h('span', { class: ['badge', kind ? 'badge-' + kind : null] }, text);
}

/** Formats an RFC 3339 time as local "YYYY-MM-DD HH:MM:SS" (title keeps the original); '' for null. */
export function fmtTime(s) {
    if (!s) return '';
    const d = new Date(s);
    if (Number.isNaN(d.getTime())) return String(s);
    const p = (n) => String(n).padStart(2, '0');
    return h('time', { datetime: String(s), title: String(s) },
        d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + ' ' + p(d.getHours()) + ':' + p(d.getMinutes()) +
        ':' + p(d.getSeconds()));
}

const RANK = { viewer: 1, editor: 2, owner: 3 };
/** True when an admin with role `role` has at least role `min` (viewer < editor < owner). */
export function roleAtLeast(role, min) {
    return (RANK[role] || 0) >= (RANK[min] || 0);
}

/**
 * May `me` ({role, systems}) write something of `system` (a code, or null for "no system")? Owners always;
 * editors for systems in their scope only (null: no); viewers never.
 */
export function canWrite(me, system) {
    if (!me) return false;
    if (me.role === 'owner') return true;
    if (me.role !== 'editor') return false;
    return system !== null && system !== undefined && (me.systems || []).includes(system);
}

/**
 * A fieldset of checkboxes all named spec.name whose options can change while the form is open (a user's roles
 * follow the systems ticked): {node, get() -> the checked values, set(options, checked) re-fills it, box}.
 * spec: name, label, options [{value, label}], value (checked values), empty (text when there is no option).
 */
export function checksGroup(prefix, spec) {
    const box = h('div', { class: 'checks' });
    const node = h('fieldset', { class: 'field checks-field' }, h('legend', {}, spec.label), box);
    const set = (options, checked) => {
        const on = new Set(checked || []);
        box.replaceChildren(...(options.length ? options.map((o) => {
            const id = uid(prefix + '-' + spec.name);
            const input = h('input', { id, type: 'checkbox', name: spec.name, value: o.value });
            input.checked = input.defaultChecked = on.has(o.value);
            return h('span', { class: 'check' }, input, h('label', { for: id }, o.label));
        }) : [h('span', { class: 'help' }, spec.empty || 'none available')]));
    };
    set(spec.options || [], spec.value);
    const get = () => [...box.querySelectorAll('input[type=checkbox]')].filter((i) => i.checked).map((i) => i.value);
    return { node, get, set, box };
}
