//! The mapping keeper: holds one mapping open by renewing it before its lease ends, and says so
//! when it is lost (the gateway rebooted, forgot it, or stopped answering) and when it is back.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::Result;
use crate::gateway::{Gateway, Mapping, MappingRequest};

/// How often a permanent mapping (lease 0) is checked for presence.
pub const PERMANENT_CHECK_INTERVAL: Duration = Duration::from_secs(300);
/// Shortest wait between two renewals, so a gateway granting tiny leases cannot make us spin.
pub const MIN_RENEW_DELAY: Duration = Duration::from_secs(1);
/// Wait after a failed renewal before trying again.
pub const RETRY_DELAY: Duration = Duration::from_secs(2);
/// Capacity of the event channel; events beyond it are dropped (the latest state matters).
pub const EVENT_CAPACITY: usize = 16;

/// What the keeper reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeeperEvent {
    /// The mapping was renewed (or re-created) and is as shown.
    Renewed(Mapping),
    /// A renewal failed; the keeper keeps trying every [`RETRY_DELAY`].
    Lost {
        /// Why, as a one-line message.
        reason: String,
    },
}

/// When to renew a mapping granted for `lease_seconds`: half-way through the lease (so one lost
/// renewal still leaves time for another), or a periodic presence check for permanent ones.
pub fn renewal_delay(lease_seconds: u32) -> Duration {
    if lease_seconds == 0 {
        return PERMANENT_CHECK_INTERVAL;
    }
    Duration::from_millis(u64::from(lease_seconds) * 500).max(MIN_RENEW_DELAY)
}

/// A running keeper. Dropping it stops renewals without deleting; [`MappingKeeper::stop`]
/// deletes the mapping too.
#[derive(Debug)]
pub struct MappingKeeper {
    mapping: Mapping,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    gateway: Gateway,
}

impl MappingKeeper {
    /// Add the mapping now (errors are returned as from [`Gateway::add`]) and keep it renewed in
    /// the background. Events arrive on the returned receiver.
    pub async fn start(
        gateway: Gateway,
        request: MappingRequest,
    ) -> Result<(MappingKeeper, mpsc::Receiver<KeeperEvent>)> {
        let mapping = gateway.add(&request).await?;
        let (events_tx, events_rx) = mpsc::channel(EVENT_CAPACITY);
        let (stop_tx, stop_rx) = oneshot::channel();
        // Renew exactly what was granted: the same external port, even if any port was allowed.
        let mut renew_request = request;
        renew_request.external_port = Some(mapping.external_port);
        renew_request.any_port = false;
        let task = tokio::spawn(run(
            gateway.clone(),
            renew_request,
            mapping.lease_seconds,
            events_tx,
            stop_rx,
        ));
        Ok((
            MappingKeeper {
                mapping,
                stop: Some(stop_tx),
                task: Some(task),
                gateway,
            },
            events_rx,
        ))
    }

    /// The mapping as first granted.
    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    /// Stop renewing and delete the mapping from the gateway.
    pub async fn stop(mut self) -> Result<()> {
        self.halt().await;
        self.gateway
            .delete(self.mapping.protocol, self.mapping.external_port)
            .await
    }

    async fn halt(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MappingKeeper {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn run(
    gateway: Gateway,
    request: MappingRequest,
    mut lease: u32,
    events: mpsc::Sender<KeeperEvent>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut delay = renewal_delay(lease);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(delay) => {}
        }
        let outcome = if lease == 0 {
            // Permanent: re-add only if the gateway forgot it.
            match gateway
                .get(
                    request.protocol,
                    request.external_port.unwrap_or(request.internal_port),
                )
                .await
            {
                Ok(Some(_)) => {
                    delay = renewal_delay(0);
                    continue;
                }
                Ok(None) => gateway.add(&request).await,
                Err(e) => Err(e),
            }
        } else {
            gateway.add(&request).await
        };
        match outcome {
            Ok(mapping) => {
                lease = mapping.lease_seconds;
                delay = renewal_delay(lease);
                tracing::debug!(port = mapping.external_port, lease, "mapping renewed");
                let _ = events.try_send(KeeperEvent::Renewed(mapping));
            }
            Err(e) => {
                tracing::warn!(error = %e, "mapping renewal failed");
                delay = RETRY_DELAY;
                let _ = events.try_send(KeeperEvent::Lost {
                    reason: e.to_string(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renews_half_way_with_a_floor() {
        assert_eq!(renewal_delay(3600), Duration::from_secs(1800));
        assert_eq!(renewal_delay(1), MIN_RENEW_DELAY);
        assert_eq!(renewal_delay(0), PERMANENT_CHECK_INTERVAL);
        assert_eq!(renewal_delay(604_800), Duration::from_secs(302_400));
    }
}
