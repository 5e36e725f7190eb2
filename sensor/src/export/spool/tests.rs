//! Tests of the disk spool: appends, acks, recovery, damage, caps, the lock.

use super::super::store::tests::{TempDir, batch, held, id, meta, settings};
use super::super::store::{BatchId, FsyncPolicy, Store};
use super::*;
use proptest::prelude::*;

/// Segment file names in the directory, sorted.
fn segment_files(dir: &TempDir) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| n.ends_with(SUFFIX))
        .collect();
    names.sort();
    names
}

/// Appends (epoch, 0..n), batches of 100 bytes, 3 records each.
fn fill(store: &mut Store, epoch: u64, n: u64) {
    for seq in 0..n {
        let i = id(epoch, seq);
        store.append(meta(i, 3), batch(i, 100)).unwrap();
    }
}

/// Every held batch reads back as written.
fn assert_reads_back(store: &mut Store) {
    for i in held(store) {
        assert_eq!(store.read(i).unwrap(), Some(batch(i, 100)), "{i:?}");
    }
}

// 100-byte batches are 132-byte entries: two per 300-byte segment.
const SEG: u64 = 300;

#[test]
fn a_restart_brings_back_every_unacked_batch_and_not_deleted_segments() {
    let dir = TempDir::new("restart");
    let s = settings(&dir, 1 << 20, SEG);
    let (mut store, _) = Store::open_disk(&s).unwrap();
    fill(&mut store, 5, 7);
    assert_eq!(segment_files(&dir).len(), 4);
    assert_eq!(store.stats().segments, 4);
    // Segment 0 (0, 1) wholly acked; segment 1 (2, 3) half.
    for seq in [0, 1, 2] {
        assert!(store.ack(id(5, seq)));
    }
    assert_eq!(
        segment_files(&dir).len(),
        3,
        "the acked segment is deleted at once"
    );
    drop(store);
    let (mut store, rec) = Store::open_disk(&s).unwrap();
    // 2 is back with 3: acks are not kept, its segment was not whole.
    let back = held(&store);
    assert_eq!(back, (2..7).map(|q| id(5, q)).collect::<Vec<_>>());
    assert_eq!((rec.batches, rec.records, rec.corrupt_entries), (5, 15, 0));
    assert_eq!(rec.max_epoch, Some(5));
    assert_reads_back(&mut store);
    // The next epoch appends to a new segment; old ones are never
    // appended to.
    store
        .append(meta(id(6, 0), 1), batch(id(6, 0), 100))
        .unwrap();
    let files = segment_files(&dir);
    assert_eq!(files.len(), 4);
    assert_eq!(files[3], segment_name(id(6, 0)));
    // An id not above the spool's is refused after a restart too.
    assert!(
        store
            .append(meta(id(5, 9), 1), batch(id(5, 9), 10))
            .is_err()
    );
    for i in held(&store) {
        store.ack(i);
    }
    drop(store);
    assert!(segment_files(&dir).is_empty());
    let (store, rec) = Store::open_disk(&s).unwrap();
    assert!(store.is_empty());
    assert_eq!(rec.max_epoch, None);
}

#[test]
fn the_cap_deletes_whole_oldest_segments_and_counts_their_batches() {
    let dir = TempDir::new("cap");
    // Room for three full segments (280 bytes each) and not a fourth.
    let (mut store, _) = Store::open_disk(&settings(&dir, 900, SEG)).unwrap();
    fill(&mut store, 1, 10);
    let s = store.stats();
    assert!(s.bytes <= 900, "{s:?}");
    assert_eq!(held(&store), (4..10).map(|q| id(1, q)).collect::<Vec<_>>());
    assert_eq!(
        (s.dropped_batches, s.dropped_records, s.segments),
        (4, 12, 3)
    );
    assert_eq!(segment_files(&dir).len(), 3);
    // An acked batch is not counted as dropped when its segment goes.
    store.ack(id(1, 4));
    fill_from(&mut store, 1, 10, 2);
    assert_eq!(store.stats().dropped_batches, 5);
    // Larger than the cap on its own: dropped and counted alone.
    let big = id(2, 0);
    store.append(meta(big, 9), batch(big, 900)).unwrap();
    assert_eq!(store.stats().dropped_batches, 6);
    assert_eq!(store.stats().dropped_records, 12 + 3 + 9);
    assert_eq!(held(&store).len(), 6);
    assert_reads_back(&mut store);
}

fn fill_from(store: &mut Store, epoch: u64, from: u64, n: u64) {
    for seq in from..from + n {
        let i = id(epoch, seq);
        store.append(meta(i, 3), batch(i, 100)).unwrap();
    }
}

#[test]
fn a_spool_found_over_a_smaller_cap_is_cut_to_it() {
    let dir = TempDir::new("shrink");
    let (mut store, _) = Store::open_disk(&settings(&dir, 1 << 20, SEG)).unwrap();
    fill(&mut store, 1, 8);
    drop(store);
    let (store, rec) = Store::open_disk(&settings(&dir, 600, SEG)).unwrap();
    assert_eq!(held(&store), (4..8).map(|q| id(1, q)).collect::<Vec<_>>());
    assert_eq!(rec.batches, 4);
    assert_eq!(store.stats().dropped_batches, 4);
}

#[test]
fn damage_on_disk_is_counted_and_skipped_and_the_rest_delivered() {
    let dir = TempDir::new("damage");
    // Big segments: four entries each.
    let s = settings(&dir, 1 << 20, 600);
    let (mut store, _) = Store::open_disk(&s).unwrap();
    fill(&mut store, 3, 12);
    drop(store);
    let files = segment_files(&dir);
    assert_eq!(files.len(), 3);
    let path = |i: usize| dir.0.join(&files[i]);
    // Segment 0: a flipped byte in its second entry's batch.
    let mut bytes = std::fs::read(path(0)).unwrap();
    bytes[16 + 132 + 60] ^= 0xff;
    std::fs::write(path(0), &bytes).unwrap();
    // Segment 1: its last entry cut short.
    let len = std::fs::metadata(path(1)).unwrap().len();
    File::options()
        .write(true)
        .open(path(1))
        .unwrap()
        .set_len(len - 50)
        .unwrap();
    // Segment 2: garbage in the middle, between its 2nd and 3rd entry.
    let mut bytes = std::fs::read(path(2)).unwrap();
    bytes.splice(16 + 264..16 + 264, b"garbage NSPE garbage".iter().copied());
    std::fs::write(path(2), &bytes).unwrap();
    // A garbage file named like a segment, and files that are not ours.
    let fake = dir.0.join(segment_name(id(1, 0)));
    std::fs::write(&fake, b"not a segment at all").unwrap();
    std::fs::write(dir.0.join("segment.tmp"), b"leftover").unwrap();
    std::fs::create_dir(
        dir.0
            .join("00000000000000000009-00000000000000000000.nspool"),
    )
    .unwrap();

    let (mut store, rec) = Store::open_disk(&s).unwrap();
    let lost = [id(3, 1), id(3, 7)];
    let want: Vec<BatchId> = (0..12)
        .map(|q| id(3, q))
        .filter(|i| !lost.contains(i))
        .collect();
    assert_eq!(held(&store), want);
    // The flip, the cut tail, the garbage, the fake file.
    assert_eq!(rec.corrupt_entries, 4);
    assert_eq!(rec.batches, 10);
    assert_eq!(rec.max_epoch, Some(3));
    let stats = store.stats();
    assert_eq!(stats.corrupt_bytes, 132 + (132 - 50) + 20 + 20);
    assert_reads_back(&mut store);
    // The fake segment had nothing good: deleted. Others are left.
    assert!(!fake.exists());
    assert!(dir.0.join("segment.tmp").exists());
    // The store keeps working: a new segment.
    store
        .append(meta(id(4, 0), 1), batch(id(4, 0), 100))
        .unwrap();
    assert_eq!(store.read(id(4, 0)).unwrap(), Some(batch(id(4, 0), 100)));
    assert_eq!(segment_files(&dir).len(), 4);
}

#[test]
fn damage_found_on_read_is_counted_and_the_batch_forgotten() {
    let dir = TempDir::new("readdamage");
    let (mut store, _) = Store::open_disk(&settings(&dir, 1 << 20, 600)).unwrap();
    fill(&mut store, 1, 3);
    let file = dir.0.join(&segment_files(&dir)[0]);
    let f = File::options().write(true).open(&file).unwrap();
    f.write_all_at(b"XX", 16 + 132 + 40).unwrap();
    assert_eq!(store.read(id(1, 0)).unwrap(), Some(batch(id(1, 0), 100)));
    assert_eq!(store.read(id(1, 1)).unwrap(), None);
    assert_eq!(held(&store), [id(1, 0), id(1, 2)]);
    let s = store.stats();
    assert_eq!((s.corrupt_entries, s.corrupt_bytes, s.batches), (1, 132, 2));
    assert_eq!(store.read(id(1, 2)).unwrap(), Some(batch(id(1, 2), 100)));
    // A segment deleted behind the store's back: its batches are damaged.
    store
        .append(meta(id(2, 0), 1), batch(id(2, 0), 400))
        .unwrap();
    std::fs::remove_file(&file).unwrap();
    store
        .append(meta(id(2, 1), 1), batch(id(2, 1), 100))
        .unwrap();
    assert_eq!(store.read(id(2, 1)).unwrap(), Some(batch(id(2, 1), 100)));
    assert_eq!(store.read(id(1, 2)).unwrap(), None);
    assert_eq!(store.stats().corrupt_entries, 2);
}

#[test]
fn a_second_opener_of_the_directory_is_refused_by_name() {
    let dir = TempDir::new("lock");
    let s = settings(&dir, 1 << 20, SEG);
    let (first, _) = Store::open_disk(&s).unwrap();
    let err = Store::open_disk(&s).unwrap_err();
    assert!(
        err.to_string().contains(&dir.0.display().to_string()),
        "{err}"
    );
    assert!(err.to_string().contains("in use"), "{err}");
    drop(first);
    Store::open_disk(&s).unwrap();
}

#[test]
fn settings_that_cannot_work_are_refused() {
    let dir = TempDir::new("settings");
    assert!(Store::open_disk(&settings(&dir, 100, 200)).is_err());
    assert!(Store::open_disk(&settings(&dir, 100, 0)).is_err());
}

#[test]
fn a_failed_write_is_counted_and_returned_and_the_store_goes_on() {
    let dir = TempDir::new("writeerr");
    let mut s = settings(&dir, 1 << 20, SEG);
    s.fsync = FsyncPolicy::Always;
    let (mut store, _) = Store::open_disk(&s).unwrap();
    fill(&mut store, 1, 2);
    // The directory disappears: the next segment cannot be created.
    std::fs::remove_dir_all(&dir.0).unwrap();
    assert!(
        store
            .append(meta(id(1, 2), 1), batch(id(1, 2), 100))
            .is_err()
    );
    assert_eq!(store.stats().write_errors, 1);
    assert!(!held(&store).contains(&id(1, 2)));
    std::fs::create_dir_all(&dir.0).unwrap();
    store
        .append(meta(id(1, 3), 1), batch(id(1, 3), 100))
        .unwrap();
    assert_eq!(store.read(id(1, 3)).unwrap(), Some(batch(id(1, 3), 100)));
    store.sync().unwrap();
}

#[test]
fn interval_policy_syncs_in_tick_when_due_and_always_before_append_returns() {
    let dir = TempDir::new("tick");
    let mut s = settings(&dir, 1 << 20, SEG);
    let every = std::time::Duration::from_secs(60);
    s.fsync = FsyncPolicy::Interval(every);
    let (mut spool, _) = DiskSpool::open(&s).unwrap();
    let i = id(1, 0);
    spool.append(meta(i, 1), &batch(i, 10)).unwrap();
    assert!(spool.unsynced && spool.dir_unsynced);
    spool.tick(spool.last_sync + every / 2).unwrap();
    assert!(spool.unsynced, "not due yet");
    spool.tick(spool.last_sync + every).unwrap();
    assert!(!spool.unsynced && !spool.dir_unsynced, "due");
    drop(spool);
    s.fsync = FsyncPolicy::Always;
    let (mut spool, _) = DiskSpool::open(&s).unwrap();
    let i = id(2, 0);
    spool.append(meta(i, 1), &batch(i, 10)).unwrap();
    assert!(!spool.unsynced && !spool.dir_unsynced);
    drop(spool);
    s.fsync = FsyncPolicy::Never;
    let (mut spool, _) = DiskSpool::open(&s).unwrap();
    let i = id(3, 0);
    spool.append(meta(i, 1), &batch(i, 10)).unwrap();
    spool.tick(Instant::now() + every * 10).unwrap();
    assert!(spool.unsynced, "never synced by tick");
    spool.sync().unwrap();
    assert!(!spool.unsynced, "but by an explicit sync");
}

#[derive(Debug, Clone)]
enum Op {
    Append {
        len: usize,
        records: u32,
        new_epoch: bool,
    },
    Ack(usize),
    Read(usize),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0usize..400, 0u32..50, proptest::bool::weighted(0.1))
            .prop_map(|(len, records, new_epoch)| Op::Append { len, records, new_epoch }),
        4 => any::<usize>().prop_map(Op::Ack),
        2 => any::<usize>().prop_map(Op::Read),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Against a model: what is held is exactly what was appended and
    /// not acked, in id order, reading back as written; after a
    /// reopen, every unacked batch is back (acked ones may return,
    /// from a segment not wholly acked) and the epoch moves on.
    #[test]
    fn random_appends_acks_and_reopens_match_a_model(
        ops in proptest::collection::vec(op(), 1..60),
        segment_bytes in 200u64..2000,
    ) {
        let dir = TempDir::new("model");
        let s = settings(&dir, 1 << 30, segment_bytes);
        let (mut store, _) = Store::open_disk(&s).unwrap();
        let mut model: BTreeMap<BatchId, (u32, usize)> = BTreeMap::new();
        let mut acked: BTreeMap<BatchId, (u32, usize)> = BTreeMap::new();
        let mut next = id(1, 0);
        for op in ops {
            match op {
                Op::Append { len, records, new_epoch } => {
                    if new_epoch {
                        next = id(next.epoch + 1, 0);
                    }
                    store.append(meta(next, records), batch(next, len)).unwrap();
                    model.insert(next, (records, len));
                    next.sequence += 1;
                }
                Op::Ack(k) => {
                    let ids: Vec<_> = model.keys().copied().collect();
                    if let Some(&i) = ids.get(k % ids.len().max(1)) {
                        prop_assert!(store.ack(i));
                        acked.insert(i, model.remove(&i).unwrap());
                    }
                }
                Op::Read(k) => {
                    let ids: Vec<_> = model.keys().copied().collect();
                    if let Some(&i) = ids.get(k % ids.len().max(1)) {
                        prop_assert_eq!(store.read(i).unwrap(), Some(batch(i, model[&i].1)));
                    }
                }
                Op::Reopen => {
                    drop(store);
                    let (reopened, rec) = Store::open_disk(&s).unwrap();
                    store = reopened;
                    prop_assert_eq!(rec.corrupt_entries, 0);
                    for i in held(&store) {
                        if let Some(v) = acked.remove(&i) {
                            model.insert(i, v);
                        }
                    }
                    let max = model.keys().map(|i| i.epoch).max();
                    prop_assert!(rec.max_epoch >= max);
                    next = id(rec.max_epoch.unwrap_or(0).max(next.epoch) + 1, 0);
                }
            }
            prop_assert_eq!(held(&store), model.keys().copied().collect::<Vec<_>>());
            let st = store.stats();
            prop_assert_eq!(st.batches, model.len() as u64);
            prop_assert_eq!(st.records, model.values().map(|v| u64::from(v.0)).sum::<u64>());
            prop_assert_eq!(st.segments, segment_files(&dir).len() as u64);
            let on_disk: u64 = segment_files(&dir).iter()
                .map(|n| std::fs::metadata(dir.0.join(n)).unwrap().len()).sum();
            prop_assert_eq!(st.bytes, on_disk);
            prop_assert_eq!(st.dropped_batches + st.corrupt_entries + st.write_errors, 0);
        }
        for i in model.keys().copied().collect::<Vec<_>>() {
            prop_assert_eq!(store.read(i).unwrap(), Some(batch(i, model[&i].1)));
            store.ack(i);
        }
        prop_assert!(segment_files(&dir).is_empty());
    }
}
