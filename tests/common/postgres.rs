//! A real PostgreSQL for the tests, never a mock: the server at
//! `PRICEGRID_TEST_DATABASE_URL` when that is set (one the caller runs),
//! else a throwaway cluster this test binary starts once, on first use:
//! `initdb` into a temp dir, a free loopback port, `fsync=off`, run as the
//! `postgres` user when the tests run as root (PostgreSQL refuses root), and
//! stopped when the binary exits. Debian's `postgresql` package provides the
//! programs (`.ci/test` installs it where missing); they are looked for on
//! `PATH`, then in `/usr/lib/postgresql/<newest>/bin`.
//!
//! Each test takes its own database (`TestDatabase::new`), created empty and
//! dropped with it, so tests run side by side on one cluster.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// The cluster's superuser URL (no database) and, for a cluster of ours,
/// what stops it.
struct Cluster {
    base: String,
    /// `pg_ctl` and the data directory, for a cluster this binary started.
    own: Option<(PathBuf, PathBuf, bool)>,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

/// The directory of PostgreSQL's programs (`initdb`, `pg_ctl`, `psql`).
pub fn postgres_bin() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    });
    on_path.or_else(|| {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| {
                let e = e.ok()?;
                let v = e.file_name().to_str()?.parse().ok()?;
                let bin = e.path().join("bin");
                bin.join("initdb").is_file().then_some((v, bin))
            })
            .collect();
        versions.sort();
        versions.pop().map(|(_, bin)| bin)
    })
}

fn running_as_root() -> bool {
    // SAFETY: geteuid only reads the process's effective user id.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a PostgreSQL program, as `postgres` when we are root.
fn run(bin: &Path, program: &str, args: &[&str], as_postgres: bool) -> Result<String, String> {
    let mut cmd = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(program));
        c
    } else {
        Command::new(bin.join(program))
    };
    let out = cmd
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

extern "C" fn stop_cluster() {
    if let Some(Ok(Cluster {
        own: Some((bin, data, as_postgres)),
        ..
    })) = CLUSTER.get()
    {
        let _ = run(
            bin,
            "pg_ctl",
            &["stop", "-m", "immediate", "-D", &data.to_string_lossy()],
            *as_postgres,
        );
        if let Some(parent) = data.parent() {
            let _ = std::fs::remove_dir_all(parent);
        }
    }
}

fn start_cluster() -> Result<Cluster, String> {
    if let Ok(url) = std::env::var("PRICEGRID_TEST_DATABASE_URL") {
        let base = url
            .rsplit_once('/')
            .filter(|(head, _)| head.contains("//") && !head.ends_with('/'))
            .map_or(url.clone(), |(head, _)| head.to_owned());
        return Ok(Cluster { base, own: None });
    }
    let bin = postgres_bin().ok_or(
        "PostgreSQL's programs (initdb, pg_ctl) are not installed: run .ci/test, which installs Debian's postgresql, or set PRICEGRID_TEST_DATABASE_URL",
    )?;
    let as_postgres = running_as_root();
    let parent = std::env::temp_dir().join(format!("pricegrid-pg-{}", std::process::id()));
    let data = parent.join("data");
    std::fs::create_dir_all(&parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    if as_postgres {
        run(
            Path::new("/bin"),
            "chown",
            &["postgres", &parent.to_string_lossy()],
            false,
        )?;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let data_s = data.to_string_lossy().into_owned();
    run(
        &bin,
        "initdb",
        &[
            "-D",
            &data_s,
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        as_postgres,
    )?;
    let options = format!(
        "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
        parent.display()
    );
    let log = parent.join("postgres.log");
    run(
        &bin,
        "pg_ctl",
        &[
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            &data_s,
            "-l",
            &log.to_string_lossy(),
            "-o",
            &options,
        ],
        as_postgres,
    )?;
    // SAFETY: registers a plain function to run at exit.
    unsafe { libc::atexit(stop_cluster) };
    Ok(Cluster {
        base: format!("postgres://postgres@127.0.0.1:{port}"),
        own: Some((bin, data, as_postgres)),
    })
}

fn cluster() -> &'static Cluster {
    match CLUSTER.get_or_init(start_cluster) {
        Ok(c) => c,
        Err(e) => panic!("no PostgreSQL for the tests: {e}"),
    }
}

/// Restarts this test binary's own cluster (`pg_ctl restart -m fast`),
/// cutting every connection to it, and returns once it accepts new ones.
/// Only a cluster of our own can be restarted.
pub fn restart_cluster() {
    let cluster = cluster();
    let Some((bin, data, as_postgres)) = &cluster.own else {
        panic!("PRICEGRID_TEST_DATABASE_URL names a server these tests may not restart");
    };
    // Its output to the cluster's log: a server left holding this
    // process's pipe would keep the restart from returning.
    let log = data.with_file_name("postgres.log");
    let data = data.to_string_lossy();
    run(
        bin,
        "pg_ctl",
        &[
            "restart",
            "-m",
            "fast",
            "-w",
            "-t",
            "60",
            "-D",
            &data,
            "-l",
            &log.to_string_lossy(),
        ],
        *as_postgres,
    )
    .unwrap_or_else(|e| panic!("restarting the test cluster: {e}"));
}

/// Runs `sql` on the cluster's `postgres` database through `psql`.
pub fn psql(database_url: &str, sql: &str) -> String {
    let bin = postgres_bin().unwrap_or_default();
    let psql = if bin.join("psql").is_file() {
        bin.join("psql")
    } else {
        PathBuf::from("psql")
    };
    let out = Command::new(psql)
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            database_url,
            "-c",
            sql,
        ])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// An empty database of its own for one test, dropped with it.
pub struct TestDatabase {
    pub url: String,
    name: String,
}

impl TestDatabase {
    pub fn new() -> TestDatabase {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let cluster = cluster();
        let name = format!(
            "pricegrid_test_{}_{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        psql(
            &format!("{}/postgres", cluster.base),
            &format!("CREATE DATABASE {name}"),
        );
        TestDatabase {
            url: format!("{}/{name}", cluster.base),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin = format!("{}/postgres", cluster().base);
        let _ = std::panic::catch_unwind(|| {
            psql(
                &admin,
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            )
        });
    }
}
