//! TLS session memory for one certificate's routes. rustls' `ClientSessionMemoryCache` keeps at
//! most 8 TLS 1.3 tickets per partner name; a pool that opens 16 or 64 connections to one partner
//! at once uses them up, and the rest make full handshakes. This store keeps more tickets per
//! partner (each is still used once, newest first) and bounds the number of partners.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use rustls::client::{ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::NamedGroup;
use rustls_pki_types::ServerName;

/// TLS 1.3 tickets kept per partner name: as many as the pool keeps idle connections per partner
/// (`max_idle_per_host`, 64 by default), so a burst of new connections resumes.
pub const TICKETS_PER_PARTNER: usize = 64;
/// Partner names remembered per store (the oldest is forgotten first).
pub const PARTNERS: usize = 64;

#[derive(Default)]
struct Partner {
    kx_hint: Option<NamedGroup>,
    tls12: Option<Tls12ClientSessionValue>,
    /// Oldest first.
    tls13: VecDeque<Tls13ClientSessionValue>,
}

#[derive(Default)]
struct Memory {
    partners: HashMap<ServerName<'static>, Partner>,
    /// Insertion order, for forgetting the oldest partner.
    order: VecDeque<ServerName<'static>>,
}

impl Memory {
    fn partner(&mut self, name: ServerName<'static>) -> &mut Partner {
        if !self.partners.contains_key(&name) {
            if self.order.len() >= PARTNERS {
                if let Some(old) = self.order.pop_front() {
                    self.partners.remove(&old);
                }
            }
            self.order.push_back(name.clone());
        }
        self.partners.entry(name).or_default()
    }
}

#[derive(Default)]
pub struct SessionMemory {
    memory: Mutex<Memory>,
}

impl std::fmt::Debug for SessionMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionMemory")
    }
}

impl SessionMemory {
    fn with<T>(&self, f: impl FnOnce(&mut Memory) -> T) -> T {
        f(&mut self.memory.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl ClientSessionStore for SessionMemory {
    fn set_kx_hint(&self, name: ServerName<'static>, group: NamedGroup) {
        self.with(|m| m.partner(name).kx_hint = Some(group));
    }

    fn kx_hint(&self, name: &ServerName<'_>) -> Option<NamedGroup> {
        self.with(|m| m.partners.get(name).and_then(|p| p.kx_hint))
    }

    fn set_tls12_session(&self, name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.with(|m| m.partner(name).tls12 = Some(value));
    }

    fn tls12_session(&self, name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.with(|m| m.partners.get(name).and_then(|p| p.tls12.clone()))
    }

    fn remove_tls12_session(&self, name: &ServerName<'static>) {
        self.with(|m| {
            if let Some(p) = m.partners.get_mut(name) {
                p.tls12 = None;
            }
        });
    }

    fn insert_tls13_ticket(&self, name: ServerName<'static>, value: Tls13ClientSessionValue) {
        self.with(|m| {
            let tickets = &mut m.partner(name).tls13;
            if tickets.len() >= TICKETS_PER_PARTNER {
                tickets.pop_front();
            }
            tickets.push_back(value);
        });
    }

    fn take_tls13_ticket(&self, name: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        self.with(|m| m.partners.get_mut(name).and_then(|p| p.tls13.pop_back()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partners_are_bounded_and_the_oldest_is_forgotten() {
        let store = SessionMemory::default();
        let name = |i: usize| ServerName::try_from(format!("p{i}.test")).unwrap();
        for i in 0..PARTNERS + 5 {
            store.set_kx_hint(name(i), NamedGroup::X25519);
        }
        assert_eq!(store.kx_hint(&name(0)), None, "the oldest partner is forgotten");
        assert_eq!(store.kx_hint(&name(PARTNERS + 4)), Some(NamedGroup::X25519));
        store.with(|m| assert_eq!((m.partners.len(), m.order.len()), (PARTNERS, PARTNERS)));
    }
}
