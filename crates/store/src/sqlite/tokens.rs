//! SQLite API tokens: create, find by secret hash, list, revoke. It never sees a secret, only
//! its SHA-256.

use rusqlite::{OptionalExtension, params};

use revloop_core::Timestamp;

use super::SqliteStore;
use crate::{Role, StoreError, TokenRecord};

impl SqliteStore {
    pub(super) fn create_token(
        &self,
        name: &str,
        role: Role,
        secret_sha256: [u8; 32],
        now: Timestamp,
    ) -> Result<TokenRecord, StoreError> {
        let writer = self.writer.lock().expect("writer lock");
        writer.connection.execute(
            "INSERT INTO api_tokens (name, role, secret_sha256, created_ms) VALUES (?1, ?2, ?3, ?4)",
            params![name, role.as_str(), secret_sha256.as_slice(), now.millis()],
        )?;
        Ok(TokenRecord {
            id: writer.connection.last_insert_rowid(),
            name: name.to_owned(),
            role,
            secret_sha256,
            created_at: now,
            revoked_at: None,
        })
    }

    pub(super) fn find_token(
        &self,
        secret_sha256: &[u8; 32],
    ) -> Result<Option<TokenRecord>, StoreError> {
        self.with_reader(|connection| {
            Ok(connection
                .query_row(
                    "SELECT id, name, role, secret_sha256, created_ms, revoked_ms FROM api_tokens
                     WHERE secret_sha256 = ?1 AND revoked_ms IS NULL",
                    [secret_sha256.as_slice()],
                    token_from_row,
                )
                .optional()?)
        })
    }

    pub(super) fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.with_reader(|connection| {
            let mut statement = connection.prepare(
                "SELECT id, name, role, secret_sha256, created_ms, revoked_ms FROM api_tokens ORDER BY id",
            )?;
            let tokens = statement.query_map([], token_from_row)?.collect::<Result<_, _>>()?;
            Ok(tokens)
        })
    }

    pub(super) fn revoke_token(&self, id: i64, now: Timestamp) -> Result<bool, StoreError> {
        let writer = self.writer.lock().expect("writer lock");
        let changed = writer.connection.execute(
            "UPDATE api_tokens SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms IS NULL",
            params![id, now.millis()],
        )?;
        Ok(changed == 1)
    }
}

fn token_from_row(row: &rusqlite::Row) -> rusqlite::Result<TokenRecord> {
    let corrupt = |column: usize, what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            column,
            rusqlite::types::Type::Text,
            format!("api_tokens holds {what}").into(),
        )
    };
    let role: String = row.get(2)?;
    let hash: Vec<u8> = row.get(3)?;
    let revoked: Option<i64> = row.get(5)?;
    Ok(TokenRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        role: Role::parse(&role).ok_or_else(|| corrupt(2, "an unknown role"))?,
        secret_sha256: hash
            .try_into()
            .map_err(|_| corrupt(3, "a hash that is not 32 bytes"))?,
        created_at: Timestamp::from_millis(row.get(4)?),
        revoked_at: revoked.map(Timestamp::from_millis),
    })
}
