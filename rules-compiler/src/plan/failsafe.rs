//! Failsafe entries: traffic accepted before any policy, for every local endpoint, so
//! that no policy can cut the operator's way in (by default inbound TCP 22).
//!
//! Decides what an entry may be (TCP or UDP, ports 1-65535, an optional peer CIDR),
//! how it is written (`ingress:TCP:22`, `egress:UDP:53-54:198.18.0.0/15`) and whether it
//! covers a packet. Where the entries go in the table is `compile`'s; which entries a
//! host has is its configuration's.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::Serialize;

use crate::model::{Direction, Protocol};

/// One failsafe entry: `protocol` to `ports` in `direction`, from (ingress) or to
/// (egress) a peer in `cidr`, or any peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Failsafe {
    direction: Direction,
    protocol: Protocol,
    ports: (u16, u16),
    cidr: Option<IpNet>,
}

/// Why a failsafe entry was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FailsafeError {
    /// Not `ingress` or `egress`.
    #[error("direction {0:?}: expected ingress or egress")]
    Direction(String),
    /// Not TCP or UDP.
    #[error("protocol {0:?}: expected TCP or UDP")]
    Protocol(String),
    /// Not a port or a range of ports within 1-65535.
    #[error("port {0:?}: expected a port (1-65535) or a range N-M with N <= M")]
    Port(String),
    /// Not a CIDR.
    #[error("cidr {0:?}: expected an address with a prefix length, e.g. 198.18.0.0/15")]
    Cidr(String),
    /// Not `DIRECTION:PROTOCOL:PORT[:CIDR]`.
    #[error("{0:?}: expected DIRECTION:PROTOCOL:PORT[:CIDR], e.g. ingress:TCP:22")]
    Form(String),
}

impl Failsafe {
    /// An entry; `protocol` must be TCP or UDP and `ports` a range within 1-65535.
    pub fn new(
        direction: Direction,
        protocol: Protocol,
        ports: (u16, u16),
        cidr: Option<IpNet>,
    ) -> Result<Failsafe, FailsafeError> {
        if protocol == Protocol::Sctp {
            return Err(FailsafeError::Protocol(protocol.to_string()));
        }
        if ports.0 == 0 || ports.0 > ports.1 {
            return Err(FailsafeError::Port(format!("{}-{}", ports.0, ports.1)));
        }
        Ok(Failsafe {
            direction,
            protocol,
            ports,
            cidr: cidr.map(|c| c.trunc()),
        })
    }

    /// Inbound SSH from anywhere: the default of netpold and netpolctl.
    pub fn ssh() -> Failsafe {
        Failsafe {
            direction: Direction::Ingress,
            protocol: Protocol::Tcp,
            ports: (22, 22),
            cidr: None,
        }
    }

    /// The entries a host has when it says nothing: [`Failsafe::ssh`].
    pub fn defaults() -> Vec<Failsafe> {
        vec![Failsafe::ssh()]
    }

    /// Its direction.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Its protocol (TCP or UDP).
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Its ports, first and last.
    pub fn ports(&self) -> (u16, u16) {
        self.ports
    }

    /// The peers it is for; `None`: any.
    pub fn cidr(&self) -> Option<IpNet> {
        self.cidr
    }

    /// Whether it accepts a packet of `protocol` (a number) to `port` in `direction`
    /// whose peer (the source of ingress, the destination of egress) is `peer`.
    pub fn covers(&self, direction: Direction, protocol: u8, port: u16, peer: IpAddr) -> bool {
        self.direction == direction
            && self.protocol.number() == protocol
            && (self.ports.0..=self.ports.1).contains(&port)
            && self.cidr.is_none_or(|c| c.contains(&peer))
    }

    /// The first of `entries` covering the packet (see [`Failsafe::covers`]).
    pub fn find(
        entries: &[Failsafe],
        direction: Direction,
        protocol: u8,
        port: u16,
        peer: IpAddr,
    ) -> Option<&Failsafe> {
        entries
            .iter()
            .find(|f| f.covers(direction, protocol, port, peer))
    }
}

/// `N` or `N-M`, within 1-65535.
pub fn parse_ports(s: &str) -> Result<(u16, u16), FailsafeError> {
    let bad = || FailsafeError::Port(s.to_string());
    let port = |p: &str| {
        p.trim()
            .parse::<u16>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(bad)
    };
    let (lo, hi) = match s.split_once('-') {
        Some((lo, hi)) => (port(lo)?, port(hi)?),
        None => (port(s)?, port(s)?),
    };
    if lo > hi {
        return Err(bad());
    }
    Ok((lo, hi))
}

/// `ingress` or `egress`.
pub fn parse_direction(s: &str) -> Result<Direction, FailsafeError> {
    match s {
        "ingress" => Ok(Direction::Ingress),
        "egress" => Ok(Direction::Egress),
        _ => Err(FailsafeError::Direction(s.to_string())),
    }
}

/// `TCP` or `UDP`, as policies spell them.
pub fn parse_protocol(s: &str) -> Result<Protocol, FailsafeError> {
    match Protocol::from_k8s(s) {
        Some(p @ (Protocol::Tcp | Protocol::Udp)) => Ok(p),
        _ => Err(FailsafeError::Protocol(s.to_string())),
    }
}

/// A CIDR (`198.18.0.0/15`, `2001:db8::/32`); a bare address is refused, so that a
/// forgotten prefix length is never read as /32.
pub fn parse_cidr(s: &str) -> Result<IpNet, FailsafeError> {
    s.parse().map_err(|_| FailsafeError::Cidr(s.to_string()))
}

impl FromStr for Failsafe {
    type Err = FailsafeError;

    /// `DIRECTION:PROTOCOL:PORT[:CIDR]`; the CIDR may hold colons (IPv6).
    fn from_str(s: &str) -> Result<Failsafe, FailsafeError> {
        let mut parts = s.splitn(4, ':');
        let (Some(d), Some(p), Some(ports)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(FailsafeError::Form(s.to_string()));
        };
        let cidr = parts.next().map(parse_cidr).transpose()?;
        Failsafe::new(
            parse_direction(d)?,
            parse_protocol(p)?,
            parse_ports(ports)?,
            cidr,
        )
    }
}

impl fmt::Display for Failsafe {
    /// `ingress TCP 22`, `egress UDP 53-54 to 198.18.0.0/15`: for people.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.direction, self.protocol, self.ports.0)?;
        if self.ports.1 != self.ports.0 {
            write!(f, "-{}", self.ports.1)?;
        }
        if let Some(c) = self.cidr {
            let word = match self.direction {
                Direction::Ingress => "from",
                Direction::Egress => "to",
            };
            write!(f, " {word} {c}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_read_and_written() {
        let ssh: Failsafe = "ingress:TCP:22".parse().unwrap();
        assert_eq!(ssh, Failsafe::ssh());
        assert_eq!(ssh.to_string(), "ingress TCP 22");
        let dns: Failsafe = "egress:UDP:53-54:2001:db8::/32".parse().unwrap();
        assert_eq!(dns.ports(), (53, 54));
        assert_eq!(dns.cidr(), Some("2001:db8::/32".parse().unwrap()));
        assert_eq!(dns.to_string(), "egress UDP 53-54 to 2001:db8::/32");
        // Host bits are dropped, as nft would.
        let net: Failsafe = "ingress:TCP:22:198.18.7.1/16".parse().unwrap();
        assert_eq!(net.cidr(), Some("198.18.0.0/16".parse().unwrap()));
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        for (text, want) in [
            ("ingress:TCP", FailsafeError::Form("ingress:TCP".into())),
            ("inbound:TCP:22", FailsafeError::Direction("inbound".into())),
            ("ingress:SCTP:22", FailsafeError::Protocol("SCTP".into())),
            ("ingress:tcp:22", FailsafeError::Protocol("tcp".into())),
            ("ingress:TCP:0", FailsafeError::Port("0".into())),
            ("ingress:TCP:23-22", FailsafeError::Port("23-22".into())),
            ("ingress:TCP:65536", FailsafeError::Port("65536".into())),
            ("ingress:TCP:ssh", FailsafeError::Port("ssh".into())),
            (
                "ingress:TCP:22:198.18.0.1",
                FailsafeError::Cidr("198.18.0.1".into()),
            ),
        ] {
            assert_eq!(text.parse::<Failsafe>(), Err(want), "{text}");
        }
    }

    #[test]
    fn covers_direction_protocol_ports_and_peer() {
        let f: Failsafe = "ingress:TCP:22-23:198.18.0.0/15".parse().unwrap();
        let inside: IpAddr = "198.19.1.1".parse().unwrap();
        let outside: IpAddr = "198.20.0.1".parse().unwrap();
        assert!(f.covers(Direction::Ingress, 6, 22, inside));
        assert!(f.covers(Direction::Ingress, 6, 23, inside));
        assert!(!f.covers(Direction::Ingress, 6, 24, inside));
        assert!(!f.covers(Direction::Ingress, 17, 22, inside));
        assert!(!f.covers(Direction::Egress, 6, 22, inside));
        assert!(!f.covers(Direction::Ingress, 6, 22, outside));
        assert!(!f.covers(Direction::Ingress, 6, 22, "2001:db8::1".parse().unwrap()));
        assert!(Failsafe::ssh().covers(Direction::Ingress, 6, 22, outside));
    }
}
