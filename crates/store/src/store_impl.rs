//! The `Store` impl of a backend, written once for both: each backend implements every concern
//! as an inherent fn of the trait method's name and signature (in its concern modules), and
//! this delegates to them. It must hold no logic of its own.

/// `impl Store for $store`, delegating every method to `$store`'s inherent fn of the same name;
/// the trait methods a backend writes itself (at least `ping`) follow in braces.
macro_rules! store_by_concern {
    ($store:ident { $($own:tt)* }) => {
        // A block of its own, so that these imports stay out of the backend's module.
        const _: () = {
            use revloop_core::Timestamp;
            use revloop_core::metrics::MinuteCount;
            use revloop_core::time::Minute;

            use $crate::{
                ChangeRow, CountsQuery, IncidentCommit, IncidentQuery, IncidentRow,
                IgnoredNamesPage, IncidentSnapshot, IngestGroup, IngestReceipt, LateCount,
                OutboxRow, ProblemPage, ProblemQuery, Role, SegmentMinuteCount, StoreError,
                TimelineRow, TokenRecord,
            };

            impl $crate::Store for $store {
                fn commit_ingest(&self, group: &IngestGroup) -> Result<IngestReceipt, StoreError> {
                    $store::commit_ingest(self, group)
                }

                fn minute_counts(
                    &self,
                    query: &CountsQuery,
                ) -> Result<Vec<MinuteCount>, StoreError> {
                    $store::minute_counts(self, query)
                }

                fn late_counts(&self, query: &CountsQuery) -> Result<Vec<LateCount>, StoreError> {
                    $store::late_counts(self, query)
                }

                fn segment_minute_counts(
                    &self,
                    funnel: &str,
                    from: Minute,
                    to: Minute,
                ) -> Result<Vec<SegmentMinuteCount>, StoreError> {
                    $store::segment_minute_counts(self, funnel, from, to)
                }

                fn dimension_values(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
                    $store::dimension_values(self)
                }

                fn create_token(
                    &self,
                    name: &str,
                    role: Role,
                    secret_sha256: [u8; 32],
                    now: Timestamp,
                ) -> Result<TokenRecord, StoreError> {
                    $store::create_token(self, name, role, secret_sha256, now)
                }

                fn find_token(
                    &self,
                    secret_sha256: &[u8; 32],
                ) -> Result<Option<TokenRecord>, StoreError> {
                    $store::find_token(self, secret_sha256)
                }

                fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
                    $store::list_tokens(self)
                }

                fn revoke_token(&self, id: i64, now: Timestamp) -> Result<bool, StoreError> {
                    $store::revoke_token(self, id, now)
                }

                fn load_incidents(
                    &self,
                    resolved_max: usize,
                ) -> Result<IncidentSnapshot, StoreError> {
                    $store::load_incidents(self, resolved_max)
                }

                fn commit_incidents(&self, commit: &IncidentCommit) -> Result<i64, StoreError> {
                    $store::commit_incidents(self, commit)
                }

                fn incidents_version(&self) -> Result<i64, StoreError> {
                    $store::incidents_version(self)
                }

                fn incident(
                    &self,
                    id: i64,
                ) -> Result<Option<(IncidentRow, Vec<TimelineRow>)>, StoreError> {
                    $store::incident(self, id)
                }

                fn list_incidents(
                    &self,
                    query: &IncidentQuery,
                ) -> Result<Vec<IncidentRow>, StoreError> {
                    $store::list_incidents(self, query)
                }

                fn resolved_incidents(
                    &self,
                    from: Timestamp,
                    to: Timestamp,
                ) -> Result<Vec<IncidentRow>, StoreError> {
                    $store::resolved_incidents(self, from, to)
                }

                fn outbox(
                    &self,
                    after_id: i64,
                    limit: usize,
                ) -> Result<Vec<OutboxRow>, StoreError> {
                    $store::outbox(self, after_id, limit)
                }

                fn insert_change(
                    &self,
                    change: &ChangeRow,
                ) -> Result<(ChangeRow, bool), StoreError> {
                    $store::insert_change(self, change)
                }

                fn changes(
                    &self,
                    from: Timestamp,
                    to: Timestamp,
                    limit: usize,
                ) -> Result<Vec<ChangeRow>, StoreError> {
                    $store::changes(self, from, to, limit)
                }

                fn upsert_signal(
                    &self,
                    signal: &$crate::SignalRow,
                ) -> Result<($crate::SignalRow, bool), StoreError> {
                    $store::upsert_signal(self, signal)
                }

                fn signals(
                    &self,
                    from: Timestamp,
                    to: Timestamp,
                    limit: usize,
                ) -> Result<Vec<$crate::SignalRow>, StoreError> {
                    $store::signals(self, from, to, limit)
                }

                fn problem_log(&self, query: &ProblemQuery) -> Result<ProblemPage, StoreError> {
                    $store::problem_log(self, query)
                }

                fn ignored_names(&self, limit: usize) -> Result<IgnoredNamesPage, StoreError> {
                    $store::ignored_names(self, limit)
                }

                fn roll_up_counts(&self, before: Minute) -> Result<$crate::Rollup, StoreError> {
                    $store::roll_up_counts(self, before)
                }

                fn outbox_stats(&self) -> Result<$crate::OutboxStats, StoreError> {
                    $store::outbox_stats(self)
                }

                fn save_detector_snapshot(
                    &self,
                    snapshot: &$crate::DetectorSnapshotRow,
                ) -> Result<bool, StoreError> {
                    $store::save_detector_snapshot(self, snapshot)
                }

                fn load_detector_snapshot(
                    &self,
                    funnel: &str,
                ) -> Result<Option<$crate::DetectorSnapshotRow>, StoreError> {
                    $store::load_detector_snapshot(self, funnel)
                }

                fn discard_detector_snapshot(&self, funnel: &str) -> Result<bool, StoreError> {
                    $store::discard_detector_snapshot(self, funnel)
                }

                fn post_ledger_entries(
                    &self,
                    chart: &revloop_core::ledger::Chart,
                    entries: &[revloop_core::ledger::JournalEntry],
                    now: Timestamp,
                ) -> Result<Vec<$crate::PostOutcome>, StoreError> {
                    $store::post_ledger_entries(self, chart, entries, now)
                }

                fn ledger_entry(&self, id: &str) -> Result<Option<$crate::LedgerRow>, StoreError> {
                    $store::ledger_entry(self, id)
                }

                fn ledger_entries(
                    &self,
                    query: &$crate::LedgerQuery,
                ) -> Result<Vec<$crate::LedgerRow>, StoreError> {
                    $store::ledger_entries(self, query)
                }

                fn trial_balance(
                    &self,
                ) -> Result<Vec<revloop_core::ledger::Balance>, StoreError> {
                    $store::trial_balance(self)
                }

                fn account_statement(
                    &self,
                    query: &$crate::StatementQuery,
                ) -> Result<Vec<$crate::StatementLine>, StoreError> {
                    $store::account_statement(self, query)
                }

                fn delivery_cursor(&self) -> Result<i64, StoreError> {
                    $store::delivery_cursor(self)
                }

                fn plan_deliveries(
                    &self,
                    through_outbox_id: i64,
                    deliveries: &[$crate::NewDelivery],
                ) -> Result<usize, StoreError> {
                    $store::plan_deliveries(self, through_outbox_id, deliveries)
                }

                fn claim_deliveries(
                    &self,
                    channel: &str,
                    node: &str,
                    now: Timestamp,
                    lease: revloop_core::time::DurationMs,
                    limit: usize,
                ) -> Result<Vec<$crate::DeliveryRow>, StoreError> {
                    $store::claim_deliveries(self, channel, node, now, lease, limit)
                }

                fn record_attempt(
                    &self,
                    attempt: &$crate::AttemptRecord,
                ) -> Result<bool, StoreError> {
                    $store::record_attempt(self, attempt)
                }

                fn deliveries(
                    &self,
                    query: &$crate::DeliveryQuery,
                ) -> Result<Vec<$crate::DeliveryRow>, StoreError> {
                    $store::deliveries(self, query)
                }

                fn delivery_attempts(
                    &self,
                    incident: i64,
                    limit: usize,
                ) -> Result<Vec<$crate::AttemptRow>, StoreError> {
                    $store::delivery_attempts(self, incident, limit)
                }

                fn delivery_stats(
                    &self,
                ) -> Result<Vec<$crate::ChannelDeliveryStats>, StoreError> {
                    $store::delivery_stats(self)
                }

                fn expedite_deliveries(
                    &self,
                    channel: &str,
                    now: revloop_core::Timestamp,
                ) -> Result<usize, StoreError> {
                    $store::expedite_deliveries(self, channel, now)
                }

                $($own)*
            }
        };
    };
}
