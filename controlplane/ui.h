/*
 * ui: serves the admin web page (admin-ui/) from the control plane's admin listener - static files only, from one
 * directory, with a strict Content-Security-Policy and the other security headers on every answer.
 */
#ifndef CPH_UI_H
#define CPH_UI_H

#include <microhttpd.h>

/**
 * Sets the directory the page is served from (the --ui-dir flag; CEPHALO_UI_DIR; default the source tree's
 * admin-ui/). NULL or "off": no page, every non-API path answers 404. Called once before the API starts.
 */
void cph_ui_set_dir(const char *dir);
/**
 * Answers a request for a path outside /api/, /health and /metrics: GET/HEAD of "/" (index.html) or of a file under
 * the directory (no "..", no dot-files, no symlinks out of it); 404 JSON otherwise, 405 for other methods.
 * Returns MHD_YES/MHD_NO as MHD_queue_response does.
 */
enum MHD_Result cph_ui_answer(struct MHD_Connection *conn, const char *url, const char *method);

#endif
