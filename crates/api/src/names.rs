//! Closed sets of names as enums: one macro gives each its wire spelling (serde), `as_str`,
//! `Display`, `FromStr` and the list of every name, so that an unknown name is refused with
//! the valid ones listed. It must never accept a name the server would not.

/// A name that is not one of a closed set's; its message lists the valid names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    pub what: &'static str,
    pub given: String,
    pub valid: &'static [&'static str],
}

impl std::fmt::Display for UnknownName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no {} `{}`; use one of {}",
            self.what,
            self.given,
            self.valid.join(", ")
        )
    }
}

impl std::error::Error for UnknownName {}

/// `names! { /// doc  pub enum Name("what") { Variant = "wire", ... } }`: a closed set, for
/// what the CLI sends (an unknown name is refused with the valid ones listed).
///
/// `names! { /// doc  pub enum Name("what") open { Variant = "wire", ... } }`: the same names
/// plus `Unknown(String)`, for what the CLI only shows: a reply from a newer server with a name
/// this build does not know still reads (and prints as sent). `FromStr` stays strict: what a
/// person types is still checked against the known names.
macro_rules! names {
    (
        $(#[$meta:meta])*
        pub enum $name:ident($what:literal) {
            $($(#[$variant_meta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
        )]
        pub enum $name {
            $($(#[$variant_meta])* #[serde(rename = $text)] $variant,)+
        }

        // By hand, not derived: utoipa's derive does not read a `rename` that a macro passes
        // through, and would describe the variants' Rust names.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some($name::NAMES.iter().copied()))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl $name {
            /// Every name, in the API's order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];
            /// Every name's wire spelling, in the API's order.
            pub const NAMES: &'static [&'static str] = &[$($text,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        $crate::names::names!(@common $name $what { $($variant = $text,)+ });
    };
    (
        $(#[$meta:meta])*
        pub enum $name:ident($what:literal) open {
            $($(#[$variant_meta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$variant_meta])* $variant,)+
            /// A name this build does not know, from a newer server: shown as sent.
            Unknown(String),
        }

        impl $name {
            /// Every known name, in the API's order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];
            /// Every known name's wire spelling, in the API's order.
            pub const NAMES: &'static [&'static str] = &[$($text,)+];

            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)+
                    $name::Unknown(text) => text,
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        /// In the API's description, the known names: a server only sends those it knows.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some($name::NAMES.iter().copied()))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<$name, D::Error> {
                let text = <String as serde::Deserialize>::deserialize(deserializer)?;
                Ok(text.parse().unwrap_or($name::Unknown(text)))
            }
        }

        $crate::names::names!(@common $name $what { $($variant = $text,)+ });
    };
    (@common $name:ident $what:literal { $($variant:ident = $text:literal,)+ }) => {
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::names::UnknownName;

            fn from_str(text: &str) -> Result<$name, $crate::names::UnknownName> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::names::UnknownName {
                        what: $what,
                        given: text.to_owned(),
                        valid: $name::NAMES,
                    }),
                }
            }
        }
    };
}

pub(crate) use names;
