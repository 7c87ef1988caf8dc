// The guards: a CSRF-less write with the session cookie is refused; a name with markup renders as text and fires no
// dialog; a viewer account (created on the admins screen) sees no Create/Save/Delete button and a forced write is 403;
// a rollback on the history screen is followed by the data plane (the deleted route comes back).
import { applied, assert, env, eventually, fill, formWith, login, newPage, openScreen, pageFetch, shot, dp } from './lib.mjs';

const XSS = '<script>alert(1)</script><img src=x onerror=alert(2)>';
const VIEWER = 'bt-viewer', VPW = 'viewer-password-0123';

export const tests = [
    ['a POST with the session cookie but no CSRF token is refused (403)', async ({ browser }) => {
        const { context, page } = await newPage(browser);
        try {
            await login(page);
            const r = await pageFetch(page, 'POST', '/api/v1/systems', { code: 'bt-csrf', name: 'x' }, { csrf: false });
            assert(r.status === 403 && r.body.includes('csrf'), 'CSRF-less POST -> ' + r.status + ' ' + r.body);
        } finally {
            await context.close();
        }
    }],
    ['a name with <script> renders as text, no dialog fires', async ({ browser }) => {
        const { context, page } = await newPage(browser);
        try {
            await login(page);
            await openScreen(page, 'systems');
            const form = formWith(page, 'Create');
            await fill(form, { code: 'bt-xss', name: XSS });
            await form.getByRole('button', { name: 'Create', exact: true }).click();
            await applied(page);
            await openScreen(page, 'systems');
            await page.locator('#main').getByText(XSS).first().waitFor();
            assert(await page.locator('#main script, #main img[src=x]').count() === 0, 'markup was parsed');
            await shot(page, '40-xss-as-text');
            assert(page.dialogs.length === 0, 'dialogs: ' + page.dialogs.join('; '));
            assert(page.problems.length === 0, 'problems: ' + page.problems.join('; '));
        } finally {
            await context.close();
        }
    }],
    ['a viewer sees no Create/Save/Delete and a forced write is 403', async ({ browser }) => {
        const owner = await newPage(browser);
        try {
            await login(owner.page);
            await openScreen(owner.page, 'admins');
            const form = formWith(owner.page, 'Create');
            await fill(form, { name: VIEWER, password: VPW, role: 'viewer' });
            await form.getByRole('button', { name: 'Create', exact: true }).click();
            await owner.page.locator('#main table').getByText(VIEWER, { exact: true }).first().waitFor();
        } finally {
            await owner.context.close();
        }
        const { context, page } = await newPage(browser);
        try {
            await login(page, VIEWER, VPW);
            for (const id of ['services', 'routes', 'endpoints', 'systems', 'roles', 'groups', 'users', 'history', 'admins']) {
                await openScreen(page, id);
                for (const b of ['Create', 'Save', 'Delete', 'Roll back'])
                    assert(await page.locator('#main').getByRole('button', { name: b, exact: true }).count() === 0,
                        `viewer sees "${b}" on ${id}`);
            }
            await shot(page, '41-viewer-services');
            const r = await pageFetch(page, 'POST', '/api/v1/systems', { code: 'bt-viewer-sys', name: 'x' });
            assert(r.status === 403, 'viewer forced POST -> ' + r.status + ' ' + r.body);
            assert(page.problems.length === 0, 'problems: ' + page.problems.join('; '));
        } finally {
            await context.close();
        }
    }],
    ['roll back on the history screen; the data plane follows', async ({ browser, state }) => {
        assert(state.rules, 'needs the route of 02_permissions');
        const { context, page } = await newPage(browser);
        try {
            await login(page);
            const snaps = await pageFetch(page, 'GET', '/api/v1/snapshots?limit=1', undefined, { csrf: false });
            const before = JSON.parse(snaps.body).items[0].version;
            const del = await pageFetch(page, 'DELETE', '/api/v1/routes/bt-route?wait=applied');
            assert(del.status === 200 || del.status === 204, 'DELETE route -> ' + del.status + ' ' + del.body);
            await eventually('the route is gone at the DP', async () => (await dp('GET', '/bt/public')).status === 404);
            await openScreen(page, 'history');
            await page.locator(`#main button[data-version="${before}"]`).filter({ hasText: 'Roll back' }).click();
            await page.locator('dialog[open]').getByRole('button', { name: 'Roll back', exact: true }).click();
            await applied(page);
            await shot(page, '42-history-rolled-back');
            await eventually('the route is back at the DP', async () => (await dp('GET', '/bt/public')).status === 200);
            assert(page.problems.length === 0, 'problems: ' + page.problems.join('; '));
        } finally {
            await context.close();
        }
    }],
];
