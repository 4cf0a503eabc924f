//! A real `keywarden serve` process on a free loopback port, stopped when
//! dropped, and a plain HTTP client for talking to it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    /// Starts `keywarden serve --listen 127.0.0.1:0 --database-url URL ARGS`
    /// and waits until it announces its address.
    pub fn start(database_url: &str, args: &[&str]) -> Server {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("keywarden"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                database_url,
            ])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("keywarden serve starts");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let base = loop {
            let line = match lines.next() {
                Some(Ok(line)) => line,
                _ => {
                    let status = child.wait().unwrap();
                    panic!("keywarden serve exited before serving ({status})");
                }
            };
            if let Some(rest) = line.split("serving on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, base }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

/// `GET url` with the given headers; any status is a reply, not an error.
pub fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut response = request.call().expect("request reaches the server");
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
