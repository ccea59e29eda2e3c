#!/usr/bin/env python3
"""make bench: how fast and how small the engine is, against real OpenBao + real LiteLLM.

Every number is measured in the same run as its baseline:
  * overhead:   `read litellm/creds/<role>` through OpenBao vs. a direct LiteLLM `/key/generate`,
                and vs. a plain KV read through the same server (the server's own floor);
  * throughput: keys/s at concurrency 1, 8, 32 vs. direct `/key/generate` at the same concurrency;
                revoke-prefix of 1,000 leases, queued (the CLI's default: concurrent revokes, which
                the plugin batches) and synchronous (one lease at a time), vs. as many direct
                sequential `/key/delete` calls, and vs. LiteLLM's own best: direct deletes of 100
                keys a call, 4 calls at once;
  * footprint:  exec-to-handshake time, mount time, RSS idle and after 1,000 issues, binary size,
                plugin CPU per issue+revoke pair, and the machine's floor under it (a bare tokio
                round trip on a Unix socket, the SDK's wake_floor example, times the pair's
                context switches);
  * scale:      10,000 live leases on one mount (a server of its own, the plugin logging at debug
                level): issue/revoke latency against an empty mount, split by the plugin's log into
                LiteLLM's time, the engine's own and the rest (the server's), `LIST keys/` through
                all of them and the plugin's peak RSS, queued revoke of all.

`make bench` then runs bench/soak.py (20 minutes with injected faults; its own section of RESULTS.md).

Needs LITELLM_URL, LITELLM_MASTER_KEY and BAO_BIN (run through e2e/run-with-stack.sh; `make bench`).
The plugin measured is the static musl release build (what operators run) when the
x86_64-unknown-linux-musl target and musl-gcc are installed (`make dist` installs both), else the
glibc release build; BENCH_BINARY=<plugin binary> measures that build instead.
Writes bench/RESULTS.md. BENCH_MODE=quick (`make bench-quick`) runs smaller counts for development
and only prints the table. Knobs: BENCH_N (latency samples, default 200; quick 50), BENCH_ISSUES
(1000; quick 200), BENCH_REVOKES (1000; quick 200), BENCH_SCALE (10000; quick 1000).
"""

import base64
import concurrent.futures as cf
import contextlib
import glob
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN_NAME = "vault-plugin-secrets-litellm"
QUICK = os.environ.get("BENCH_MODE", "full") == "quick"
N = int(os.environ.get("BENCH_N", "50" if QUICK else "200"))
ISSUES = int(os.environ.get("BENCH_ISSUES", "200" if QUICK else "1000"))
REVOKES = int(os.environ.get("BENCH_REVOKES", "200" if QUICK else "1000"))
SCALE = int(os.environ.get("BENCH_SCALE", "1000" if QUICK else "10000"))
# Keys per side at concurrency 1, 8 and 32 (four alternating rounds each): LiteLLM's rate is
# noisy on a shared machine, so the full run takes twice as many.
THROUGHPUT_KEYS = {1: 48, 8: 160, 32: 320} if QUICK else {1: 96, 8: 320, 32: 640}
# Alternating rounds per throughput row (each side gets half; counts above divide by it).
ROUNDS = 8
LITELLM = os.environ["LITELLM_URL"].rstrip("/")
MASTER = os.environ["LITELLM_MASTER_KEY"]
BAO = os.environ["BAO_BIN"]
MODEL = "gpt-3.5-turbo"
T0 = time.monotonic()


def log(msg):
    print(f"[bench +{time.monotonic() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def http(method, url, body=None, headers=None, timeout=60):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode(errors="replace")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(samples, p):
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


class Bao:
    def __init__(self, binary, log_level="info"):
        self.dir = tempfile.mkdtemp(prefix="bench-bao-")
        os.makedirs(f"{self.dir}/plugins")
        self.plugin = f"{self.dir}/plugins/{BIN_NAME}"
        shutil.copy(binary, self.plugin)
        with open(f"{self.dir}/config.hcl", "w") as f:
            f.write(f'plugin_directory = "{self.dir}/plugins"\n')
        port = free_port()
        self.addr = f"http://127.0.0.1:{port}"
        self.log = open(f"{self.dir}/server.log", "w")
        self.proc = subprocess.Popen(
            [BAO, "server", "-dev", "-dev-root-token-id=root", f"-dev-listen-address=127.0.0.1:{port}",
             f"-log-level={log_level}",
             f"-config={self.dir}/config.hcl"],
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "HOME": self.dir})
        for _ in range(300):
            try:
                if http("GET", f"{self.addr}/v1/sys/health", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise SystemExit("OpenBao dev server did not start")

    def register(self, env=()):
        """Registers the plugin binary by sha256 as `litellm`; returns the version it reports."""
        sha = subprocess.run(["sha256sum", self.plugin], capture_output=True, text=True).stdout.split()[0]
        version = subprocess.run([self.plugin, "--version"], capture_output=True, text=True).stdout.split()[1]
        self.ok("PUT", "sys/plugins/catalog/secret/litellm",
                {"sha256": sha, "command": BIN_NAME, "version": version, "env": list(env)})
        return version

    def call(self, method, path, body=None, timeout=60):
        return http(method, f"{self.addr}/v1/{path}", body, {"X-Vault-Token": "root"}, timeout)

    def ok(self, method, path, body=None, timeout=60):
        status, out = self.call(method, path, body, timeout)
        if status >= 300:
            raise SystemExit(f"{method} {path}: HTTP {status} {out}")
        return out

    def lease_count(self, prefix):
        status, out = self.call("LIST", f"sys/leases/lookup/{prefix}", None, 60)
        if status == 404:
            return 0
        assert status == 200, out
        return len(out["data"]["keys"])

    def plugin_pids(self):
        return pids_running(self.plugin)

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


def pids_running(binary):
    """The processes whose executable is `binary` (also after it was replaced on disk)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)") == binary:
                pids.append(int(pid))
        except OSError:
            pass
    return pids


def rss_kb(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "VmHWM")):
                k, v = line.split(":")
                out[k] = int(v.split()[0])
    return out


def reset_peak_rss(pid):
    """Starts a new VmHWM for `pid` (Linux: 5 > /proc/<pid>/clear_refs), so that a row's peak is
    its own phase's, not the highest since the plugin started. False where that is refused."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def cpu_seconds(pid):
    """utime + stime of a process, in seconds (from /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def context_switches(pid):
    """Times the process's threads slept and were woken (voluntary) or were preempted, so far."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            total += sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)
    return total


def wake_floor_us():
    """CPU of one bare tokio round trip on a Unix socket pair on this machine (the SDK's
    wake_floor example): what each wake-up costs before TLS, HTTP/2 or gRPC add anything."""
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "vault-plugin-sdk",
                    "--example", "wake_floor"], cwd=REPO, check=True)
    out = subprocess.run([f"{REPO}/target/release/examples/wake_floor"], capture_output=True,
                         text=True, check=True).stdout
    return float(out.strip().split("=", 1)[1])


def machine_busy():
    """Busy CPU seconds of the whole machine so far, all cores (from /proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...: everything but idle and iowait.
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


class CpuSplit:
    """Where the machine's CPU went during some calls: the plugin, the server, this script
    (the load generator) and the rest (LiteLLM, its database, anything else running)."""

    def __init__(self, server_pid, plugin_pid):
        self.pids = {"server": server_pid, "plugin": plugin_pid}
        self.total = {"server": 0.0, "plugin": 0.0, "client": 0.0, "machine": 0.0}

    def measure(self, fn):
        def snap():
            t = os.times()
            return {**{k: cpu_seconds(p) for k, p in self.pids.items()},
                    "client": t.user + t.system, "machine": machine_busy()}
        before = snap()
        result = fn()
        after = snap()
        for k in self.total:
            self.total[k] += after[k] - before[k]
        return result

    def per_item_ms(self, count):
        rest = self.total["machine"] - self.total["server"] - self.total["plugin"] - self.total["client"]
        return {**{k: v / count * 1000 for k, v in self.total.items()}, "rest": max(rest, 0) / count * 1000}


def listening_pid(port):
    """The local process listening on TCP `port` (LiteLLM, when it runs here), else None."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                for line in f.readlines()[1:]:
                    parts = line.split()
                    if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(f"socket:[{parts[9]}]")
        except OSError:
            pass
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return int(pid)
        except OSError:
            pass
    return None


def descendants(pid):
    """`pid` and every process below it."""
    children = {}
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{p}/stat") as f:
                children.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(int(p))
        except OSError:
            pass
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        found.add(p)
        todo += children.get(p, [])
    return found


def litellm_side(litellm_pid):
    """LiteLLM's processes on this machine: the proxy with its children (the Prisma query
    engine) and the Postgres server of its DATABASE_URL with its backends."""
    pids = descendants(litellm_pid)
    try:
        with open(f"/proc/{litellm_pid}/environ", "rb") as f:
            env = dict(e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e)
        db = listening_pid(urllib.parse.urlsplit(env[b"DATABASE_URL"].decode()).port or 5432)
        if db:
            pids |= descendants(db)
    except (OSError, KeyError, ValueError):
        pass
    return pids


@contextlib.contextmanager
def cores_apart(litellm_pids, own_pids):
    """LiteLLM's side on CPU 0, ours (this script, OpenBao, the plugin) on the other CPUs,
    every thread of each; the threads' affinities are restored afterwards."""
    saved = {}

    def place(pids, cpus):
        for pid in pids:
            try:
                for tid in map(int, os.listdir(f"/proc/{pid}/task")):
                    saved.setdefault(tid, os.sched_getaffinity(tid))
                    os.sched_setaffinity(tid, cpus)
            except OSError:
                pass  # a backend or thread that ended meanwhile

    place(litellm_pids, {0})
    place(own_pids, set(range(1, os.cpu_count())))
    try:
        yield
    finally:
        for tid, cpus in saved.items():
            try:
                os.sched_setaffinity(tid, cpus)
            except OSError:
                pass


def direct_generate(alias):
    # The same body the engine sends, so LiteLLM does the same work.
    body = {"key": f"sk-{secrets.token_hex(16)}", "key_alias": alias, "duration": "3630s", "models": [MODEL], "key_type": "llm_api",
            "metadata": {"vault_role": "bench", "vault_request_id": "00000000-0000-0000-0000-000000000000",
                         "vault_mount": "litellm/", "vault_display_name": "token",
                         "vault_mount_id": "0123456789abcdef0123456789abcdef",
                         "created_by": "vault-plugin-secrets-litellm"}}
    t = time.perf_counter()
    status, out = http("POST", f"{LITELLM}/key/generate", body, {"Authorization": f"Bearer {MASTER}"})
    dt = time.perf_counter() - t
    assert status == 200, out
    return dt, out["token"]


def live_keys_with_alias(prefix):
    """Keys LiteLLM still holds whose alias starts with `prefix` (paged)."""
    count, page = 0, 1
    while True:
        q = urllib.parse.urlencode({"page": page, "size": 100, "key_alias": prefix, "substring_matching": "true",
                                    "return_full_object": "true"})
        status, out = http("GET", f"{LITELLM}/key/list?{q}", None, {"Authorization": f"Bearer {MASTER}"})
        assert status == 200, out
        keys = out.get("keys", [])
        count += sum(1 for k in keys if (k.get("key_alias") or "").startswith(prefix))
        if len(keys) < 100:
            return count
        page += 1


def direct_delete(*tokens):
    t = time.perf_counter()
    status, out = http("POST", f"{LITELLM}/key/delete", {"keys": list(tokens)}, {"Authorization": f"Bearer {MASTER}"})
    assert status == 200, out
    return time.perf_counter() - t


# The engine's delete batches (src/litellm/batch.rs): up to 100 keys a call, 4 calls in flight.
BATCH, BATCHES_AT_ONCE = 100, 4


def direct_batched_delete_rate():
    """Keys/s of LiteLLM's own batched deletes (the ceiling of any batching client): REVOKES fresh
    direct keys, deleted BATCH a call with BATCHES_AT_ONCE calls in flight."""
    log(f"{REVOKES} direct keys for LiteLLM's own batched deletes")
    _, tokens = timed_parallel(lambda i: direct_generate(f"bench-bdel-{os.getpid()}-{i}")[1], REVOKES, 8)
    chunks = [tokens[i:i + BATCH] for i in range(0, len(tokens), BATCH)]
    wall, _ = timed_parallel(lambda i: direct_delete(*chunks[i]), len(chunks), BATCHES_AT_ONCE)
    return len(tokens) / wall


def handshake_times(binary, runs=20):
    """Exec to handshake line, with the environment a server gives a plugin."""
    d = tempfile.mkdtemp(prefix="bench-cert-")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-521",
                    "-nodes", "-keyout", f"{d}/k.pem", "-out", f"{d}/c.pem", "-days", "1", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
    env = {**os.environ, "VAULT_BACKEND_PLUGIN": "6669da05-b1c8-4f49-97d9-c8e5bed98e20",
           "PLUGIN_PROTOCOL_VERSIONS": "5", "PLUGIN_CLIENT_CERT": open(f"{d}/c.pem").read(), "TMPDIR": d}
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        p = subprocess.Popen([binary], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        line = p.stdout.readline()
        times.append(time.perf_counter() - t)
        assert line.startswith(b"1|5|unix|"), line
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=5)
    leftover = [f for f in os.listdir(d) if f.startswith("plugin")]
    shutil.rmtree(d, ignore_errors=True)
    return times, leftover, cert_key_type(line)


def cert_key_type(handshake_line):
    """Key type and signature of the certificate in a handshake line, e.g. "ECDSA P-256 (ecdsa-with-SHA256)"."""
    b64 = handshake_line.strip().split(b"|")[5]
    der = base64.b64decode(b64 + b"=" * (-len(b64) % 4))
    text = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-text"], input=der,
                          capture_output=True, check=True).stdout.decode()
    field = lambda name: next((l.split(":", 1)[1].strip() for l in text.splitlines() if l.strip().startswith(name)), "?")
    alg, curve, sig = field("Public Key Algorithm"), field("NIST CURVE"), field("Signature Algorithm")
    kind = f"ECDSA {curve}" if alg == "id-ecPublicKey" else alg
    return f"{kind} ({sig})"


def timed_parallel(fn, count, concurrency):
    t = time.perf_counter()
    with cf.ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(fn, range(count)))
    return time.perf_counter() - t, results


MUSL = "x86_64-unknown-linux-musl"
BUILD = "glibc"


def build():
    """The binary operators run: the static musl release build (the dist recipe's target), or the
    glibc release build where the musl target is not installed."""
    global BUILD
    targets = subprocess.run(["rustup", "target", "list", "--installed"], capture_output=True, text=True).stdout
    if MUSL in targets.split() and shutil.which("musl-gcc"):
        log(f"release build ({MUSL}, as shipped)")
        subprocess.run(["cargo", "build", "--release", "--quiet", "--target", MUSL], cwd=REPO, check=True)
        BUILD = "static musl (as shipped)"
        return f"{REPO}/target/{MUSL}/release/{BIN_NAME}"
    log("release build (glibc: the musl target is not installed)")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO, check=True)
    return f"{REPO}/target/release/{BIN_NAME}"


def main():
    global T0
    T0 = time.monotonic()
    global BUILD
    binary = os.environ.get("BENCH_BINARY")
    if binary:
        BUILD = f"BENCH_BINARY={binary}"
    else:
        binary = build()
    rows = []

    def row(section, what, value, baseline="", ratio=""):
        rows.append((section, what, value, baseline, ratio))
        log(f"{section} | {what} | {value} | {baseline} | {ratio}")

    size = os.path.getsize(binary)
    row("footprint", f"release binary size (stripped, {BUILD})", f"{size / 1e6:.1f} MB")
    musl = next(iter(sorted(glob.glob(f"{REPO}/dist/{BIN_NAME}_*_linux_amd64"))), "")
    if musl:
        musl_mb = os.path.getsize(musl) / 1e6
        row("footprint", "static musl binary size (amd64, stripped)", f"{musl_mb:.1f} MB", "target < 15 MB",
            "met" if musl_mb < 15 else "NOT met")

    hs, leftover, key_type = handshake_times(binary)
    hs_ms = statistics.median(hs) * 1000
    row("footprint", f"exec to handshake line (median of 20; then SIGTERM); identity {key_type}",
        f"{hs_ms:.1f} ms (p95 {pct(hs, 95) * 1000:.1f} ms)", f"{len(leftover)} sockets left behind",
        "target < 20 ms: " + ("met" if hs_ms < 20 else "NOT met"))

    bao = Bao(binary)
    try:
        run(bao, row)
    finally:
        bao.stop()
    plugin_time(binary, row)
    # Its own server, logging at debug level: the plugin's log splits the latency into LiteLLM's,
    # the engine's own and (the rest) the server's.
    bao = debug_server(binary, "scale", f"benchscale{os.getpid()}", ttl="2h")
    try:
        scale(bao, row, bao.plugin_pids()[0])
    finally:
        bao.stop()

    write_results(rows)


def plugin_log_samples(bao, start=0):
    """Per issue and per revoke since byte `start` of the server log of a plugin logging at debug
    level: (server calls, the handler's ms, LiteLLM's ms meanwhile). "request handled" carries
    host_calls and elapsed_us (the handler's time), "LiteLLM answered" the elapsed_us of each
    LiteLLM call made meanwhile."""
    issue, revoke = [], []
    litellm_us = 0
    with open(f"{bao.dir}/server.log") as f:
        f.seek(start)
        for line in f:
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            if "LiteLLM answered" in line and "elapsed_us" in fields:
                litellm_us += int(fields["elapsed_us"])
                continue
            if "request handled" not in line or "host_calls" not in fields:
                continue
            sample = (int(fields["host_calls"]), int(fields.get("elapsed_us", 0)) / 1000, litellm_us / 1000)
            litellm_us = 0
            if fields.get("operation") == "read" and fields.get("path", "").startswith("creds/"):
                issue.append(sample)
            elif fields.get("operation") == "revoke":
                revoke.append(sample)
    return issue, revoke


def engine_own_ms(samples):
    """Median of the handler's time minus LiteLLM's: the engine's own (its server calls included)."""
    return statistics.median(s[1] - s[2] for s in samples) if samples else float("nan")


def debug_server(binary, role, prefix, ttl="1h"):
    """A server of its own whose plugin logs at debug level, mounted, configured, with `role`."""
    bao = Bao(binary, log_level="debug")
    version = bao.register(env=["PLUGIN_LOG_LEVEL=debug"])
    bao.ok("POST", "sys/mounts/litellm", {"type": "litellm", "plugin_version": version})
    bao.ok("PUT", "litellm/config", {"base_url": LITELLM, "master_key": MASTER})
    bao.ok("PUT", f"litellm/roles/{role}", {"models": [MODEL], "ttl": ttl, "key_alias_prefix": prefix})
    return bao


def plugin_time(binary, row, pairs=20):
    """Calls to the server and time inside the plugin per issue and per revoke, from the plugin's
    debug log on a server of its own."""
    bao = debug_server(binary, "calls", f"calls{os.getpid()}")
    try:
        for _ in range(pairs):
            lease = bao.ok("GET", "litellm/creds/calls")["lease_id"]
            bao.ok("PUT", "sys/leases/revoke", {"lease_id": lease})
        time.sleep(1)
        issue, revoke = plugin_log_samples(bao)
    finally:
        bao.stop()
    if not issue or not revoke:
        row("overhead", "server calls per issue / per revoke (the plugin's count)", "not found in the debug log",
            "", "")
        return
    med = lambda samples, i: statistics.median(s[i] for s in samples)
    row("overhead", f"server calls per issue / per revoke (the plugin's count, median of {len(issue)} / {len(revoke)})",
        f"{med(issue, 0):g} / {med(revoke, 0):g}", "", "")
    row("overhead", f"inside the plugin per issue (median of {len(issue)}): handler, of which LiteLLM's "
        "/key/generate; the rest is the engine's own (its server calls)",
        f"{med(issue, 1):.2f} ms, LiteLLM {med(issue, 2):.2f} ms", f"engine's own {engine_own_ms(issue):.2f} ms", "")


def run(bao, row):
    version = bao.register()
    t = time.perf_counter()
    bao.ok("POST", "sys/mounts/litellm", {"type": "litellm", "plugin_version": version})
    mount = time.perf_counter() - t
    bao.ok("POST", "sys/mounts/kv", {"type": "kv"})
    bao.ok("PUT", "kv/floor", {"v": "x"})
    pid = bao.plugin_pids()[0]
    row("footprint", "mount (POST sys/mounts, spawn to ready)", f"{mount * 1000:.0f} ms")
    idle = rss_kb(pid)
    row("footprint", "plugin RSS idle after mount", f"{idle['VmRSS'] / 1024:.1f} MB")

    bao.ok("PUT", "litellm/config", {"base_url": LITELLM, "master_key": MASTER})
    bao.ok("PUT", "litellm/roles/bench", {"models": [MODEL], "ttl": "1h", "key_alias_prefix": "bench"})
    for _ in range(5):
        bao.ok("GET", "litellm/creds/bench")

    log(f"latency: {N} interleaved samples of each")
    creds, generate, floor, plugin_read, tokens = [], [], [], [], []
    for i in range(N):
        dt, token = direct_generate(f"bench-direct-{os.getpid()}-{i}")
        generate.append(dt)
        tokens.append(token)
        t = time.perf_counter()
        bao.ok("GET", "litellm/creds/bench")
        creds.append(time.perf_counter() - t)
        t = time.perf_counter()
        bao.ok("GET", "kv/floor")
        floor.append(time.perf_counter() - t)
        t = time.perf_counter()
        bao.ok("GET", "litellm/roles/bench")
        plugin_read.append(time.perf_counter() - t)
    med = {k: statistics.median(v) * 1000
           for k, v in (("creds", creds), ("gen", generate), ("floor", floor), ("read", plugin_read))}
    row("overhead", "read creds via OpenBao (median / p95)", f"{med['creds']:.1f} / {pct(creds, 95) * 1000:.1f} ms",
        f"direct /key/generate {med['gen']:.1f} / {pct(generate, 95) * 1000:.1f} ms", f"{med['creds'] / med['gen']:.2f}x")
    row("overhead", "OpenBao floor: KV read (median / p95)", f"{med['floor']:.2f} / {pct(floor, 95) * 1000:.2f} ms")
    row("overhead", "plugin round trip: read roles/<name> (median / p95)",
        f"{med['read']:.2f} / {pct(plugin_read, 95) * 1000:.2f} ms", f"KV read {med['floor']:.2f} ms",
        f"+{med['read'] - med['floor']:.2f} ms")
    # Paired per sample (the calls of one iteration run back to back), so drift in
    # LiteLLM's latency cancels out. The issue's method subtracts the server's floor for a
    # plugin-served read (HTTP, routing, one gRPC call to the plugin and one storage read);
    # against the KV floor instead it also counts that gRPC call: an upper bound. Both still
    # count the server's own lease bookkeeping for creds.
    added = statistics.median(c - g - r for c, g, r in zip(creds, generate, plugin_read)) * 1000
    row("overhead", "engine's added latency (median of creds - generate - plugin read, paired)", f"{added:.2f} ms",
        "target < 1 ms", "met" if added < 1 else "NOT met")
    upper = statistics.median(c - g - f for c, g, f in zip(creds, generate, floor)) * 1000
    row("overhead", "the same against the KV floor (creds - generate - KV read, paired: upper bound)",
        f"{upper:.2f} ms")

    for c in (1, 8, 32):
        count = THROUGHPUT_KEYS[c]
        split = {"direct": CpuSplit(bao.proc.pid, pid), "bao": CpuSplit(bao.proc.pid, pid)}
        walls = alternating_rounds(bao, c, count, "tp", tokens, lambda side, fn: split[side].measure(fn))
        direct_wall, bao_wall = walls["direct"], walls["bao"]
        row("throughput", f"keys/s at concurrency {c} ({count} keys)", f"{count / bao_wall:.1f}/s",
            f"direct generate {count / direct_wall:.1f}/s", f"{direct_wall / bao_wall:.2f}x")
        # Where the CPU went: with every core busy, the server's and the plugin's CPU is taken
        # from LiteLLM, so the engine side can only reach rest / (rest + server + plugin) of
        # the direct rate; the plugin's part of that is the engine's own.
        eng, dirc = split["bao"].per_item_ms(count), split["direct"].per_item_ms(count)
        eng_total = eng["plugin"] + eng["server"] + eng["rest"]
        cores = os.cpu_count()
        row("throughput", f"CPU per key at concurrency {c}: plugin / server / LiteLLM and the rest "
            f"(machine busy, of {cores} cores)",
            f"{eng['plugin']:.2f} / {eng['server']:.2f} / {eng['rest']:.1f} ms "
            f"({split['bao'].total['machine'] / bao_wall / cores:.0%})",
            f"direct: LiteLLM and the rest {dirc['rest']:.1f} ms "
            f"({split['direct'].total['machine'] / direct_wall / cores:.0%})",
            f"plugin {eng['plugin'] / eng_total:.0%}, server {eng['server'] / eng_total:.0%} of the CPU")
        if c == 1:
            # One at a time, each creds call also pays the server's floor for any plugin call.
            ceiling = med["gen"] / (med["gen"] + med["read"])
            row("throughput", "ceiling at concurrency 1 for any plugin: generate / (generate + plugin read), "
                "from the latency medians", f"{ceiling:.2f}x", "", "")

    log(f"{ISSUES} more issues for the RSS measurement")
    timed_parallel(lambda i: bao.ok("GET", "litellm/creds/bench"), ISSUES, 8)
    after = rss_kb(pid)
    row("footprint", f"plugin RSS after {ISSUES + 5 + N + sum(THROUGHPUT_KEYS.values())} issues (peak)",
        f"{after['VmRSS'] / 1024:.1f} MB ({after['VmHWM'] / 1024:.1f} MB)", "target < 15 MB",
        "met" if after["VmHWM"] < 15 * 1024 else "NOT met")

    litellm_pid = listening_pid(urllib.parse.urlsplit(LITELLM).port or 80)
    throughput_apart(bao, row, tokens, litellm_pid)

    pairs = 100 if QUICK else 300
    log(f"plugin CPU: {pairs} issue + revoke pairs")
    before, switches = cpu_seconds(pid), context_switches(pid)
    issue_revoke_latency(bao, "bench", pairs)
    per_pair = (cpu_seconds(pid) - before) / pairs * 1000
    wakes_per_pair = (context_switches(pid) - switches) / pairs
    # The transport's floor in the same run: the least any API request to the plugin costs
    # (the server's resolve-path request, then the read, which reads storage once). A pair
    # is 3 requests (resolve-path, read, revoke), 5 storage/system calls (4 for an issue of
    # a role with a TTL, 1 for its revoke) and 2 LiteLLM calls.
    before = cpu_seconds(pid)
    for _ in range(pairs):
        bao.ok("GET", "litellm/roles/bench")
    per_read = (cpu_seconds(pid) - before) / pairs * 1000
    ratio = f"{per_pair / per_read:.1f}x; " if per_read else ""
    row("footprint", f"plugin CPU per issue + revoke pair (utime+stime over {pairs} pairs)",
        f"{per_pair:.2f} ms", f"plugin CPU per read of roles/<name> {per_read:.2f} ms",
        ratio + "target < 0.5 ms: " + ("met" if per_pair < 0.5 else "NOT met"))
    # What the wake-ups alone cost on this machine: each message from the server (requests,
    # host-call answers, the server's HTTP/2 pings) wakes the plugin once.
    floor = wake_floor_us()
    row("footprint", "floor: CPU of one bare tokio round trip on a Unix socket pair (write, sleep in "
        "epoll, wake, read; no TLS, HTTP/2 or gRPC), times the plugin's context switches per pair",
        f"{floor:.1f} us x {wakes_per_pair:.1f} = {floor * wakes_per_pair / 1000:.2f} ms",
        f"plugin CPU per pair {per_pair:.2f} ms",
        f"wake-ups alone {floor * wakes_per_pair / 1000 / per_pair:.0%} of it" if per_pair else "")

    log("clean the keys issued so far (revoke-prefix, not timed)")
    bao.ok("PUT", "sys/leases/revoke-prefix/litellm/creds/bench", timeout=1800)
    bao.ok("PUT", "litellm/roles/rev", {"models": [MODEL], "ttl": "1h", "key_alias_prefix": f"benchrev{os.getpid()}"})
    log(f"{REVOKES} direct keys for the delete baseline")
    while len(tokens) < REVOKES:
        tokens.append(direct_generate(f"bench-del-{os.getpid()}-{len(tokens)}")[1])
    direct_tokens = tokens[:REVOKES]
    t = time.perf_counter()
    for tok in direct_tokens:
        direct_delete(tok)
    direct_wall = time.perf_counter() - t
    direct_rate = len(direct_tokens) / direct_wall
    batched_rate = direct_batched_delete_rate()
    for queued in (True, False):
        log(f"{REVOKES} leases to revoke ({'queued' if queued else 'sync'})")
        timed_parallel(lambda i: bao.ok("GET", "litellm/creds/rev"), REVOKES, 8)
        litellm_cpu = cpu_seconds(litellm_pid) if litellm_pid else 0.0
        peak = "during it" if reset_peak_rss(pid) else "so far"
        t = time.perf_counter()
        bao.ok("PUT", "sys/leases/revoke-prefix/litellm/creds/rev", {"sync": not queued}, timeout=1800)
        # Queued: the call returns at once; done when the last lease (removed
        # after its key) is gone.
        while queued and bao.lease_count("litellm/creds/rev/") > 0:
            time.sleep(0.02)
        revoke_wall = time.perf_counter() - t
        litellm_busy = (cpu_seconds(litellm_pid) - litellm_cpu) / revoke_wall if litellm_pid else None
        left = live_keys_with_alias(f"benchrev{os.getpid()}-")
        how = "queued, the CLI's default" if queued else "sync=true: one lease at a time"
        row("throughput", f"revoke-prefix of {REVOKES} leases ({how}); {left} keys left; "
            f"plugin peak RSS {peak} {rss_kb(pid)['VmHWM'] / 1024:.1f} MB",
            f"{REVOKES / revoke_wall:.1f} leases/s",
            f"direct /key/delete {direct_rate:.1f}/s (sequential)",
            f"{(REVOKES / revoke_wall) / direct_rate:.2f}x" + (" (target >= 3x)" if queued else ""))
        if queued:
            row("throughput", f"the same against LiteLLM's own best: {REVOKES} direct keys deleted {BATCH} a call, "
                f"{BATCHES_AT_ONCE} calls at once (as the engine batches)", f"{REVOKES / revoke_wall:.1f} leases/s",
                f"direct batched /key/delete {batched_rate:.1f}/s", f"{(REVOKES / revoke_wall) / batched_rate:.2f}x")
        if litellm_busy is not None:
            # LiteLLM serves from one Python process: near 100% of a core, it is the limit.
            row("throughput", f"LiteLLM's process during that revoke-prefix ({'queued' if queued else 'sync'})",
                f"{litellm_busy:.0%} of one core busy")
    for tok in tokens[REVOKES:]:
        direct_delete(tok)
    inventory_cost(bao, row)


def alternating_rounds(bao, c, count, tag, tokens, measure=lambda side, fn: fn()):
    """`count` direct generates and as many creds reads at concurrency `c`, in eight alternating
    rounds (direct, engine, engine, direct, ...): LiteLLM's rate drifts over a run (its caches,
    its spend-log flushes, Postgres at work), and both sides see the same drift; short rounds
    keep one slow spell from landing on one side only. Each round runs through
    `measure(side, fn)`; the direct keys' tokens go to `tokens`. Returns each side's wall time."""
    walls = {"direct": 0.0, "bao": 0.0}
    for r in range(ROUNDS):
        calls = {"direct": lambda i, r=r: direct_generate(f"bench-{tag}{c}-{os.getpid()}-{r}-{i}"),
                 "bao": lambda i: bao.ok("GET", "litellm/creds/bench")}
        for side in (("direct", "bao") if r % 2 == 0 else ("bao", "direct")):
            wall, results = measure(side, lambda: timed_parallel(calls[side], count // ROUNDS, c))
            walls[side] += wall
            if side == "direct":
                tokens += [tok for _, tok in results]
    return walls


def throughput_apart(bao, row, tokens, litellm_pid):
    """The throughput rows again with LiteLLM's side on a core of its own: on a shared machine
    the server's and the plugin's CPU is taken from LiteLLM, so the rows above also measure
    that competition; here each side has its own core and the ratio shows whether the engine
    itself slows LiteLLM down."""
    if not litellm_pid or os.cpu_count() < 2:
        row("throughput", "keys/s with LiteLLM on a core of its own",
            "not measured (needs LiteLLM on this machine and 2 cores)", "", "")
        return
    lite = litellm_side(litellm_pid)
    with cores_apart(lite, descendants(os.getpid()) - lite):
        for c in (1, 8, 32):
            count = THROUGHPUT_KEYS[c]
            walls = alternating_rounds(bao, c, count, "apart", tokens)
            row("throughput", f"keys/s at concurrency {c}, LiteLLM ({len(lite)} processes: proxy, query "
                "engine, Postgres) on CPU 0, OpenBao + plugin + load generator on the other",
                f"{count / walls['bao']:.1f}/s", f"direct generate {count / walls['direct']:.1f}/s",
                f"{walls['direct'] / walls['bao']:.2f}x")


def issue_revoke_latency(bao, role, samples=50, direct=False):
    """Median ms of `read creds/<role>` and of `sys/leases/revoke` of that lease. With direct,
    also the median of each minus a direct /key/generate or /key/delete made right after it
    (paired): the engine's and server's share, whatever LiteLLM's own speed at the time."""
    issue, revoke, issue_over, revoke_over = [], [], [], []
    for i in range(samples):
        t = time.perf_counter()
        lease = bao.ok("GET", f"litellm/creds/{role}")["lease_id"]
        issue.append(time.perf_counter() - t)
        t = time.perf_counter()
        bao.ok("PUT", "sys/leases/revoke", {"lease_id": lease})
        revoke.append(time.perf_counter() - t)
        if direct:
            dt, token = direct_generate(f"bench-lat-{os.getpid()}-{role}-{time.time_ns()}")
            issue_over.append(issue[-1] - dt)
            revoke_over.append(revoke[-1] - direct_delete(token))
    ms = lambda samples: statistics.median(samples) * 1000
    if direct:
        return ms(issue), ms(revoke), ms(issue_over), ms(revoke_over)
    return ms(issue), ms(revoke)


def scale(bao, row, pid):
    """SCALE live leases on one mount: issue and revoke latency against the same measured on
    an empty mount, split by the plugin's debug log into LiteLLM's, the engine's and the server's
    share; `LIST keys/` paged through all of them; the plugin's peak RSS."""
    # A prefix of this run's own: keys of an interrupted earlier run must not count. The role
    # exists (debug_server): written again so that this function also stands alone.
    prefix = f"benchscale{os.getpid()}"
    bao.ok("PUT", "litellm/roles/scale", {"models": [MODEL], "ttl": "2h", "key_alias_prefix": prefix})

    def measured():
        start = os.path.getsize(f"{bao.dir}/server.log")
        latency = issue_revoke_latency(bao, "scale", direct=True)
        time.sleep(1)  # the last log lines
        return latency, plugin_log_samples(bao, start)

    empty, (empty_issue, empty_revoke) = measured()
    log(f"scale: issuing {SCALE} leases (concurrency 8)")
    wall, _ = timed_parallel(lambda i: bao.ok("GET", "litellm/creds/scale"), SCALE, 8)
    row("scale", f"issue {SCALE} leases on one mount (concurrency 8)", f"{SCALE / wall:.1f}/s")
    log(f"scale: plugin peak RSS after the issues {rss_kb(pid)['VmHWM'] / 1024:.1f} MB")
    full, (full_issue, full_revoke) = measured()
    row("scale", f"issue / revoke latency with {SCALE} live leases (median of 50)",
        f"{full[0]:.1f} / {full[1]:.1f} ms", f"empty mount {empty[0]:.1f} / {empty[1]:.1f} ms",
        f"{full[0] / empty[0]:.2f}x / {full[1] / empty[1]:.2f}x")
    # LiteLLM itself slows down as its key table grows; the engine's share must not.
    row("scale", f"the same minus a direct generate / delete right after each (paired): the engine's "
        f"and server's share with {SCALE} live leases", f"{full[2]:.1f} / {full[3]:.1f} ms",
        f"empty mount {empty[2]:.1f} / {empty[3]:.1f} ms", f"{full[2] - empty[2]:+.1f} / {full[3] - empty[3]:+.1f} ms")
    litellm_ms = lambda samples: statistics.median(s[2] for s in samples) if samples else float("nan")
    row("scale", f"inside the plugin (its debug log): LiteLLM's /key/generate / /key/delete with {SCALE} live "
        "leases", f"{litellm_ms(full_issue):.1f} / {litellm_ms(full_revoke):.1f} ms",
        f"empty mount {litellm_ms(empty_issue):.1f} / {litellm_ms(empty_revoke):.1f} ms", "LiteLLM's own")
    own = [engine_own_ms(x) for x in (full_issue, full_revoke, empty_issue, empty_revoke)]
    row("scale", f"inside the plugin: the engine's own per issue / revoke (handler minus LiteLLM, its server "
        f"calls included) with {SCALE} live leases", f"{own[0]:.2f} / {own[1]:.2f} ms",
        f"empty mount {own[2]:.2f} / {own[3]:.2f} ms", f"{own[0] - own[2]:+.2f} / {own[1] - own[3]:+.2f} ms")
    listed, after, pages = 0, "", 0
    peak = "during the listing" if reset_peak_rss(pid) else "since the plugin started"
    t = time.perf_counter()
    while True:
        q = urllib.parse.urlencode({"limit": 1000, "after": after})
        status, out = bao.call("LIST", f"litellm/keys?{q}", None, 600)
        assert status in (200, 404), (status, out)  # 404: an empty page
        keys = out["data"].get("keys", []) if status == 200 else []
        listed += len(keys)
        pages += 1
        if len(keys) < 1000:
            break
        after = keys[-1]
    list_wall = time.perf_counter() - t
    hwm = rss_kb(pid)["VmHWM"] / 1024
    row("scale", f"LIST keys/ through {listed} records ({pages} pages of 1000, joined with LiteLLM)",
        f"{list_wall:.1f} s", f"plugin peak RSS {peak} {hwm:.1f} MB", "RSS target < 15 MB: " + ("met" if hwm < 15 else "NOT met"))
    log(f"scale: revoking {SCALE} leases (queued)")
    t = time.perf_counter()
    bao.ok("PUT", "sys/leases/revoke-prefix/litellm/creds/scale", {"sync": False}, timeout=1800)
    while bao.lease_count("litellm/creds/scale/") > 0:
        time.sleep(0.2)
    wall = time.perf_counter() - t
    left = live_keys_with_alias(f"{prefix}-")
    row("scale", f"revoke-prefix of {SCALE} leases (queued); {left} keys left", f"{SCALE / wall:.1f} leases/s")


def inventory_cost(bao, row):
    """What one storage write costs through the plugin: the inventory record's cost were it
    sequential (it is written while LiteLLM mints the key, so the issue does not wait for it).

    Measured as a plugin-served write minus a plugin-served read of the same entry
    (`config/auto-tidy`: the write is one storage read plus one write), paired per sample;
    the difference also holds the server's heavier write path, so it is an upper bound."""
    bao.ok("PUT", "litellm/config/auto-tidy", {"enabled": False})
    reads, writes = [], []
    for _ in range(N):
        t = time.perf_counter()
        bao.ok("GET", "litellm/config/auto-tidy")
        reads.append(time.perf_counter() - t)
        t = time.perf_counter()
        bao.ok("PUT", "litellm/config/auto-tidy", {"enabled": False})
        writes.append(time.perf_counter() - t)
    added = statistics.median(w - r for r, w in zip(reads, writes)) * 1000
    row("overhead", "one storage write through the plugin (paired write - read, median); "
        "the issue's inventory record runs alongside /key/generate",
        f"{added:.2f} ms", f"plugin read {statistics.median(reads) * 1000:.2f} ms")


def write_results(rows):
    if QUICK:
        print("\n".join(" | ".join(r) for r in rows))
        print("(BENCH_MODE=quick: bench/RESULTS.md left as it is)")
        return
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    bao_version = subprocess.run([BAO, "version"], capture_output=True, text=True).stdout.strip()
    lines = [
        "# Benchmark results",
        "",
        f"Produced by `make bench` (bench/bench.py) on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        f"Machine: {platform.platform()}, {os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM.",
        f"Server: {bao_version} (dev mode, in-memory storage); LiteLLM at {LITELLM} with its Postgres key store, on the same machine.",
        f"Plugin: the {BUILD} release build.",
        "",
        "| section | measurement | value | baseline (same run) | ratio / target |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows]
    lines += ["", "Ratios: throughput ratio = engine rate / direct LiteLLM rate; overhead ratio = creds latency / direct generate latency."]
    text = "\n".join(lines) + "\n"
    path = f"{REPO}/bench/RESULTS.md"
    # Keep the sections that `make bench-ab` and the soak maintain.
    old = open(path).read() if os.path.exists(path) else ""
    for start, end in [("<!-- ab-issue-path:start -->", "<!-- ab-issue-path:end -->"),
                       ("<!-- soak:start -->", "<!-- soak:end -->")]:
        if start in old and end in old:
            text += "\n" + start + old.split(start, 1)[1].split(end, 1)[0] + end + "\n"
    with open(path, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
