//! A real `keywarden serve` process on a free loopback port, stopped when
//! dropped, and a plain HTTP client for talking to it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub struct Server {
    child: Child,
    pub base: String,
    /// The admin listener (`/metrics`, `/readyz`), when the server has one.
    pub admin: Option<String>,
    /// Everything the server wrote to stderr (its logs), so far.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Where the mail worker writes `.eml` files unless a test sets SMTP.
    pub mail_dir: tempfile::TempDir,
}

impl Server {
    /// Starts `keywarden serve --listen 127.0.0.1:0 --database-url URL ARGS`
    /// and waits until it announces its address.
    pub fn start(database_url: &str, args: &[&str]) -> Server {
        Server::start_with_env(database_url, args, &[])
    }

    pub fn start_with_env(database_url: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_full(database_url, args, env, None)
    }

    /// Like [`Server::start`], with the process's descriptor limit (soft
    /// and hard) set to `nofile`.
    pub fn start_with_nofile(database_url: &str, args: &[&str], nofile: u64) -> Server {
        Server::start_full(database_url, args, &[], Some(nofile))
    }

    fn start_full(
        database_url: &str,
        args: &[&str],
        env: &[(&str, &str)],
        nofile: Option<u64>,
    ) -> Server {
        let mut command = Command::new(assert_cmd::cargo::cargo_bin("keywarden"));
        if let Some(n) = nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs
            // between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    let limit = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        command.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            database_url,
        ]);
        // The admin listener on a free port of its own, unless a test
        // chooses.
        if !args.iter().any(|a| a.starts_with("--admin-listen")) {
            command.args(["--admin-listen", "127.0.0.1:0"]);
        }
        // Unless a test says otherwise, GitHub's keys come from nowhere
        // reachable: the key check never needs them.
        if !args.iter().any(|a| a.starts_with("--github")) {
            command.args(["--github-api-url", "http://127.0.0.1:9"]);
        }
        let mail_dir = tempfile::tempdir().unwrap();
        if !args.iter().any(|a| a.starts_with("--mail-dir")) {
            command.arg("--mail-dir").arg(mail_dir.path());
        }
        let mut child = command
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("keywarden serve starts");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (base, admin) = loop {
            let line = match lines.next() {
                Some(Ok(line)) => line,
                _ => {
                    let status = child.wait().unwrap();
                    panic!(
                        "keywarden serve exited before serving ({status}): {:?}",
                        log.lock().unwrap()
                    );
                }
            };
            log.lock().unwrap().push(line.clone());
            if let Some(rest) = line.split("serving on ").nth(1) {
                let base = rest.split_whitespace().next().unwrap().to_string();
                let admin = line
                    .split("admin on ")
                    .nth(1)
                    .map(|rest| rest.split([' ', ';', ')']).next().unwrap().to_string());
                break (base, admin);
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Server {
            child,
            base,
            admin,
            log,
            mail_dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A URL on the admin listener (`/metrics`, `/readyz`).
    pub fn admin_url(&self, path: &str) -> String {
        let admin = self
            .admin
            .as_deref()
            .expect("the server announced an admin listener");
        format!("{admin}{path}")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's peak resident memory so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM:") * 1024
    }

    /// The server's resident memory now (`VmRSS`), in bytes.
    pub fn rss(&self) -> u64 {
        proc_status_kib(self.pid(), "VmRSS:") * 1024
    }

    /// Sends `signal` (e.g. `libc::SIGHUP`) to the server.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.pid() as i32, signal) }, 0);
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// A response's status, headers we look at, and body.
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// No request waits more than a minute: a server that hangs fails the
/// test instead of stalling it.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(60)))
        .build()
        .into()
}

/// `GET url` with the given headers; any status is a reply, not an error.
pub fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = agent().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    reply(request.call().expect("request reaches the server"))
}

/// `POST url` with the headers and the raw body.
pub fn post(url: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut request = agent().post(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    reply(request.send(body).expect("request reaches the server"))
}

fn reply(mut response: ureq::http::Response<ureq::Body>) -> Reply {
    Reply {
        status: response.status().as_u16(),
        retry_after: response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string()),
        body: response.body_mut().read_to_string().unwrap(),
    }
}

/// `GET /api/v1/key` with `Authorization: Bearer KEY`.
pub fn key_info(server: &Server, key: &str) -> Reply {
    get(
        &server.url("/api/v1/key"),
        &[("Authorization", &format!("Bearer {key}"))],
    )
}

/// A minimal HTTP/1.1 server on loopback standing in for a provider we
/// cannot reach from here: it records each request's head and answers
/// with `reply` (a whole HTTP response), or never answers when `reply`
/// is `None`.
pub struct StandIn {
    pub base: String,
    pub requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl StandIn {
    pub fn start(reply: Option<&'static str>) -> StandIn {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { break };
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                        head.push(byte[0]);
                    }
                    seen.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&head).into_owned());
                    match reply {
                        Some(r) => {
                            let _ = stream.write_all(r.as_bytes());
                        }
                        None => std::thread::sleep(std::time::Duration::from_secs(30)),
                    }
                });
            }
        });
        StandIn { base, requests }
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// `METHOD url` with the headers and an optional JSON body.
pub fn call(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> Reply {
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    if body.is_some() {
        builder = builder.header("Content-Type", "application/json");
    }
    let request = builder
        .body(body.unwrap_or("").as_bytes().to_vec())
        .unwrap();
    reply(agent().run(request).expect("request reaches the server"))
}
