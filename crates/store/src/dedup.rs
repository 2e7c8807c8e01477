//! The SQLite store's dedup index: every dedup key of the window, in memory, with a durable
//! append-only log behind it.
//!
//! Why not a table keyed by the dedup key: keys are uniformly random, so each commit of N new
//! keys dirties up to N different B-tree pages, and the WAL receives a full page for each. At
//! tens of thousands of events a second that write amplification, not the lookups, is the
//! bottleneck. Here a commit appends its new keys as one packed blob (`dedup_log`), and lookups
//! go to hash sets in memory, rebuilt from the log on start.
//!
//! Keys live in generations of a quarter of the window each. A key is remembered for at least
//! the window and at most the window plus one generation. Memory is bounded by `keys_max`:
//! past it, the oldest generations are forgotten early (and counted), rather than the process
//! running out of memory. Cost: about 16 bytes of memory and 8 bytes of disk per key.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use crate::IngestItem;

/// Generations per dedup window. More means retention closer to the window, at a little more
/// lookup work per key.
pub const GENERATIONS_PER_WINDOW: i64 = 4;

/// Dedup keys are already uniformly distributed hashes; hashing them again is wasted work. A
/// multiply spreads their bits into the top ones the hash table uses for its control bytes.
#[derive(Default)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_i64(&mut self, value: i64) {
        self.0 = value as u64;
    }
}

type KeySet = HashSet<i64, BuildHasherDefault<KeyHasher>>;

#[derive(Debug)]
struct Generation {
    id: i64,
    started_ms: i64,
    keys: KeySet,
    /// Whether its `dedup_generations` row has been committed.
    persisted: bool,
}

#[derive(Debug)]
pub(crate) struct DedupIndex {
    window_ms: i64,
    generation_ms: i64,
    keys_max: usize,
    /// Oldest first.
    generations: VecDeque<Generation>,
    n_keys: usize,
    n_evicted_early: u64,
}

/// What a group adds to the durable log.
#[derive(Debug, Default)]
pub(crate) struct DedupChanges {
    /// Generations to record: id and start.
    pub new_generations: Vec<(i64, i64)>,
    /// The generation the new keys belong to, and its start.
    pub generation: i64,
    pub generation_started_ms: i64,
    pub new_keys: Vec<i64>,
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DedupStats {
    pub n_keys: u64,
    pub n_generations: u64,
    /// Generations forgotten before their time because the key limit was reached.
    pub n_evicted_early: u64,
}

impl DedupIndex {
    pub fn new(window_ms: i64, keys_max: usize) -> DedupIndex {
        assert!(window_ms > 0, "the config validates a positive window");
        DedupIndex {
            window_ms,
            generation_ms: (window_ms / GENERATIONS_PER_WINDOW).max(1),
            keys_max,
            generations: VecDeque::new(),
            n_keys: 0,
            n_evicted_early: 0,
        }
    }

    /// Loads a persisted generation; call in id order, then [`DedupIndex::load_keys`].
    pub fn load_generation(&mut self, id: i64, started_ms: i64) {
        self.generations.push_back(Generation {
            id,
            started_ms,
            keys: KeySet::default(),
            persisted: true,
        });
    }

    pub fn load_keys(&mut self, generation: i64, keys: impl Iterator<Item = i64>) {
        if let Some(target) = self.generations.iter_mut().find(|g| g.id == generation) {
            for key in keys {
                if target.keys.insert(key) {
                    self.n_keys += 1;
                }
            }
        }
    }

    fn is_expired(&self, generation: &Generation, now_ms: i64) -> bool {
        generation.started_ms + self.generation_ms + self.window_ms <= now_ms
    }

    /// Decides, in order, which keys are new: not in any live generation and not earlier in
    /// `keys`. New keys join the current generation at once; [`DedupIndex::undo`] takes them
    /// back if the commit fails.
    pub fn admit(&mut self, now_ms: i64, keys: &[i64], is_new: &mut Vec<bool>) -> DedupChanges {
        let needs_generation = self
            .generations
            .back()
            .is_none_or(|current| now_ms >= current.started_ms + self.generation_ms);
        if needs_generation {
            let id = self.generations.back().map_or(1, |g| g.id + 1);
            self.generations.push_back(Generation {
                id,
                started_ms: now_ms,
                keys: KeySet::default(),
                persisted: false,
            });
        }
        let live_from = self
            .generations
            .iter()
            .position(|g| !self.is_expired(g, now_ms))
            .unwrap_or(self.generations.len());
        let mut changes = DedupChanges::default();
        let n_generations = self.generations.len();
        let (older, newest) = self
            .generations
            .make_contiguous()
            .split_at_mut(n_generations - 1);
        let current = &mut newest[0];
        let live_older = &older[live_from.min(older.len())..];
        for key in keys {
            let seen =
                current.keys.contains(key) || live_older.iter().rev().any(|g| g.keys.contains(key));
            if !seen {
                current.keys.insert(*key);
                changes.new_keys.push(*key);
            }
            is_new.push(!seen);
        }
        self.n_keys += changes.new_keys.len();
        changes.generation = current.id;
        changes.generation_started_ms = current.started_ms;
        changes.new_generations = self
            .generations
            .iter()
            .filter(|g| !g.persisted)
            .map(|g| (g.id, g.started_ms))
            .collect();
        changes
    }

    /// Takes back the keys of a group whose commit failed.
    pub fn undo(&mut self, changes: &DedupChanges) {
        if let Some(generation) = self
            .generations
            .iter_mut()
            .find(|g| g.id == changes.generation)
        {
            for key in &changes.new_keys {
                if generation.keys.remove(key) {
                    self.n_keys -= 1;
                }
            }
        }
    }

    /// Marks a group's changes committed, then forgets generations that have expired (or,
    /// past `keys_max`, the oldest ones). Returns the ids whose log rows may be deleted.
    pub fn committed(&mut self, changes: &DedupChanges, now_ms: i64) -> Vec<i64> {
        for generation in &mut self.generations {
            if changes
                .new_generations
                .iter()
                .any(|(id, _)| *id == generation.id)
            {
                generation.persisted = true;
            }
        }
        let mut forgotten = Vec::new();
        while self.generations.len() > 1 {
            let oldest = &self.generations[0];
            let expired = self.is_expired(oldest, now_ms);
            let over_limit = self.n_keys > self.keys_max;
            if !expired && !over_limit {
                break;
            }
            if !expired {
                self.n_evicted_early += 1;
            }
            let oldest = self
                .generations
                .pop_front()
                .expect("more than one generation");
            self.n_keys -= oldest.keys.len();
            forgotten.push(oldest.id);
        }
        forgotten
    }

    /// The start of the oldest generation still remembered: a key first seen before it is
    /// forgotten.
    pub fn remembered_since_ms(&self) -> Option<i64> {
        self.generations.front().map(|g| g.started_ms)
    }

    pub fn stats(&self) -> DedupStats {
        DedupStats {
            n_keys: self.n_keys as u64,
            n_generations: self.generations.len() as u64,
            n_evicted_early: self.n_evicted_early,
        }
    }
}

/// Packs keys for the log: 8 bytes each, little-endian.
pub(crate) fn pack(keys: &[i64]) -> Vec<u8> {
    keys.iter().flat_map(|k| k.to_le_bytes()).collect()
}

pub(crate) fn unpack(bytes: &[u8]) -> impl Iterator<Item = i64> + '_ {
    bytes
        .chunks_exact(8)
        .map(|chunk| i64::from_le_bytes(chunk.try_into().expect("chunks of 8")))
}

/// Count records by id: a record whose key is remembered is a plain duplicate when it says what
/// the remembered one said, and a conflict when it says something else. Both stores keep each
/// new record's body key (`count_bodies`) beside its dedup key, for as long as the key lives,
/// and ask these three functions what to read, what to refuse and what to write.
///
/// Keys of count records that are not new and whose body must be read from the store: their
/// first occurrence is not in this group. Sorted, each once.
pub(crate) fn count_keys_to_read(items: &[IngestItem], is_new: &[bool]) -> Vec<i64> {
    let in_group = new_count_bodies(items, is_new);
    let mut keys: Vec<i64> = items
        .iter()
        .zip(is_new)
        .filter(|(item, new)| item.count_body.is_some() && !**new)
        .map(|(item, _)| item.dedup_key)
        .filter(|key| !in_group.contains_key(key))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Items (by index) that repeat a count record's id with a different body: one remembered in
/// `stored` (key → body key), or the first of this group with that id.
pub(crate) fn count_conflicts(
    items: &[IngestItem],
    is_new: &[bool],
    stored: &HashMap<i64, i64>,
) -> Vec<usize> {
    let in_group = new_count_bodies(items, is_new);
    items
        .iter()
        .zip(is_new)
        .enumerate()
        .filter_map(|(index, (item, new))| {
            let body = item.count_body.as_ref().filter(|_| !*new)?;
            let known = in_group
                .get(&item.dedup_key)
                .or_else(|| stored.get(&item.dedup_key))?;
            (*known != body.body_key).then_some(index)
        })
        .collect()
}

/// The body keys of the group's new count records, by dedup key: what the store remembers.
pub(crate) fn new_count_bodies(items: &[IngestItem], is_new: &[bool]) -> HashMap<i64, i64> {
    items
        .iter()
        .zip(is_new)
        .filter(|(_, new)| **new)
        .filter_map(|(item, _)| Some((item.dedup_key, item.count_body.as_ref()?.body_key)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: i64 = 4_000;

    fn admit(index: &mut DedupIndex, now: i64, keys: &[i64]) -> Vec<bool> {
        let mut is_new = Vec::new();
        let changes = index.admit(now, keys, &mut is_new);
        index.committed(&changes, now);
        is_new
    }

    #[test]
    fn a_key_is_new_once_within_a_group_and_across_groups() {
        let mut index = DedupIndex::new(WINDOW, 1_000);
        assert_eq!(admit(&mut index, 0, &[1, 2, 1]), [true, true, false]);
        assert_eq!(admit(&mut index, 10, &[2, 3]), [false, true]);
    }

    #[test]
    fn keys_are_remembered_for_at_least_the_window_and_at_most_one_generation_more() {
        let generation = WINDOW / GENERATIONS_PER_WINDOW;
        for seen_at in [0, generation - 1] {
            let mut index = DedupIndex::new(WINDOW, 1_000);
            admit(&mut index, 0, &[100]);
            admit(&mut index, seen_at, &[7]);
            // Keep the clock moving with unrelated keys, as traffic does.
            for t in (seen_at..seen_at + WINDOW).step_by(100) {
                admit(&mut index, t, &[t + 1_000_000]);
            }
            assert_eq!(
                admit(&mut index, seen_at + WINDOW - 1, &[7]),
                [false],
                "seen at {seen_at}"
            );
            assert_eq!(
                admit(&mut index, seen_at + WINDOW + generation + 1, &[7]),
                [true],
                "seen at {seen_at}"
            );
        }
    }

    #[test]
    fn undo_takes_back_a_failed_group() {
        let mut index = DedupIndex::new(WINDOW, 1_000);
        let mut is_new = Vec::new();
        let changes = index.admit(0, &[5, 6], &mut is_new);
        index.undo(&changes);
        assert_eq!(index.stats().n_keys, 0);
        assert_eq!(admit(&mut index, 1, &[5, 6]), [true, true]);
    }

    #[test]
    fn the_key_limit_forgets_the_oldest_generations_first() {
        let generation = WINDOW / GENERATIONS_PER_WINDOW;
        let mut index = DedupIndex::new(WINDOW, 3);
        admit(&mut index, 0, &[1, 2]);
        admit(&mut index, generation, &[3, 4]);
        let stats = index.stats();
        assert_eq!(
            (stats.n_keys, stats.n_generations, stats.n_evicted_early),
            (2, 1, 1)
        );
        assert_eq!(admit(&mut index, generation + 1, &[1, 3]), [true, false]);
    }

    fn count(key: i64, body_key: Option<i64>) -> IngestItem {
        IngestItem {
            dedup_key: key,
            cells: Vec::new(),
            late: false,
            ignored_name: None,
            count_body: body_key.map(|body_key| crate::CountBody {
                id: format!("id-{key}"),
                body_key,
            }),
        }
    }

    #[test]
    fn a_count_id_with_another_body_conflicts_with_the_store_or_the_group() {
        // Items: a new record (key 1), its identical and its different re-send in the same
        // group, a re-send of a stored record (key 2) that agrees and one that does not, a
        // remembered key with no stored body (written before bodies were kept), a message.
        let items = [
            count(1, Some(10)),
            count(1, Some(10)),
            count(1, Some(11)),
            count(2, Some(20)),
            count(2, Some(21)),
            count(3, Some(30)),
            count(4, None),
        ];
        let is_new = [true, false, false, false, false, false, false];
        assert_eq!(count_keys_to_read(&items, &is_new), [2, 3]);
        let stored = HashMap::from([(2, 20)]);
        assert_eq!(count_conflicts(&items, &is_new, &stored), [2, 4]);
        assert_eq!(new_count_bodies(&items, &is_new), HashMap::from([(1, 10)]));
    }

    #[test]
    fn packing_round_trips() {
        let keys = [0, 1, -1, i64::MAX, 42];
        assert_eq!(unpack(&pack(&keys)).collect::<Vec<_>>(), keys);
    }
}
