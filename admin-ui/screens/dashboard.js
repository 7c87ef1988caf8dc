// Dashboard: the configuration version, request and error rates, the data planes (status, applied version, last
// error, their rates), the Vault and Consul integrations, upstream health. Refreshes every 10 s while shown. The
// rates come from the data planes' pings (GET /api/v1/dataplanes "traffic": over about the last 10 s).
import { h, table, showError, badge, fmtTime, loading } from '../lib/ui.js';

const DP_KIND = { synced: 'ok', applying: 'warn', nacked: 'bad', disconnected: 'muted' };
const INTEG_KIND = { ok: 'ok', healthy: 'ok', synced: 'ok', running: 'ok', disabled: 'muted', off: 'muted', degraded: 'warn',
    error: 'bad', failing: 'bad', unreachable: 'bad' };

function stat(label, value, sub) {
    return h('div', { class: 'stat' }, h('div', { class: 'stat-label' }, label), h('div', { class: 'stat-value' }, String(value)),
        sub ? h('div', { class: 'stat-sub' }, sub) : null);
}

function dpError(e) {
    if (!e) return h('span', { class: 'muted' }, '-');
    if (typeof e === 'object') return [h('code', {}, e.code || 'error'), e.path ? [' at ', h('code', {}, e.path)] : null, ' ', e.message || ''];
    return String(e);
}

const rate = (x) => (typeof x === 'number' ? (x >= 100 ? x.toFixed(0) : x.toFixed(1)) : '-');

function settle(p) {
    return p.then((v) => ({ ok: true, v }), (e) => ({ ok: false, e }));
}

export const screen = {
    id: 'dashboard',
    title: 'Dashboard',
    minRole: 'viewer',
    async render(root, ctx) {
        const stats = h('div', { class: 'cards' });
        const dps = h('section', {});
        const integ = h('section', {});
        const upstream = h('section', {});
        const msg = h('div', { class: 'messages' });
        const updated = h('span', { class: 'muted', 'aria-live': 'off' });
        const refresh = h('button', { type: 'button' }, 'Refresh');
        root.append(h('div', { class: 'page-head' }, h('h1', {}, 'Dashboard'), h('span', { class: 'spacer' }), updated, refresh),
            msg, stats, dps, integ, upstream);
        loading(stats);

        async function load() {
            const [snap, dp, ig, hs, sv, rt] = await Promise.all(['/snapshot', '/dataplanes', '/integrations', '/health/services',
                '/services', '/routes'].map((p) => settle(ctx.api('GET', p))));
            if (!root.isConnected) return;
            const firstErr = [snap, dp, ig, hs, sv, rt].find((x) => !x.ok);
            if (firstErr) showError(msg, firstErr.e);
            else msg.replaceChildren();
            const version = snap.ok ? snap.v.version : '?';
            const planes = dp.ok ? dp.v.data || [] : [];
            const connected = planes.filter((d) => d.connected);
            const behind = connected.filter((d) => !d.applied || d.applied.version !== version || d.status !== 'synced');
            const sum = (k) => connected.reduce((a, d) => a + (d.traffic ? d.traffic[k] || 0 : 0), 0);
            const rps = sum('requests_per_s'), e5 = sum('5xx_per_s');
            stats.replaceChildren(
                stat('Configuration version', version, snap.ok ? 'hash ' + String(snap.v.hash || '').replace(/^sha256:/, '').slice(0, 12) : ''),
                stat('Requests / s', rate(rps), 'all connected data planes, last ~10 s'),
                stat('5xx / s', rate(e5), rps > 0 ? (100 * e5 / rps).toFixed(2) + ' % of requests' : 'no traffic'),
                stat('Data planes connected', connected.length, connected.length
                    ? (behind.length ? behind.length + ' not on version ' + version : 'all on version ' + version) : 'none connected'),
                stat('Services', sv.ok ? (sv.v.data || []).length : '?', ''),
                stat('Routes', rt.ok ? (rt.v.data || []).length : '?', ''));

            dps.replaceChildren(h('h2', {}, 'Data planes'), table({
                columns: [
                    { label: 'ID', render: (d) => h('code', {}, d.id) },
                    { label: 'Host', render: (d) => (d.hostname || '') + (d.pid ? ' (pid ' + d.pid + ')' : '') },
                    { label: 'Status', render: (d) => badge(d.status || (d.connected ? 'connected' : 'disconnected'), DP_KIND[d.status]) },
                    { label: 'Applied version', class: 'num', render: (d) => (d.applied && d.applied.version !== undefined ? String(d.applied.version) : '-') },
                    { label: 'Applied at', render: (d) => (d.applied ? fmtTime(d.applied.at) : '') },
                    { label: 'Last seen', render: (d) => fmtTime(d.last_seen) },
                    { label: 'Requests / s', class: 'num', render: (d) => (d.traffic ? rate(d.traffic.requests_per_s) : '-') },
                    { label: '4xx / s', class: 'num', render: (d) => (d.traffic ? rate(d.traffic['4xx_per_s']) : '-') },
                    { label: '5xx / s', class: 'num', render: (d) => (d.traffic ? rate(d.traffic['5xx_per_s']) : '-') },
                    { label: 'Requests (total)', class: 'num', render: (d) => (d.traffic ? String(d.traffic.requests_total) : '-') },
                    { label: 'Last error', render: (d) => dpError(d.last_error) },
                ],
                rows: planes,
                empty: 'No data plane has connected yet.',
            }), h('p', { class: 'help' }, 'Rates are reported by each data plane every second and averaged over about 10 s. ' +
                'Per route, method and latency: each data plane\'s Prometheus metrics on its status listener (GET /metrics, ' +
                'cephalo_dp_requests_total and the latency histograms; a Grafana dashboard is in deploy/grafana).'));

            const ints = ig.ok && ig.v && typeof ig.v === 'object' ? Object.entries(ig.v) : [];
            integ.replaceChildren(h('h2', {}, 'Integrations'), table({
                columns: [
                    { label: 'Integration', render: ([name]) => h('strong', {}, name) },
                    { label: 'State', render: ([, s]) => badge(String(s && s.state), INTEG_KIND[s && s.state]) },
                    { label: 'Reason', render: ([, s]) => (s && s.reason ? String(s.reason) : '-') },
                    { label: 'Since', render: ([, s]) => fmtTime(s && s.since) },
                    { label: 'Last success', render: ([, s]) => (s && s.last_success ? fmtTime(s.last_success) : 'never') },
                    { label: 'Syncs / errors', class: 'num', render: ([, s]) => (s ? (s.syncs_total || 0) + ' / ' + (s.errors_total || 0) : '') },
                ],
                rows: ints,
                empty: 'No integration reported.',
            }));

            const rows = [];
            for (const d of hs.ok ? hs.v.dataplanes || [] : []) {
                for (const s of d.services || []) {
                    for (const t of s.targets || []) rows.push({ dp: d.dp_id, service: s.name, t });
                }
            }
            upstream.replaceChildren(h('h2', {}, 'Upstream health'), table({
                columns: [
                    { label: 'Data plane', render: (r) => h('code', {}, r.dp) },
                    { label: 'Service', key: 'service' },
                    { label: 'Target', render: (r) => h('code', {}, r.t.url) },
                    { label: 'Health', render: (r) => badge(r.t.health, r.t.health === 'healthy' ? 'ok' : r.t.health === 'unhealthy' ? 'bad' : 'muted') },
                    { label: 'Breaker', render: (r) => badge(r.t.breaker, r.t.breaker === 'closed' ? 'ok' : 'warn') },
                    { label: 'In flight', class: 'num', render: (r) => String(r.t.active ?? 0) },
                    { label: 'Last check', render: (r) => (r.t.last_check ? [String(r.t.last_check.status ?? r.t.last_check.error ?? ''), ' ',
                        fmtTime(r.t.last_check.at)] : '-') },
                ],
                rows,
                empty: 'No report from a connected data plane.',
            }));
            updated.replaceChildren('Updated ', fmtTime(new Date().toISOString()));
        }

        refresh.addEventListener('click', () => load());
        const timer = setInterval(() => {
            if (!root.isConnected) clearInterval(timer);
            else if (!document.hidden) load();
        }, 10000);
        await load();
    },
};
