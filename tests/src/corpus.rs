//! The development corpus (`shared/corpus`): where it is, and its manifest.
//!
//! Tests find the corpus through `SENSOR_CORPUS`, defaulting to
//! `../shared/corpus` relative to the workspace root. When it is absent the
//! tests skip with one line, so a fresh clone elsewhere still passes.

use std::path::{Path, PathBuf};

use crate::workspace_root;

/// One row of `MANIFEST.tsv`.
#[derive(Debug, Clone)]
pub struct ManifestEntry {
    /// Category such as `encap`, `tcp-reasm`, `tls`.
    pub category: String,
    /// Size of the capture file in bytes.
    pub bytes: u64,
    /// Packet count, or -1 where the manifest does not know it.
    pub packets: i64,
    /// Source project, `owner+repo`.
    pub repo: String,
    /// Path of the capture inside the source project.
    pub path: String,
    /// Which expected result covers the capture.
    pub oracle: String,
}

/// The corpus: its root directory and its manifest.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// Directory holding `MANIFEST.tsv`, `pcaps/` and `expected/`.
    pub root: PathBuf,
    /// Every row of the manifest, in file order.
    pub entries: Vec<ManifestEntry>,
}

/// Where the corpus should be: `SENSOR_CORPUS`, else `../shared/corpus`
/// relative to the workspace root.
pub fn corpus_location() -> PathBuf {
    match std::env::var_os("SENSOR_CORPUS") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        None => workspace_root().join("..").join("shared").join("corpus"),
    }
}

/// The corpus, or `None` after printing one "skipping" line when it is absent.
pub fn corpus_or_skip() -> Option<Corpus> {
    let root = corpus_location();
    if !root.join("MANIFEST.tsv").is_file() {
        println!("skipping: corpus not found at {}", root.display());
        return None;
    }
    Some(Corpus::load(&root))
}

impl Corpus {
    /// Reads `MANIFEST.tsv` under `root`.
    pub fn load(root: &Path) -> Self {
        let manifest =
            std::fs::read_to_string(root.join("MANIFEST.tsv")).expect("MANIFEST.tsv is readable");
        let entries = manifest
            .lines()
            .skip(1)
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                let cols: Vec<&str> = line.split('\t').collect();
                assert!(cols.len() >= 6, "malformed MANIFEST.tsv row: {line}");
                ManifestEntry {
                    category: cols[0].to_owned(),
                    bytes: cols[1].parse().expect("bytes column is a number"),
                    packets: cols[2].parse().expect("packets column is a number"),
                    repo: cols[3].to_owned(),
                    path: cols[4].to_owned(),
                    oracle: cols[5].to_owned(),
                }
            })
            .collect();
        Self {
            root: root.to_path_buf(),
            entries,
        }
    }

    /// Absolute path of a capture given its source repo and path.
    pub fn pcap(&self, repo: &str, path: &str) -> PathBuf {
        self.root.join("pcaps").join(repo).join(path)
    }

    /// Absolute path of the capture of a manifest row.
    pub fn entry_path(&self, entry: &ManifestEntry) -> PathBuf {
        self.pcap(&entry.repo, &entry.path)
    }

    /// Rows of one category.
    pub fn category<'a>(&'a self, category: &'a str) -> impl Iterator<Item = &'a ManifestEntry> {
        self.entries.iter().filter(move |e| e.category == category)
    }

    /// A path relative to the corpus root, for messages.
    pub fn relative<'a>(&self, path: &'a Path) -> std::borrow::Cow<'a, str> {
        match path.strip_prefix(self.root.join("pcaps")) {
            Ok(rel) => rel.to_string_lossy(),
            Err(_) => path.to_string_lossy(),
        }
    }
}
