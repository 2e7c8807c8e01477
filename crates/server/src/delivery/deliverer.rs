//! The delivery service: outbox → deliveries → attempts (see the module docs of `delivery`).
