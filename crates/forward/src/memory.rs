//! A backend that only remembers forwards (tests of the control plane, dry runs).

use std::collections::BTreeMap;

use crate::{plan, Backend, Forward, ForwardError, Protocol, ReconcileReport};

/// Holds forwards in memory; carries no traffic.
#[derive(Debug, Default, Clone)]
pub struct MemoryBackend {
    forwards: BTreeMap<(Protocol, u16), Forward>,
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> MemoryBackend {
        MemoryBackend::default()
    }

    /// The forward held for (protocol, external port).
    pub fn get(&self, protocol: Protocol, external_port: u16) -> Option<&Forward> {
        self.forwards.get(&(protocol, external_port))
    }
}

impl Backend for MemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn add(&mut self, f: &Forward) -> Result<(), ForwardError> {
        f.validate()?;
        self.forwards.insert(f.key(), *f);
        Ok(())
    }

    fn remove(&mut self, f: &Forward) -> Result<(), ForwardError> {
        self.forwards.remove(&f.key());
        Ok(())
    }

    fn reconcile(&mut self, wanted: &[Forward]) -> Result<ReconcileReport, ForwardError> {
        let current: Vec<Forward> = self.forwards.values().copied().collect();
        let p = plan(&current, wanted)?;
        for f in &p.remove {
            self.forwards.remove(&f.key());
        }
        for f in &p.add {
            self.forwards.insert(f.key(), *f);
        }
        Ok(ReconcileReport {
            added: p.add.len(),
            removed: p.remove.len(),
        })
    }

    fn list(&mut self) -> Result<Vec<Forward>, ForwardError> {
        Ok(self.forwards.values().copied().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn remembers() {
        let f = Forward {
            protocol: Protocol::Udp,
            external_port: 5060,
            internal_client: Ipv4Addr::new(192, 168, 0, 91),
            internal_port: 5060,
        };
        let mut b = MemoryBackend::new();
        b.add(&f).unwrap();
        assert_eq!(b.list().unwrap(), vec![f]);
        assert_eq!(
            b.reconcile(&[]).unwrap(),
            ReconcileReport {
                added: 0,
                removed: 1
            }
        );
        assert!(b.get(Protocol::Udp, 5060).is_none());
        b.remove(&f).unwrap();
    }
}
