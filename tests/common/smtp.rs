//! A real SMTP server inside the test (mailin-embedded on 127.0.0.1) that
//! records what it receives, and can be made to refuse with 4xx or 5xx.

use mailin_embedded::response::{INTERNAL_ERROR, OK, Response, TRANSACTION_FAILED};
use mailin_embedded::{Handler, Server, SslConfig};
use std::net::{IpAddr, TcpListener};
use std::sync::{Arc, Mutex};

/// One received email.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Accept,
    /// 451 to RCPT TO: a transient failure.
    Refuse4xx,
    /// 554 to RCPT TO: a permanent failure.
    Refuse5xx,
}

#[derive(Clone)]
struct Recorder {
    received: Arc<Mutex<Vec<Mail>>>,
    mode: Arc<Mutex<Mode>>,
    current: Option<Mail>,
}

impl Handler for Recorder {
    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.current = Some(Mail {
            from: from.to_string(),
            to: to.to_vec(),
            data: String::new(),
        });
        OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if let Some(mail) = &mut self.current {
            mail.data.push_str(&String::from_utf8_lossy(buf));
        }
        Ok(())
    }

    fn rcpt(&mut self, _to: &str) -> Response {
        match *self.mode.lock().unwrap() {
            Mode::Accept => OK,
            Mode::Refuse4xx => INTERNAL_ERROR,
            Mode::Refuse5xx => TRANSACTION_FAILED,
        }
    }

    fn data_end(&mut self) -> Response {
        if let Some(mail) = self.current.take() {
            self.received.lock().unwrap().push(mail);
        }
        OK
    }

    fn helo(&mut self, _ip: IpAddr, _domain: &str) -> Response {
        OK
    }
}

/// The SMTP server's address, before or after it runs.
pub struct SmtpSink {
    pub port: u16,
    received: Arc<Mutex<Vec<Mail>>>,
    mode: Arc<Mutex<Mode>>,
    /// While "down": the port stays ours, and every connection is closed
    /// before the greeting. `start` takes the same socket over, so no
    /// other test can grab the port in between.
    down: Mutex<
        Option<(
            Arc<std::sync::atomic::AtomicBool>,
            std::thread::JoinHandle<TcpListener>,
        )>,
    >,
}

impl SmtpSink {
    /// SMTP "down" until `start`: connections are closed unanswered.
    pub fn reserve() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopping.load(std::sync::atomic::Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => drop(conn),
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
            listener.set_nonblocking(false).unwrap();
            listener
        });
        SmtpSink {
            port,
            received: Arc::default(),
            mode: Arc::new(Mutex::new(Mode::Accept)),
            down: Mutex::new(Some((stop, thread))),
        }
    }

    /// A running server.
    pub fn start_new() -> SmtpSink {
        let sink = SmtpSink::reserve();
        sink.start();
        sink
    }

    /// Starts serving on the reserved port.
    pub fn start(&self) {
        let (stop, thread) = self.down.lock().unwrap().take().expect("started once");
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let listener = thread.join().unwrap();
        let handler = Recorder {
            received: self.received.clone(),
            mode: self.mode.clone(),
            current: None,
        };
        let mut server = Server::new(handler);
        server
            .with_name("smtp.test")
            .with_ssl(SslConfig::None)
            .unwrap()
            .with_num_threads(4)
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn received(&self) -> Vec<Mail> {
        self.received.lock().unwrap().clone()
    }

    /// Waits up to 10 s for at least `n` emails.
    pub fn wait_for(&self, n: usize) -> Vec<Mail> {
        for _ in 0..200 {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("expected {n} emails, got {}", self.received().len());
    }
}
