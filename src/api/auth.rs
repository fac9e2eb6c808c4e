//! Who may call what: bearer tokens, each with a role, and the role every
//! RPC needs.
//!
//! Roles are ordered: `read` < `write` < `admin`, and a token may call
//! everything its role and the roles below it may.
//!
//! | role    | may call                                                         |
//! |---------|------------------------------------------------------------------|
//! | `read`  | Scoring (Score, Segment, Recommend, ...), Book (queries,         |
//! |         | summaries, campaign plans), Ingest's reads, Echo                 |
//! | `write` | Ingest's writes (UpsertRelationship, RecordEvents, StreamEvents)  |
//! | `admin` | Models (train, promote, roll back, drift, backup), any `Delete*`  |
//!
//! Health and reflection are open unless `--protect-health` asks for a
//! `read` token there too. A method this table does not know (a newer
//! client's, say) needs `admin`: new RPCs fail closed until they are placed.
//!
//! # The token file
//!
//! One token per line: `TOKEN ROLE [NAME]`, separated by whitespace; `#`
//! starts a comment. NAME is who the audit log says called (default: the
//! token's first 4 characters and its length, never the whole token).
//! Tokens are at least 16 characters of printable ASCII.
//!
//! ```text
//! # token                              role   name
//! 5f0c1d3e9a7b4c2d8e6f1a0b3c5d7e9f     read   dashboards
//! 9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b     write  crm-sync
//! 0a1b2c3d4e5f60718293a4b5c6d7e8f9     admin  ops-oncall
//! ```

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{Error, Result};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Read,
    Write,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }

    fn parse(text: &str) -> Option<Role> {
        match text.to_ascii_lowercase().as_str() {
            "read" => Some(Role::Read),
            "write" => Some(Role::Write),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who made a call, as the audit log names them. Put in the request's
/// extensions by the access check; `anonymous` when no tokens are configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Option<Role>,
}

impl Caller {
    pub fn anonymous() -> Caller {
        Caller {
            name: "anonymous".into(),
            role: None,
        }
    }
}

/// Shortest token accepted: 16 characters of 64 possible is 96 bits.
pub const MIN_TOKEN_CHARS: usize = 16;

/// The configured tokens; empty means access is not checked.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    /// Token to (role, name).
    by_token: BTreeMap<String, (Role, String)>,
}

impl Tokens {
    /// Parses the token file format (see the module doc); `origin` names the
    /// file or variable in errors. Errors name the line, never the token.
    ///
    /// # Errors
    /// `BadInput` for a malformed line, a short token, an unknown role or a
    /// token given twice.
    pub fn parse(origin: &str, text: &str) -> Result<Tokens> {
        let bad = |line: usize, reason: &str| Error::BadInput {
            path: origin.to_string(),
            reason: format!("line {line}: {reason}"),
        };
        let mut by_token = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let mut fields = content.split_whitespace();
            let (Some(token), Some(role)) = (fields.next(), fields.next()) else {
                return Err(bad(line, "expected TOKEN ROLE [NAME]"));
            };
            let name = fields.next().map(str::to_string);
            if fields.next().is_some() {
                return Err(bad(line, "expected TOKEN ROLE [NAME]; NAME has no spaces"));
            }
            if token.chars().count() < MIN_TOKEN_CHARS
                || !token.chars().all(|c| c.is_ascii_graphic())
            {
                return Err(bad(
                    line,
                    &format!("a token is at least {MIN_TOKEN_CHARS} printable ASCII characters"),
                ));
            }
            let role = Role::parse(role)
                .ok_or_else(|| bad(line, "the role is one of read, write, admin"))?;
            let name = name.unwrap_or_else(|| format!("{}…({})", &token[..4], token.len()));
            if by_token.insert(token.to_string(), (role, name)).is_some() {
                return Err(bad(line, "this token is given twice"));
            }
        }
        Ok(Tokens { by_token })
    }

    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    /// The caller a token stands for. Every configured token is compared in
    /// full, in time independent of where the tokens differ, so the answer
    /// time does not reveal a token's prefix.
    pub fn lookup(&self, token: &str) -> Option<Caller> {
        let mut found = None;
        for (candidate, (role, name)) in &self.by_token {
            if constant_time_eq(candidate.as_bytes(), token.as_bytes()) {
                found = Some(Caller {
                    name: name.clone(),
                    role: Some(*role),
                });
            }
        }
        found
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The role a gRPC path (`/package.Service/Method`) needs; `None` when it is
/// open. See the module doc for the table.
pub fn required_role(path: &str, protect_health: bool) -> Option<Role> {
    let (service, method) = split_path(path);
    match service {
        "grpc.health.v1.Health"
        | "grpc.reflection.v1.ServerReflection"
        | "grpc.reflection.v1alpha.ServerReflection" => protect_health.then_some(Role::Read),
        _ if method.starts_with("Delete") => Some(Role::Admin),
        "rapport.v1.Scoring" | "rapport.v1.Book" | "rapport.v1.Echo" => Some(Role::Read),
        "rapport.v1.Ingest" => match method {
            "GetRelationship" => Some(Role::Read),
            "UpsertRelationship" | "RecordEvents" | "StreamEvents" => Some(Role::Write),
            _ => Some(Role::Admin),
        },
        _ => Some(Role::Admin),
    }
}

/// `/rapport.v1.Scoring/Score` as (`rapport.v1.Scoring`, `Score`).
pub fn split_path(path: &str) -> (&str, &str) {
    let path = path.strip_prefix('/').unwrap_or(path);
    path.split_once('/').unwrap_or((path, ""))
}

/// Why a call was refused, before it reached its handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No token, a malformed header, or a token that is not configured.
    Unauthenticated(&'static str),
    /// A known token whose role is below the one needed.
    PermissionDenied {
        caller: String,
        has: Role,
        needs: Role,
    },
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denied::Unauthenticated(why) => f.write_str(why),
            Denied::PermissionDenied { caller, has, needs } => {
                write!(f, "{caller} has the {has} role; this call needs {needs}")
            }
        }
    }
}

/// Checks an `authorization` header value against the tokens for a call
/// that needs `needs` (`None`: open).
///
/// # Errors
/// [`Denied`] saying why.
pub fn check(
    tokens: &Tokens,
    header: Option<&[u8]>,
    needs: Option<Role>,
) -> std::result::Result<Caller, Denied> {
    if tokens.is_empty() {
        return Ok(Caller::anonymous());
    }
    let presented = header
        .map(|h| {
            std::str::from_utf8(h)
                .ok()
                .and_then(|h| {
                    let (scheme, token) = h.trim().split_once(' ')?;
                    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
                })
                .ok_or(Denied::Unauthenticated(
                    "the authorization header is not \"Bearer TOKEN\"",
                ))
        })
        .transpose()?;
    let caller = presented.and_then(|t| tokens.lookup(t));
    let Some(needs) = needs else {
        return Ok(caller.unwrap_or_else(Caller::anonymous));
    };
    let Some(caller) = caller else {
        return Err(Denied::Unauthenticated(if presented.is_some() {
            "the bearer token is not valid"
        } else {
            "this call needs a bearer token (authorization: Bearer TOKEN)"
        }));
    };
    let has = caller.role.unwrap_or(Role::Read);
    if has < needs {
        return Err(Denied::PermissionDenied {
            caller: caller.name,
            has,
            needs,
        });
    }
    Ok(caller)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# ops tokens\n\
        rrrrrrrrrrrrrrrrrrrr read dashboards\n\
        wwwwwwwwwwwwwwwwwwww  write   # no name\n\
        aaaaaaaaaaaaaaaaaaaa admin oncall\n";

    #[test]
    fn the_token_file_parses_with_roles_and_names() {
        let tokens = Tokens::parse("tokens", FILE).unwrap();
        assert_eq!(tokens.len(), 3);
        let admin = tokens.lookup("aaaaaaaaaaaaaaaaaaaa").unwrap();
        assert_eq!(
            (admin.name.as_str(), admin.role),
            ("oncall", Some(Role::Admin))
        );
        let writer = tokens.lookup("wwwwwwwwwwwwwwwwwwww").unwrap();
        assert_eq!(writer.name, "wwww…(20)");
        assert!(tokens.lookup("aaaaaaaaaaaaaaaaaaab").is_none());
        assert!(tokens.lookup("aaaa").is_none());
    }

    #[test]
    fn bad_token_files_name_the_line_not_the_token() {
        for (text, needle) in [
            ("short read x", "at least 16"),
            ("rrrrrrrrrrrrrrrrrrrr root", "read, write, admin"),
            ("rrrrrrrrrrrrrrrrrrrr", "TOKEN ROLE"),
            ("rrrrrrrrrrrrrrrrrrrr read a b", "no spaces"),
            (
                "rrrrrrrrrrrrrrrrrrrr read\nrrrrrrrrrrrrrrrrrrrr admin",
                "line 2: this token is given twice",
            ),
        ] {
            let err = Tokens::parse("tokens", text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
            assert!(!err.contains("rrrrrrrrrrrrrrrrrrrr"), "{err}");
        }
    }

    #[test]
    fn every_service_has_the_role_the_table_says() {
        assert_eq!(
            required_role("/rapport.v1.Scoring/Score", false),
            Some(Role::Read)
        );
        assert_eq!(
            required_role("/rapport.v1.Book/PlanCampaign", false),
            Some(Role::Read)
        );
        assert_eq!(
            required_role("/rapport.v1.Ingest/DeleteRelationship", false),
            Some(Role::Admin)
        );
        assert_eq!(
            required_role("/rapport.v1.Ingest/GetRelationship", false),
            Some(Role::Read)
        );
        assert_eq!(
            required_role("/rapport.v1.Ingest/RecordEvents", false),
            Some(Role::Write)
        );
        assert_eq!(
            required_role("/rapport.v1.Ingest/DeleteRelationship", false),
            Some(Role::Admin)
        );
        assert_eq!(
            required_role("/rapport.v1.Models/ListModels", false),
            Some(Role::Admin)
        );
        assert_eq!(
            required_role("/rapport.v1.Ingest/SomethingNew", false),
            Some(Role::Admin)
        );
        assert_eq!(
            required_role("/other.Service/Call", false),
            Some(Role::Admin)
        );
        assert_eq!(required_role("/grpc.health.v1.Health/Check", false), None);
        assert_eq!(
            required_role("/grpc.health.v1.Health/Check", true),
            Some(Role::Read)
        );
    }

    #[test]
    fn checks_give_unauthenticated_and_permission_denied() {
        let tokens = Tokens::parse("tokens", FILE).unwrap();
        let bearer = |t: &str| format!("Bearer {t}").into_bytes();
        assert!(check(&Tokens::default(), None, Some(Role::Admin)).is_ok());
        assert!(matches!(
            check(&tokens, None, Some(Role::Read)),
            Err(Denied::Unauthenticated(_))
        ));
        assert!(matches!(
            check(&tokens, Some(b"Basic abc"), Some(Role::Read)),
            Err(Denied::Unauthenticated(_))
        ));
        assert!(matches!(
            check(
                &tokens,
                Some(&bearer("nope-nope-nope-nope")),
                Some(Role::Read)
            ),
            Err(Denied::Unauthenticated(_))
        ));
        let denied = check(
            &tokens,
            Some(&bearer("rrrrrrrrrrrrrrrrrrrr")),
            Some(Role::Write),
        );
        assert_eq!(
            denied.unwrap_err().to_string(),
            "dashboards has the read role; this call needs write"
        );
        let ok = check(
            &tokens,
            Some(&bearer("aaaaaaaaaaaaaaaaaaaa")),
            Some(Role::Write),
        )
        .unwrap();
        assert_eq!(ok.name, "oncall");
        // An open call names a known caller, and lets an unknown one through.
        assert_eq!(check(&tokens, None, None).unwrap(), Caller::anonymous());
    }
}
