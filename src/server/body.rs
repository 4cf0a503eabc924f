//! Reading a request body under three bounds: its own size, a deadline,
//! and what all bodies being read at once may hold together (the budget).
//! A body that would go over the budget is refused at once, not queued:
//! memory stays bounded however many clients send at the same time.

use axum::body::{Body, Bytes};
use http_body_util::BodyExt;
use std::sync::Arc;
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

/// The bytes in-flight bodies may hold together.
#[derive(Clone)]
pub struct BodyBudget {
    permits: Arc<Semaphore>,
}

/// A whole body, and its share of the budget (given back on drop).
pub struct ReadBody {
    pub bytes: Bytes,
    _share: Option<OwnedSemaphorePermit>,
}

impl BodyBudget {
    /// A budget of `bytes` (at most 4 GiB).
    pub fn new(bytes: usize) -> Self {
        let bytes = bytes.min(u32::MAX as usize);
        BodyBudget {
            permits: Arc::new(Semaphore::new(bytes)),
        }
    }

    fn take(&self, bytes: usize) -> Result<Option<OwnedSemaphorePermit>, BodyRefused> {
        if bytes == 0 {
            return Ok(None);
        }
        let n = u32::try_from(bytes).map_err(|_| BodyRefused::OverBudget)?;
        self.permits
            .clone()
            .try_acquire_many_owned(n)
            .map(Some)
            .map_err(|_| BodyRefused::OverBudget)
    }

    /// Reads `body` whole. A declared length is taken from the budget
    /// before a byte is read; without one, each frame takes its share as
    /// it arrives.
    pub async fn read(
        &self,
        body: Body,
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
        let reserved = declared.unwrap_or(0) as usize;
        let mut share = self.take(reserved)?;
        let collect = async {
            let mut body = body;
            let mut bytes = Vec::with_capacity(reserved);
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|_| BodyRefused::Broken)?;
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if bytes.len() + data.len() > limit {
                    return Err(BodyRefused::TooLarge { limit });
                }
                let beyond = (bytes.len() + data.len()).saturating_sub(reserved.max(bytes.len()));
                if let Some(more) = self.take(beyond)? {
                    match &mut share {
                        Some(share) => share.merge(more),
                        None => share = Some(more),
                    }
                }
                bytes.extend_from_slice(&data);
            }
            Ok(bytes)
        };
        let bytes = tokio::time::timeout(deadline, collect)
            .await
            .map_err(|_| BodyRefused::TimedOut(deadline))??;
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

    #[test]
    fn the_budget_is_shared_and_given_back() {
        rt().block_on(async {
            let budget = BodyBudget::new(10);
            let day = Duration::from_secs(86_400);
            let a = budget
                .read(Body::from("123456"), Some(6), 100, day)
                .await
                .unwrap();
            assert_eq!(&a.bytes[..], b"123456");
            assert_eq!(
                budget
                    .read(Body::from("12345"), Some(5), 100, day)
                    .await
                    .err(),
                Some(BodyRefused::OverBudget)
            );
            // Undeclared: taken frame by frame, refused past the budget.
            assert_eq!(
                budget.read(Body::from("12345"), None, 100, day).await.err(),
                Some(BodyRefused::OverBudget)
            );
            drop(a);
            assert!(
                budget
                    .read(Body::from("12345"), None, 100, day)
                    .await
                    .is_ok()
            );
            assert_eq!(
                budget
                    .read(Body::from("x"), Some(101), 100, day)
                    .await
                    .err(),
                Some(BodyRefused::TooLarge { limit: 100 })
            );
            assert_eq!(
                budget
                    .read(Body::from("0123456789"), None, 5, day)
                    .await
                    .err(),
                Some(BodyRefused::TooLarge { limit: 5 })
            );
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
            let budget = BodyBudget::new(100);
            let limit = Duration::from_millis(50);
            let got = budget.read(Body::new(Never), Some(10), 100, limit).await;
            assert_eq!(got.err(), Some(BodyRefused::TimedOut(limit)));
            // Its share came back.
            assert!(budget.take(100).unwrap().is_some());
        });
    }
}
