// The admin page's shell: login (an admin account's name and password -> session cookie + CSRF token, or a bearer
// admin token), the top bar, the left nav built from screens/index.js, and a hash router (#/<screen id>?k=v) that
// renders the chosen screen into <main id="main"> inside an element with data-screen="<id>". A 401 anywhere
// ("cephalo:logout") brings the login form back.
import { api, login, logout, whoami, setToken, ApiError } from './lib/api.js';
import { h, mount, showError, roleAtLeast } from './lib/ui.js';
import { loadScreens, SECTIONS } from './screens/index.js';

const $ = (id) => document.getElementById(id);
const state = { me: null, screens: [], current: null, renderSeq: 0 };

function parseHash() {
    const raw = location.hash.startsWith('#/') ? location.hash.slice(2) : '';
    const q = raw.indexOf('?');
    const id = decodeURIComponent(q < 0 ? raw : raw.slice(0, q));
    const params = Object.fromEntries(new URLSearchParams(q < 0 ? '' : raw.slice(q + 1)));
    return { id, params };
}

function navigate(id, params) {
    const q = params ? new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== '')).toString() : '';
    const hash = '#/' + encodeURIComponent(id) + (q ? '?' + q : '');
    if (location.hash === hash) route();
    else location.hash = hash;
}

function visibleScreens() {
    return state.screens.filter((s) => roleAtLeast(state.me && state.me.role, s.minRole || 'viewer'));
}

function buildNav() {
    const nav = $('nav');
    const shown = visibleScreens();
    mount(nav, SECTIONS.map((sec) => {
        const items = shown.filter((s) => s.section === sec.title);
        if (!items.length) return null;
        const headId = 'nav-' + sec.title.toLowerCase();
        return h('div', { class: 'nav-section' },
            h('h2', { class: 'nav-heading', id: headId }, sec.title),
            h('ul', { 'aria-labelledby': headId }, items.map((s) =>
                h('li', {}, h('a', { href: '#/' + s.id, 'data-id': s.id, onclick: () => closeNav() }, s.title)))));
    }).filter(Boolean));
}

function closeNav() {
    document.body.classList.remove('nav-open');
    $('nav-toggle').setAttribute('aria-expanded', 'false');
}

async function route(focus) {
    if (!state.me) return;
    const { id, params } = parseHash();
    const shown = visibleScreens();
    const screen = shown.find((s) => s.id === id) || shown.find((s) => s.id === 'dashboard') || shown[0];
    const main = $('main');
    for (const a of $('nav').querySelectorAll('a')) {
        if (screen && a.dataset.id === screen.id) a.setAttribute('aria-current', 'page');
        else a.removeAttribute('aria-current');
    }
    if (!screen) {
        main.replaceChildren(h('section', { class: 'screen', 'data-screen': 'none' }, h('h1', {}, 'Nothing to show'),
            h('p', {}, 'No screen could be loaded; see the browser console.')));
        return;
    }
    if (id && id !== screen.id) {
        history.replaceState(null, '', '#/' + screen.id);
    }
    const seq = ++state.renderSeq;
    state.current = screen.id;
    document.title = screen.title + ' - Cephalo admin';
    const root = h('section', { class: 'screen', 'data-screen': screen.id });
    main.replaceChildren(root);
    if (focus) main.focus({ preventScroll: true });
    window.scrollTo(0, 0);
    const ctx = { api, me: state.me, params, navigate, isCurrent: () => seq === state.renderSeq };
    try {
        await screen.render(root, ctx);
    } catch (err) {
        if (seq !== state.renderSeq) return;
        const box = h('div', { class: 'screen-error' });
        root.appendChild(box);
        showError(box, err);
    }
}

// --- login ---

function loginView(message) {
    const view = $('login-view');
    const msg = h('div', { class: 'login-msg' });
    if (message) msg.appendChild(h('p', { class: 'alert alert-info', role: 'status' }, message));
    const name = h('input', { id: 'login-name', name: 'name', type: 'text', autocomplete: 'username', required: true,
        maxlength: '64', autocapitalize: 'none', spellcheck: 'false' });
    const password = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password',
        required: true, maxlength: '1024' });
    const button = h('button', { type: 'submit', class: 'primary wide' }, 'Log in');
    const form = h('form', { class: 'login-form', 'aria-labelledby': 'login-title' },
        h('div', { class: 'field' }, h('label', { for: 'login-name' }, 'Name'), name),
        h('div', { class: 'field' }, h('label', { for: 'login-password' }, 'Password'), password),
        button);
    form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        msg.replaceChildren();
        if (!form.reportValidity()) return;
        button.disabled = true;
        try {
            await login(name.value.trim(), password.value);
            password.value = '';
            await start();
        } catch (err) {
            if (err instanceof ApiError) err.requestPath = null;
            if (err instanceof ApiError && err.code === 'invalid_credentials') {
                err.message = 'Wrong name or password.';
            } else if (err instanceof ApiError && err.status === 429) {
                err.message = 'Too many attempts' + (err.retryAfter ? ': try again in ' + err.retryAfter + ' s.' : '.');
            }
            showError(msg, err);
            password.focus();
        } finally {
            button.disabled = false;
        }
    });
    const token = h('input', { id: 'login-token', name: 'token', type: 'password', autocomplete: 'off', required: true });
    const tokenForm = h('form', { class: 'token-form' },
        h('div', { class: 'field' }, h('label', { for: 'login-token' }, 'Admin API token'), token,
            h('small', { class: 'help' }, 'Kept in this tab\'s memory only; reloading the page forgets it.')),
        h('button', { type: 'submit' }, 'Use token'));
    tokenForm.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        msg.replaceChildren();
        if (!tokenForm.reportValidity()) return;
        setToken(token.value.trim());
        token.value = '';
        await start(true);
    });
    view.replaceChildren(h('div', { class: 'login-card' },
        h('div', { class: 'login-brand' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }), 'Cephalo'),
        h('h1', { id: 'login-title' }, 'Sign in to the admin page'),
        msg, form,
        h('details', { class: 'token-login' }, h('summary', {}, 'Use an API token instead'), tokenForm)));
    $('shell').hidden = true;
    $('boot').hidden = true;
    view.hidden = false;
    document.title = 'Log in - Cephalo admin';
    name.focus();
}

// --- start ---

async function start(viaToken) {
    let me;
    try {
        me = await whoami();
    } catch (err) {
        if (viaToken && err instanceof ApiError && err.status !== 401 && err.status !== 0) {
            // A control plane without /admin/me yet: a bearer admin token is the owner token.
            me = { name: 'token', role: 'owner', systems: [], via: 'token' };
        } else {
            setToken(null);
            state.me = null;
            loginView(err instanceof ApiError && err.status === 401 ? (viaToken ? 'That token was refused.' : null)
                : 'The control plane did not answer as expected: ' + err.code + ' ' + err.message);
            return;
        }
    }
    state.me = me;
    if (!state.screens.length) state.screens = await loadScreens();
    mount($('whoami'), h('span', { class: 'who-name' }, String(me.name || '?')), ' ',
        h('span', { class: 'badge badge-role' }, String(me.role || '?')),
        me.role === 'editor' && me.systems && me.systems.length ? h('span', { class: 'who-systems muted' }, ' ' + me.systems.join(', ')) : null);
    buildNav();
    $('login-view').hidden = true;
    $('login-view').replaceChildren();
    $('shell').hidden = false;
    $('boot').hidden = true;
    await route(false);
}

function init() {
    window.addEventListener('hashchange', () => {
        if (location.hash.startsWith('#/')) route(true);
    });
    window.addEventListener('cephalo:logout', () => {
        if (!state.me) return;
        state.me = null;
        setToken(null);
        $('main').replaceChildren();
        loginView('Your session has ended. Please log in again.');
    });
    $('logout').addEventListener('click', async () => {
        state.me = null;
        await logout();
        $('main').replaceChildren();
        loginView('You are logged out.');
    });
    $('nav-toggle').addEventListener('click', () => {
        const open = document.body.classList.toggle('nav-open');
        $('nav-toggle').setAttribute('aria-expanded', open ? 'true' : 'false');
        if (open) {
            const first = $('nav').querySelector('a');
            if (first) first.focus();
        }
    });
    document.addEventListener('keydown', (ev) => {
        if (ev.key === 'Escape' && document.body.classList.contains('nav-open')) {
            closeNav();
            $('nav-toggle').focus();
        }
    });
    $('skip-link').addEventListener('click', (ev) => {
        ev.preventDefault();
        $('main').focus();
    });
    start(false);
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
else init();
