//! A real Azure Blob Storage API server for tests: Azurite (the Azure Storage emulator,
//! installed next to the venv by `scripts/setup-azurite.sh`), one per process, on a free port
//! with its data in a scratch directory, stopped with the test process (see
//! [`crate::watched`]).
//!
//! [`Azurite::options`] are the storage options of a pipeline's `storage:` section for it,
//! [`Azurite::env`] the same as the standard `AZURE_*` environment variables; [`container`]
//! creates a fresh container and returns its name.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::fixtures::venv;
use crate::watched::{free_port, http, spawn_watched, wait_until};

/// The emulator's well-known account name.
pub const ACCOUNT: &str = "devstoreaccount1";
/// The emulator's well-known account key (public, documented by Azurite).
pub const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A running Azurite blob service.
pub struct Azurite {
    /// `http://127.0.0.1:<port>/devstoreaccount1`, the account's blob endpoint.
    pub endpoint: String,
    /// The TCP port.
    pub port: u16,
}

static SERVER: OnceLock<Result<Azurite, String>> = OnceLock::new();
static CONTAINERS: AtomicU32 = AtomicU32::new(0);

fn start() -> Result<Azurite, String> {
    let bin = venv().join("azurite/node_modules/.bin/azurite-blob");
    if !bin.exists() {
        return Err(format!(
            "the Azure tests need the Azurite emulator, but {} does not exist. \
             Install it with scripts/setup-azurite.sh (make setup does).",
            bin.display()
        ));
    }
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("tweetflow-azurite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let port_arg = port.to_string();
    let args: [&std::ffi::OsStr; 8] = [
        "--blobHost".as_ref(),
        "127.0.0.1".as_ref(),
        "--blobPort".as_ref(),
        port_arg.as_ref(),
        "--location".as_ref(),
        dir.as_os_str(),
        "--skipApiVersionCheck".as_ref(),
        "--silent".as_ref(),
    ];
    spawn_watched(&bin, &args, &dir.join("azurite.log"), Some(&dir), |_| {})
        .map_err(|e| format!("cannot start bash: {e}"))?;
    let t = Instant::now();
    if wait_until(Duration::from_secs(60), Duration::from_millis(100), || {
        http(port, "GET", &format!("/{ACCOUNT}?comp=list"), "")
    })
    .is_some()
    {
        eprintln!(
            "Azurite test server on port {port} ready in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        return Ok(Azurite {
            endpoint: format!("http://127.0.0.1:{port}/{ACCOUNT}"),
            port,
        });
    }
    let log = std::fs::read_to_string(dir.join("azurite.log")).unwrap_or_default();
    Err(format!("Azurite did not answer within 60 s; log:\n{log}"))
}

/// The shared server; panics (failing the test) with the reason when it cannot be started.
pub fn server() -> &'static Azurite {
    match SERVER.get_or_init(start) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

impl Azurite {
    /// Storage options for this server, as `storage:` sections and `deltalake` take them.
    pub fn options(&self) -> Vec<(String, String)> {
        vec![
            ("azure_storage_account_name".into(), ACCOUNT.into()),
            ("azure_storage_account_key".into(), ACCOUNT_KEY.into()),
            ("azure_storage_endpoint".into(), self.endpoint.clone()),
            ("azure_allow_http".into(), "true".into()),
        ]
    }

    /// The same as the standard `AZURE_*` environment variables (for child processes).
    pub fn env(&self) -> Vec<(String, String)> {
        self.options()
            .into_iter()
            .map(|(k, v)| (k.to_ascii_uppercase(), v))
            .collect()
    }

    /// Creates container `name` (a Shared Key signed request, made by the venv's Python).
    pub fn create_container(&self, name: &str) {
        let script = r#"
import base64, hashlib, hmac, sys, urllib.request
from email.utils import formatdate
port, account, key, container = sys.argv[1:]
date, version = formatdate(usegmt=True), "2021-08-06"
to_sign = "PUT\n" + "\n" * 11 + f"x-ms-date:{date}\nx-ms-version:{version}\n/{account}/{account}/{container}\nrestype:container"
sig = base64.b64encode(hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest()).decode()
req = urllib.request.Request(f"http://127.0.0.1:{port}/{account}/{container}?restype=container", method="PUT",
    headers={"x-ms-date": date, "x-ms-version": version, "Authorization": f"SharedKey {account}:{sig}", "Content-Length": "0"})
print(urllib.request.urlopen(req).status)
"#;
        let out = std::process::Command::new(venv().join("bin/python"))
            .args([
                "-c",
                script,
                &self.port.to_string(),
                ACCOUNT,
                ACCOUNT_KEY,
                name,
            ])
            .output()
            .expect("the venv's python");
        assert!(
            out.status.success(),
            "creating container `{name}`: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Creates a fresh container on the shared server (named after `prefix`, the process and a
/// counter) and returns its name.
pub fn container(prefix: &str) -> String {
    let n = CONTAINERS.fetch_add(1, Ordering::SeqCst);
    let name = format!(
        "{}-{}-{n}",
        prefix.to_ascii_lowercase().replace('_', "-"),
        std::process::id()
    );
    server().create_container(&name);
    name
}
