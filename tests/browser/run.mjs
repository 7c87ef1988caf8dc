// Runs the browser tests (tests/browser/*.test.mjs, in name order) against a running control plane + data plane:
// CEPHALO_CP_URL, CEPHALO_DP_URL, CEPHALO_UPSTREAM_URL, CEPHALO_ADMIN_PASSWORD (see README.md). Each test module
// exports `tests = [[name, async (ctx) => {...}], ...]`; ctx = {browser, state} where state is shared in order.
// Prints one line per test, exits 1 if any failed. Usage: node run.mjs [name-substring]
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { HERE, launch } from './lib.mjs';

const only = process.argv[2] || '';
const files = readdirSync(HERE).filter((f) => f.endsWith('.test.mjs')).sort();
const browser = await launch();
const state = {};
let failed = 0, passed = 0;
try {
    for (const f of files) {
        const mod = await import(join(HERE, f));
        for (const [name, fn] of mod.tests) {
            const full = f.replace('.test.mjs', '') + ': ' + name;
            if (only && !full.includes(only)) continue;
            const t0 = Date.now();
            try {
                await fn({ browser, state });
                passed++;
                console.log(`ok   ${full} (${Date.now() - t0} ms)`);
            } catch (e) {
                failed++;
                console.log(`FAIL ${full} (${Date.now() - t0} ms)\n     ${String(e && e.stack || e).split('\n').slice(0, 6).join('\n     ')}`);
            }
        }
    }
} finally {
    await browser.close();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed || !passed ? 1 : 0);
