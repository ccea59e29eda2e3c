//! The start-up contract with the host: environment checks and the single
//! handshake line on stdout.

use std::path::Path;

use base64::Engine as _;

use super::RuntimeError;

/// Magic cookie the host sets for backend (secrets/auth) plugins; identical
/// in Vault and OpenBao.
pub const BACKEND_COOKIE_KEY: &str = "VAULT_BACKEND_PLUGIN";
/// The value of [`BACKEND_COOKIE_KEY`]; go-plugin's guard against a
/// person running the binary by hand, not a secret.
pub const BACKEND_COOKIE_VALUE: &str = "6669da05-b1c8-4f49-97d9-c8e5bed98e20";
/// Set instead of the backend cookie when the host probes for a database plugin.
pub const DATABASE_COOKIE_KEY: &str = "VAULT_DATABASE_PLUGIN";
/// Set to `true` by Vault unless its configuration has `disable_mlock = true`:
/// the plugin must then lock its memory or refuse to run.
pub const MLOCK_ENV: &str = "VAULT_PLUGIN_MLOCK_ENABLED";
/// Variables only a launching server sets: with none of them present, a
/// person ran the binary by hand.
const PLUGIN_ENV: &[&str] = &[
    BACKEND_COOKIE_KEY,
    DATABASE_COOKIE_KEY,
    "PLUGIN_PROTOCOL_VERSIONS",
    "PLUGIN_CLIENT_CERT",
];
/// The only application protocol spoken: v5 (AutoMTLS + gRPC).
pub const PROTOCOL_VERSION: u32 = 5;
/// go-plugin's core protocol version, first field of the handshake line.
const CORE_PROTOCOL_VERSION: u32 = 1;

/// What the host told us through the environment.
#[derive(Debug, Clone)]
pub struct HostEnv {
    /// `PLUGIN_CLIENT_CERT`: the host's certificate, the only one trusted.
    pub client_cert_pem: String,
    /// `PLUGIN_UNIX_SOCKET_DIR`: where to create the listening socket (the
    /// system temporary directory when unset).
    pub socket_dir: Option<String>,
    /// `PLUGIN_UNIX_SOCKET_GROUP`: the group to give the socket, so a host
    /// running as another user can connect.
    pub socket_group: Option<String>,
    /// Whether the host asked for locked memory (see [`MLOCK_ENV`]).
    pub mlock: bool,
    /// Launched by OpenBao (`BAO_VERSION` is set) rather than Vault.
    pub openbao: bool,
}

impl HostEnv {
    /// Reads and checks the environment. Every failure is a human-readable
    /// reason to exit with status 1.
    pub fn from_env() -> Result<Self, RuntimeError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`HostEnv::from_env`] over any variable lookup, for tests.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, RuntimeError> {
        if get(DATABASE_COOKIE_KEY).is_some() && get(BACKEND_COOKIE_KEY).is_none() {
            return Err(RuntimeError::DatabaseProbe);
        }
        match get(BACKEND_COOKIE_KEY) {
            Some(v) if v == BACKEND_COOKIE_VALUE => {}
            _ => return Err(RuntimeError::NotLaunchedByHost),
        }
        let offered = get("PLUGIN_PROTOCOL_VERSIONS").unwrap_or_default();
        let offers_v5 = offered
            .split(',')
            .any(|v| v.trim().parse::<u32>() == Ok(PROTOCOL_VERSION));
        if !offers_v5 {
            return Err(RuntimeError::Start(format!(
                "the server offered plugin protocol versions [{offered}]; this plugin only speaks {PROTOCOL_VERSION} (AutoMTLS)"
            )));
        }
        let client_cert_pem = get("PLUGIN_CLIENT_CERT").filter(|c| !c.trim().is_empty()).ok_or_else(|| {
            RuntimeError::Start(
                "PLUGIN_CLIENT_CERT is not set: the server must run with AutoMTLS (Vault 1.12+ / OpenBao 2.x)".into(),
            )
        })?;
        let flag = |k: &str| get(k).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if flag("PLUGIN_MULTIPLEX_GRPC") {
            return Err(RuntimeError::Start(
                "Vault containerized plugins (gRPC broker multiplexing) are not supported; \
                 register the binary with -sha256 instead of -oci_image"
                    .into(),
            ));
        }
        // Vault's SDK locks memory only for the exact value "true"; OpenBao
        // never sets either variable, but its twin name is honoured alike.
        let mlock = [MLOCK_ENV, "BAO_PLUGIN_MLOCK_ENABLED"]
            .iter()
            .any(|k| get(k).as_deref() == Some("true"));
        Ok(Self {
            client_cert_pem,
            socket_dir: get("PLUGIN_UNIX_SOCKET_DIR").filter(|d| !d.is_empty()),
            socket_group: get("PLUGIN_UNIX_SOCKET_GROUP").filter(|g| !g.is_empty()),
            mlock,
            openbao: get("BAO_VERSION").is_some(),
        })
    }
}

/// True when any variable a launching server sets is present.
pub fn has_plugin_env(get: impl Fn(&str) -> Option<String>) -> bool {
    PLUGIN_ENV.iter().any(|k| get(k).is_some())
}

/// `CORE|APP|NETWORK|ADDRESS|PROTOCOL|CERT`: the certificate is DER in
/// standard base64 *without* padding (Go's RawStdEncoding rejects `=`).
pub fn handshake_line(socket: &Path, cert_der: &[u8]) -> String {
    let cert = base64::engine::general_purpose::STANDARD_NO_PAD.encode(cert_der);
    format!(
        "{CORE_PROTOCOL_VERSION}|{PROTOCOL_VERSION}|unix|{}|grpc|{cert}\n",
        socket.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.to_string())
        }
    }

    const GOOD: &[(&str, &str)] = &[
        (BACKEND_COOKIE_KEY, BACKEND_COOKIE_VALUE),
        ("PLUGIN_PROTOCOL_VERSIONS", "5"),
        (
            "PLUGIN_CLIENT_CERT",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        ),
        ("BAO_VERSION", "2.7.2"),
    ];

    #[test]
    fn accepts_a_v5_backend_launch() {
        let host = HostEnv::from_lookup(env(GOOD)).unwrap();
        assert!(host.openbao);
        assert!(!host.mlock);
        assert!(host.socket_dir.is_none());
    }

    #[test]
    fn refuses_a_missing_cookie() {
        let err = HostEnv::from_lookup(env(&GOOD[1..])).unwrap_err();
        assert!(matches!(err, RuntimeError::NotLaunchedByHost));
    }

    #[test]
    fn refuses_a_wrong_cookie() {
        let pairs = [(BACKEND_COOKIE_KEY, "nope"), GOOD[1], GOOD[2]];
        assert!(matches!(
            HostEnv::from_lookup(env(&pairs)).unwrap_err(),
            RuntimeError::NotLaunchedByHost
        ));
    }

    #[test]
    fn refuses_a_database_probe() {
        let pairs = [
            (DATABASE_COOKIE_KEY, "926a0820-aea2-be28-51d6-83cdf00e8edb"),
            ("PLUGIN_PROTOCOL_VERSIONS", "5,6"),
        ];
        let err = HostEnv::from_lookup(env(&pairs)).unwrap_err();
        assert!(matches!(err, RuntimeError::DatabaseProbe));
        assert!(err.to_string().contains("not a database plugin"), "{err}");
    }

    #[test]
    fn mlock_only_for_the_exact_value_true() {
        let with = |v: &'static str| {
            let pairs = [GOOD[0], GOOD[1], GOOD[2], (MLOCK_ENV, v)];
            HostEnv::from_lookup(env(&pairs)).unwrap().mlock
        };
        assert!(with("true"));
        assert!(!with("false"));
        assert!(!with(""));
        let pairs = [
            GOOD[0],
            GOOD[1],
            GOOD[2],
            ("BAO_PLUGIN_MLOCK_ENABLED", "true"),
        ];
        assert!(HostEnv::from_lookup(env(&pairs)).unwrap().mlock);
    }

    #[test]
    fn plugin_env_is_recognised() {
        assert!(!has_plugin_env(env(&[("HOME", "/root")])));
        assert!(has_plugin_env(env(&GOOD[1..2])));
        assert!(has_plugin_env(env(&[(BACKEND_COOKIE_KEY, "nope")])));
    }

    #[test]
    fn refuses_legacy_protocols() {
        let pairs = [GOOD[0], ("PLUGIN_PROTOCOL_VERSIONS", "3,4"), GOOD[2]];
        let err = HostEnv::from_lookup(env(&pairs)).unwrap_err();
        assert!(err.to_string().contains("[3,4]"), "{err}");
    }

    #[test]
    fn refuses_containerized_mode_clearly() {
        let pairs = [GOOD[0], GOOD[1], GOOD[2], ("PLUGIN_MULTIPLEX_GRPC", "true")];
        let err = HostEnv::from_lookup(env(&pairs)).unwrap_err();
        assert!(err.to_string().contains("containerized"), "{err}");
    }

    #[test]
    fn accepts_5_among_several_versions() {
        let pairs = [GOOD[0], ("PLUGIN_PROTOCOL_VERSIONS", "4, 5"), GOOD[2]];
        assert!(HostEnv::from_lookup(env(&pairs)).is_ok());
    }

    #[test]
    fn handshake_line_has_six_fields_and_unpadded_base64() {
        // 2 bytes encode to 3 base64 chars: with padding this would end in '='.
        let line = handshake_line(Path::new("/tmp/plugin123"), &[0xde, 0xad]);
        assert_eq!(line, "1|5|unix|/tmp/plugin123|grpc|3q0\n");
        assert_eq!(line.trim_end().split('|').count(), 6);
    }

    #[test]
    fn handshake_cert_decodes_back_to_der() {
        let der: Vec<u8> = (0..=255u8).cycle().take(500).collect();
        let line = handshake_line(Path::new("/s"), &der);
        let field = line.trim_end().rsplit('|').next().unwrap();
        assert!(!field.contains('='));
        let back = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(field)
            .unwrap();
        assert_eq!(back, der);
    }
}
