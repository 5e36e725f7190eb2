//! What enrollment remembers between passes: interfaces AWS refused and
//! instances events named, optionally kept in a JSON file across runs.
//!
//! Owns: the remembered sets, their caps and their file. Does not: decide
//! when a refusal expires (reconcile does, from `refused_retry`).

use super::reconcile::{Named, Refusal};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Most interfaces remembered as refused; the oldest go first.
const MAX_REFUSED: usize = 100_000;
/// Most instances remembered as named by events; the oldest go first.
const MAX_NAMED: usize = 100_000;

/// The remembered state.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EnrollState {
    /// Interface → the refusal AWS gave.
    pub refused: BTreeMap<String, Refusal>,
    /// Instance → the event that named it, with its time (Unix seconds).
    pub named: BTreeMap<String, (Named, u64)>,
}

impl EnrollState {
    /// Reads `path` (an absent file is an empty state).
    pub fn load(path: Option<&PathBuf>) -> Result<Self, String> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| format!("state file {}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(format!("state file {}: {e}", path.display())),
        }
    }

    /// Writes the state to `path` (through a temporary file, so a crash
    /// never leaves half a file).
    pub fn save(&self, path: Option<&PathBuf>) -> Result<(), String> {
        let Some(path) = path else { return Ok(()) };
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| format!("state file {}: {e}", path.display()))
    }

    /// Remembers a refusal.
    pub fn refuse(&mut self, eni: &str, refusal: Refusal) {
        self.refused.insert(eni.to_string(), refusal);
        while self.refused.len() > MAX_REFUSED {
            let oldest = self
                .refused
                .iter()
                .min_by_key(|(_, r)| r.at_unix)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.refused.remove(&k),
                None => break,
            };
        }
    }

    /// Remembers an instance an event named.
    pub fn name(&mut self, instance: &str, why: Named, at_unix: u64) {
        // A GuardDuty finding outranks a launch for the same instance.
        let entry = self
            .named
            .entry(instance.to_string())
            .or_insert((why, at_unix));
        if why == Named::GuardDuty {
            *entry = (why, at_unix);
        }
        while self.named.len() > MAX_NAMED {
            let oldest = self
                .named
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.named.remove(&k),
                None => break,
            };
        }
    }

    /// The named instances without their times.
    pub fn named_now(&self) -> BTreeMap<String, Named> {
        self.named
            .iter()
            .map(|(k, (why, _))| (k.clone(), *why))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_file_and_guardduty_wins() {
        let dir = std::env::temp_dir().join(format!("enroll-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        let mut s = EnrollState::load(Some(&path)).unwrap();
        assert_eq!(s, EnrollState::default());
        s.refuse(
            "eni-1",
            Refusal {
                code: "NetworkInterfaceNotSupported".into(),
                message: "m".into(),
                at_unix: 5,
            },
        );
        s.name("i-1", Named::GuardDuty, 1);
        s.name("i-1", Named::Launch, 2);
        s.save(Some(&path)).unwrap();
        let back = EnrollState::load(Some(&path)).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.named_now()["i-1"], Named::GuardDuty);
        std::fs::write(&path, "{").unwrap();
        assert!(EnrollState::load(Some(&path)).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
