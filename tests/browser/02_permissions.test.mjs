// The main path, all through the page as the owner: a system, a role, a group, two users (one in the group), a
// service on the echo upstream and a route; on the endpoint permissions screen one endpoint public and one restricted
// to the group; then real requests through the data plane prove the rules hold, and explain shows the decision.
import { applied, assert, check, dp, env, eventually, fill, formWith, login, newPage, openScreen, shot } from './lib.mjs';

const SYS = 'bt-shop', ROLE = 'bt-reader', GROUP = 'bt-staff', SVC = 'bt-api', ROUTE = 'bt-route';
const PW = 'browser-user-pw-0123';

async function create(page, screen, values, checks = []) {
    await openScreen(page, screen);
    const form = formWith(page, 'Create');
    await fill(form, values);
    for (const [legend, label] of checks) await check(form, legend, label);
    await form.getByRole('button', { name: 'Create', exact: true }).click();
    await applied(page);
}

async function token(username) {
    const r = await dp('POST', '/auth/login', { body: { username, password: PW, system: SYS } });
    assert(r.status === 200, `DP login ${username} -> ${r.status} ${r.body}`);
    return JSON.parse(r.body).access_token;
}

export const tests = [
    ['create a system, role, group, users, service and route through the page', async ({ browser, state }) => {
        const { context, page } = await newPage(browser);
        try {
            await login(page);
            await create(page, 'systems', { code: SYS, name: 'Browser shop' });
            await create(page, 'roles', { system: SYS, name: ROLE });
            await create(page, 'groups', { system: SYS, name: GROUP });
            await create(page, 'users', { username: 'bt-alice', password: PW }, [['Systems', SYS]]);
            await create(page, 'users', { username: 'bt-bob', password: PW }, [['Systems', SYS], ['Groups', SYS + ':' + GROUP]]);
            await create(page, 'services', { name: SVC, system: SYS, targets: env.upstream() });
            await create(page, 'routes', { name: ROUTE, service: SVC, paths: '/bt', default_access: 'authenticated',
                strip_prefix: true });
            await openScreen(page, 'users');
            await shot(page, '30-users-created');
            assert(page.problems.length === 0, 'problems: ' + page.problems.join('; '));
            state.setup = true;
        } finally {
            await context.close();
        }
    }],
    ['endpoint permissions: one public, one restricted to the group', async ({ browser, state }) => {
        assert(state.setup, 'needs the previous test');
        const { context, page } = await newPage(browser);
        try {
            await login(page);
            await openScreen(page, 'endpoints');
            await page.locator('#main select[name="service"]').selectOption(SVC);
            const add = formWith(page, 'Add rule');
            await add.waitFor();
            await fill(add, { method: 'GET', path: '/public', public: true });
            await add.getByRole('button', { name: 'Add rule', exact: true }).click();
            await applied(page);
            await fill(add, { method: 'GET', path: '/private', public: false });
            await check(add, 'Groups', SYS + ':' + GROUP);
            await add.getByRole('button', { name: 'Add rule', exact: true }).click();
            await applied(page);
            await page.locator('#main table').getByText('/private').first().waitFor();
            await shot(page, '31-endpoints-rules');
            await page.getByRole('button', { name: 'Matrix' }).click();
            await page.getByLabel(new RegExp(`${GROUP} may GET /private`)).first().waitFor();
            assert(await page.getByLabel(new RegExp(`${GROUP} may GET /private`)).first().isChecked(),
                'the matrix does not show the group on GET /private');
            await shot(page, '32-endpoints-matrix');
            assert(page.problems.length === 0, 'problems: ' + page.problems.join('; '));
            state.rules = true;
        } finally {
            await context.close();
        }
    }],
    ['the data plane enforces them: public 200, restricted 401/403 without the group, 200 with it', async ({ state }) => {
        assert(state.rules, 'needs the previous test');
        await eventually('GET /bt/public -> 200', async () => (await dp('GET', '/bt/public')).status === 200);
        const anon = await dp('GET', '/bt/private');
        assert(anon.status === 401, 'anonymous /bt/private -> ' + anon.status);
        const alice = await token('bt-alice');
        const a = await dp('GET', '/bt/private', { token: alice });
        assert(a.status === 403, 'bt-alice (not in the group) /bt/private -> ' + a.status);
        const bob = await token('bt-bob');
        const b = await dp('GET', '/bt/private', { token: bob });
        assert(b.status === 200 && b.body.includes('"upstream"'), 'bt-bob (in the group) /bt/private -> ' + b.status);
        state.bob = bob;
    }],
    ['explain shows the decision for a user', async ({ browser, state }) => {
        assert(state.rules, 'needs the rules');
        const { context, page } = await newPage(browser);
        try {
            await login(page);
            await openScreen(page, 'explain');
            const form = formWith(page, 'Explain');
            await fill(form, { method: 'GET', path: '/bt/private', as: 'user' });
            await fill(form, { credential: 'bt-alice', system: SYS });
            await form.getByRole('button', { name: 'Explain', exact: true }).click();
            const d = page.locator('[data-testid="decision"]');
            await d.waitFor();
            // the API's decision words: allow | forbidden | unauthorized | not_found...
            assert(await d.getAttribute('data-decision') === 'forbidden' && (await d.innerText()).includes('403'),
                'alice: ' + await d.innerText());
            await fill(form, { credential: 'bt-bob' });
            await form.getByRole('button', { name: 'Explain', exact: true }).click();
            await page.locator('[data-testid="decision"][data-decision="allow"]').waitFor();
            await shot(page, '33-explain');
            assert(page.problems.length === 0, 'problems: ' + page.problems.join('; '));
        } finally {
            await context.close();
        }
    }],
];
