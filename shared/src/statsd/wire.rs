//! Lines on the wire and the connection that carries them (TCP, or UDP datagrams no larger than
//! gostats' 1432 bytes, so they are not fragmented).

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

use super::{Mogrifier, StatsdSettings};
use crate::telemetry::LogBurst;

const MAX_DATAGRAM: usize = 1432;
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Room for a few flushes of a busy sink (the kernel doubles it), nothing like the MiBs a
/// connection's buffer grows to by default.
const TCP_SEND_BUFFER: u32 = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Format {
    /// Plain statsd; tags become name suffixes `.__key=value` (gostats).
    Statsd,
    /// DataDog's dialect: tags as `|#key:value`, names rewritten by the first mogrifier that
    /// matches.
    DogStatsd { mogrifiers: Vec<Mogrifier> },
}

/// gostats' tag cleaning: `.`, `:` and `|` would break the line, so they become `_`.
pub fn clean(text: &str) -> String {
    text.replace(['.', ':', '|'], "_")
}

/// One line, newline-terminated.
pub fn line(format: &Format, extra_tags: &[(String, String)], name: &str, value: u64, kind: &str) -> String {
    match format {
        Format::Statsd => {
            let tags: String = extra_tags.iter().map(|(k, v)| format!(".__{}={}", clean(k), clean(v))).collect();
            format!("{name}{tags}:{value}|{kind}\n")
        }
        Format::DogStatsd { mogrifiers } => {
            let mut tags: Vec<String> = extra_tags.iter().map(|(k, v)| format!("{}:{}", clean(k), clean(v))).collect();
            let name = match mogrifiers.iter().find_map(|m| m.apply(name)) {
                Some((renamed, more)) => {
                    tags.extend(more);
                    renamed
                }
                None => name.to_string(),
            };
            if tags.is_empty() {
                format!("{name}:{value}|{kind}\n")
            } else {
                format!("{name}:{value}|{kind}|#{}\n", tags.join(","))
            }
        }
    }
}

/// Packs lines into payloads of at most `max` bytes, never splitting a line (a longer line goes
/// alone).
pub fn pack(lines: &[String], max: usize) -> Vec<String> {
    let mut payloads = Vec::new();
    let mut current = String::new();
    for line in lines {
        if !current.is_empty() && current.len() + line.len() > max {
            payloads.push(std::mem::take(&mut current));
        }
        current.push_str(line);
    }
    if !current.is_empty() {
        payloads.push(current);
    }
    payloads
}

pub struct Connection {
    settings: StatsdSettings,
    tcp: Option<TcpStream>,
    udp: Option<UdpSocket>,
    /// The last send failed: said once more when sends work again.
    failing: bool,
    /// Failed sends are logged once per burst (a server that is down fails every send).
    burst: LogBurst,
}

impl Connection {
    pub fn new(settings: &StatsdSettings) -> Connection {
        Connection { settings: settings.clone(), tcp: None, udp: None, failing: false, burst: LogBurst::default() }
    }

    /// Sends `stats`; on failure they are dropped (as gostats does), the next send connects
    /// again, and `false` is returned (the caller counts it).
    pub async fn send(&mut self, stats: &[(String, u64, &'static str)]) -> bool {
        let lines: Vec<String> = stats
            .iter()
            .map(|(name, value, kind)| line(&self.settings.format, &self.settings.extra_tags, name, *value, kind))
            .collect();
        let result = match self.settings.transport {
            Transport::Tcp => self.send_tcp(&lines).await,
            Transport::Udp => self.send_udp(&lines).await,
        };
        let target = format!("{}:{}", self.settings.host, self.settings.port);
        match result {
            Ok(()) if self.failing => {
                self.failing = false;
                tracing::info!(%target, "statsd reachable again");
                true
            }
            Ok(()) => true,
            Err(e) => {
                self.tcp = None;
                self.udp = None;
                self.failing = true;
                if let Some(unsaid) = self.burst.failed(std::time::Instant::now()) {
                    tracing::warn!(%target, unsaid,
                        "statsd send failed, stats dropped (logged once per 30 s while it lasts): {e}");
                }
                false
            }
        }
    }

    async fn send_tcp(&mut self, lines: &[String]) -> std::io::Result<()> {
        if self.tcp.is_none() {
            let stream = tokio::time::timeout(IO_TIMEOUT, self.connect_tcp()).await.map_err(timed_out)??;
            self.tcp = Some(stream);
        }
        let stream = self.tcp.as_mut().expect("connected above");
        for payload in pack(lines, 64 * 1024) {
            tokio::time::timeout(IO_TIMEOUT, stream.write_all(payload.as_bytes())).await.map_err(timed_out)??;
        }
        Ok(())
    }

    /// A connection whose send buffer is kept small: a server that accepts and never reads
    /// then fills it within a few hundred KiB of stats, and the write timing out says so, where
    /// the default (grown to MiBs) would hide it for hours of light traffic.
    async fn connect_tcp(&self) -> std::io::Result<TcpStream> {
        let mut last = std::io::Error::other("the statsd host has no address");
        for address in tokio::net::lookup_host((self.settings.host.as_str(), self.settings.port)).await? {
            let socket = if address.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
            socket.set_send_buffer_size(TCP_SEND_BUFFER)?;
            match socket.connect(address).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn send_udp(&mut self, lines: &[String]) -> std::io::Result<()> {
        if self.udp.is_none() {
            let address = tokio::net::lookup_host((self.settings.host.as_str(), self.settings.port))
                .await?
                .next()
                .ok_or_else(|| std::io::Error::other("the statsd host has no address"))?;
            let local = if address.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
            let socket = UdpSocket::bind(local).await?;
            socket.connect(address).await?;
            self.udp = Some(socket);
        }
        let socket = self.udp.as_ref().expect("bound above");
        for payload in pack(lines, MAX_DATAGRAM) {
            socket.send(payload.as_bytes()).await?;
        }
        Ok(())
    }
}

fn timed_out(_: tokio::time::error::Elapsed) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out")
}
