//! [`Labels`]: a small sorted map of label keys to values, in one shared allocation.
//!
//! A `BTreeMap<String, String>` costs a 540-byte node even for one label; 50,000
//! endpoints of four labels spent about 30 MB on node space alone, in every model
//! netpold holds. Keys and values of up to 24 bytes are kept inline, and the pairs are
//! shared, not copied, by a clone: netpold's decode cache and the model it lends to
//! hold one copy. The API is the map's (with `&str` for `&String`), for the handful of
//! calls the compiler makes.

use std::fmt;
use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};

/// A label key or value: up to 24 bytes kept inline, without an allocation of its own
/// (nearly every key and value), so a model's labels cost little more than their pairs
/// and clone without allocating.
type Text = compact_str::CompactString;

/// Labels of a namespace or an endpoint (and a selector's `matchLabels`): unique keys,
/// sorted, so output is deterministic and lookups are a binary search. Immutable once
/// built but for [`insert`](Labels::insert), which copies: a clone costs a reference
/// count.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Arc<[(Text, Text)]>);

impl Labels {
    /// No labels.
    pub fn new() -> Self {
        Labels::default()
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.find(key).ok().map(|i| self.0[i].1.as_str())
    }

    /// Whether `key` is set.
    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// Sets `key` to `value`; the value it replaces, if any (as a map's `insert`).
    /// Linear in the number of labels: build many with `collect`, which sorts once.
    pub fn insert(&mut self, key: String, value: String) -> Option<String> {
        let value = Text::from(value);
        let mut pairs = self.0.to_vec();
        let old = match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut pairs[i].1, value).into_string()),
            Err(i) => {
                pairs.insert(i, (Text::from(key), value));
                None
            }
        };
        self.0 = pairs.into();
        old
    }

    /// How many labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// (key, value) pairs, by key.
    pub fn iter(&self) -> Iter<'_> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The keys, sorted.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator + Clone {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    /// The values, by key.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator + Clone {
        self.0.iter().map(|(_, v)| v.as_str())
    }
}

/// The (key, value) pairs of [`Labels`], by key.
pub type Iter<'a> =
    std::iter::Map<std::slice::Iter<'a, (Text, Text)>, fn(&'a (Text, Text)) -> (&'a str, &'a str)>;

impl<K: Into<Text>, V: Into<Text>> FromIterator<(K, V)> for Labels {
    /// As a map collects: a later pair for a key replaces an earlier one.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut pairs: Vec<(Text, Text)> = iter
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        // Stable, so pairs of one key stay in input order; `dedup_by` keeps the first of
        // a run, so the later pair is swapped into its place before it is dropped.
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                std::mem::swap(later, kept);
            }
            same
        });
        Labels(pairs.into())
    }
}

impl<K: Into<Text>, V: Into<Text>, const N: usize> From<[(K, V); N]> for Labels {
    fn from(pairs: [(K, V); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl<K: Into<Text>, V: Into<Text>> Extend<(K, V)> for Labels {
    /// As a map extends: a pair replaces an earlier one of its key. Sorts once.
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        let mut all = self.0.to_vec();
        all.extend(iter.into_iter().map(|(k, v)| (k.into(), v.into())));
        *self = all.into_iter().collect();
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl IntoIterator for Labels {
    type Item = (String, String);
    type IntoIter = std::vec::IntoIter<(String, String)>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }
}

impl std::ops::Index<&str> for Labels {
    type Output = str;

    /// The value of `key`; panics when it is not set (as a map's index does).
    fn index(&self, key: &str) -> &str {
        self.get(key).expect("no such label")
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (k, v) in self {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn behaves_as_a_btreemap_would() {
        let input = pairs(&[("b", "1"), ("a", "2"), ("b", "3"), ("c", ""), ("a", "4")]);
        let ours: Labels = input.clone().into_iter().collect();
        let map: BTreeMap<String, String> = input.into_iter().collect();
        assert_eq!(ours.len(), map.len());
        assert!(ours
            .iter()
            .eq(map.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
        for key in ["a", "b", "c", "d", ""] {
            assert_eq!(ours.get(key), map.get(key).map(String::as_str), "{key}");
            assert_eq!(ours.contains_key(key), map.contains_key(key));
        }
        assert_eq!(format!("{ours:?}"), format!("{map:?}"));
        assert_eq!(
            serde_json::to_string(&ours).unwrap(),
            serde_json::to_string(&map).unwrap()
        );
        let mut ours = ours;
        let mut map = map;
        assert_eq!(
            ours.insert("b".into(), "9".into()),
            map.insert("b".into(), "9".into())
        );
        assert_eq!(
            ours.insert("0".into(), "x".into()),
            map.insert("0".into(), "x".into())
        );
        ours.extend(pairs(&[("z", "1"), ("0", "y")]));
        map.extend(pairs(&[("z", "1"), ("0", "y")]));
        assert!(ours
            .iter()
            .eq(map.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
        assert!(ours.keys().eq(map.keys()) && ours.values().eq(map.values()));
    }

    #[test]
    fn many_labels_in_reverse_order_are_collected_and_extended() {
        // One by one into the sorted vector this is quadratic: 200,000 labels in
        // reverse order would move 10^10 pairs.
        let n = 200_000;
        let reversed = || (0..n).rev().map(|i| (format!("k{i:06}"), i.to_string()));
        let ours: Labels = reversed().collect();
        assert_eq!(ours.len(), n);
        assert!(ours.keys().zip(ours.keys().skip(1)).all(|(a, b)| a < b));
        let mut extended = Labels::new();
        extended.extend(reversed());
        assert_eq!(extended, ours);
        assert_eq!(ours.get("k000007"), Some("7"));
    }

    #[test]
    fn order_and_equality_follow_the_sorted_pairs() {
        let a: Labels = pairs(&[("x", "1"), ("a", "1")]).into_iter().collect();
        let b: Labels = pairs(&[("a", "1"), ("x", "1")]).into_iter().collect();
        assert_eq!(a, b);
        let c: Labels = pairs(&[("a", "2")]).into_iter().collect();
        assert!(a < c);
        assert!(Labels::new().is_empty());
    }
}
