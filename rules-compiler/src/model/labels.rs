//! [`Labels`]: a small sorted map of label keys to values, in one allocation.
//!
//! A `BTreeMap<String, String>` costs a 540-byte node even for one label; 50,000
//! endpoints of four labels spent about 30 MB on node space alone, in every model
//! netpold holds. The API is the map's, for the handful of calls the compiler makes.

use std::fmt;

use serde::ser::{Serialize, SerializeMap, Serializer};

/// Labels of a namespace or an endpoint (and a selector's `matchLabels`): unique keys,
/// sorted, so output is deterministic and lookups are a binary search.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    /// No labels.
    pub fn new() -> Self {
        Labels(Vec::new())
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&String> {
        self.find(key).ok().map(|i| &self.0[i].1)
    }

    /// Whether `key` is set.
    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// Sets `key` to `value`; the value it replaces, if any (as a map's `insert`).
    /// Linear in the number of labels: build many with `collect`, which sorts once.
    pub fn insert(&mut self, key: String, value: String) -> Option<String> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
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
    pub fn iter(
        &self,
    ) -> impl DoubleEndedIterator<Item = (&String, &String)> + ExactSizeIterator + Clone {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// The keys, sorted.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &String> + ExactSizeIterator + Clone {
        self.0.iter().map(|(k, _)| k)
    }

    /// The values, by key.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &String> + ExactSizeIterator + Clone {
        self.0.iter().map(|(_, v)| v)
    }
}

impl FromIterator<(String, String)> for Labels {
    /// As a map collects: a later pair for a key replaces an earlier one.
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        let mut pairs: Vec<(String, String)> = iter.into_iter().collect();
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
        pairs.shrink_to_fit();
        Labels(pairs)
    }
}

impl<const N: usize> From<[(String, String); N]> for Labels {
    fn from(pairs: [(String, String); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl Extend<(String, String)> for Labels {
    /// As a map extends: a pair replaces an earlier one of its key. Sorts once.
    fn extend<I: IntoIterator<Item = (String, String)>>(&mut self, iter: I) {
        let mut all = std::mem::take(&mut self.0);
        all.extend(iter);
        *self = all.into_iter().collect();
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = (&'a String, &'a String);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, String)>,
        fn(&'a (String, String)) -> (&'a String, &'a String),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl IntoIterator for Labels {
    type Item = (String, String);
    type IntoIter = std::vec::IntoIter<(String, String)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl std::ops::Index<&str> for Labels {
    type Output = String;

    /// The value of `key`; panics when it is not set (as a map's index does).
    fn index(&self, key: &str) -> &String {
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
        assert!(ours.iter().eq(map.iter()));
        for key in ["a", "b", "c", "d", ""] {
            assert_eq!(ours.get(key), map.get(key), "{key}");
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
        assert!(ours.iter().eq(map.iter()));
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
        assert_eq!(ours.get("k000007").map(String::as_str), Some("7"));
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
