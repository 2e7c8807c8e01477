//! Seeded randomness (placeholder; being written).
