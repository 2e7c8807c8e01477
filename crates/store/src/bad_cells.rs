//! Cells of the count tables that hold what the schema promises they never hold: a REAL, a text
//! or a negative count in an INTEGER column, planted by hand or left by an older revloop whose
//! sums could overflow. Such a cell is read as 0, logged and counted in
//! [`bad_cells_total`], so that one bad cell never fails a metrics query or the detector. This
//! module must never repair a cell: the operator decides what the right value was.

use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::types::ValueRef;

static N_BAD_CELLS: AtomicU64 = AtomicU64::new(0);

/// How many bad count cells the reads have met since the process started (each read of a bad
/// cell counts once).
pub fn bad_cells_total() -> u64 {
    N_BAD_CELLS.load(Ordering::Relaxed)
}

/// Whether a count column may legitimately be negative: revenue may (refunds), counts may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sign {
    NonNegative,
    Any,
}

/// The integer in `row[column]`, or 0 when the cell is not one `sign` allows, reported.
pub(crate) fn count_cell(row: &rusqlite::Row, column: usize, sign: Sign) -> rusqlite::Result<i64> {
    let value = row.get_ref(column)?;
    match value {
        ValueRef::Integer(n) if n >= 0 || sign == Sign::Any => Ok(n),
        _ => {
            N_BAD_CELLS.fetch_add(1, Ordering::Relaxed);
            let name = row.as_ref().column_name(column).unwrap_or("?");
            tracing::warn!(
                column = name,
                value = ?value,
                "bad cell in the count tables: read as 0"
            );
            Ok(0)
        }
    }
}
