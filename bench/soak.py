#!/usr/bin/env python3
"""make soak (and the last part of make bench): steady issue/renew/revoke with injected faults.

For SOAK_MINUTES (20; quick 3) the soak issues keys at SOAK_RATE per second (2) through a real
OpenBao dev server and a real LiteLLM, renews some, revokes most after a few seconds and lets the
rest expire on a short TTL. Every SOAK_FAULT_EVERY seconds (240; quick 50) it injects a fault, in
turn: a plugin reload (`sys/plugins/reload/backend`), a LiteLLM restart (through the project's
harness, e2e/litellm/harness.sh, when it runs the proxy; otherwise a SIGKILL of the plugin
process takes its turn), and a SIGKILL of the plugin process (the server restarts it).

It reports, as rows of bench/RESULTS.md (section "Soak"; quick mode only prints them):
  * plugin RSS and open file descriptors at the start and at the end (the process alive at the
    end, after the same warm-up as the first), and the largest seen;
  * errors: every failed call with the fault it falls into (from the fault's start until the
    system answered again plus a grace of SOAK_GRACE seconds, 30); a failure outside any fault
    window is an error of the engine, and fails the soak;
  * orphans: after revoking what is left and waiting for the leases that expire, the LiteLLM keys
    of this soak's alias prefix (must be 0) and the records in `LIST keys/` (must be 0).

Needs LITELLM_URL, LITELLM_MASTER_KEY and BAO_BIN (run through e2e/run-with-stack.sh).
"""

import os
import random
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the shared helpers: Bao, http, rss_kb, direct calls)

QUICK = bench.QUICK
MINUTES = float(os.environ.get("SOAK_MINUTES", "3" if QUICK else "20"))
RATE = float(os.environ.get("SOAK_RATE", "2"))
FAULT_EVERY = float(os.environ.get("SOAK_FAULT_EVERY", "50" if QUICK else "240"))
GRACE = float(os.environ.get("SOAK_GRACE", "30"))
SHORT_TTL = 20  # seconds: the leases left to expire
LAB = os.environ.get("LITELLM_LAB", "/tmp/vault-plugin-litellm-lab")
HARNESS = f"{bench.REPO}/e2e/litellm/harness.sh"
MARK_START, MARK_END = "<!-- soak:start -->", "<!-- soak:end -->"
WARMUP = 10 if QUICK else 30  # seconds of a plugin process's life before its first sample


def log(msg):
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def harness_env():
    """The environment that reaches the harness's proxy, or None when it does not run the proxy."""
    port = bench.LITELLM.rsplit(":", 1)[-1].split("/")[0]
    pid_file = f"{LAB}/proxy/litellm.pid"
    try:
        pid = int(open(pid_file).read().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return {**os.environ, "LITELLM_LAB": LAB, "LITELLM_PORT": port,
            "LITELLM_PGPORT": os.environ.get("LITELLM_PGPORT", "55432")}


class Soak:
    def __init__(self, bao):
        self.bao = bao
        self.prefix = f"soak{os.getpid()}"
        self.live = []  # (lease_id, revoke_at)
        self.errors = []  # (time, what, detail)
        self.windows = []  # [fault, start, end or None]
        self.calls = 0
        self.issued = 0
        self.renewed = 0
        self.revoked = 0
        self.max_rss = 0
        # Per plugin process: (first seen, RSS and fds of its first sample after the warm-up,
        # of its last sample): a leak shows within one process, whose life faults end.
        self.processes = {}
        self.max_fds = 0
        self.proxy_restart = None

    def pid(self):
        pids = self.bao.plugin_pids()
        return pids[0] if pids else None

    def call(self, what, method, path, body=None):
        self.calls += 1
        try:
            status, out = self.bao.call(method, path, body, timeout=60)
        except OSError as e:
            status, out = 0, str(e)
        if status >= 300 or status == 0:
            self.errors.append((time.monotonic(), what, f"HTTP {status} {str(out)[:200]}"))
            return None
        return out if out is not None else {}

    def step(self, now):
        if random.random() < 0.2:
            # Left to expire: the server revokes it when its TTL ends.
            if self.call("issue", "PUT", "litellm/creds/soak", {"ttl": f"{SHORT_TTL}s"}) is not None:
                self.issued += 1
        else:
            out = self.call("issue", "GET", "litellm/creds/soak")
            if out is not None:
                self.issued += 1
                self.live.append((out["lease_id"], now + random.uniform(3, 15)))
        if self.live and random.random() < 0.3:
            lease, _ = random.choice(self.live)
            if self.call("renew", "PUT", "sys/leases/renew", {"lease_id": lease, "increment": "10m"}) is not None:
                self.renewed += 1
        due = [entry for entry in self.live if entry[1] <= now]
        for entry in due:
            if self.call("revoke", "PUT", "sys/leases/revoke", {"lease_id": entry[0]}) is not None:
                self.revoked += 1
                self.live.remove(entry)
        pid = self.pid()
        if pid:
            try:
                rss, fds = bench.rss_kb(pid)["VmRSS"], fd_count(pid)
                self.max_rss = max(self.max_rss, rss)
                self.max_fds = max(self.max_fds, fds)
                seen = self.processes.setdefault(pid, {"since": now, "first": None, "last": None})
                if now - seen["since"] >= WARMUP:
                    if seen["first"] is None:
                        seen["first"] = (now, rss, fds)
                        log(f"plugin pid {pid}: RSS {rss / 1024:.1f} MB, {fds} fds")
                    seen["last"] = (now, rss, fds)
            except OSError:
                pass

    def healthy(self):
        status, _ = self.bao.call("GET", "litellm/roles/soak", timeout=10)
        try:
            return status == 200 and bench.http("GET", f"{bench.LITELLM}/health/liveliness", timeout=5)[0] == 200
        except OSError:
            return False

    def inject(self, fault):
        start = time.monotonic()
        self.windows.append([fault, start, None])
        log(f"fault: {fault}")
        if fault == "plugin reload":
            self.call("fault", "PUT", "sys/plugins/reload/backend", {"plugin": "litellm"})
        elif fault == "LiteLLM restart":
            env = harness_env()
            subprocess.run(["bash", HARNESS, "down", "proxy"], env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # The proxy is down while the soak goes on (errors expected), then comes back.
            self.proxy_restart = subprocess.Popen(["bash", HARNESS, "up"], env=env,
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:
            pid = self.pid()
            if pid:
                os.kill(pid, signal.SIGKILL)

    def settle_windows(self):
        """Closes a fault window once the system answers again (plus the grace)."""
        for window in self.windows:
            if window[2] is None and self.proxy_restart is not None:
                if self.proxy_restart.poll() is None:
                    return
                self.proxy_restart = None
            if window[2] is None and self.healthy():
                window[2] = time.monotonic() + GRACE

    def fault_of(self, t):
        for fault, start, end in self.windows:
            if start <= t and (end is None or t <= end):
                return fault
        return None


def main():
    binary = os.environ.get("BENCH_BINARY") or bench.build()
    bao = bench.Bao(binary)
    try:
        rows = run(bao)
    finally:
        bao.stop()
    write(rows)
    failed = [r for r in rows if r[3].startswith("NOT met")]
    if failed:
        sys.exit("soak: NOT met: " + "; ".join(r[1] for r in failed))


def run(bao):
    version = bao.register()
    bao.ok("POST", "sys/mounts/litellm", {"type": "litellm", "plugin_version": version})
    bao.ok("PUT", "litellm/config", {"base_url": bench.LITELLM, "master_key": bench.MASTER, "request_timeout": "10s"})
    soak = Soak(bao)
    bao.ok("PUT", "litellm/roles/soak", {"models": [bench.MODEL], "ttl": "5m", "key_alias_prefix": soak.prefix})
    faults = ["plugin reload", "LiteLLM restart" if harness_env() else "plugin kill", "plugin kill"]
    if not harness_env():
        log("LiteLLM is not run by the project's harness here: its restart is replaced by a plugin kill")
    log(f"{MINUTES:g} min at {RATE:g} issues/s, a fault every {FAULT_EVERY:g}s: {', '.join(faults)}")
    start = time.monotonic()
    end = start + MINUTES * 60
    next_fault = start + FAULT_EVERY
    fault_index = 0
    while time.monotonic() < end:
        now = time.monotonic()
        soak.step(now)
        soak.settle_windows()
        if now >= next_fault and now < end - 2 * GRACE:
            soak.inject(faults[fault_index % len(faults)])
            fault_index += 1
            next_fault = now + FAULT_EVERY
        time.sleep(max(0.0, 1 / RATE - (time.monotonic() - now)))

    log("settling: the last faults end, the rest is revoked, short leases expire")
    deadline = time.monotonic() + 180
    while any(w[2] is None for w in soak.windows) and time.monotonic() < deadline:
        soak.settle_windows()
        time.sleep(1)
    for lease, _ in list(soak.live):
        if soak.call("revoke", "PUT", "sys/leases/revoke", {"lease_id": lease}) is not None:
            soak.revoked += 1
            soak.live.remove((lease, _))
    # Expired leases and revocations the server retries after a fault.
    deadline = time.monotonic() + SHORT_TTL + 240
    left = None
    while time.monotonic() < deadline:
        left = bench.live_keys_with_alias(soak.prefix)
        if left == 0 and bao.lease_count("litellm/creds/soak/") == 0:
            break
        time.sleep(5)
    status, listing = bao.call("LIST", "litellm/keys", timeout=60)
    records = 0 if status == 404 else len(listing["data"]["keys"])
    leases = bao.lease_count("litellm/creds/soak/")

    engine_errors = [(t, what, detail) for t, what, detail in soak.errors if soak.fault_of(t) is None]
    by_fault = {}
    for t, what, _ in soak.errors:
        fault = soak.fault_of(t)
        if fault:
            by_fault[fault] = by_fault.get(fault, 0) + 1
    for t, what, detail in engine_errors[:10]:
        log(f"error outside any fault window: {what}: {detail}")

    rows = []
    minutes = f"{MINUTES:g} min"
    rows.append(("soak", f"{minutes} at {RATE:g} issues/s: {soak.issued} issued, {soak.renewed} renewed, "
                 f"{soak.revoked} revoked, the rest expired; {len(soak.windows)} faults "
                 f"({', '.join(w[0] for w in soak.windows)})",
                 f"{soak.calls} calls", ""))
    # Start: the first process's first sample; end: the last process's last one (each taken once
    # the process is WARMUP old, so both after the same warm-up).
    sampled = [p for p in soak.processes.values() if p["first"] and p["last"]]
    first = min((p["first"] for p in sampled), default=None)
    last_sample = max((p["last"] for p in sampled), default=None)
    if first and last_sample:
        rss_ratio = last_sample[1] / first[1]
        rows.append(("soak", "plugin RSS, start -> end (after the same warm-up; pid changes with reloads)",
                     f"{first[1] / 1024:.1f} -> {last_sample[1] / 1024:.1f} MB (max {soak.max_rss / 1024:.1f} MB)",
                     "flat: met" if rss_ratio < 1.25 else f"NOT met: flat ({rss_ratio:.2f}x)"))
        rows.append(("soak", "plugin open file descriptors, start -> end",
                     f"{first[2]} -> {last_sample[2]} (max {soak.max_fds})",
                     "flat: met" if last_sample[2] <= first[2] + 3 else "NOT met: flat"))
    else:
        rows.append(("soak", "plugin RSS and fds", "no sample", "NOT met: no plugin process to sample"))
    if sampled:
        longest = max(sampled, key=lambda p: p["last"][0] - p["first"][0])
        (t0, rss0, fds0), (t1, rss1, fds1) = longest["first"], longest["last"]
        grew = rss1 / rss0
        rows.append(("soak", f"longest-lived plugin process ({(t1 - t0) / 60:.1f} min between samples, "
                     f"{len(soak.processes)} processes in all): RSS, fds first -> last",
                     f"{rss0 / 1024:.1f} -> {rss1 / 1024:.1f} MB, {fds0} -> {fds1}",
                     "flat: met" if grew < 1.25 and fds1 <= fds0 + 3 else f"NOT met: flat ({grew:.2f}x)"))
    rows.append(("soak", "failed calls inside fault windows (by fault)",
                 ", ".join(f"{k}: {v}" for k, v in by_fault.items()) or "0", "expected"))
    rows.append(("soak", "failed calls outside any fault window", str(len(engine_errors)),
                 "0: met" if not engine_errors else "NOT met: 0"))
    rows.append(("soak", "orphans at the end: LiteLLM keys of the soak / leases / inventory records",
                 f"{left} / {leases} / {records}",
                 "0 / 0 / 0: met" if (left, leases, records) == (0, 0, 0) else "NOT met: 0 / 0 / 0"))
    return rows


def write(rows):
    lines = [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    print("\n".join(lines))
    if QUICK:
        print("(BENCH_MODE=quick: bench/RESULTS.md left as it is)")
        return
    section = "\n".join([
        MARK_START,
        "",
        "## Soak",
        "",
        f"Produced by `make soak` (bench/soak.py, also run by `make bench`) on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "| section | measurement | value | target |",
        "|---|---|---|---|",
        *lines,
        "",
        MARK_END,
    ])
    path = f"{bench.REPO}/bench/RESULTS.md"
    text = open(path).read() if os.path.exists(path) else "# Benchmark results\n"
    if MARK_START in text and MARK_END in text:
        before, rest = text.split(MARK_START, 1)
        text = before + section + rest.split(MARK_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with open(path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
