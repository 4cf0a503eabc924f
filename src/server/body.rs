//! Reading a request body under five bounds: its own size, a deadline, a
//! minimum rate, what all bodies being read at once may hold together
//! (the budget), and the part of the budget one client address may hold
//! (an eighth), so that one machine cannot take all of it from GitHub. A
//! body that would go over either is refused at once, not queued: memory
//! stays bounded however many clients send at the same time, and a client
//! holds budget only with bytes it keeps sending.

use axum::body::{Body, Bytes};
use http_body_util::BodyExt;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a body was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyRefused {
    /// Declared or found larger than the limit.
    TooLarge { limit: usize },
    /// The bytes all bodies may hold together are taken.
    OverBudget,
    /// Not received within the deadline.
    TimedOut(Duration),
    /// The client broke off or sent a malformed body.
    Broken,
}

/// How much of a body a little too large is read and thrown away before
/// the 413, so that a client which sends its whole body before reading the
/// answer gets the answer rather than a reset connection. Bounded in bytes
/// and by the body deadline; nothing read is kept.
const DRAIN_MAX: usize = 2 << 20;

async fn discard(mut body: Body, max: usize, deadline: Duration) {
    let drain = async {
        let mut seen = 0;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > max {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(deadline, drain).await;
}

/// How long a body may take to start.
pub const BODY_GRACE: Duration = Duration::from_secs(2);
/// After [`BODY_GRACE`], a body must arrive at least this fast (bytes a
/// second), or it is cut off: a client holds its part of the budget only
/// for as long as it keeps sending.
pub const BODY_MIN_RATE: u64 = 512 << 10;

fn rate_time(bytes: usize) -> Duration {
    Duration::from_secs_f64(bytes as f64 / BODY_MIN_RATE as f64)
}

/// The address a client's share is kept under: IPv4 addresses one by one,
/// IPv6 by /64 (what one host or site is usually given).
fn sharing_address(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
    }
}

/// The bytes in-flight bodies may hold together.
#[derive(Clone)]
pub struct BodyBudget {
    permits: Arc<Semaphore>,
    /// Bytes held per client address.
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
    per_client: usize,
}

/// Bytes of the budget one body holds; given back on drop.
struct Share {
    permit: Option<OwnedSemaphorePermit>,
    client: Option<IpAddr>,
    bytes: usize,
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for Share {
    fn drop(&mut self) {
        let Some(client) = self.client else { return };
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(&client) {
            *n = n.saturating_sub(self.bytes);
            if *n == 0 {
                held.remove(&client);
            }
        }
    }
}

/// A whole body, and its share of the budget (given back on drop).
pub struct ReadBody {
    pub bytes: Bytes,
    _share: Share,
}

impl BodyBudget {
    /// A budget of `bytes` (at most 4 GiB); one client may hold an eighth
    /// of it, and at least `one_body` bytes.
    pub fn new(bytes: usize, one_body: usize) -> Self {
        let bytes = bytes.min(u32::MAX as usize);
        BodyBudget {
            permits: Arc::new(Semaphore::new(bytes)),
            held: Arc::default(),
            per_client: (bytes / 8).max(one_body),
        }
    }

    fn share(&self, client: Option<IpAddr>) -> Share {
        Share {
            permit: None,
            client,
            bytes: 0,
            held: self.held.clone(),
        }
    }

    /// Adds `bytes` to `share`, from the client's part and the budget.
    fn take(&self, share: &mut Share, bytes: usize) -> Result<(), BodyRefused> {
        if bytes == 0 {
            return Ok(());
        }
        let n = u32::try_from(bytes).map_err(|_| BodyRefused::OverBudget)?;
        let permit = self
            .permits
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| BodyRefused::OverBudget)?;
        if let Some(client) = share.client {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            let mine = held.entry(client).or_insert(0);
            if *mine + bytes > self.per_client {
                return Err(BodyRefused::OverBudget);
            }
            *mine += bytes;
        }
        share.bytes += bytes;
        match &mut share.permit {
            Some(held) => held.merge(permit),
            None => share.permit = Some(permit),
        }
        Ok(())
    }

    /// Reads `body` whole: each frame takes its share of the budget as it
    /// arrives; a declared length over `limit` is refused unread. The body
    /// must come within `deadline`, and keep up with [`BODY_MIN_RATE`]
    /// after [`BODY_GRACE`].
    pub async fn read(
        &self,
        body: Body,
        client: Option<IpAddr>,
        declared: Option<u64>,
        limit: usize,
        deadline: Duration,
    ) -> Result<ReadBody, BodyRefused> {
        if let Some(n) = declared.filter(|n| *n > limit as u64) {
            if n <= (limit + DRAIN_MAX) as u64 {
                discard(body, DRAIN_MAX, deadline).await;
            }
            return Err(BodyRefused::TooLarge { limit });
        }
        let start = tokio::time::Instant::now();
        let last_call = start + deadline;
        let mut share = self.share(client.map(sharing_address));
        let mut body = body;
        // What is declared is not taken before it arrives: holding the
        // budget costs a client the bytes it sends.
        let mut bytes = Vec::with_capacity(declared.unwrap_or(0).min(16 << 10) as usize);
        loop {
            // The next bytes are due before the body falls behind the
            // minimum rate, and before the deadline.
            let behind = BODY_GRACE + rate_time(bytes.len() + 1);
            let due = (start + behind).min(last_call);
            let frame = match tokio::time::timeout_at(due, body.frame()).await {
                Err(_) => return Err(BodyRefused::TimedOut(start.elapsed())),
                Ok(None) => break,
                Ok(Some(frame)) => frame.map_err(|_| BodyRefused::Broken)?,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if bytes.len() + data.len() > limit {
                return Err(BodyRefused::TooLarge { limit });
            }
            self.take(&mut share, data.len())?;
            bytes.extend_from_slice(&data);
        }
        Ok(ReadBody {
            bytes: Bytes::from(bytes),
            _share: share,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    const DAY: Duration = Duration::from_secs(86_400);

    async fn read(
        budget: &BodyBudget,
        body: &'static str,
        client: Option<&str>,
        declared: Option<u64>,
        limit: usize,
    ) -> Result<ReadBody, BodyRefused> {
        let client = client.map(|c| c.parse().unwrap());
        budget
            .read(Body::from(body), client, declared, limit, DAY)
            .await
    }

    #[test]
    fn the_budget_is_shared_and_given_back() {
        rt().block_on(async {
            let budget = BodyBudget::new(10, 1);
            let a = read(&budget, "123456", None, Some(6), 100).await.unwrap();
            assert_eq!(&a.bytes[..], b"123456");
            let over = Some(BodyRefused::OverBudget);
            assert_eq!(read(&budget, "12345", None, Some(5), 100).await.err(), over);
            // Undeclared: taken frame by frame, refused past the budget.
            assert_eq!(read(&budget, "12345", None, None, 100).await.err(), over);
            drop(a);
            assert!(read(&budget, "12345", None, None, 100).await.is_ok());
            let too_large = |limit| Some(BodyRefused::TooLarge { limit });
            assert_eq!(
                read(&budget, "x", None, Some(101), 100).await.err(),
                too_large(100)
            );
            assert_eq!(
                read(&budget, "0123456789", None, None, 5).await.err(),
                too_large(5)
            );
        });
    }

    #[test]
    fn one_client_may_hold_an_eighth_of_the_budget() {
        rt().block_on(async {
            let budget = BodyBudget::new(80, 5);
            let a = Some("198.51.100.1");
            let held = read(&budget, "0123456789", a, Some(10), 100).await.unwrap();
            assert_eq!(
                read(&budget, "01234", a, Some(5), 100).await.err(),
                Some(BodyRefused::OverBudget)
            );
            let b = read(&budget, "0123456789", Some("198.51.100.2"), Some(10), 100).await;
            assert!(b.is_ok());
            drop(held);
            assert!(read(&budget, "01234", a, Some(5), 100).await.is_ok());
            drop(b);
            assert!(budget.held.lock().unwrap().is_empty(), "nothing left held");
            assert_eq!(budget.permits.available_permits(), 80);
        });
    }

    /// A body whose bytes never come.
    struct Never;

    impl http_body::Body for Never {
        type Data = Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
            std::task::Poll::Pending
        }
    }

    #[test]
    fn a_body_that_does_not_arrive_times_out() {
        rt().block_on(async {
            let budget = BodyBudget::new(100, 10);
            let limit = Duration::from_millis(50);
            let client = Some("198.51.100.1".parse().unwrap());
            let got = budget
                .read(Body::new(Never), client, Some(10), 100, limit)
                .await;
            assert!(
                matches!(got, Err(BodyRefused::TimedOut(t)) if t >= limit),
                "{:?}",
                got.err()
            );
            // Its share came back.
            assert_eq!(budget.permits.available_permits(), 100);
            assert!(budget.held.lock().unwrap().is_empty());
        });
    }

    /// 1 KiB every 100 ms: 10 KiB/s, far under the minimum rate.
    struct Trickle(tokio::time::Interval);

    impl http_body::Body for Trickle {
        type Data = Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
            self.0
                .poll_tick(cx)
                .map(|_| Some(Ok(http_body::Frame::data(Bytes::from(vec![b' '; 1024])))))
        }
    }

    #[test]
    fn a_body_that_falls_behind_the_minimum_rate_is_cut_off_after_the_grace() {
        rt().block_on(async {
            let budget = BodyBudget::new(1 << 20, 1 << 20);
            let trickle = Trickle(tokio::time::interval(Duration::from_millis(100)));
            let start = std::time::Instant::now();
            let got = budget
                .read(Body::new(trickle), None, Some(1 << 20), 1 << 20, DAY)
                .await;
            let took = start.elapsed();
            assert!(
                matches!(got, Err(BodyRefused::TimedOut(_))),
                "{:?}",
                got.err()
            );
            assert!(took >= BODY_GRACE && took < BODY_GRACE * 2, "{took:?}");
            assert_eq!(budget.permits.available_permits(), 1 << 20);
        });
    }

    #[test]
    fn ipv6_clients_share_by_slash_64() {
        let a = sharing_address("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = sharing_address("2001:db8:1:2:bbbb::9".parse().unwrap());
        let c = sharing_address("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        let v4: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(sharing_address(v4), v4);
    }
}
