"""99: the secret-leak check over the whole e2e run (runs last: files are collected in name order).

Every log file the run's processes wrote (cephalo.RUN_LOGS: each Proc's stdout/stderr, plus every *.log under the
session's temp dirs: access logs, nginx error logs) must contain none of the secrets the tests remembered
(cephalo.remember_secret), no `Bearer <JWT>` and no Vault token (hvs./hvb./hvr.); every line a daemon wrote to stderr
is a JSON object with ts, level, module and msg. Checks what ran: with no log at all it is skipped.
"""
import json
import os
import re

import pytest

import cephalo

JWT_BEARER = re.compile(r"Bearer\s+[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
VAULT_TOKEN = re.compile(r"\bhv[sbr]\.[A-Za-z0-9_-]{20,}")


def log_files(basetemp):
    files = {}
    for out, err, daemon in cephalo.RUN_LOGS:
        files[out] = False
        files[err] = daemon
    for root, _, names in os.walk(basetemp):
        for n in names:
            path = os.path.join(root, n)
            if n.endswith(".log") and path not in files:
                files[path] = False
    return {p: d for p, d in files.items() if os.path.isfile(p)}


def read(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def leaks(text, secrets):
    found = [f"remembered secret {s[:6]}..." for s in secrets if s in text]
    found += [f"a Bearer JWT {m.group(0)[:20]}..." for m in JWT_BEARER.finditer(text)]
    found += [f"a Vault token {m.group(0)[:8]}..." for m in VAULT_TOKEN.finditer(text)]
    return found


# Lines a daemon's stderr may hold that are not its JSON log: a command-line error, printed as plain text by the
# flag parser before logging starts (the process then exits 2, like any Unix tool), and libh2o 2.2.5's own fprintf
# for an HTTP/2 frame type it does not know (hostile-traffic tests send one).
NOT_LOG = re.compile(r"^cephalo-(controlplane|dataplane): |^skipping frame \(type:\d+\)$")


def bad_daemon_lines(text):
    bad = []
    in_lsan = False  # LeakSanitizer's "Suppressions used:" summary (between dash rules) is the runtime's, not ours
    for i, line in enumerate(text.splitlines(), 1):
        if len(line) >= 20 and set(line) == {"-"}:
            in_lsan = not in_lsan
            continue
        if not line.strip() or in_lsan or NOT_LOG.match(line):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            bad.append((i, line[:160]))
            continue
        if not isinstance(obj, dict) or not all(isinstance(obj.get(k), str) for k in ("ts", "level", "module", "msg")):
            bad.append((i, line[:160]))
    return bad


def test_checker_can_fail():
    assert leaks("x Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl y", set())
    assert leaks("token hvs.0123456789abcdef0123456789", set())
    assert leaks("pw alice-password-1 here", {"alice-password-1"})
    assert not leaks('{"msg":"login ok for user 3"}', {"alice-password-1"})
    assert bad_daemon_lines('{"ts":"t","level":"info","module":"m","msg":"x"}\nplain text\n') == [(2, "plain text")]
    assert bad_daemon_lines("-" * 53 + "\nSuppressions used:\n" + "-" * 53 + "\n") == []
    assert bad_daemon_lines("cephalo-dataplane: bad value for --workers\nskipping frame (type:153)\n") == []
    assert bad_daemon_lines("warning: cephalo-dataplane: x\n") == [(1, "warning: cephalo-dataplane: x")]


def test_no_secret_in_any_log(tmp_path_factory):
    files = log_files(str(tmp_path_factory.getbasetemp()))
    if not files:
        pytest.skip("no e2e test ran before this one: no logs to check")
    secrets = set(cephalo.SECRETS)
    problems = []
    for path, daemon in sorted(files.items()):
        text = read(path)
        problems += [f"{path}: {what}" for what in leaks(text, secrets)]
        if daemon:
            problems += [f"{path}:{i}: not a JSON log line with ts/level/module/msg: {ln!r}"
                         for i, ln in bad_daemon_lines(text)[:5]]
    assert not problems, f"{len(problems)} problem(s) in {len(files)} log files:\n" + "\n".join(problems[:60])
