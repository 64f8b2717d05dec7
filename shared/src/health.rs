//! Health from named components: the service is healthy when every tracked component is.
//! The state drives both `grpc.health.v1` (for the service's name and the empty name) and the
//! HTTP health check.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;
use tonic_health::server::{health_reporter, HealthReporter};
use tonic_health::ServingStatus;

/// A cheap handle to the health state.
#[derive(Clone)]
pub struct Health {
    components: Arc<Mutex<BTreeMap<&'static str, bool>>>,
    healthy: watch::Sender<bool>,
}

impl Health {
    /// Creates the state (healthy while no component is tracked) and the gRPC health service.
    /// The returned future keeps the gRPC status in step; spawn it.
    pub fn new(
        service_name: &'static str,
    ) -> (
        Health,
        tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
        impl std::future::Future<Output = ()>,
    ) {
        let (reporter, server) = health_reporter();
        let (healthy, receiver) = watch::channel(true);
        let health = Health { components: Arc::default(), healthy };
        (health, server, follow(reporter, receiver, service_name))
    }

    /// Tracks `component` (if new) and sets its state.
    pub fn set(&self, component: &'static str, healthy: bool) {
        let mut components = self.components.lock();
        components.insert(component, healthy);
        let all = components.values().all(|&h| h);
        self.healthy.send_if_modified(|current| std::mem::replace(current, all) != all);
    }

    pub fn is_healthy(&self) -> bool {
        *self.healthy.borrow()
    }

    /// Components and their state, for diagnostics.
    pub fn components(&self) -> Vec<(&'static str, bool)> {
        self.components.lock().iter().map(|(k, v)| (*k, *v)).collect()
    }

    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.healthy.subscribe()
    }
}

async fn follow(reporter: HealthReporter, mut receiver: watch::Receiver<bool>, service_name: &'static str) {
    loop {
        let status = if *receiver.borrow_and_update() { ServingStatus::Serving } else { ServingStatus::NotServing };
        reporter.set_service_status(service_name, status).await;
        reporter.set_service_status("", status).await;
        if receiver.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn healthy_only_when_every_component_is() {
        let (health, _server, _follow) = Health::new("svc");
        assert!(health.is_healthy());
        health.set("redis", false);
        health.set("config", true);
        assert!(!health.is_healthy());
        health.set("redis", true);
        assert!(health.is_healthy());
    }
}
