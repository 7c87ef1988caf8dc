/*
 * service_integrations: the admin form of a service's two integration members (docs/admin-api.md, issue 7) - "consul"
 * (its targets come from Consul) and "credentials" (upstream headers built from a Vault secret) - and the template
 * syntax their headers use, shared by the admin validation and the snapshot build (snapbuild_credentials.c).
 *
 * Admin form:
 *   "consul": {"service": NAME, "tag"?: NAME}            NAME = 1-128 of [A-Za-z0-9._-]
 *   "credentials": {"vault_path": PATH, "headers": {header-name: template, ...}}  (1-8 headers, names lower-cased)
 *                | {"vault_path": PATH, "basic": {"username": template, "password": template}}
 * A template is literal text (printable ASCII and space) with {{key}} placeholders, key 1-128 of [A-Za-z0-9._-].
 */
#ifndef CPH_SERVICE_INTEGRATIONS_H
#define CPH_SERVICE_INTEGRATIONS_H

#include <stddef.h>
#include <jansson.h>
#include "proto/proto.h"

#define CPH_CREDENTIALS_HEADERS_MAX 8
#define CPH_CREDENTIALS_TEMPLATE_MAX 1024
#define CPH_CREDENTIALS_KEY_MAX 128
#define CPH_VAULT_PATH_MAX 256
#define CPH_CONSUL_NAME_MAX 128

/**
 * Called for each part of a template in order: a literal run (is_key 0) or a placeholder's key (is_key 1), text not
 * NUL-terminated. Returns 0 to go on, -1 to stop the walk.
 */
typedef int (*cph_template_part_cb)(void *ud, int is_key, const char *text, size_t len);

/**
 * Walks the template t (len bytes). A "{{" opens a placeholder that "}}" closes, holding a key of 1-128 of
 * [A-Za-z0-9._-]; a "}}" outside a placeholder, an unterminated placeholder or a bad key is malformed: -1 with *why
 * set to a static sentence (no part of t in it). A part callback returning -1 stops the walk: -1 with *why NULL.
 * Returns 0 when every part was walked. Single braces are literal text.
 */
int cph_service_template_walk(const char *t, size_t len, cph_template_part_cb cb, void *ud, const char **why);

/**
 * The "consul" and "credentials" members of the service request in (the object being normalised), checked with
 * errors at JSON pointers (/consul/..., /credentials/..., /targets). *consul and *credentials receive new normalised
 * objects, or NULL when the member is absent or null. With consul set, "targets" must be absent or [] ({invalid} at
 * /targets). Returns 0, or -1 with err filled (and both outputs NULL).
 */
int cph_service_integrations_normalize(const json_t *in, json_t **consul, json_t **credentials, cph_error_t *err);

#endif
