//! Seeded traffic simulation (placeholder; being written).
