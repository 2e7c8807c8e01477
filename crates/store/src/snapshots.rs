//! The dialect-free part of stored detector snapshots: the row, the chunking of its bytes and
//! their limits, and putting the chunks back together.
//!
//! A snapshot is opaque here (the detector encodes and checks it); the store keeps one per
//! funnel, replaced whole, and never lets one of an older minute replace a newer one, so that
//! nodes sharing a database may all write theirs.

use revloop_core::Timestamp;
use revloop_core::time::Minute;

use crate::StoreError;

/// Bytes per stored chunk: large enough that a snapshot of 2,000 segments is a few rows, small
/// enough that no single value strains a driver or a statement's memory.
pub const SNAPSHOT_CHUNK_BYTES: usize = 4 << 20;
/// Largest snapshot a funnel may store: far above one of [`revloop_core::detect`]'s
/// `SEGMENTS_PER_FUNNEL_MAX` segments of the most stages, so a save only fails on a bug.
pub const SNAPSHOT_BYTES_MAX: usize = 1 << 30;

/// One funnel's stored detector state.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorSnapshotRow {
    pub funnel: String,
    /// The first minute the state has not judged.
    pub next_minute: Minute,
    /// The fingerprint of the config the state was taken under.
    pub fingerprint: u64,
    /// When it was saved (the saving node's clock): for operators, never for judging.
    pub saved_at: Timestamp,
    pub bytes: Vec<u8>,
}

pub(crate) fn check_size(row: &DetectorSnapshotRow) -> Result<(), StoreError> {
    if row.bytes.len() > SNAPSHOT_BYTES_MAX {
        return Err(StoreError::Io(format!(
            "the detector snapshot of funnel `{}` is {} bytes, over the limit of {SNAPSHOT_BYTES_MAX}",
            row.funnel,
            row.bytes.len()
        )));
    }
    Ok(())
}

/// The chunks a row is stored as, numbered from 0.
pub(crate) fn chunks(row: &DetectorSnapshotRow) -> impl Iterator<Item = (i64, &[u8])> {
    row.bytes
        .chunks(SNAPSHOT_CHUNK_BYTES)
        .enumerate()
        .map(|(index, chunk)| (index as i64, chunk))
}

pub(crate) fn n_chunks(row: &DetectorSnapshotRow) -> i64 {
    row.bytes.len().div_ceil(SNAPSHOT_CHUNK_BYTES) as i64
}

/// A stored header: next minute, fingerprint bits, saved at, bytes, chunks.
pub(crate) struct StoredHeader {
    pub(crate) next_minute: i64,
    pub(crate) fingerprint: i64,
    pub(crate) saved_ms: i64,
    pub(crate) n_bytes: i64,
    pub(crate) n_chunks: i64,
}

/// Puts a header and its chunks (in chunk order, as read in one statement or snapshot) back
/// together. Chunks that do not add up to the header are an error, never a shorter snapshot.
pub(crate) fn assemble(
    funnel: &str,
    header: StoredHeader,
    chunks: Vec<(i64, Vec<u8>)>,
) -> Result<DetectorSnapshotRow, StoreError> {
    let n_bytes = usize::try_from(header.n_bytes).unwrap_or(usize::MAX);
    let fits = n_bytes <= SNAPSHOT_BYTES_MAX
        && chunks.len() as i64 == header.n_chunks
        && chunks
            .iter()
            .enumerate()
            .all(|(index, (chunk, _))| *chunk == index as i64)
        && chunks.iter().map(|(_, bytes)| bytes.len()).sum::<usize>() == n_bytes;
    if !fits {
        return Err(StoreError::Io(format!(
            "the stored detector snapshot of funnel `{funnel}` is incomplete"
        )));
    }
    let mut bytes = Vec::with_capacity(n_bytes);
    for (_, chunk) in chunks {
        bytes.extend_from_slice(&chunk);
    }
    Ok(DetectorSnapshotRow {
        funnel: funnel.to_owned(),
        next_minute: Minute::new(header.next_minute),
        fingerprint: header.fingerprint as u64,
        saved_at: Timestamp::from_millis(header.saved_ms),
        bytes,
    })
}
