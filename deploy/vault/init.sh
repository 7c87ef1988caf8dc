#!/bin/sh
# Vault set-up for the Cephalo demo stack (docker-compose service "vault-init", run with the hashicorp/vault image's
# CLI and busybox sh, so POSIX sh only). Idempotent: a re-run changes nothing that is already there.
#
#   1. KV v2 at secret/ (dev mode already has it; a file-backed server does not)
#   2. the policy "cephalo" (cephalo-policy.json: read the services' secrets, list their keys, renew its own token)
#   3. AppRole at approle/ with the role "cephalo" (role id $CEPHALO_VAULT_ROLE_ID), and a secret id written to
#      $APPROLE_DIR/secret-id (mode 0400, owned by $CEPHALO_UID, the control plane's user in the cephalo image)
#   4. the demo secrets of the three demo services, only when absent (a re-run must not create new versions)
#
# Needs VAULT_ADDR and VAULT_TOKEN (the dev root token: DEMO ONLY). Never prints a secret value.
set -eu

: "${VAULT_ADDR:?VAULT_ADDR is required}"
: "${VAULT_TOKEN:?VAULT_TOKEN is required}"
ROLE_ID=${CEPHALO_VAULT_ROLE_ID:-demo-cephalo-role-id}
APPROLE_DIR=${APPROLE_DIR:-/approle}
CEPHALO_UID=${CEPHALO_UID:-10001}
HERE=$(cd "$(dirname "$0")" && pwd)

log() {
    echo "vault-init: $*"
}

# Vault answers `vault status` with exit 0 once unsealed (2 = sealed, 1 = unreachable).
i=0
until vault status >/dev/null 2>&1; do
    i=$((i + 1))
    if [ "$i" -ge 60 ]; then
        log "Vault at $VAULT_ADDR is not ready after 60 s" >&2
        exit 1
    fi
    sleep 1
done

if vault secrets list -format=json | grep -q '"secret/"'; then
    log "secret/ is mounted"
else
    vault secrets enable -path=secret -version=2 kv
    log "enabled KV v2 at secret/"
fi

vault policy write cephalo "$HERE/cephalo-policy.json" >/dev/null
log "policy cephalo written"

if ! vault auth list -format=json | grep -q '"approle/"'; then
    vault auth enable approle >/dev/null
    log "enabled AppRole at approle/"
fi
# Short token TTL so the control plane's renewal (at 2/3 of the TTL) and its re-login (past max TTL) show up in the
# demo; secret ids do not expire, so a restarted control plane logs in again with the same file.
vault write auth/approle/role/cephalo token_policies=cephalo token_ttl=5m token_max_ttl=30m \
    secret_id_ttl=0 secret_id_num_uses=0 >/dev/null
vault write auth/approle/role/cephalo/role-id role_id="$ROLE_ID" >/dev/null
log "AppRole role cephalo ready"

mkdir -p "$APPROLE_DIR"
umask 077
if [ ! -s "$APPROLE_DIR/secret-id" ]; then
    vault write -f -field=secret_id auth/approle/role/cephalo/secret-id >"$APPROLE_DIR/secret-id.tmp"
    chown "$CEPHALO_UID:$CEPHALO_UID" "$APPROLE_DIR/secret-id.tmp"
    chmod 0400 "$APPROLE_DIR/secret-id.tmp"
    mv "$APPROLE_DIR/secret-id.tmp" "$APPROLE_DIR/secret-id"
    log "secret id written to $APPROLE_DIR/secret-id"
else
    # A secret id from an earlier run: still valid unless Vault (dev mode: in memory) was restarted meanwhile.
    if ! vault write -format=json auth/approle/login role_id="$ROLE_ID" \
        secret_id="$(cat "$APPROLE_DIR/secret-id")" >/dev/null 2>&1; then
        vault write -f -field=secret_id auth/approle/role/cephalo/secret-id >"$APPROLE_DIR/secret-id.tmp"
        chown "$CEPHALO_UID:$CEPHALO_UID" "$APPROLE_DIR/secret-id.tmp"
        chmod 0400 "$APPROLE_DIR/secret-id.tmp"
        mv "$APPROLE_DIR/secret-id.tmp" "$APPROLE_DIR/secret-id"
        log "the stored secret id was no longer valid: wrote a new one"
    else
        log "the stored secret id is valid"
    fi
fi

# put_if_absent PATH KEY=VALUE...: the first version of a demo secret (DEMO VALUES, not secrets).
put_if_absent() {
    path=$1
    shift
    if vault kv metadata get -mount=secret "$path" >/dev/null 2>&1; then
        log "secret/$path exists, left as it is"
    else
        vault kv put -mount=secret "$path" "$@" >/dev/null
        log "secret/$path written (version 1)"
    fi
}

put_if_absent services/users token=demo-users-token-1
put_if_absent services/orders api_key=demo-orders-api-key-1
put_if_absent services/products username=demo-products-user password=demo-products-password-1

log "done"
