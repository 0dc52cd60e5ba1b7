//! Label selectors: does a set of labels satisfy `matchLabels` and `matchExpressions`?
//!
//! Pure matching only. Parsing and checking selectors (operators, values) is
//! `validate`'s job; deciding what a selector means inside a policy is `resolve`'s.

use crate::model::{LabelSelector, Labels, Operator, Requirement};

impl LabelSelector {
    /// The empty selector `{}`, which selects everything.
    pub fn everything() -> Self {
        LabelSelector::default()
    }

    /// True for `{}`.
    pub fn is_everything(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Whether these labels satisfy every `matchLabels` pair and every expression.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }
}

impl Requirement {
    /// Kubernetes' semantics: `NotIn` and `DoesNotExist` hold when the key is absent.
    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match &self.operator {
            Operator::In(values) => value.is_some_and(|v| values.contains(v)),
            Operator::NotIn(values) => value.is_none_or(|v| !values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, operator: Operator) -> LabelSelector {
        LabelSelector {
            match_labels: Default::default(),
            match_expressions: vec![Requirement {
                key: key.into(),
                operator,
            }],
        }
    }

    fn set(values: &[&str]) -> BTreeSet<String> {
        values.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn empty_selector_matches_everything() {
        assert!(LabelSelector::everything().matches(&labels(&[])));
        assert!(LabelSelector::everything().matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn match_labels_needs_every_pair() {
        let sel = LabelSelector {
            match_labels: labels(&[("app", "api"), ("tier", "be")]),
            match_expressions: vec![],
        };
        assert!(sel.matches(&labels(&[("app", "api"), ("tier", "be"), ("x", "y")])));
        assert!(!sel.matches(&labels(&[("app", "api")])));
        assert!(!sel.matches(&labels(&[("app", "api"), ("tier", "fe")])));
    }

    #[test]
    fn in_needs_key_with_listed_value() {
        let sel = expr("env", Operator::In(set(&["prod", "stage"])));
        assert!(sel.matches(&labels(&[("env", "prod")])));
        assert!(!sel.matches(&labels(&[("env", "dev")])));
        assert!(!sel.matches(&labels(&[])));
    }

    #[test]
    fn not_in_holds_when_key_is_absent() {
        let sel = expr("env", Operator::NotIn(set(&["prod"])));
        assert!(sel.matches(&labels(&[])));
        assert!(sel.matches(&labels(&[("env", "dev")])));
        assert!(!sel.matches(&labels(&[("env", "prod")])));
    }

    #[test]
    fn exists_and_does_not_exist_ignore_values() {
        assert!(expr("k", Operator::Exists).matches(&labels(&[("k", "")])));
        assert!(!expr("k", Operator::Exists).matches(&labels(&[("j", "v")])));
        assert!(expr("k", Operator::DoesNotExist).matches(&labels(&[("j", "v")])));
        assert!(!expr("k", Operator::DoesNotExist).matches(&labels(&[("k", "v")])));
    }

    #[test]
    fn labels_and_expressions_are_anded() {
        let mut sel = expr("env", Operator::NotIn(set(&["prod"])));
        sel.match_labels = labels(&[("app", "db")]);
        assert!(sel.matches(&labels(&[("app", "db"), ("env", "dev")])));
        assert!(!sel.matches(&labels(&[("app", "db"), ("env", "prod")])));
        assert!(!sel.matches(&labels(&[("app", "web")])));
    }
}
