//! A PostgreSQL server of a test's own (initdb in a temp dir, a free
//! loopback port), which the test may stop and start again without
//! touching the machine's shared server. As root, it runs as the
//! `postgres` user, as PostgreSQL requires.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    running: bool,
    stalled: bool,
}

/// The directory holding `initdb` and `pg_ctl`: `pg_config --bindir`, else
/// `initdb` on PATH, else the newest Debian install.
fn bin_dir() -> PathBuf {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    if let Ok(out) = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
    {
        let initdb = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if let Some(dir) = initdb.parent().filter(|_| initdb.is_file()) {
            return dir.to_path_buf();
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(|e| Some(e.ok()?.path().join("bin"))).collect())
        .unwrap_or_default();
    versions.retain(|d| d.join("initdb").exists());
    versions.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions
        .pop()
        .expect("PostgreSQL server binaries (initdb, pg_ctl) are installed; .ci/run installs them")
}

/// The `postgres` user's uid and gid when running as root.
fn run_as() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    // SAFETY: getpwnam returns a pointer to static storage or null; the
    // fields are read at once.
    let pw = unsafe { libc::getpwnam(c"postgres".as_ptr()) };
    assert!(!pw.is_null(), "running as root needs a `postgres` user");
    Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

impl PrivatePostgres {
    /// Creates a cluster and starts it.
    pub fn start() -> PrivatePostgres {
        let dir = tempfile::tempdir().unwrap();
        if let Some((uid, gid)) = run_as() {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut pg = PrivatePostgres {
            dir,
            bin: bin_dir(),
            port,
            running: false,
            stalled: false,
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        pg.resume();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, tool: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.bin.join(tool));
        cmd.args(args).current_dir(self.dir.path());
        if let Some((uid, gid)) = run_as() {
            use std::os::unix::process::CommandExt;
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = self.command(tool, args).output().unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server (again), on the same port and data.
    pub fn resume(&mut self) {
        let dir = self.dir.path().to_str().unwrap().to_string();
        let options = format!(
            "-p {} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port
        );
        let data = self.data();
        let log = Path::new(&dir).join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
        self.running = true;
    }

    /// Stops the server at once, as a crash would: no checkpoint, open
    /// connections cut.
    pub fn crash(&mut self) {
        let data = self.data();
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
        self.running = false;
    }

    /// Freezes the server and every backend (SIGSTOP): connections stay
    /// open and new ones are accepted by the kernel, but nothing answers,
    /// as with a partition or a hung host.
    pub fn stall(&mut self) {
        self.signal_all(libc::SIGSTOP);
        self.stalled = true;
    }

    /// Lets a stalled server run on (SIGCONT).
    pub fn wake(&mut self) {
        self.signal_all(libc::SIGCONT);
        self.stalled = false;
    }

    /// Sends `signal` to the postmaster and each of its children.
    fn signal_all(&self, signal: i32) {
        let pid_file = std::fs::read_to_string(self.data().join("postmaster.pid")).unwrap();
        let postmaster: i32 = pid_file.lines().next().unwrap().trim().parse().unwrap();
        let mut pids = vec![postmaster];
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces.
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok());
            if ppid == Some(postmaster) {
                pids.push(pid);
            }
        }
        for pid in pids {
            // SAFETY: kill has no memory preconditions.
            let sent = unsafe { libc::kill(pid, signal) } == 0;
            // A backend may have exited since /proc was read.
            assert!(sent || pid != postmaster, "kill({pid}, {signal}) failed");
        }
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if self.stalled {
            self.wake();
        }
        if self.running {
            let data = self.data();
            let _ = self
                .command(
                    "pg_ctl",
                    &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"],
                )
                .status();
        }
    }
}
