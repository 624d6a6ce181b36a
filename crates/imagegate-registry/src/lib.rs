//! The imagegate registry engine.
//!
//! Layers point one way: [`reference`], [`digest`] and [`secret`] depend on
//! nothing; [`credentials`] on those; [`transport`] (HTTP, TLS, auth, the one
//! retry loop) on credentials; [`client`] (registry operations) on transport;
//! [`copy`] (whole-image operations) on client; [`criteria`] (a Zuul
//! builds API, through a transport of its own) beside client; [`Engine`] is
//! the facade that modules use.

pub mod bounded;
pub mod builder;
pub mod client;
pub mod copy;
pub mod credentials;
pub mod criteria;
pub mod digest;
pub mod docker_archive;
pub mod error;
pub mod interrupt;
pub mod journal;
pub mod layout;
pub mod listing;
pub mod log;
pub mod manifest;
pub mod mirror;
pub mod progress;
pub mod promote;
pub mod promotion;
pub mod push;
mod quirks;
pub mod reference;
pub mod referrers;
pub mod report;
pub mod restore;
mod resume;
pub mod secret;
pub mod stats;
pub mod tags;
pub mod transport;
mod verify;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use client::{RegistryClient, UploadMode};
pub use copy::{copy_image, BlobCache, CopyReport, CopyRequest, TagChange};
pub use credentials::{AuthFiles, Credential};
pub use digest::Digest;
pub use error::{Error, ErrorKind};
pub use reference::Reference;
pub use secret::Secret;
pub use stats::{Stats, StatsSnapshot};
pub use transport::{Limits, RegistryConfig, RetryPolicy, Transport, TransportOptions};

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub retry: RetryPolicy,
    pub limits: Limits,
    pub upload: UploadMode,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            limits: Limits::default(),
            upload: UploadMode::Monolithic,
        }
    }
}

/// Hands out clients, sharing one transport (connections, tokens) per
/// registry and role. A role separates, say, the source credentials of a
/// registry from its destination credentials.
#[derive(Debug)]
pub struct Engine {
    options: EngineOptions,
    /// Backoff per host, shared by all transports.
    gates: transport::SharedGates,
    transports: Mutex<HashMap<(String, String), Arc<Transport>>>,
}

impl Engine {
    pub fn new(options: EngineOptions) -> Self {
        Self {
            options,
            gates: Arc::default(),
            transports: Mutex::default(),
        }
    }

    /// The options a transport of this engine gets: its retry policy,
    /// deadlines, and the backoff per host shared with every other one. For
    /// a transport to something other than a registry (a Zuul API).
    pub fn transport_options(&self) -> TransportOptions {
        TransportOptions {
            retry: self.options.retry,
            limits: self.options.limits,
            gates: self.gates.clone(),
        }
    }

    /// A client for `registry` in `role`, configured by `config` the first
    /// time the pair is asked for. `stats` collects what the client does.
    pub fn client(&self, registry: &str, role: &str, config: &RegistryConfig, stats: Arc<Stats>) -> Result<RegistryClient, Error> {
        let key = (registry.to_string(), role.to_string());
        let mut map = self.transports.lock().expect("transport map");
        let transport = match map.get(&key) {
            Some(t) => t.clone(),
            None => {
                let options = self.transport_options();
                let t = Arc::new(Transport::new(registry, config, &options)?);
                map.insert(key, t.clone());
                t
            }
        };
        Ok(RegistryClient::new(transport, stats, self.options.upload))
    }
}
