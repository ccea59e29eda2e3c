//! Start-up as a server launches the plugin, without a server: refusals are
//! hclog JSON records at error level (the server hides plain stderr lines at
//! debug level), a person running the binary by hand gets plain text, and
//! Vault's mlock request (`VAULT_PLUGIN_MLOCK_ENABLED=true`) is honoured or
//! refused with instructions.
#![allow(unsafe_code)] // setrlimit/kill on processes the test starts; SAFETY notes at each call

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_vault-plugin-secrets-litellm");
const COOKIE: (&str, &str) = (
    "VAULT_BACKEND_PLUGIN",
    "6669da05-b1c8-4f49-97d9-c8e5bed98e20",
);

/// A PEM certificate standing in for the server's AutoMTLS certificate.
fn host_cert_pem() -> String {
    rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .unwrap()
        .cert
        .pem()
}

/// The plugin with an empty environment plus `vars` (and a private TMPDIR
/// for its socket).
fn plugin(vars: &[(&str, &str)], tmp: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().env("TMPDIR", tmp).stdin(Stdio::null());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

/// Every stderr line as an hclog record; panics on a line that is not one.
fn hclog_records(out: &Output) -> Vec<Value> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let records: Vec<Value> = stderr
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line)
                .unwrap_or_else(|e| panic!("not an hclog JSON line ({e}): {line:?}"))
        })
        .collect();
    assert!(!records.is_empty(), "nothing on stderr");
    for r in &records {
        let ts = r["@timestamp"].as_str().unwrap_or_default();
        // YYYY-MM-DDTHH:MM:SS.ffffffZ: the host parses nothing else.
        assert_eq!(ts.len(), 27, "@timestamp {ts:?}");
        assert!(r["@message"].is_string(), "{r}");
    }
    records
}

/// Exits 1 with one error record whose message contains `needle`, and the
/// same reason as the only stdout line (go-plugin quotes it to the operator),
/// never something that could pass for a handshake.
fn assert_refused_with(out: &Output, needle: &str) {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "one stdout line: {stdout:?}");
    assert!(stdout.contains(needle), "{stdout:?}");
    assert!(!stdout.contains('|'), "looks like a handshake: {stdout:?}");
    let records = hclog_records(out);
    assert!(
        records.iter().any(|r| r["@level"] == "error"
            && r["@message"].as_str().is_some_and(|m| m.contains(needle))),
        "no error record containing {needle:?}: {records:?}"
    );
}

#[test]
fn refusals_are_hclog_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let cert = host_cert_pem();
    // (what, environment, text the error must contain)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "wrong cookie",
            vec![
                ("VAULT_BACKEND_PLUGIN", "not-the-cookie"),
                ("PLUGIN_PROTOCOL_VERSIONS", "5"),
                ("PLUGIN_CLIENT_CERT", &cert),
            ],
            "magic cookie",
        ),
        (
            "missing cookie, other plugin variables set",
            vec![
                ("PLUGIN_PROTOCOL_VERSIONS", "5"),
                ("PLUGIN_CLIENT_CERT", &cert),
            ],
            "magic cookie",
        ),
        (
            "no protocol version 5 offered",
            vec![
                COOKIE,
                ("PLUGIN_PROTOCOL_VERSIONS", "3,4"),
                ("PLUGIN_CLIENT_CERT", &cert),
            ],
            "only speaks 5",
        ),
        (
            "containerized (multiplexed) launch",
            vec![
                COOKIE,
                ("PLUGIN_PROTOCOL_VERSIONS", "5"),
                ("PLUGIN_CLIENT_CERT", &cert),
                ("PLUGIN_MULTIPLEX_GRPC", "true"),
            ],
            "containerized",
        ),
        (
            "no AutoMTLS server certificate",
            vec![COOKIE, ("PLUGIN_PROTOCOL_VERSIONS", "5")],
            "PLUGIN_CLIENT_CERT",
        ),
    ];
    for (what, vars, needle) in cases {
        eprintln!("case: {what}");
        let out = plugin(&vars, tmp.path()).output().unwrap();
        assert_refused_with(&out, needle);
    }
}

#[test]
fn a_database_probe_is_a_quiet_debug_record() {
    let tmp = tempfile::tempdir().unwrap();
    let out = plugin(
        &[
            (
                "VAULT_DATABASE_PLUGIN",
                "926a0820-aea2-be28-51d6-83cdf00e8edb",
            ),
            ("PLUGIN_PROTOCOL_VERSIONS", "5,6"),
        ],
        tmp.path(),
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let records = hclog_records(&out);
    assert!(
        records.iter().all(|r| r["@level"] == "debug"),
        "{records:?}"
    );
}

#[test]
fn by_hand_without_plugin_variables_prints_plain_help() {
    let tmp = tempfile::tempdir().unwrap();
    let out = plugin(&[], tmp.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("plugin register") && err.contains("sha256"),
        "{err}"
    );
    assert!(
        !err.trim_start().starts_with('{'),
        "plain text, not JSON: {err}"
    );
}

/// RLIMIT_MEMLOCK for the child, set between fork and exec. With
/// `drop_ipc_lock`, CAP_IPC_LOCK (which ignores the limit) is taken out of
/// the bounding set so that even a root child is bound by it; without, a
/// limit that cannot be raised (no CAP_SYS_RESOURCE) is left as it is.
fn memlock_limit(cmd: &mut Command, bytes: libc::rlim_t, drop_ipc_lock: bool) {
    // SAFETY: only async-signal-safe syscalls run between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if drop_ipc_lock {
                // Fails harmlessly without CAP_SETPCAP, i.e. when not root,
                // and then there is no CAP_IPC_LOCK to drop either.
                libc::prctl(libc::PR_CAPBSET_DROP, 14 /* CAP_IPC_LOCK */, 0, 0, 0);
            }
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) != 0 && drop_ipc_lock {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn mlock_env(cert: &str) -> Vec<(&str, &str)> {
    vec![
        COOKIE,
        ("PLUGIN_PROTOCOL_VERSIONS", "5"),
        ("PLUGIN_CLIENT_CERT", cert),
        ("VAULT_PLUGIN_MLOCK_ENABLED", "true"),
    ]
}

#[test]
fn mlock_failure_exits_with_instructions() {
    let tmp = tempfile::tempdir().unwrap();
    let cert = host_cert_pem();
    let mut cmd = plugin(&mlock_env(&cert), tmp.path());
    memlock_limit(&mut cmd, 64 * 1024, true);
    let out = cmd.output().unwrap();
    assert_refused_with(&out, "mlockall failed");
    let message = hclog_records(&out)
        .into_iter()
        .find(|r| r["@level"] == "error")
        .unwrap()["@message"]
        .as_str()
        .unwrap()
        .to_owned();
    for hint in [
        "disable_mlock = true",
        "setcap cap_ipc_lock=+ep",
        "AmbientCapabilities=CAP_IPC_LOCK",
        "CapabilityBoundingSet",
    ] {
        assert!(message.contains(hint), "{hint:?} missing from: {message}");
    }
    assert!(
        std::fs::read_dir(tmp.path()).unwrap().next().is_none(),
        "no socket may be created before the memory is locked"
    );
}

#[test]
fn mlock_with_the_limit_raised_serves_locked() {
    // Root has CAP_IPC_LOCK, which ignores the limit (in containers without
    // CAP_SYS_RESOURCE the limit itself cannot be raised); otherwise only an
    // unlimited hard limit lets the plugin lock everything.
    let mut hard = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct passed; geteuid has no preconditions.
    let may_lock = unsafe {
        libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut hard);
        libc::geteuid() == 0 || hard.rlim_max == libc::RLIM_INFINITY
    };
    if !may_lock {
        eprintln!(
            "\n**********\nSKIPPED: not root and RLIMIT_MEMLOCK cannot be raised; the mlock success path is not checked\n**********\n"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cert = host_cert_pem();
    let mut cmd = plugin(&mlock_env(&cert), tmp.path());
    memlock_limit(&mut cmd, libc::RLIM_INFINITY, false);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("1|5|unix|"), "handshake line: {line:?}");
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let locked_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    assert!(locked_kb > 0, "VmLck is 0: memory not locked");
    // SAFETY: kill(2) on the child this test started.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit within 5 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
}
