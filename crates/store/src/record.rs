//! The stored incident body: a store-owned, versioned record ([`StoredIncidentV1`]) with an
//! explicit conversion to and from the core's [`Incident`]; and the same for the incident
//! state's meta ([`StoredMetaV1`]: the engine's `EngineMeta` and the service's alert clock). The body is the only part of an
//! incident kept as JSON, so its field names are a stable boundary like the columns: renaming a
//! field of the core's `Incident` must not change what is stored, and must not make an old body
//! unreadable.
//!
//! How the boundary holds:
//!
//! - **Writing** builds the record field by field from the core struct, so a rename in core is
//!   a compile error here, never a silent change of the stored names.
//! - **Reading** parses the record, then builds the core struct field by field
//!   ([`StoredIncidentV1::into_incident`]), so a rename in core is a compile error there too.
//!   The fixture test (`tests/stored_incident.rs`) loads a body written by the previous
//!   format.
//! - **Versions.** A body carries `"v": 1`. A body without `v` was written before the record
//!   existed, by the core's serde derive; its fields are the same as V1's, so V1 reads it. A
//!   body of a newer version is an error, not a guess.
//!
//! This module must not know SQL, and no other module of the store may parse a body.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use revloop_core::Timestamp;
use revloop_core::alert::AlertKind;
use revloop_core::impact::Impact;
use revloop_core::incident::{
    ActionItem, AddedSilence, EngineMeta, Escalation, Incident, IncidentSeverity, IncidentState,
    Mitigation, RecentSurges, Recovery, Silence, SlaClock, Surge, Tick, Unsaved,
};
use revloop_core::time::DurationMs;

use crate::StoreError;

/// The version of the records (incident body and meta) this build writes.
pub const STORED_RECORD_VERSION: u32 = 1;

/// Serializes `incident` (without its timeline, which is stored row by row) as a stored body.
pub fn encode_incident_body(incident: &Incident) -> Result<String, StoreError> {
    serde_json::to_string(&StoredIncidentV1::from_incident(incident))
        .map_err(|err| StoreError::Io(format!("incident {}: {err}", incident.id)))
}

/// Reads a stored body, of this version or of the format before versions; the incident's
/// timeline is left empty. `id` names the incident in errors.
pub fn decode_incident_body(id: i64, body: &str) -> Result<Incident, StoreError> {
    let error = |what: String| StoreError::Io(format!("incident {id}: {what}"));
    let record: StoredIncidentV1 =
        serde_json::from_str(body).map_err(|err| error(err.to_string()))?;
    if record.v > STORED_RECORD_VERSION {
        return Err(error(format!(
            "stored by a newer revloop (body version {}, this build reads up to {STORED_RECORD_VERSION})",
            record.v
        )));
    }
    Ok(record.into_incident())
}

/// An incident as stored, version 1. Times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredIncidentV1 {
    /// 1; absent (0) in bodies written before the record existed, which have the same fields.
    #[serde(default)]
    pub v: u32,
    pub id: u64,
    pub funnel: String,
    pub stage: String,
    pub kind: StoredAlertKind,
    pub segment: Option<(String, String)>,
    pub scope: Option<(String, Option<(String, String)>)>,
    pub severity: StoredSeverity,
    pub state: StoredState,
    pub onset: i64,
    pub opened_at: i64,
    pub acknowledged_at: Option<i64>,
    pub mitigated_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub severity_since: i64,
    pub escalation: StoredEscalation,
    pub response: StoredSlaClock,
    pub resolution: StoredSlaClock,
    pub alerts: BTreeMap<u64, bool>,
    pub last_alert_at: i64,
    pub root_cause: Option<String>,
    pub mitigations: Vec<(StoredMitigation, String)>,
    pub action_items: Vec<StoredActionItem>,
    pub checklist: Vec<Option<StoredTick>>,
    pub silenced: bool,
    /// `(at, sigma)`, oldest first.
    pub measurements: Vec<(i64, f64)>,
    pub prompted: bool,
    /// A guard incident's reason (kind `guard`); absent for every other kind, and in bodies
    /// written before the dead man's switch, which read as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard_reason: Option<String>,
    /// Set while an open incident is recovered (its problem over, escalation stopped); absent
    /// otherwise, and in bodies written before recovery existed, which read as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<StoredRecovery>,
    /// The running revenue impact, in the core's own serde form (`revloop_core::impact`
    /// documents its field names as stored: added with defaults, never renamed). Absent
    /// before the first priced minute and in bodies written before impact existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impact: Option<Impact>,
    /// Resolved as a false alarm; absent (false) otherwise and in older bodies.
    #[serde(default, skip_serializing_if = "is_false")]
    pub false_alarm: bool,
    /// The targets paged since it opened or last reopened, each once, in order; absent
    /// (empty) when it paged nobody and in bodies written before delivery existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paged: Vec<String>,
    /// A declared incident's summary; absent for a detected one and in older bodies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_summary: Option<String>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// A recovered incident's recovery. Times are Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRecovery {
    pub at: i64,
    /// Milliseconds that were left before the next page.
    pub escalation_left_ms: Option<i64>,
    pub reminded_at: Option<i64>,
}

/// A build that does not know a kind cannot read the body (nodes sharing a database run
/// builds that know the same kinds, as for timeline kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoredAlertKind {
    Conversion,
    Volume,
    /// The dead man's switch: revloop could not judge.
    Guard,
    /// Declared by a responder, not detected.
    Declared,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredSeverity {
    P1,
    P2,
    P3,
}

/// Stored by variant name (`"Triggered"`), as the format before V1 had it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredState {
    Triggered,
    Acknowledged,
    Mitigated,
    Resolved,
}

/// Stored by variant name (`"Rollback"`), as the format before V1 had it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredMitigation {
    TrafficRouting,
    Rollback,
    DisableExperiment,
    BackupPaymentProcessor,
    StatusBanner,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEscalation {
    pub next_level: usize,
    pub next_at: Option<i64>,
    pub repeats: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSlaClock {
    pub due: i64,
    pub met_at: Option<i64>,
    pub breached: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredActionItem {
    pub text: String,
    pub owner: String,
    pub due: i64,
    pub added_by: String,
    pub added_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredTick {
    pub by: String,
    pub at: i64,
    pub finding: String,
}

fn millis(at: Option<Timestamp>) -> Option<i64> {
    at.map(Timestamp::millis)
}

fn timestamp(ms: Option<i64>) -> Option<Timestamp> {
    ms.map(Timestamp::from_millis)
}

impl StoredIncidentV1 {
    /// The record of `incident`, field by field.
    pub fn from_incident(incident: &Incident) -> StoredIncidentV1 {
        StoredIncidentV1 {
            v: STORED_RECORD_VERSION,
            id: incident.id,
            funnel: incident.funnel.clone(),
            stage: incident.stage.clone(),
            kind: match incident.kind {
                AlertKind::Conversion => StoredAlertKind::Conversion,
                AlertKind::Volume => StoredAlertKind::Volume,
                AlertKind::Guard => StoredAlertKind::Guard,
                AlertKind::Declared => StoredAlertKind::Declared,
            },
            segment: incident.segment.clone(),
            scope: incident.scope.clone(),
            severity: match incident.severity {
                IncidentSeverity::P1 => StoredSeverity::P1,
                IncidentSeverity::P2 => StoredSeverity::P2,
                IncidentSeverity::P3 => StoredSeverity::P3,
            },
            state: match incident.state {
                IncidentState::Triggered => StoredState::Triggered,
                IncidentState::Acknowledged => StoredState::Acknowledged,
                IncidentState::Mitigated => StoredState::Mitigated,
                IncidentState::Resolved => StoredState::Resolved,
            },
            onset: incident.onset.millis(),
            opened_at: incident.opened_at.millis(),
            acknowledged_at: millis(incident.acknowledged_at),
            mitigated_at: millis(incident.mitigated_at),
            resolved_at: millis(incident.resolved_at),
            severity_since: incident.severity_since.millis(),
            escalation: StoredEscalation {
                next_level: incident.escalation.next_level,
                next_at: millis(incident.escalation.next_at),
                repeats: incident.escalation.repeats,
            },
            response: StoredSlaClock::from_clock(&incident.response),
            resolution: StoredSlaClock::from_clock(&incident.resolution),
            alerts: incident.alerts.clone(),
            last_alert_at: incident.last_alert_at.millis(),
            root_cause: incident.root_cause.clone(),
            mitigations: incident
                .mitigations
                .iter()
                .map(|(mitigation, detail)| {
                    (StoredMitigation::from_core(*mitigation), detail.clone())
                })
                .collect(),
            action_items: incident
                .action_items
                .iter()
                .map(|item| StoredActionItem {
                    text: item.text.clone(),
                    owner: item.owner.clone(),
                    due: item.due.millis(),
                    added_by: item.added_by.clone(),
                    added_at: item.added_at.millis(),
                })
                .collect(),
            checklist: incident
                .checklist
                .iter()
                .map(|tick| {
                    tick.as_ref().map(|tick| StoredTick {
                        by: tick.by.clone(),
                        at: tick.at.millis(),
                        finding: tick.finding.clone(),
                    })
                })
                .collect(),
            silenced: incident.silenced,
            measurements: incident
                .measurements
                .iter()
                .map(|(at, sigma)| (at.millis(), *sigma))
                .collect(),
            prompted: incident.prompted,
            guard_reason: incident.guard_reason.clone(),
            recovered: incident.recovered.map(|recovery| StoredRecovery {
                at: recovery.at.millis(),
                escalation_left_ms: recovery.escalation_left.map(DurationMs::millis),
                reminded_at: millis(recovery.reminded_at),
            }),
            impact: incident.impact.clone(),
            false_alarm: incident.false_alarm,
            paged: incident.paged.clone(),
            declared_summary: incident.declared_summary.clone(),
        }
    }

    /// The core's incident of this record, with an empty timeline, built field by field: a
    /// field renamed, added or removed in core is a compile error here.
    pub fn into_incident(self) -> Incident {
        let severity = match self.severity {
            StoredSeverity::P1 => IncidentSeverity::P1,
            StoredSeverity::P2 => IncidentSeverity::P2,
            StoredSeverity::P3 => IncidentSeverity::P3,
        };
        let state = match self.state {
            StoredState::Triggered => IncidentState::Triggered,
            StoredState::Acknowledged => IncidentState::Acknowledged,
            StoredState::Mitigated => IncidentState::Mitigated,
            StoredState::Resolved => IncidentState::Resolved,
        };
        let kind = match self.kind {
            StoredAlertKind::Conversion => AlertKind::Conversion,
            StoredAlertKind::Volume => AlertKind::Volume,
            StoredAlertKind::Guard => AlertKind::Guard,
            StoredAlertKind::Declared => AlertKind::Declared,
        };
        let escalation = Escalation {
            next_level: self.escalation.next_level,
            next_at: timestamp(self.escalation.next_at),
            repeats: self.escalation.repeats,
        };
        let mitigations: Vec<(Mitigation, String)> = self
            .mitigations
            .into_iter()
            .map(|(mitigation, detail)| (mitigation.into_core(), detail))
            .collect();
        let action_items: Vec<ActionItem> = self
            .action_items
            .into_iter()
            .map(|item| ActionItem {
                text: item.text,
                owner: item.owner,
                due: Timestamp::from_millis(item.due),
                added_by: item.added_by,
                added_at: Timestamp::from_millis(item.added_at),
            })
            .collect();
        let checklist: Vec<Option<Tick>> = self
            .checklist
            .into_iter()
            .map(|tick| {
                tick.map(|tick| Tick {
                    by: tick.by,
                    at: Timestamp::from_millis(tick.at),
                    finding: tick.finding,
                })
            })
            .collect();
        let measurements: VecDeque<(Timestamp, f64)> = self
            .measurements
            .into_iter()
            .map(|(at, sigma)| (Timestamp::from_millis(at), sigma))
            .collect();
        Incident {
            id: self.id,
            funnel: self.funnel,
            stage: self.stage,
            kind,
            segment: self.segment,
            scope: self.scope,
            severity,
            state,
            onset: Timestamp::from_millis(self.onset),
            opened_at: Timestamp::from_millis(self.opened_at),
            acknowledged_at: timestamp(self.acknowledged_at),
            mitigated_at: timestamp(self.mitigated_at),
            resolved_at: timestamp(self.resolved_at),
            severity_since: Timestamp::from_millis(self.severity_since),
            escalation,
            response: self.response.into_clock(),
            resolution: self.resolution.into_clock(),
            alerts: self.alerts,
            last_alert_at: Timestamp::from_millis(self.last_alert_at),
            root_cause: self.root_cause,
            mitigations,
            action_items,
            checklist,
            silenced: self.silenced,
            measurements,
            prompted: self.prompted,
            guard_reason: self.guard_reason,
            recovered: self.recovered.map(|recovery| Recovery {
                at: Timestamp::from_millis(recovery.at),
                escalation_left: recovery.escalation_left_ms.map(DurationMs::from_millis),
                reminded_at: timestamp(recovery.reminded_at),
            }),
            impact: self.impact,
            false_alarm: self.false_alarm,
            paged: self.paged,
            declared_summary: self.declared_summary,
            timeline: Vec::new(),
            unsaved: Unsaved::default(),
        }
    }
}

impl StoredSlaClock {
    fn from_clock(clock: &SlaClock) -> StoredSlaClock {
        StoredSlaClock {
            due: clock.due.millis(),
            met_at: millis(clock.met_at),
            breached: clock.breached,
        }
    }

    fn into_clock(self) -> SlaClock {
        SlaClock {
            due: Timestamp::from_millis(self.due),
            met_at: timestamp(self.met_at),
            breached: self.breached,
        }
    }
}

impl StoredMitigation {
    fn from_core(mitigation: Mitigation) -> StoredMitigation {
        match mitigation {
            Mitigation::TrafficRouting => StoredMitigation::TrafficRouting,
            Mitigation::Rollback => StoredMitigation::Rollback,
            Mitigation::DisableExperiment => StoredMitigation::DisableExperiment,
            Mitigation::BackupPaymentProcessor => StoredMitigation::BackupPaymentProcessor,
            Mitigation::StatusBanner => StoredMitigation::StatusBanner,
            Mitigation::Other => StoredMitigation::Other,
        }
    }

    fn into_core(self) -> Mitigation {
        match self {
            StoredMitigation::TrafficRouting => Mitigation::TrafficRouting,
            StoredMitigation::Rollback => Mitigation::Rollback,
            StoredMitigation::DisableExperiment => Mitigation::DisableExperiment,
            StoredMitigation::BackupPaymentProcessor => Mitigation::BackupPaymentProcessor,
            StoredMitigation::StatusBanner => Mitigation::StatusBanner,
            StoredMitigation::Other => Mitigation::Other,
        }
    }
}

/// Through when the incident service has taken in alert events. Each funnel has its own
/// detector, which can fall behind the others (a failing read, a warm-up) and then judge the
/// minutes it missed: its events are news even when another funnel's are later. So each funnel
/// has its own mark, and `floor` (the first start, an adopted history) holds for all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertWatermark {
    pub floor: Timestamp,
    pub by_funnel: BTreeMap<String, Timestamp>,
}

impl AlertWatermark {
    pub const NONE: AlertWatermark = AlertWatermark {
        floor: Timestamp::MIN,
        by_funnel: BTreeMap::new(),
    };

    /// Events of `funnel` at or before this were taken in (or are history).
    pub fn through(&self, funnel: &str) -> Timestamp {
        self.by_funnel
            .get(funnel)
            .map_or(self.floor, |&at| at.max(self.floor))
    }

    /// Marks `funnel`'s events up to `at` as taken in.
    pub fn advance(&mut self, funnel: &str, at: Timestamp) {
        if at > self.through(funnel) {
            self.by_funnel.insert(funnel.to_owned(), at);
        }
    }
}

/// Serializes the incident engine's own state and the service's alert watermark as a stored
/// meta.
pub fn encode_incident_meta(
    engine: &EngineMeta,
    alerts: &AlertWatermark,
) -> Result<String, StoreError> {
    let meta = StoredMetaV1 {
        v: STORED_RECORD_VERSION,
        engine: StoredEngineMetaV1 {
            next_id: engine.next_id,
            evaluated_at: engine.evaluated_at.millis(),
            added_silences: engine
                .added_silences
                .iter()
                .map(StoredAddedSilence::from_core)
                .collect(),
            next_silence_id: engine.next_silence_id,
            surges: engine
                .surges
                .surges
                .iter()
                .map(StoredSurge::from_core)
                .collect(),
        },
        alerts_through: alerts.floor.millis(),
        alerts_through_by_funnel: alerts
            .by_funnel
            .iter()
            .map(|(funnel, at)| (funnel.clone(), at.millis()))
            .collect(),
    };
    serde_json::to_string(&meta).map_err(|err| StoreError::Io(format!("incident state: {err}")))
}

/// Reads a stored meta, of this version or of the format before versions: the engine's state
/// and through when alert events have been taken in. A meta from before the per-funnel marks
/// has only the floor: the time of the latest event of any funnel, as it was kept then.
pub fn decode_incident_meta(meta: &str) -> Result<(EngineMeta, AlertWatermark), StoreError> {
    let error = |what: String| StoreError::Io(format!("incident state: {what}"));
    let record: StoredMetaV1 = serde_json::from_str(meta).map_err(|err| error(err.to_string()))?;
    if record.v > STORED_RECORD_VERSION {
        return Err(error(format!(
            "stored by a newer revloop (meta version {}, this build reads up to {STORED_RECORD_VERSION})",
            record.v
        )));
    }
    let engine = EngineMeta {
        next_id: record.engine.next_id,
        evaluated_at: Timestamp::from_millis(record.engine.evaluated_at),
        added_silences: record
            .engine
            .added_silences
            .into_iter()
            .map(StoredAddedSilence::into_core)
            .collect(),
        next_silence_id: record.engine.next_silence_id,
        surges: RecentSurges {
            surges: record
                .engine
                .surges
                .into_iter()
                .map(StoredSurge::into_core)
                .collect(),
        },
    };
    let alerts = AlertWatermark {
        floor: Timestamp::from_millis(record.alerts_through),
        by_funnel: record
            .alerts_through_by_funnel
            .into_iter()
            .map(|(funnel, at)| (funnel, Timestamp::from_millis(at)))
            .collect(),
    };
    Ok((engine, alerts))
}

/// The incident state beside the incidents, version 1: what a restart needs besides them.
/// Bodies without `v` were the server's serde derive, with the same fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredMetaV1 {
    #[serde(default)]
    pub v: u32,
    pub engine: StoredEngineMetaV1,
    /// Alert events up to this time (Unix milliseconds) have been taken in, for every funnel.
    pub alerts_through: i64,
    /// And per funnel, where it is later (absent in metas written before).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub alerts_through_by_funnel: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEngineMetaV1 {
    pub next_id: u64,
    pub evaluated_at: i64,
    /// Absent in metas written before silences could be added while running.
    #[serde(default)]
    pub added_silences: Vec<StoredAddedSilence>,
    #[serde(default)]
    pub next_silence_id: u64,
    /// Surges that paged nobody, kept to attach to incidents (absent in metas written before).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub surges: Vec<StoredSurge>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredSurge {
    pub alert_id: u64,
    pub funnel: String,
    pub stage: String,
    pub segment: Option<(String, String)>,
    pub onset: i64,
    pub opened_at: i64,
    pub closed_at: Option<i64>,
    pub baseline_rate: f64,
    pub observed_rate: f64,
    pub sigma: f64,
    pub attached_to: Vec<u64>,
}

impl StoredSurge {
    fn from_core(surge: &Surge) -> StoredSurge {
        StoredSurge {
            alert_id: surge.alert_id,
            funnel: surge.funnel.clone(),
            stage: surge.stage.clone(),
            segment: surge.segment.clone(),
            onset: surge.onset.millis(),
            opened_at: surge.opened_at.millis(),
            closed_at: surge.closed_at.map(Timestamp::millis),
            baseline_rate: surge.baseline_rate,
            observed_rate: surge.observed_rate,
            sigma: surge.sigma,
            attached_to: surge.attached_to.clone(),
        }
    }

    fn into_core(self) -> Surge {
        Surge {
            alert_id: self.alert_id,
            funnel: self.funnel,
            stage: self.stage,
            segment: self.segment,
            onset: Timestamp::from_millis(self.onset),
            opened_at: Timestamp::from_millis(self.opened_at),
            closed_at: self.closed_at.map(Timestamp::from_millis),
            baseline_rate: self.baseline_rate,
            observed_rate: self.observed_rate,
            sigma: self.sigma,
            attached_to: self.attached_to,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAddedSilence {
    pub id: u64,
    pub silence: StoredSilence,
    pub added_by: String,
    pub added_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSilence {
    pub funnel: Option<String>,
    pub stage: Option<String>,
    pub from: i64,
    pub to: i64,
    pub reason: String,
}

impl StoredAddedSilence {
    fn from_core(added: &AddedSilence) -> StoredAddedSilence {
        let silence = &added.silence;
        StoredAddedSilence {
            id: added.id,
            silence: StoredSilence {
                funnel: silence.funnel.clone(),
                stage: silence.stage.clone(),
                from: silence.from.millis(),
                to: silence.to.millis(),
                reason: silence.reason.clone(),
            },
            added_by: added.added_by.clone(),
            added_at: added.added_at.millis(),
        }
    }

    fn into_core(self) -> AddedSilence {
        AddedSilence {
            id: self.id,
            silence: Silence {
                funnel: self.silence.funnel,
                stage: self.silence.stage,
                from: Timestamp::from_millis(self.silence.from),
                to: Timestamp::from_millis(self.silence.to),
                reason: self.silence.reason,
            },
            added_by: self.added_by,
            added_at: Timestamp::from_millis(self.added_at),
        }
    }
}
