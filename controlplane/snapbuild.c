/*
 * snapbuild: turns the services and routes tables into the snapshot body the data planes apply.
 *
 * The body is a pure function of the rows: the arrays are ordered by name (SQLite's BINARY collation is byte order,
 * which is what PROTOCOL.md §2 asks for), ids and timestamps are left out, and every optional field is written with
 * its value so that a default never depends on which side fills it in. The stores already hold normalised objects
 * (defaults filled, only schema fields), so this is a projection of their API representation.
 */
#include <string.h>
#include "controlplane/snapbuild.h"
#include "controlplane/store_route.h"
#include "controlplane/store_service.h"

#define MODULE "cp/snapbuild"

static const char *const READ_ONLY[] = {"id", "created_at", "updated_at"};

/* Drops the API-only members from every object of arr (arr is ours). */
static void strip(json_t *arr)
{
    size_t i;
    json_t *item;

    json_array_foreach(arr, i, item)
    {
        for (size_t k = 0; k < sizeof(READ_ONLY) / sizeof(READ_ONLY[0]); ++k)
            json_object_del(item, READ_ONLY[k]);
    }
}

json_t *cph_snapbuild_body(cph_db_t *db, cph_error_t *err)
{
    json_t *services, *routes;

    if ((services = cph_store_service_list(db, err)) == NULL)
        return NULL;
    if ((routes = cph_store_route_list(db, err)) == NULL) {
        json_decref(services);
        return NULL;
    }
    strip(services);
    strip(routes);
    return json_pack("{s:o, s:o}", "services", services, "routes", routes);
}
