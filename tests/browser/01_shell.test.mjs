// The page itself: served with the strict CSP, login works, every main screen renders without a console error, a CSP
// violation or a request leaving the control plane; a screenshot of each.
import { assert, env, login, newPage, openScreen, shot } from './lib.mjs';

export const SCREENS = ['dashboard', 'services', 'routes', 'endpoints', 'policies', 'systems', 'roles', 'groups', 'users',
    'api_keys', 'explain', 'audit', 'history', 'admins', 'apiref'];

export const tests = [
    ['the page is served with the CSP and security headers', async () => {
        const r = await fetch(env.cp() + '/');
        assert(r.status === 200, 'GET / -> ' + r.status);
        const csp = r.headers.get('content-security-policy') || '';
        for (const d of ["default-src 'self'", "script-src 'self'", "style-src 'self'", "object-src 'none'",
            "frame-ancestors 'none'"])
            assert(csp.includes(d), 'CSP lacks ' + d + ': ' + csp);
        assert(r.headers.get('x-frame-options') === 'DENY', 'X-Frame-Options');
        assert(r.headers.get('x-content-type-options') === 'nosniff', 'nosniff');
        const bad = await fetch(env.cp() + '/lib/../../../etc/passwd');
        assert(bad.status === 404, 'traversal -> ' + bad.status);
    }],
    ['a wrong password is refused readably', async ({ browser }) => {
        const { context, page } = await newPage(browser);
        try {
            await page.goto(env.cp() + '/');
            await page.locator('input[name=name]').fill(env.user());
            await page.locator('input[name=password]').fill('not-the-password');
            await page.getByRole('button', { name: 'Log in', exact: true }).click();
            await page.locator('[role="alert"]').filter({ hasText: /\S/ }).first().waitFor();
            assert(await page.getByRole('button', { name: 'Log out' }).count() === 0, 'logged in with a wrong password');
            await shot(page, '00-login-refused');
        } finally {
            await context.close();
        }
    }],
    ['log in, every main screen renders (screenshots), log out', async ({ browser }) => {
        const { context, page } = await newPage(browser);
        try {
            await login(page);
            for (const [i, id] of SCREENS.entries()) {
                await page.locator(`nav a[href="#/${id}"]`).first().waitFor();
                await openScreen(page, id);
                await shot(page, String(i + 1).padStart(2, '0') + '-' + id);
            }
            await page.setViewportSize({ width: 600, height: 900 });
            await openScreen(page, 'endpoints');
            await shot(page, '20-narrow-endpoints');
            assert(page.problems.length === 0, 'problems: ' + page.problems.join('; '));
            await page.getByRole('button', { name: 'Log out', exact: true }).click();
            await page.locator('input[name=password]').waitFor();
            const me = await page.evaluate(async () => (await fetch('/api/v1/admin/me')).status);
            assert(me === 401, 'after logout /admin/me -> ' + me);
        } finally {
            await context.close();
        }
    }],
];
