//! PostgreSQL ingest: the group commit on the writer connection, the dedup generations and
//! their rotation, and the admission of new dimension values agreed across nodes; the problem
//! log's additions go into the same transaction (`problems`). It must never
//! take a lock out of the global order stated in the module docs of `postgres`.

use std::collections::{HashMap, HashSet};

use postgres::{Client, GenericClient, IsolationLevel, Statement, Transaction};
use rustc_hash::FxHashMap;

use revloop_core::Timestamp;
use revloop_core::time::DurationMs;

use super::problems::{ProblemStatements, write_problem_log};
use super::{LOCK_ADMIT_VALUES, PostgresStore, Writer, connection_may_be_lost};
use crate::dedup::{count_conflicts, count_keys_to_read, new_count_bodies};
use crate::plan::{CommitPlan, Layout, WriterState};
use crate::{IngestGroup, IngestItem, IngestReceipt, StoreError};

/// Which dedup table is current, and since when (`-1`: not yet started).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DedupGenerations {
    current: i64,
    started_ms: i64,
}

impl DedupGenerations {
    fn rotation_due(self, now: Timestamp, window: DurationMs) -> bool {
        self.started_ms < 0 || now.millis() - self.started_ms >= window.millis()
    }
}

/// The statements of a group commit, prepared once per writer connection.
pub(super) struct WriterStatements {
    generations_shared: Statement,
    generations_exclusive: Statement,
    /// By current generation: checks the previous one, remembers in the current one.
    remember: [Statement; 2],
    add_counts: Statement,
    add_late: Statement,
    add_late_segments: Statement,
    add_segments: Statement,
    add_values: Statement,
    problems: ProblemStatements,
}

impl WriterStatements {
    pub(super) fn prepare(client: &mut Client) -> Result<WriterStatements, StoreError> {
        // `ORDER BY key` makes every transaction lock the two rows in the same order.
        let generations = "SELECT key, value FROM meta
             WHERE key IN ('dedup_current', 'dedup_started_ms') ORDER BY key";
        // The keys arrive sorted and are inserted in that order (`ORDER BY`, whatever join the
        // planner picks), so two groups sharing keys lock them in the same order.
        let remember = |current: usize| {
            format!(
                "INSERT INTO dedup_{current} (key)
                 SELECT incoming.key FROM unnest($1::bigint[]) AS incoming (key)
                 WHERE NOT EXISTS (
                     SELECT 1 FROM dedup_{previous} AS previous WHERE previous.key = incoming.key
                 )
                 ORDER BY incoming.key
                 ON CONFLICT DO NOTHING
                 RETURNING key",
                previous = 1 - current
            )
        };
        Ok(WriterStatements {
            generations_shared: client.prepare(&format!("{generations} FOR SHARE"))?,
            generations_exclusive: client.prepare(&format!("{generations} FOR UPDATE"))?,
            remember: [client.prepare(&remember(0))?, client.prepare(&remember(1))?],
            // Each sum is taken in numeric and clamped to the bigint bounds, so that a sum
            // that leaves i64 saturates rather than failing the whole group commit.
            add_counts: client.prepare(
                "INSERT INTO stage_counts
                     (funnel, segment, minute, stage, n_events, revenue_minor, n_revenue_events)
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[],
                                      $5::bigint[], $6::bigint[], $7::bigint[])
                 ON CONFLICT (funnel, segment, minute, stage) DO UPDATE SET
                     n_events = GREATEST(LEAST(stage_counts.n_events::numeric + EXCLUDED.n_events, 9223372036854775807), -9223372036854775808)::bigint,
                     revenue_minor = GREATEST(LEAST(stage_counts.revenue_minor::numeric + EXCLUDED.revenue_minor, 9223372036854775807), -9223372036854775808)::bigint,
                     n_revenue_events = GREATEST(LEAST(stage_counts.n_revenue_events::numeric + EXCLUDED.n_revenue_events, 9223372036854775807), -9223372036854775808)::bigint",
            )?,
            add_late: client.prepare(
                "INSERT INTO late_counts (funnel, minute, stage, n_events)
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[])
                 ON CONFLICT (funnel, minute, stage) DO UPDATE SET
                     n_events = GREATEST(LEAST(late_counts.n_events::numeric + EXCLUDED.n_events, 9223372036854775807), -9223372036854775808)::bigint",
            )?,
            add_late_segments: client.prepare(
                "INSERT INTO late_segment_counts (funnel, segment, minute, stage, n_events)
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::bigint[])
                 ON CONFLICT (funnel, segment, minute, stage) DO UPDATE SET
                     n_events = GREATEST(LEAST(late_segment_counts.n_events::numeric + EXCLUDED.n_events, 9223372036854775807), -9223372036854775808)::bigint",
            )?,
            add_segments: client.prepare(
                "INSERT INTO segments (key, assignment, n_dimensions)
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::integer[])
                 ON CONFLICT DO NOTHING",
            )?,
            // Under the admission lock no other node inserts these; the conflict clause only
            // tolerates a value that is already there for any other reason.
            add_values: client.prepare(
                "INSERT INTO dimension_values (dimension, value)
                 SELECT * FROM unnest($1::text[], $2::text[])
                 ON CONFLICT DO NOTHING",
            )?,
            problems: ProblemStatements::prepare(client)?,
        })
    }
}

/// The dedup generations from the `meta` rows `rows` read.
pub(super) fn generations_from_rows(
    client: &mut impl GenericClient,
    rows: &[postgres::Row],
) -> Result<DedupGenerations, StoreError> {
    Ok(DedupGenerations {
        current: meta_value(client, rows, "dedup_current")?,
        started_ms: meta_value(client, rows, "dedup_started_ms")?,
    })
}

fn meta_value(
    client: &mut impl GenericClient,
    rows: &[postgres::Row],
    key: &str,
) -> Result<i64, StoreError> {
    for row in rows {
        if row.try_get::<_, &str>(0)? == key {
            return Ok(row.try_get(1)?);
        }
    }
    // The migration inserted the row. If it is gone, this fails with the database's own error
    // rather than guess a generation.
    let row = client.query_one("SELECT value FROM meta WHERE key = $1", &[&key])?;
    Ok(row.try_get(0)?)
}

/// Reads the dedup generations inside the group's transaction, and rotates them when the current
/// one is a window old: the previous generation is emptied and becomes current.
///
/// `cached` (this node's last view) decides the lock. When it says a rotation is not due, none
/// is: `dedup_started_ms` only grows, so the fresh value is even less due. Those transactions take
/// `FOR SHARE`, which lets every node's ingest run side by side. When a rotation looks due, the
/// rows are read `FOR UPDATE`, which waits for every transaction still using the old generations,
/// and the decision is taken again on the fresh values: another node may have rotated already.
fn read_and_rotate(
    transaction: &mut Transaction,
    statements: &WriterStatements,
    cached: DedupGenerations,
    now: Timestamp,
    window: DurationMs,
) -> Result<DedupGenerations, StoreError> {
    let exclusive = cached.rotation_due(now, window);
    let statement = if exclusive {
        &statements.generations_exclusive
    } else {
        &statements.generations_shared
    };
    let rows = transaction.query(statement, &[])?;
    let fresh = generations_from_rows(transaction, &rows)?;
    if !exclusive || !fresh.rotation_due(now, window) {
        return Ok(fresh);
    }
    let mut next = DedupGenerations {
        current: fresh.current,
        started_ms: now.millis(),
    };
    if fresh.started_ms >= 0 {
        next.current = 1 - fresh.current;
        // TRUNCATE, unlike DELETE, leaves no dead rows behind for a day's worth of keys. Its
        // exclusive table lock waits for nobody: every transaction that touches a dedup table
        // holds the `meta` rows this one has locked `FOR UPDATE`.
        transaction.batch_execute(&format!("TRUNCATE dedup_{}", next.current))?;
        // The bodies of count records whose keys were just forgotten.
        transaction.execute(
            "DELETE FROM count_bodies WHERE at_ms < $1",
            &[&fresh.started_ms],
        )?;
    }
    transaction.execute(
        "UPDATE meta SET value = CASE key WHEN 'dedup_current' THEN $1::bigint ELSE $2::bigint END
         WHERE key IN ('dedup_current', 'dedup_started_ms')",
        &[&next.current, &next.started_ms],
    )?;
    Ok(next)
}

/// Remembers the group's keys in the current generation and says, per item in order, whether it
/// is new: its key is in neither generation, and it is the first item of the group with it.
fn remember_keys(
    transaction: &mut Transaction,
    statements: &WriterStatements,
    dedup: DedupGenerations,
    items: &[IngestItem],
) -> Result<Vec<bool>, StoreError> {
    let mut distinct = HashSet::with_capacity(items.len());
    let mut keys: Vec<i64> = items
        .iter()
        .map(|item| item.dedup_key)
        .filter(|key| distinct.insert(*key))
        .collect();
    keys.sort_unstable();
    assert!(
        dedup.current == 0 || dedup.current == 1,
        "dedup generation {}",
        dedup.current
    );
    let rows = transaction.query(&statements.remember[dedup.current as usize], &[&keys])?;
    let remembered_now: HashSet<i64> = rows
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    let mut seen = HashSet::with_capacity(keys.len());
    Ok(items
        .iter()
        .map(|item| seen.insert(item.dedup_key) && remembered_now.contains(&item.dedup_key))
        .collect())
}

/// Refuses the group if a count record repeats a remembered id with a different body, and
/// remembers the bodies of its new ones. The dedup keys were inserted first: a node racing
/// this one with the same id waits on that key, then reads the body this one wrote.
///
/// A body is stamped no earlier than the start of the generation its key joined: a rotation
/// prunes the bodies stamped before the start of the generation it forgets, and a node whose
/// clock is behind (or a clock stepped back) must not stamp a body that its key outlives.
fn check_count_bodies(
    transaction: &mut Transaction,
    group: &IngestGroup,
    dedup: DedupGenerations,
    is_new: &[bool],
) -> Result<(), StoreError> {
    let keys = count_keys_to_read(&group.items, is_new);
    let mut stored = HashMap::new();
    if !keys.is_empty() {
        let rows = transaction.query(
            "SELECT key, body_key FROM count_bodies WHERE key = ANY($1)",
            &[&keys],
        )?;
        for row in rows {
            stored.insert(row.try_get(0)?, row.try_get(1)?);
        }
    }
    let conflicts = count_conflicts(&group.items, is_new, &stored);
    if !conflicts.is_empty() {
        return Err(StoreError::CountConflict { items: conflicts });
    }
    let mut bodies: Vec<(i64, i64)> = new_count_bodies(&group.items, is_new).into_iter().collect();
    if bodies.is_empty() {
        return Ok(());
    }
    bodies.sort_unstable();
    let keys: Vec<i64> = bodies.iter().map(|(key, _)| *key).collect();
    let body_keys: Vec<i64> = bodies.iter().map(|(_, body_key)| *body_key).collect();
    // A key that is new again (its generation was forgotten) replaces its old body.
    transaction.execute(
        "INSERT INTO count_bodies (key, body_key, at_ms)
         SELECT key, body_key, $3 FROM unnest($1::bigint[], $2::bigint[]) AS b (key, body_key)
         ON CONFLICT (key) DO UPDATE SET body_key = EXCLUDED.body_key, at_ms = EXCLUDED.at_ms",
        &[&keys, &body_keys, &group.now.millis().max(dedup.started_ms)],
    )?;
    Ok(())
}

/// Makes the plan's admissions of new dimension values agree with every other node.
///
/// Each node folds with its own copy of the admitted values, loaded at open. Alone, two nodes
/// could each admit up to the cap, and fold the same value differently (one admits it, the other
/// has no room and counts it as "other"). So a plan that admits anything is redone under a
/// transaction-level advisory lock, after loading what the other nodes have admitted: the cap then
/// holds exactly, and a value is counted the same way whichever node receives it. A plan that
/// admits nothing needs no lock: a node whose copy is full holds exactly the admitted values, as
/// no node admits past the cap. This happens once per admitted value, so it is rare once the
/// dimensions have filled up.
fn settle_admissions(
    transaction: &mut Transaction,
    state: &mut WriterState,
    layout: &Layout,
    group: &IngestGroup,
    is_new: &[bool],
    plan: &mut CommitPlan,
) -> Result<(), StoreError> {
    if plan.new_values.is_empty() {
        return Ok(());
    }
    let dimensions: Vec<&str> = plan
        .new_values
        .iter()
        .map(|(dimension, _)| layout.dimension_names[*dimension].as_str())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    // Until the new plan is made, the caller must have nothing to forget if this fails.
    state.forget(plan);
    *plan = CommitPlan::default();
    transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_ADMIT_VALUES])?;
    let rows = transaction.query(
        "SELECT dimension, value FROM dimension_values WHERE dimension = ANY($1)",
        &[&dimensions],
    )?;
    for row in rows {
        let dimension: &str = row.try_get(0)?;
        if let Some(index) = layout.dimension_names.iter().position(|d| d == dimension) {
            state.dictionary.load(index, row.try_get(1)?);
        }
    }
    *plan = state.plan(layout, &group.items, is_new);
    Ok(())
}

/// Rows keyed `(funnel, stage, segment, minute)` with their funnel and stage ids, in the
/// tables' key order.
fn segment_rows<'l, T: Copy>(
    layout: &'l Layout,
    rows: &FxHashMap<(usize, usize, i64, i64), T>,
) -> Vec<(&'l str, i64, i64, &'l str, T)> {
    let mut rows: Vec<(&str, i64, i64, &str, T)> = rows
        .iter()
        .map(|((funnel, stage, segment, minute), value)| {
            let (funnel_id, stage_ids) = &layout.funnels[*funnel];
            (
                funnel_id.as_str(),
                *segment,
                *minute,
                stage_ids[*stage].as_str(),
                *value,
            )
        })
        .collect();
    rows.sort_unstable_by_key(|(funnel, segment, minute, stage, _)| {
        (*funnel, *segment, *minute, *stage)
    });
    rows
}

/// Writes a plan with one statement per table. Rows go in ascending key order, so that two nodes
/// updating the same rows lock them in the same order.
fn write_plan(
    transaction: &mut Transaction,
    statements: &WriterStatements,
    layout: &Layout,
    plan: &CommitPlan,
) -> Result<(), StoreError> {
    if !plan.counts.is_empty() {
        let rows = segment_rows(layout, &plan.counts);
        let n_rows = rows.len();
        let mut funnels = Vec::with_capacity(n_rows);
        let mut segments = Vec::with_capacity(n_rows);
        let mut minutes = Vec::with_capacity(n_rows);
        let mut stages = Vec::with_capacity(n_rows);
        let mut n_events = Vec::with_capacity(n_rows);
        let mut revenue_minor = Vec::with_capacity(n_rows);
        let mut n_revenue_events = Vec::with_capacity(n_rows);
        for (funnel, segment, minute, stage, count) in rows {
            funnels.push(funnel);
            segments.push(segment);
            minutes.push(minute);
            stages.push(stage);
            n_events.push(count.n_events);
            revenue_minor.push(count.revenue_minor);
            n_revenue_events.push(count.n_revenue_events);
        }
        transaction.execute(
            &statements.add_counts,
            &[
                &funnels,
                &segments,
                &minutes,
                &stages,
                &n_events,
                &revenue_minor,
                &n_revenue_events,
            ],
        )?;
    }
    if !plan.late.is_empty() {
        let mut rows: Vec<(&str, i64, &str, i64)> = plan
            .late
            .iter()
            .map(|((funnel, stage, minute), n_events)| {
                let (funnel_id, stage_ids) = &layout.funnels[*funnel];
                (
                    funnel_id.as_str(),
                    *minute,
                    stage_ids[*stage].as_str(),
                    *n_events,
                )
            })
            .collect();
        rows.sort_unstable_by_key(|(funnel, minute, stage, _)| (*funnel, *minute, *stage));
        let funnels: Vec<&str> = rows.iter().map(|row| row.0).collect();
        let minutes: Vec<i64> = rows.iter().map(|row| row.1).collect();
        let stages: Vec<&str> = rows.iter().map(|row| row.2).collect();
        let n_events: Vec<i64> = rows.iter().map(|row| row.3).collect();
        transaction.execute(
            &statements.add_late,
            &[&funnels, &minutes, &stages, &n_events],
        )?;
    }
    if !plan.late_segments.is_empty() {
        let rows = segment_rows(layout, &plan.late_segments);
        let funnels: Vec<&str> = rows.iter().map(|row| row.0).collect();
        let segments: Vec<i64> = rows.iter().map(|row| row.1).collect();
        let minutes: Vec<i64> = rows.iter().map(|row| row.2).collect();
        let stages: Vec<&str> = rows.iter().map(|row| row.3).collect();
        let n_events: Vec<i64> = rows.iter().map(|row| row.4).collect();
        transaction.execute(
            &statements.add_late_segments,
            &[&funnels, &segments, &minutes, &stages, &n_events],
        )?;
    }
    if !plan.new_segments.is_empty() {
        let mut rows: Vec<&(i64, String, i64)> = plan.new_segments.iter().collect();
        rows.sort_unstable_by_key(|(key, _, _)| *key);
        let keys: Vec<i64> = rows.iter().map(|row| row.0).collect();
        let assignments: Vec<&str> = rows.iter().map(|row| row.1.as_str()).collect();
        let n_dimensions: Vec<i32> = rows
            .iter()
            .map(|row| i32::try_from(row.2).expect("at most DIMENSIONS_MAX dimensions"))
            .collect();
        transaction.execute(
            &statements.add_segments,
            &[&keys, &assignments, &n_dimensions],
        )?;
    }
    if !plan.new_values.is_empty() {
        let mut rows: Vec<(&str, &str)> = plan
            .new_values
            .iter()
            .map(|(dimension, value)| (layout.dimension_names[*dimension].as_str(), value.as_str()))
            .collect();
        rows.sort_unstable();
        let dimensions: Vec<&str> = rows.iter().map(|row| row.0).collect();
        let values: Vec<&str> = rows.iter().map(|row| row.1).collect();
        transaction.execute(&statements.add_values, &[&dimensions, &values])?;
    }
    Ok(())
}

/// One group's transaction on the writer connection; `postgres/mod.rs`'s docs say how it locks.
fn commit_group(
    store: &PostgresStore,
    writer: &mut Writer,
    group: &IngestGroup,
) -> Result<IngestReceipt, StoreError> {
    let Writer {
        client,
        statements,
        state,
        dedup: cached,
        ..
    } = writer;
    // The locking in `read_and_rotate` relies on READ COMMITTED, where a statement that waited
    // for a row lock sees the row as the other transaction committed it. A stricter default
    // (from the URL or the role) would turn every race into a serialization failure.
    let mut transaction = client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()?;
    let dedup = read_and_rotate(
        &mut transaction,
        statements,
        *cached,
        group.now,
        store.dedup_window,
    )?;
    let is_new = remember_keys(&mut transaction, statements, dedup, &group.items)?;
    check_count_bodies(&mut transaction, group, dedup, &is_new)?;

    let mut plan = state.plan(&store.layout, &group.items, &is_new);
    let written = settle_admissions(
        &mut transaction,
        state,
        &store.layout,
        group,
        &is_new,
        &mut plan,
    )
    .and_then(|()| write_plan(&mut transaction, statements, &store.layout, &plan))
    .and_then(|()| write_problem_log(&mut transaction, &statements.problems, group, &is_new))
    .and_then(|()| Ok(transaction.commit()?));
    match written {
        Ok(()) => {
            state.committed(&plan);
            *cached = dedup;
            Ok(IngestReceipt { is_new })
        }
        Err(err) => {
            state.forget(&plan);
            Err(err)
        }
    }
}

impl PostgresStore {
    pub(super) fn commit_ingest(&self, group: &IngestGroup) -> Result<IngestReceipt, StoreError> {
        let mut guard = self.writer.lock().expect("writer lock");
        let writer = &mut *guard;
        if writer.client_suspect || writer.client.is_closed() {
            // The server may have closed the connection (a restart, a failover): reconnect rather
            // than fail every later group.
            let mut client = self.connector.connect()?;
            writer.statements = WriterStatements::prepare(&mut client)?;
            writer.client = client;
            writer.client_suspect = false;
        }
        let result = commit_group(self, writer, group);
        if let Err(err) = &result {
            writer.client_suspect = connection_may_be_lost(err);
        }
        result
    }
}
