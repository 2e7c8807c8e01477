//! HTTP plumbing that every handler shares: who is asking ([`auth`]), what they sent
//! ([`body`]: encodings and size limits), what went wrong ([`error`]: the one `ApiError`), and
//! how query parameters are refused ([`query`]), and two policies: transient store errors
//! tried again inside the request ([`retry`]) and a lock whose holder panicked ([`lock`]).
//!
//! It knows requests and responses, not the API: it must never import a handler, the router,
//! or a service. Handlers import it; nothing here imports them.

pub mod auth;
pub mod body;
pub mod error;
pub mod lock;
pub mod query;
pub mod retry;

pub use body::{blocking, decode_body, is_gzip, read_body};
pub use error::{
    ApiError, DETAILS_LISTED_MAX, ErrorDetail, catching_panics, invalid, panic_response,
};
pub use retry::retrying;
