//! A digest of an item's whole content, the same for equal items however their
//! attributes (and the members of their sets) are ordered: the drill compares a
//! sampled item with its restored copy by digest, so a drill record holds 64
//! characters per item instead of the item.

use aws_sdk_dynamodb::types::AttributeValue;
use sha2::{Digest, Sha256};

use crate::item::Item;

pub(crate) fn digest(item: &Item) -> String {
    let mut hasher = Sha256::new();
    write_map(&mut hasher, item.iter());
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn write_map<'a>(hasher: &mut Sha256, map: impl Iterator<Item = (&'a String, &'a AttributeValue)>) {
    let mut entries: Vec<_> = map.collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    hasher.update(b"{");
    for (name, value) in entries {
        write_text(hasher, name);
        write_value(hasher, value);
    }
    hasher.update(b"}");
}

/// Length-prefixed, so no two different values write the same bytes.
fn write_text(hasher: &mut Sha256, text: &str) {
    hasher.update((text.len() as u64).to_be_bytes());
    hasher.update(text.as_bytes());
}

fn write_sorted(hasher: &mut Sha256, tag: &[u8], mut members: Vec<Vec<u8>>) {
    members.sort();
    hasher.update(tag);
    hasher.update((members.len() as u64).to_be_bytes());
    for member in members {
        hasher.update((member.len() as u64).to_be_bytes());
        hasher.update(member);
    }
}

fn write_value(hasher: &mut Sha256, value: &AttributeValue) {
    match value {
        AttributeValue::S(text) => {
            hasher.update(b"S");
            write_text(hasher, text);
        }
        AttributeValue::N(number) => {
            hasher.update(b"N");
            write_text(hasher, number);
        }
        AttributeValue::B(blob) => write_sorted(hasher, b"B", vec![blob.as_ref().to_vec()]),
        AttributeValue::Bool(flag) => hasher.update(if *flag { b"T" } else { b"F" }),
        AttributeValue::Null(_) => hasher.update(b"0"),
        AttributeValue::L(list) => {
            hasher.update(b"L");
            hasher.update((list.len() as u64).to_be_bytes());
            for member in list {
                write_value(hasher, member);
            }
        }
        AttributeValue::M(map) => {
            hasher.update(b"M");
            write_map(hasher, map.iter());
        }
        AttributeValue::Ss(set) => write_sorted(
            hasher,
            b"SS",
            set.iter().map(|s| s.as_bytes().to_vec()).collect(),
        ),
        AttributeValue::Ns(set) => write_sorted(
            hasher,
            b"NS",
            set.iter().map(|s| s.as_bytes().to_vec()).collect(),
        ),
        AttributeValue::Bs(set) => write_sorted(
            hasher,
            b"BS",
            set.iter().map(|b| b.as_ref().to_vec()).collect(),
        ),
        // A type newer than this SDK: its debug text is all there is to go on.
        other => write_text(hasher, &format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn equal_content_has_one_digest_and_any_change_another() {
        let s = |v: &str| AttributeValue::S(v.into());
        let a = item(&[
            ("pk", s("a")),
            ("tags", AttributeValue::Ss(vec!["x".into(), "y".into()])),
            (
                "m",
                AttributeValue::M(item(&[("b", s("2")), ("a", s("1"))])),
            ),
        ]);
        let reordered = item(&[
            (
                "m",
                AttributeValue::M(item(&[("a", s("1")), ("b", s("2"))])),
            ),
            ("tags", AttributeValue::Ss(vec!["y".into(), "x".into()])),
            ("pk", s("a")),
        ]);
        assert_eq!(digest(&a), digest(&reordered));
        assert_eq!(digest(&a).len(), 64);
        let mut changed = a.clone();
        changed.insert("pk".into(), s("b"));
        assert_ne!(digest(&a), digest(&changed));
        // A string and a number with the same text differ; so do "ab"+"c" and "a"+"bc".
        assert_ne!(
            digest(&item(&[("v", s("1"))])),
            digest(&item(&[("v", AttributeValue::N("1".into()))]))
        );
        assert_ne!(
            digest(&item(&[("ab", s("c"))])),
            digest(&item(&[("a", s("bc"))]))
        );
    }
}
