// Helpers shared by the browser tests: the environment, the browser, a logged-in page that records every console
// error, CSP violation and dialog, form filling by the API's field names, and plain HTTP to the data plane.
import { mkdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const HERE = dirname(fileURLToPath(import.meta.url));
export const SHOTS = join(HERE, 'screenshots');

function need(name) {
    const v = process.env[name];
    if (!v) throw new Error(`${name} is not set (tests/e2e/43_browser.py sets it)`);
    return v;
}

export const env = {
    cp: () => need('CEPHALO_CP_URL').replace(/\/$/, ''),
    dp: () => need('CEPHALO_DP_URL').replace(/\/$/, ''),
    upstream: () => need('CEPHALO_UPSTREAM_URL').replace(/\/$/, ''),
    user: () => process.env.CEPHALO_ADMIN_USER || 'admin',
    password: () => need('CEPHALO_ADMIN_PASSWORD'),
};

export function assert(cond, msg) {
    if (!cond) throw new Error('assertion failed: ' + msg);
}

export async function launch() {
    return chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true,
        args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}

/** A fresh context + page; page.problems collects console errors, page errors, CSP violations and dialogs. */
export async function newPage(browser) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    page.setDefaultTimeout(15000);
    page.problems = [];
    page.dialogs = [];
    page.on('console', (m) => {
        if (m.type() === 'error' && !/status of 4\d\d/.test(m.text())) page.problems.push('console: ' + m.text());
        if (/Content Security Policy/i.test(m.text())) page.problems.push('csp: ' + m.text());
    });
    page.on('pageerror', (e) => page.problems.push('pageerror: ' + e.message));
    page.on('dialog', async (d) => {
        page.dialogs.push(d.type() + ': ' + d.message());
        await d.dismiss();
    });
    // no request may leave the control plane's origin (no third-party network)
    const origin = new URL(env.cp()).origin;
    page.on('request', (r) => {
        const u = new URL(r.url());
        if (u.protocol !== 'data:' && u.origin !== origin) page.problems.push('foreign request: ' + r.url());
    });
    return { context, page };
}

export async function login(page, name = env.user(), password = env.password()) {
    await page.goto(env.cp() + '/');
    await page.locator('input[name=name]').fill(name);
    await page.locator('input[name=password]').fill(password);
    await page.getByRole('button', { name: 'Log in', exact: true }).click();
    await page.getByRole('button', { name: 'Log out', exact: true }).waitFor();
}

export async function openScreen(page, id) {
    await page.goto(env.cp() + '/#/' + id);
    await page.locator(`#main [data-screen="${id}"]`).waitFor();
    await page.waitForLoadState('networkidle');
}

export async function shot(page, name) {
    mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: join(SHOTS, name + '.png'), fullPage: true });
}

/** The form whose submit button says `submit` (e.g. the "Create" form of a screen). */
export function formWith(page, submit) {
    return page.locator('#main form').filter({ has: page.getByRole('button', { name: submit, exact: true }) }).first();
}

/** Fills fields by their name attribute: strings into inputs/textarea/select, booleans into checkboxes. */
export async function fill(form, values) {
    for (const [name, v] of Object.entries(values)) {
        const el = form.locator(`[name="${name}"]`).first();
        const tag = await el.evaluate((e) => e.tagName.toLowerCase() + ':' + (e.type || ''));
        if (tag.startsWith('select')) await el.selectOption(String(v));
        else if (tag.endsWith(':checkbox')) await el.setChecked(Boolean(v));
        else await el.fill(String(v));
    }
}

/** Checks the checkbox whose value is `value` (a system code, "system:name" of a role or group) inside the fieldset
 * whose legend is `legend`. */
export async function check(form, legend, value) {
    await form.locator('fieldset').filter({ has: form.page().locator('legend', { hasText: legend }) }).first()
        .locator(`input[type=checkbox][value="${value}"]`).first().check();
}

/** Waits for the "applied on all data planes" notice a write shows; fails with the page's alert if one shows. */
export async function applied(page) {
    const ok = page.locator('[data-testid="applied"]').filter({ hasText: 'Applied on all data planes' }).last();
    const bad = page.locator('#main [role="alert"]').filter({ hasText: /\S/ }).first();
    await Promise.race([ok.waitFor(), bad.waitFor().then(async () => {
        throw new Error('the page shows an error: ' + (await bad.innerText()));
    })]);
}

/** fetch() from inside the page (its session cookie), with or without the CSRF header. */
export async function pageFetch(page, method, path, body, { csrf = true } = {}) {
    return page.evaluate(async ([method, path, body, csrf]) => {
        const headers = { 'Content-Type': 'application/json' };
        if (csrf) {
            const me = await (await fetch('/api/v1/admin/me')).json();
            headers['X-CSRF-Token'] = me.csrf_token;
        }
        const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
        return { status: r.status, body: await r.text() };
    }, [method, path, body, csrf]);
}

/** A request to the data plane from node (not the browser): {status, body}. */
export async function dp(method, path, { token, body } = {}) {
    const headers = {};
    if (token) headers.Authorization = 'Bearer ' + token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const r = await fetch(env.dp() + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: r.status, body: await r.text() };
}

export async function eventually(what, fn, timeoutMs = 10000) {
    const end = Date.now() + timeoutMs;
    let last;
    for (;;) {
        try {
            if (await fn()) return;
        } catch (e) {
            last = e;
        }
        if (Date.now() > end) throw new Error(`timed out: ${what}${last ? ' (' + last.message + ')' : ''}`);
        await new Promise((r) => setTimeout(r, 200));
    }
}
