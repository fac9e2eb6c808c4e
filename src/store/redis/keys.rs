//! Key names (see the layout table in the module above): one place that
//! knows how a relationship id becomes a hash tag and back.

use crate::error::{Error, Result};

/// What a book key holds for its relationship.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Relationship,
    Fold,
    Events,
    Applied,
    Index,
}

impl Part {
    fn suffix(self) -> &'static str {
        match self {
            Part::Relationship => "r",
            Part::Fold => "a",
            Part::Events => "e",
            Part::Applied => "w",
            Part::Index => "i",
        }
    }
}

/// The key names of one namespace.
#[derive(Debug, Clone)]
pub struct Keys {
    ns: String,
}

impl Keys {
    /// # Errors
    /// `InvalidArgument` for a namespace that is empty or holds anything but
    /// ASCII letters, digits, `-`, `_` and `.`: it is part of every key and
    /// of the SCAN patterns, where `*`, `?`, `[` or a brace would change
    /// their meaning.
    pub fn new(ns: &str) -> Result<Keys> {
        if ns.is_empty()
            || !ns
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(Error::invalid(
                "store namespace",
                format!("{ns:?}: use ASCII letters, digits, '-', '_' or '.'"),
            ));
        }
        Ok(Keys { ns: ns.to_string() })
    }

    /// `<ns>:b:{<tag>}:<part>`: every key of one relationship shares its tag,
    /// so they sit in one slot and one script may write them all.
    pub fn book(&self, id: &str, part: Part) -> String {
        format!("{}:b:{{{}}}:{}", self.ns, tag(id), part.suffix())
    }

    /// The SCAN pattern that matches one part of every relationship. Tags
    /// hold no braces, so `*` cannot reach into another part's suffix.
    pub fn book_pattern(&self, part: Part) -> String {
        format!("{}:b:{{*}}:{}", self.ns, part.suffix())
    }

    /// Every key of the book, for clearing it.
    pub fn all_book_pattern(&self) -> String {
        format!("{}:b:*", self.ns)
    }

    /// The relationship id a book key of `part` belongs to.
    pub fn id_of(&self, key: &[u8], part: Part) -> Option<String> {
        let key = std::str::from_utf8(key).ok()?;
        let inner = key
            .strip_prefix(&self.ns)?
            .strip_prefix(":b:{")?
            .strip_suffix(part.suffix())?
            .strip_suffix("}:")?;
        untag(inner)
    }

    /// `<ns>:m:{m}:<name>`: the small keys every process reads (version
    /// counter, active pointers, products, demo state, latest event time,
    /// training lease), together in one slot.
    pub fn meta(&self, name: &str) -> String {
        format!("{}:m:{{m}}:{name}", self.ns)
    }

    /// `<ns>:v:{<version>}:<part>`: one model version's artifact, its chunks
    /// and its summary in one slot, versions spread over the cluster.
    pub fn model(&self, version: u64, part: &str) -> String {
        format!("{}:v:{{{version}}}:{part}", self.ns)
    }

    /// A pub/sub channel of this namespace.
    pub fn channel(&self, name: &str) -> String {
        format!("{}:c:{name}", self.ns)
    }
}

/// An id as a hash tag: Redis hashes what lies between the first `{` and
/// the next `}`, so braces (and `%`, to keep the escape reversible) are
/// percent-encoded; an id holding a `}` would otherwise end its tag early,
/// and one starting with `}` would have an empty tag and spread its keys.
pub fn tag(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for c in id.chars() {
        match c {
            '%' => out.push_str("%25"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
    }
    out
}

fn untag(tag: &str) -> Option<String> {
    let mut out = String::with_capacity(tag.len());
    let mut rest = tag;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 3)?;
        out.push(match code {
            "25" => '%',
            "7B" => '{',
            "7D" => '}',
            _ => return None,
        });
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::cluster_routing::{Route, SlotAddr};

    #[test]
    fn ids_with_braces_keep_one_slot_and_come_back() {
        let keys = Keys::new("t").unwrap();
        for id in ["plain", "}x", "a}b{c", "100%", "%7B", "{}", "é"] {
            let r = keys.book(id, Part::Relationship);
            let e = keys.book(id, Part::Events);
            let slot = |key: &str| Route::with_key(key.as_bytes(), SlotAddr::Master);
            assert_eq!(slot(&r), slot(&e), "{id}: one slot");
            assert_eq!(
                keys.id_of(r.as_bytes(), Part::Relationship).as_deref(),
                Some(id)
            );
            assert_eq!(keys.id_of(r.as_bytes(), Part::Events), None);
        }
        assert_ne!(tag("}x"), tag("%7Dx"));
    }

    #[test]
    fn namespaces_that_would_change_a_pattern_are_refused() {
        assert!(Keys::new("rapport-1.prod_eu").is_ok());
        for bad in ["", "a*", "a{b}", "a b", "a:b", "a?"] {
            assert!(Keys::new(bad).is_err(), "{bad:?}");
        }
    }
}
