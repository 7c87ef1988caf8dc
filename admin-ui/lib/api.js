// The admin API client of the page: one function, api(method, path, body), over fetch() with the session cookie
// (same origin). Paths are relative to /api/v1. Mutating calls (POST, PUT, PATCH, DELETE) carry the session's CSRF
// token (setCsrf) and, for configuration writes, ?wait=applied so the answer says whether every data plane applied
// the new version. Any non-2xx answer throws an ApiError carrying the server's {error, message, path}; a 401
// (outside the login call) also fires the window event "cephalo:logout" so the shell shows the login form again.
// A bearer token (setToken) may replace the session, for scripts and for control planes started with
// CEPHALO_ADMIN_TOKEN only; it is kept in memory, never stored.

export const API_BASE = '/api/v1';

let csrfToken = null;
let bearerToken = null;

/** Remembers the CSRF token of the current session (from login or /admin/me); null forgets it. */
export function setCsrf(token) {
    csrfToken = token || null;
}

/** Uses a bearer admin token instead of the session cookie; null goes back to the session. */
export function setToken(token) {
    bearerToken = token || null;
}

/** True when calls are authenticated with a bearer token rather than a session. */
export function usingToken() {
    return bearerToken !== null;
}

/** The error every failed call throws: HTTP status (0 = no answer), the API's code, message and JSON pointer. */
export class ApiError extends Error {
    constructor(status, code, message, path, requestPath) {
        super(message || code || 'request failed');
        this.name = 'ApiError';
        this.status = status;
        this.code = code || 'error';
        this.path = path === undefined ? null : path;
        this.requestPath = requestPath || null;
        this.retryAfter = null;
    }
}

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
// Writes that are not configuration (no version to wait for): no ?wait=applied.
const NO_WAIT = [/^\/admin(\/|$)/, /^\/admin_accounts(\/|$)/, /^\/admin_tokens(\/|$)/, /^\/authz\//, /^\/cache\//];

function withWait(path) {
    if (NO_WAIT.some((re) => re.test(path)) || /[?&]wait=/.test(path)) return path;
    return path + (path.includes('?') ? '&' : '?') + 'wait=applied';
}

async function readBody(resp) {
    const text = await resp.text();
    if (!text) return null;
    const type = resp.headers.get('Content-Type') || '';
    if (type.includes('json')) {
        try {
            return JSON.parse(text);
        } catch (e) {
            return { error: 'bad_json', message: 'the server answered invalid JSON' };
        }
    }
    return text;
}

/**
 * Calls the admin API: method "GET"|"POST"|"PUT"|"DELETE", path relative to /api/v1 ("/services", "/routes/api?x=1"),
 * body an object sent as JSON (or undefined). Resolves to the parsed JSON answer (null when empty); throws ApiError.
 * opts.wait = false skips ?wait=applied on a write.
 */
export async function api(method, path, body, opts = {}) {
    method = String(method || 'GET').toUpperCase();
    if (!path.startsWith('/')) path = '/' + path;
    const mutating = MUTATING.has(method);
    const target = mutating && opts.wait !== false ? withWait(path) : path;
    const headers = { Accept: 'application/json' };
    if (body !== undefined && body !== null) headers['Content-Type'] = 'application/json';
    if (bearerToken) headers.Authorization = 'Bearer ' + bearerToken;
    else if (mutating && csrfToken) headers['X-CSRF-Token'] = csrfToken;
    let resp;
    try {
        resp = await fetch(API_BASE + target, {
            method,
            headers,
            body: body !== undefined && body !== null ? JSON.stringify(body) : undefined,
            credentials: 'same-origin',
            cache: 'no-store',
            redirect: 'error',
        });
    } catch (e) {
        throw new ApiError(0, 'network', 'the control plane did not answer (' + (e && e.message ? e.message : e) + ')',
            null, path);
    }
    const data = await readBody(resp);
    if (resp.ok) return data;
    const obj = data && typeof data === 'object' ? data : {};
    const err = new ApiError(resp.status, obj.error || 'http_' + resp.status,
        obj.message || (typeof data === 'string' && data ? data.slice(0, 300) : resp.statusText || 'HTTP ' + resp.status),
        obj.path, path);
    err.retryAfter = resp.headers.get('Retry-After');
    if (resp.status === 401 && path !== '/admin/login') {
        window.dispatchEvent(new CustomEvent('cephalo:logout', { detail: { path } }));
    }
    throw err;
}

/** Logs in with an admin account; remembers the CSRF token; resolves to {name, role, systems, csrf_token}. */
export async function login(name, password) {
    const me = await api('POST', '/admin/login', { name, password }, { wait: false });
    setToken(null);
    setCsrf(me && me.csrf_token);
    return me;
}

/** Ends the session (errors ignored) and forgets the CSRF and bearer tokens. */
export async function logout() {
    try {
        if (!bearerToken) await api('POST', '/admin/logout', {}, { wait: false });
    } catch (e) {
        // The session may already be gone; nothing to do.
    } finally {
        setCsrf(null);
        setToken(null);
    }
}

/** Who is logged in: {name, role, systems, via, csrf_token?}; remembers the CSRF token. Throws ApiError (401). */
export async function whoami() {
    const me = await api('GET', '/admin/me');
    if (me && me.csrf_token) setCsrf(me.csrf_token);
    return me;
}

/** Builds a query string from an object, skipping empty values: {a: 1, b: ''} -> "?a=1". */
export function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) {
        if (v !== undefined && v !== null && v !== '') q.append(k, String(v));
    }
    const s = q.toString();
    return s ? '?' + s : '';
}

/** Encodes one path segment (a key such as "billing:reader" or an id). */
export function seg(key) {
    return encodeURIComponent(String(key));
}
