//! The enums the store keeps in text columns, and the one mapping of each to and from its
//! column text. Where the core has the enum (severity, state, timeline kind, change kind) the
//! store uses it; the outbox's kinds are the store's own.
//!
//! The column texts are the schema: they never change with a Rust rename. A text that no enum
//! knows is a conversion error when read (a `StoreError`), never a panic and never a default;
//! the one exception is a change's kind, which reads as `other` (a change is context, and a
//! newer node's kind must not stop every incident's suspects).
//! This module must not know SQL: each backend wraps [`ColumnText`] in its own driver traits.

use revloop_core::change::ChangeKind;
use revloop_core::incident::{IncidentSeverity, IncidentState, TimelineKind};

/// An enum stored as text in one column.
pub(crate) trait ColumnText: Sized + Copy {
    /// `table.column`, for error messages.
    const COLUMN: &'static str;

    fn to_text(self) -> &'static str;

    fn from_text(text: &str) -> Option<Self>;

    /// [`ColumnText::from_text`], with an error that names the column and the text.
    fn parse_column(text: &str) -> Result<Self, String> {
        Self::from_text(text)
            .ok_or_else(|| format!("{} holds an unknown value `{text}`", Self::COLUMN))
    }
}

impl ColumnText for IncidentSeverity {
    const COLUMN: &'static str = "incidents.severity";

    fn to_text(self) -> &'static str {
        self.as_str()
    }

    fn from_text(text: &str) -> Option<IncidentSeverity> {
        IncidentSeverity::parse(text)
    }
}

impl ColumnText for IncidentState {
    const COLUMN: &'static str = "incidents.state";

    fn to_text(self) -> &'static str {
        self.as_str()
    }

    fn from_text(text: &str) -> Option<IncidentState> {
        [
            IncidentState::Triggered,
            IncidentState::Acknowledged,
            IncidentState::Mitigated,
            IncidentState::Resolved,
        ]
        .into_iter()
        .find(|state| state.as_str() == text)
    }
}

impl ColumnText for TimelineKind {
    const COLUMN: &'static str = "incident_timeline.kind";

    fn to_text(self) -> &'static str {
        self.as_str()
    }

    fn from_text(text: &str) -> Option<TimelineKind> {
        TimelineKind::parse(text)
    }
}

impl ColumnText for ChangeKind {
    const COLUMN: &'static str = "changes.kind";

    fn to_text(self) -> &'static str {
        self.as_str()
    }

    /// A kind this build does not know (recorded by a newer node sharing the database) reads
    /// as `other`: a change is context for a responder, and one unknown kind must not stop the
    /// suspects of every incident from being listed.
    fn from_text(text: &str) -> Option<ChangeKind> {
        Some(ChangeKind::parse(text).unwrap_or(ChangeKind::Other))
    }
}

/// Declares a store-owned enum with its column texts, `as_str`, `parse` and `ALL`.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident in $column:literal { $($(#[$variant_meta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$variant_meta])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            pub fn parse(text: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|kind| kind.as_str() == text)
            }
        }

        impl ColumnText for $name {
            const COLUMN: &'static str = $column;

            fn to_text(self) -> &'static str {
                self.as_str()
            }

            fn from_text(text: &str) -> Option<$name> {
                $name::parse(text)
            }
        }
    };
}

text_enum! {
    /// Where a delivery stands (`deliveries`).
    DeliveryState in "deliveries.state" {
        Pending = "pending",
        Delivered = "delivered",
        /// Final: refused for good, or given up after the retry limit.
        Failed = "failed",
    }
}

text_enum! {
    /// What an outbox row asks of the outside.
    OutboxKind in "incident_outbox.kind" {
        /// Page someone.
        Notify = "notify",
        /// Remind the owner of a recovered incident that it is still open.
        Remind = "remind",
        /// An SLA ran out.
        SlaBreached = "sla_breached",
        /// Someone acknowledged an incident that paged: those paged are told.
        Acknowledged = "acknowledged",
        /// An incident that paged is resolved: those paged are told.
        Resolved = "resolved",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T: ColumnText + PartialEq + std::fmt::Debug>(all: &[T]) {
        for value in all {
            assert_eq!(T::from_text(value.to_text()), Some(*value));
        }
        assert!(T::parse_column("no such text").is_err());
    }

    #[test]
    fn every_kind_round_trips_and_unknown_text_is_an_error_but_a_change_kind_is_other() {
        round_trips(&TimelineKind::ALL);
        round_trips(OutboxKind::ALL);
        for kind in ChangeKind::ALL {
            assert_eq!(ChangeKind::from_text(kind.to_text()), Some(kind));
        }
        assert_eq!(
            ChangeKind::parse_column("no such kind"),
            Ok(ChangeKind::Other)
        );
        round_trips(&[
            IncidentSeverity::P1,
            IncidentSeverity::P2,
            IncidentSeverity::P3,
        ]);
        round_trips(&[
            IncidentState::Triggered,
            IncidentState::Acknowledged,
            IncidentState::Mitigated,
            IncidentState::Resolved,
        ]);
        round_trips(&[
            DeliveryState::Pending,
            DeliveryState::Delivered,
            DeliveryState::Failed,
        ]);
        assert_eq!(
            DeliveryState::parse_column("sent"),
            Err("deliveries.state holds an unknown value `sent`".to_owned())
        );
        assert_eq!(
            OutboxKind::parse_column("page"),
            Err("incident_outbox.kind holds an unknown value `page`".to_owned())
        );
    }
}
