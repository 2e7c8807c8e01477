//! SQLite ingest: the group commit (dedup keys, counts, new segments and dimension values, and
//! the problem log's additions in one transaction), the ingest lock, the in-memory state only the ingesting process keeps, and
//! the roll of recent counts. It must never read counts for anyone but itself: reads live in
//! `counts`.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use rusqlite::{Connection, TransactionBehavior, params};

use revloop_core::Config;
use revloop_core::funnel::DimensionDictionary;

use super::problems::write_problem_log;
use super::{IngestState, SqliteStore, Writer};
use crate::dedup::{
    DedupIndex, DedupStats, count_conflicts, count_keys_to_read, new_count_bodies, pack, unpack,
};
use crate::plan::{CommitPlan, Layout, WriterState};
use crate::{IngestGroup, IngestReceipt, StoreError};

impl SqliteStore {
    /// The ingest state, loading it (and taking the ingest lock) the first time.
    pub(super) fn ingest_state<'w>(
        &self,
        ingest: &'w mut Option<IngestState>,
        connection: &Connection,
    ) -> Result<&'w mut IngestState, StoreError> {
        if ingest.is_none() {
            *ingest = Some(start_ingest(
                &self.path,
                connection,
                &self.config,
                &self.layout,
            )?);
        }
        Ok(ingest.as_mut().expect("loaded above"))
    }

    pub(super) fn commit_ingest(&self, group: &IngestGroup) -> Result<IngestReceipt, StoreError> {
        let mut guard = self.writer.lock().expect("writer lock");
        let Writer { connection, ingest } = &mut *guard;
        let ingest = self.ingest_state(ingest, connection)?;
        let now_ms = group.now.millis();
        let keys: Vec<i64> = group.items.iter().map(|item| item.dedup_key).collect();
        let mut is_new = Vec::with_capacity(keys.len());
        let dedup_changes = ingest.dedup.admit(now_ms, &keys, &mut is_new);
        let conflicts = read_count_bodies(connection, &group.items, &is_new)
            .map(|stored| count_conflicts(&group.items, &is_new, &stored));
        match conflicts {
            Ok(conflicts) if conflicts.is_empty() => {}
            Ok(conflicts) => {
                ingest.dedup.undo(&dedup_changes);
                return Err(StoreError::CountConflict { items: conflicts });
            }
            Err(err) => {
                ingest.dedup.undo(&dedup_changes);
                return Err(err);
            }
        }
        let plan = ingest.state.plan(&self.layout, &group.items, &is_new);
        // The current and the previous minute stay in the recent table; see `roll_recent_counts`.
        let roll_before = group.now.minute().index() - 1;
        let result = (|| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for (id, started_ms) in &dedup_changes.new_generations {
                transaction
                    .prepare_cached(
                        "INSERT OR IGNORE INTO dedup_generations (id, started_ms) VALUES (?1, ?2)",
                    )?
                    .execute(params![id, started_ms])?;
            }
            if !dedup_changes.new_keys.is_empty() {
                transaction
                    .prepare_cached("INSERT INTO dedup_log (generation, keys) VALUES (?1, ?2)")?
                    .execute(params![
                        dedup_changes.generation,
                        pack(&dedup_changes.new_keys)
                    ])?;
            }
            write_plan(&transaction, &self.layout, &plan)?;
            write_problem_log(&transaction, group, &is_new)?;
            let mut add_body = transaction.prepare_cached(
                "INSERT OR REPLACE INTO count_bodies (key, body_key, at_ms) VALUES (?1, ?2, ?3)",
            )?;
            // Stamped no earlier than its generation's start, which is what pruning compares
            // with: after the clock steps back, `now_ms` can be older than the current
            // generation, and a body stamped with it would be pruned while its key is kept.
            let body_at_ms = now_ms.max(dedup_changes.generation_started_ms);
            for (key, body_key) in new_count_bodies(&group.items, &is_new) {
                add_body.execute(params![key, body_key, body_at_ms])?;
            }
            drop(add_body);
            if roll_before > ingest.rolled_before {
                roll_recent_counts(&transaction, roll_before)?;
            }
            transaction.commit()?;
            Ok::<(), StoreError>(())
        })();
        if let Err(err) = result {
            ingest.dedup.undo(&dedup_changes);
            ingest.state.forget(&plan);
            return Err(err);
        }
        ingest.state.committed(&plan);
        ingest.rolled_before = ingest.rolled_before.max(roll_before);
        let forgotten = ingest.dedup.committed(&dedup_changes, now_ms);
        if !forgotten.is_empty() {
            // Best effort: rows of forgotten generations left behind by a failure here are
            // loaded and forgotten again on the next start. A count body left behind is
            // replaced when its key is next seen, as the key is new again.
            let since_ms = ingest.dedup.remembered_since_ms().unwrap_or(now_ms);
            let _ = forget_generations(connection, &forgotten, since_ms);
        }
        Ok(IngestReceipt { is_new })
    }

    pub(super) fn claim_ingest(&self) -> Result<(), StoreError> {
        let mut guard = self.writer.lock().expect("writer lock");
        let Writer { connection, ingest } = &mut *guard;
        self.ingest_state(ingest, connection).map(|_| ())
    }

    pub(super) fn dedup_stats(&self) -> Option<DedupStats> {
        let writer = self.writer.lock().expect("writer lock");
        writer.ingest.as_ref().map(|ingest| ingest.dedup.stats())
    }
}

/// Takes the ingest lock and loads what ingest keeps in memory.
fn start_ingest(
    path: &Path,
    connection: &Connection,
    config: &Config,
    layout: &Layout,
) -> Result<IngestState, StoreError> {
    let lock_path = path.with_extension("ingest-lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|err| StoreError::Io(format!("opening {}: {err}", lock_path.display())))?;
    lock.try_lock()
        .map_err(|_| StoreError::Busy(path.display().to_string()))?;

    let mut dictionary = DimensionDictionary::new(config);
    let mut statement = connection.prepare("SELECT dimension, value FROM dimension_values")?;
    let rows = statement.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    for row in rows {
        let (dimension, value) = row?;
        if let Some(index) = layout.dimension_names.iter().position(|d| *d == dimension) {
            dictionary.load(index, &value);
        }
    }
    let mut statement = connection.prepare("SELECT key FROM segments")?;
    let known_segments: HashSet<i64> = statement
        .query_map([], |row| row.get::<_, i64>(0))?
        .collect::<Result<_, _>>()?;

    let mut dedup = DedupIndex::new(
        config.ingest.dedup_window.millis(),
        config.ingest.dedup_keys_max as usize,
    );
    let mut statement =
        connection.prepare("SELECT id, started_ms FROM dedup_generations ORDER BY id")?;
    let generations =
        statement.query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)))?;
    for generation in generations {
        let (id, started_ms) = generation?;
        dedup.load_generation(id, started_ms);
    }
    let mut statement = connection.prepare("SELECT generation, keys FROM dedup_log ORDER BY id")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let generation: i64 = row.get(0)?;
        let keys = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
        dedup.load_keys(generation, unpack(keys));
    }
    let rolled_before: i64 = connection.query_row(
        "SELECT COALESCE(MIN(minute), ?1) FROM stage_counts_recent",
        [i64::MIN],
        |row| row.get(0),
    )?;
    Ok(IngestState {
        rolled_before,
        _lock: lock,
        state: WriterState::new(dictionary, known_segments),
        dedup,
    })
}

/// Moves the counts of minutes before `before` from the recent table into `stage_counts`.
///
/// Why two tables: `stage_counts` is keyed segment-major, so that a read of one segment over
/// days is one range scan. But every commit adds to the current minute of hundreds of
/// segments, and in a segment-major B-tree each of those rows sits on a different page: the
/// WAL would receive a page per row per commit, growing with the table. The recent table is
/// keyed minute-major, so a commit's rows share a few pages at the right edge; once a minute
/// it hands its older rows over, in key order, in one statement.
fn roll_recent_counts(transaction: &rusqlite::Transaction, before: i64) -> Result<(), StoreError> {
    transaction
        .prepare_cached(
            "INSERT INTO stage_counts (funnel, segment, minute, stage, n_events, revenue_minor, n_revenue_events)
             SELECT funnel, segment, minute, stage, n_events, revenue_minor, n_revenue_events
             FROM stage_counts_recent WHERE minute < ?1 ORDER BY funnel, segment, minute, stage
             ON CONFLICT (funnel, segment, minute, stage) DO UPDATE SET
                 n_events = CAST(n_events + excluded.n_events AS INTEGER),
                 revenue_minor = CAST(revenue_minor + excluded.revenue_minor AS INTEGER),
                 n_revenue_events = CAST(n_revenue_events + excluded.n_revenue_events AS INTEGER)",
        )?
        .execute([before])?;
    transaction
        .prepare_cached("DELETE FROM stage_counts_recent WHERE minute < ?1")?
        .execute([before])?;
    Ok(())
}

/// The stored body keys of the group's count records whose key is remembered from before it.
fn read_count_bodies(
    connection: &Connection,
    items: &[crate::IngestItem],
    is_new: &[bool],
) -> Result<HashMap<i64, i64>, StoreError> {
    let mut stored = HashMap::new();
    let keys = count_keys_to_read(items, is_new);
    if keys.is_empty() {
        return Ok(stored);
    }
    let mut statement =
        connection.prepare_cached("SELECT body_key FROM count_bodies WHERE key = ?1")?;
    for key in keys {
        let mut rows = statement.query([key])?;
        if let Some(row) = rows.next()? {
            stored.insert(key, row.get(0)?);
        }
    }
    Ok(stored)
}

/// Deletes the dedup log of forgotten generations, and the count bodies first seen before
/// `since_ms` (the oldest generation still remembered).
fn forget_generations(
    connection: &Connection,
    ids: &[i64],
    since_ms: i64,
) -> Result<(), StoreError> {
    let transaction = connection.unchecked_transaction()?;
    for id in ids {
        transaction.execute("DELETE FROM dedup_log WHERE generation = ?1", [id])?;
        transaction.execute("DELETE FROM dedup_generations WHERE id = ?1", [id])?;
    }
    transaction.execute("DELETE FROM count_bodies WHERE at_ms < ?1", [since_ms])?;
    transaction.commit()?;
    Ok(())
}

fn write_plan(
    transaction: &rusqlite::Transaction,
    layout: &Layout,
    plan: &CommitPlan,
) -> Result<(), StoreError> {
    // Each sum is cast back to INTEGER: SQLite turns an integer sum that leaves i64 into a
    // REAL, and the cast brings it back to the nearest i64 bound, so the column keeps its type
    // and the sum saturates (see `REVENUE_MINOR_MAX` for why a cap alone is not enough).
    let mut add_count = transaction.prepare_cached(
        "INSERT INTO stage_counts_recent (funnel, segment, minute, stage, n_events, revenue_minor, n_revenue_events)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (funnel, segment, minute, stage) DO UPDATE SET
             n_events = CAST(n_events + excluded.n_events AS INTEGER),
             revenue_minor = CAST(revenue_minor + excluded.revenue_minor AS INTEGER),
             n_revenue_events = CAST(n_revenue_events + excluded.n_revenue_events AS INTEGER)",
    )?;
    for ((funnel, stage, segment, minute), count) in &plan.counts {
        let (funnel_id, stage_ids) = &layout.funnels[*funnel];
        add_count.execute(params![
            funnel_id,
            segment,
            minute,
            stage_ids[*stage],
            count.n_events,
            count.revenue_minor,
            count.n_revenue_events
        ])?;
    }
    let mut add_late = transaction.prepare_cached(
        "INSERT INTO late_counts (funnel, minute, stage, n_events) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (funnel, minute, stage) DO UPDATE SET n_events = CAST(n_events + excluded.n_events AS INTEGER)",
    )?;
    for ((funnel, stage, minute), n_events) in &plan.late {
        let (funnel_id, stage_ids) = &layout.funnels[*funnel];
        add_late.execute(params![funnel_id, minute, stage_ids[*stage], n_events])?;
    }
    let mut add_late_segment = transaction.prepare_cached(
        "INSERT INTO late_segment_counts (funnel, segment, minute, stage, n_events)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (funnel, segment, minute, stage) DO UPDATE SET n_events = CAST(n_events + excluded.n_events AS INTEGER)",
    )?;
    for ((funnel, stage, segment, minute), n_events) in &plan.late_segments {
        let (funnel_id, stage_ids) = &layout.funnels[*funnel];
        add_late_segment.execute(params![
            funnel_id,
            segment,
            minute,
            stage_ids[*stage],
            n_events
        ])?;
    }
    let mut add_segment = transaction.prepare_cached(
        "INSERT OR IGNORE INTO segments (key, assignment, n_dimensions) VALUES (?1, ?2, ?3)",
    )?;
    for (key, assignment, n_dimensions) in &plan.new_segments {
        add_segment.execute(params![key, assignment, n_dimensions])?;
    }
    let mut add_value = transaction.prepare_cached(
        "INSERT OR IGNORE INTO dimension_values (dimension, value) VALUES (?1, ?2)",
    )?;
    for (dimension, value) in &plan.new_values {
        add_value.execute(params![layout.dimension_names[*dimension], value])?;
    }
    Ok(())
}
