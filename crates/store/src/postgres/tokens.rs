//! PostgreSQL API tokens: create, find by secret hash, list, revoke. It never sees a secret,
//! only its SHA-256.

use postgres::types::{FromSql, Type};

use revloop_core::Timestamp;

use super::PostgresStore;
use crate::{Role, StoreError, TokenRecord};

impl PostgresStore {
    pub(super) fn create_token(
        &self,
        name: &str,
        role: Role,
        secret_sha256: [u8; 32],
        now: Timestamp,
    ) -> Result<TokenRecord, StoreError> {
        self.with_client(|client| {
            let row = client.query_one(
                "INSERT INTO api_tokens (name, role, secret_sha256, created_ms)
                 VALUES ($1, $2, $3, $4) RETURNING id",
                &[
                    &name,
                    &role.as_str(),
                    &secret_sha256.as_slice(),
                    &now.millis(),
                ],
            )?;
            Ok(TokenRecord {
                id: row.try_get(0)?,
                name: name.to_owned(),
                role,
                secret_sha256,
                created_at: now,
                revoked_at: None,
            })
        })
    }

    pub(super) fn find_token(
        &self,
        secret_sha256: &[u8; 32],
    ) -> Result<Option<TokenRecord>, StoreError> {
        self.with_client(|client| {
            let row = client.query_opt(
                "SELECT id, name, role, secret_sha256, created_ms, revoked_ms FROM api_tokens
                 WHERE secret_sha256 = $1 AND revoked_ms IS NULL",
                &[&secret_sha256.as_slice()],
            )?;
            row.as_ref().map(token_from_row).transpose()
        })
    }

    pub(super) fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.with_client(|client| {
            client
                .query(
                    "SELECT id, name, role, secret_sha256, created_ms, revoked_ms FROM api_tokens
                     ORDER BY id",
                    &[],
                )?
                .iter()
                .map(token_from_row)
                .collect()
        })
    }

    pub(super) fn revoke_token(&self, id: i64, now: Timestamp) -> Result<bool, StoreError> {
        self.with_client(|client| {
            let changed = client.execute(
                "UPDATE api_tokens SET revoked_ms = $2 WHERE id = $1 AND revoked_ms IS NULL",
                &[&id, &now.millis()],
            )?;
            Ok(changed == 1)
        })
    }
}

fn token_from_row(row: &postgres::Row) -> Result<TokenRecord, StoreError> {
    let revoked: Option<i64> = row.try_get(5)?;
    Ok(TokenRecord {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        role: row.try_get::<_, RoleColumn>(2)?.0,
        secret_sha256: row.try_get::<_, Sha256Column>(3)?.0,
        created_at: Timestamp::from_millis(row.try_get(4)?),
        revoked_at: revoked.map(Timestamp::from_millis),
    })
}

/// A role read from `api_tokens`; an unknown one is a conversion error, as in the SQLite store.
struct RoleColumn(Role);

impl<'a> FromSql<'a> for RoleColumn {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<RoleColumn, Box<dyn std::error::Error + Sync + Send>> {
        let text = <&str as FromSql>::from_sql(ty, raw)?;
        match Role::parse(text) {
            Some(role) => Ok(RoleColumn(role)),
            None => Err(format!("api_tokens holds an unknown role `{text}`").into()),
        }
    }

    fn accepts(ty: &Type) -> bool {
        <&str as FromSql>::accepts(ty)
    }
}

/// A secret hash read from `api_tokens`; one that is not 32 bytes is a conversion error.
struct Sha256Column([u8; 32]);

impl<'a> FromSql<'a> for Sha256Column {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Sha256Column, Box<dyn std::error::Error + Sync + Send>> {
        let bytes = <&[u8] as FromSql>::from_sql(ty, raw)?;
        let hash = bytes
            .try_into()
            .map_err(|_| "api_tokens holds a hash that is not 32 bytes")?;
        Ok(Sha256Column(hash))
    }

    fn accepts(ty: &Type) -> bool {
        <&[u8] as FromSql>::accepts(ty)
    }
}
