#!/usr/bin/env bash
# README command 1: the embedded default on one machine.
#
#   bash scripts/demo.sh         install deps, release build into build/, (re)start a control plane, a demo
#                                upstream and one data plane in the background, configure the public route /demo
#                                and the route /private (a login needed: system "demo", role "user", user "demo"),
#                                verify both
#   bash scripts/demo.sh stop    stop them
#
# State lives in var/ (var/cp: control plane data, var/dp: data plane state, var/log: logs, var/run: pid files,
# var/admin.token: the admin token, var/admin.password: the password of the admin page's owner account "admin" and
# var/demo.password: the demo user's password, each generated once, mode 0600).
# Re-running restarts everything cleanly; the demo objects are created or replaced, so the command is idempotent.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

VAR=$ROOT/var
RUN=$VAR/run
LOG=$VAR/log
ADMIN=127.0.0.1:8001
AUTH=127.0.0.1:8002
UPSTREAM=127.0.0.1:9000
LISTEN=127.0.0.1:8080
STATUS=127.0.0.1:9901
PY=/usr/bin/python3
NAMES=(dataplane controlplane upstream)

die() {
    echo "demo: $*" >&2
    exit 1
}

# stop_one NAME: SIGTERM the process in var/run/NAME.pid if it is still ours, wait, SIGKILL as a last resort.
stop_one() {
    local name=$1 pidfile=$RUN/$1.pid pid
    [[ -f $pidfile ]] || return 0
    pid=$(cat "$pidfile")
    if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -e cephalo- -e demo_upstream; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 150); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "demo: $name (pid $pid) ignored SIGTERM, killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        echo "demo: stopped $name (pid $pid)"
    fi
    rm -f "$pidfile"
}

stop_all() {
    local n
    for n in "${NAMES[@]}"; do
        stop_one "$n"
    done
}

# start NAME CMD...: run in the background, own session, logs in var/log/NAME.log, pid in var/run/NAME.pid.
start() {
    local name=$1
    shift
    setsid "$@" </dev/null >>"$LOG/$name.log" 2>&1 &
    echo $! >"$RUN/$name.pid"
}

port_free() {
    ! (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null
}

# wait_http URL NAME: poll until the URL answers 200 (20 s at most).
wait_http() {
    local url=$1 name=$2
    for _ in $(seq 1 200); do
        if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true) == 200 ]]; then
            return 0
        fi
        if ! kill -0 "$(cat "$RUN/$name.pid")" 2>/dev/null; then
            tail -n 20 "$LOG/$name.log" >&2 || true
            die "$name exited during startup (log: var/log/$name.log)"
        fi
        sleep 0.1
    done
    tail -n 20 "$LOG/$name.log" >&2 || true
    die "$name did not become ready at $url (log: var/log/$name.log)"
}

# api METHOD PATH [BODY]: admin API call; prints the body, returns non-zero unless 2xx. HTTP code in $API_CODE.
# The body goes through stdin, never the command line (it may hold a password).
api() {
    local out args=(-s --max-time 15 -w '\n%{http_code}' -X "$1" -H "Authorization: Bearer $TOKEN")
    if [[ $# -ge 3 ]]; then
        args+=(-H 'Content-Type: application/json' --data-binary @-)
    fi
    API_CODE=000
    out=$(curl "${args[@]}" "http://$ADMIN$2" <<<"${3:-}") || return 1
    API_CODE=${out##*$'\n'}
    printf '%s\n' "${out%$'\n'*}"
    [[ $API_CODE == 2* ]]
}

# upsert KIND NAME BODY: create, or replace when it exists; waits until the data planes applied it.
upsert() {
    local kind=$1 name=$2 body=$3 out
    if api GET "/api/v1/$kind/$name" >/dev/null; then
        out=$(api PUT "/api/v1/$kind/$name?wait=applied" "$body") || die "PUT $kind/$name failed ($API_CODE): $out"
    elif [[ $API_CODE == 404 ]]; then
        out=$(api POST "/api/v1/$kind?wait=applied" "$body") || die "POST $kind failed ($API_CODE): $out"
    else
        die "GET $kind/$name failed ($API_CODE)"
    fi
    "$PY" -c 'import json,sys; a=json.load(sys.stdin).get("applied") or {}; sys.exit(0 if a.get("settled") else 1)' \
        <<<"$out" || die "$kind $name was not applied by the data plane: $out"
}

if [[ ${1:-} == stop ]]; then
    mkdir -p "$RUN"
    stop_all
    exit 0
elif [[ -n ${1:-} ]]; then
    die "usage: bash scripts/demo.sh [stop]"
fi

# ---- deps and release build ----
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j2
for b in cephalo-controlplane cephalo-dataplane; do
    [[ -x build/bin/$b ]] || die "build/bin/$b was not built"
done

# ---- clean restart ----
mkdir -p "$VAR" "$RUN" "$LOG"
chmod 0700 "$VAR"
stop_all
for hp in $ADMIN $AUTH $UPSTREAM $LISTEN $STATUS; do
    port_free "$hp" || die "$hp is already in use by another program; free it and re-run"
done

if [[ ! -s $VAR/admin.token ]]; then
    (umask 077 && openssl rand -hex 24 >"$VAR/admin.token")
fi
chmod 0600 "$VAR/admin.token"
TOKEN=$(cat "$VAR/admin.token")
if [[ ! -s $VAR/demo.password ]]; then
    (umask 077 && openssl rand -hex 16 >"$VAR/demo.password")
fi
chmod 0600 "$VAR/demo.password"
DEMO_PASSWORD=$(cat "$VAR/demo.password")
if [[ ! -s $VAR/admin.password ]]; then
    (umask 077 && openssl rand -hex 16 >"$VAR/admin.password")
fi
chmod 0600 "$VAR/admin.password"
ADMIN_PASSWORD=$(cat "$VAR/admin.password")

start upstream "$PY" tests/upstream/demo_upstream.py --listen "$UPSTREAM"
CEPHALO_ADMIN_TOKEN=$TOKEN CEPHALO_ADMIN_PASSWORD=$ADMIN_PASSWORD start controlplane build/bin/cephalo-controlplane --data-dir var/cp --admin-listen "$ADMIN" \
    --auth-listen "$AUTH" --migrations "$ROOT/migrations"
wait_http "http://$ADMIN/health" controlplane
wait_http "http://$UPSTREAM/health" upstream
start dataplane build/bin/cephalo-dataplane --cp-socket var/cp/run/cp.sock --listen "$LISTEN" \
    --status-listen "$STATUS" --state-dir var/dp
wait_http "http://$STATUS/health" dataplane

# ?wait=applied only waits for connected data planes: wait until ours is listed as connected.
for i in $(seq 1 200); do
    if api GET /api/v1/dataplanes | "$PY" -c \
        'import json,sys; sys.exit(0 if any(d.get("connected") for d in json.load(sys.stdin)["data"]) else 1)'; then
        break
    fi
    [[ $i == 200 ]] && die "the data plane did not connect to the control plane (logs: var/log/)"
    sleep 0.1
done

upsert services demo "{\"name\":\"demo\",\"targets\":[{\"url\":\"http://$UPSTREAM\"}],\"timeout_ms\":10000}"
upsert routes demo '{"name":"demo","service":"demo","paths":["/demo"],"strip_prefix":true,"default_access":"public"}'
# identity: a system, a role, a user holding it, and a route that needs a login
upsert systems demo '{"code":"demo","name":"Demo"}'
upsert roles demo:user '{"system":"demo","name":"user"}'
upsert users demo "{\"username\":\"demo\",\"password\":\"$DEMO_PASSWORD\",\"systems\":[\"demo\"],\
\"roles\":[{\"system\":\"demo\",\"name\":\"user\"}]}"
upsert routes private \
    '{"name":"private","service":"demo","paths":["/private"],"strip_prefix":true,"default_access":"authenticated"}'

CURL_LINE="curl -s http://$LISTEN/demo/hello"
out=$($CURL_LINE -w '\n%{http_code}' --max-time 5) || die "the demo request failed: $CURL_LINE"
[[ ${out##*$'\n'} == 200 ]] || die "the demo request answered ${out##*$'\n'}: ${out%$'\n'*}"

# /private: 401 without a token; log in through the data plane's /auth/login, then 200 with the access token
LOGIN_BODY='{"username":"demo","password":"'"$DEMO_PASSWORD"'","system":"demo"}'
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://$LISTEN/private/hello" || true)
[[ $code == 401 ]] || die "/private without a token answered $code (want 401)"
out=$(curl -s --max-time 15 -X POST -H 'Content-Type: application/json' --data-binary @- "http://$LISTEN/auth/login" \
    <<<"$LOGIN_BODY") || die "the login request failed"
ACCESS=$("$PY" -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' <<<"$out" 2>/dev/null) ||
    die "the demo user could not log in: $out"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Authorization: Bearer $ACCESS" \
    "http://$LISTEN/private/hello" || true)
[[ $code == 200 ]] || die "/private with the demo user's token answered $code (want 200)"

cat <<EOF

Cephalo is running (logs in var/log/, pids in var/run/).
  admin API:    http://$ADMIN/api/v1   (health: http://$ADMIN/health)
  admin token:  $TOKEN   (also in var/admin.token)
  admin page:   http://$ADMIN/   (user "admin", password $ADMIN_PASSWORD - also in var/admin.password)
  try it:       $CURL_LINE
  log in:       curl -s -X POST http://$LISTEN/auth/login -H 'Content-Type: application/json' \\
                  -d '{"username":"demo","password":"'"\$(cat var/demo.password)"'","system":"demo"}'
                (user "demo", system "demo"; the password is in var/demo.password)
  with a token: curl -s -H "Authorization: Bearer <access_token>" http://$LISTEN/private/hello   (401 without)
  public keys:  curl -s http://$LISTEN/auth/.well-known/jwks.json
  admin call:   curl -s -H "Authorization: Bearer \$(cat var/admin.token)" http://$ADMIN/api/v1/routes
  data plane:   http://$LISTEN  (status: http://$STATUS/metrics)
  stop:         bash scripts/demo.sh stop
ready
EOF
