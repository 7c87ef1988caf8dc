// The screens of the admin page, in nav order, grouped under headings. Each is a module exporting
// `screen = {id, title, minRole, render(root, ctx)}`; they are loaded with dynamic import() so that a module that is
// missing or fails to load is skipped (with a console warning) instead of breaking the page.

export const SECTIONS = [
    { title: 'Overview', ids: ['dashboard'] },
    { title: 'Traffic', ids: ['services', 'routes', 'endpoints', 'policies'] },
    { title: 'Access', ids: ['systems', 'roles', 'groups', 'users', 'api_keys', 'explain'] },
    { title: 'Changes', ids: ['audit', 'history'] },
    { title: 'Administration', ids: ['admins', 'apiref'] },
];

export const SCREEN_IDS = SECTIONS.flatMap((s) => s.ids);

function valid(s, id) {
    return s && typeof s === 'object' && s.id === id && typeof s.render === 'function' && typeof s.title === 'string';
}

/** Loads every screen module; resolves to [{id, title, minRole, render, section}] in nav order, missing ones left out. */
export async function loadScreens() {
    const loaded = await Promise.all(SCREEN_IDS.map(async (id) => {
        try {
            const mod = await import('./' + id + '.js');
            if (!valid(mod.screen, id)) {
                console.warn('screen ' + id + ': the module does not export a valid `screen`');
                return null;
            }
            const section = SECTIONS.find((s) => s.ids.includes(id)).title;
            return { minRole: 'viewer', ...mod.screen, section };
        } catch (e) {
            console.warn('screen ' + id + ' not loaded: ' + (e && e.message ? e.message : e));
            return null;
        }
    }));
    return loaded.filter(Boolean);
}
