//! Labels (of objects, and `matchLabels`) and label selectors.

use crate::diag::quote;
use std::collections::BTreeSet;

use super::decode::{self, index, join, Ctx};
use super::names;
use crate::load::{Node, Value};
use crate::model::{LabelSelector, Labels, Operator, Requirement};

const OPERATORS: &str = "In, NotIn, Exists, DoesNotExist";

/// The field path of a map entry: `labels.app`, or `labels["app.kubernetes.io/name"]`
/// when the key has characters that would make the path ambiguous.
pub(super) fn key_path(parent: &str, key: &str) -> String {
    // A long key is quoted, which cuts it: a path must not repeat a 1 MB key whole.
    if key.len() <= crate::diag::QUOTE_CHARS
        && key.starts_with(|c: char| c.is_ascii_alphanumeric())
        && key
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    {
        join(parent, key)
    } else {
        format!("{parent}[{}]", quote(key))
    }
}

/// A string → string map of labels, every key and value checked. Missing or null is
/// empty; bad entries are reported and left out.
pub(super) fn labels(ctx: &mut Ctx<'_>, node: Option<&Node>, path: &str) -> Labels {
    // Collected, then sorted once: inserting one by one into the sorted `Labels` is
    // quadratic, and a document may hold millions of keys in one mapping.
    let mut out = Vec::new();
    let Some(node) = node else {
        return Labels::new();
    };
    let Some(m) = decode::map(ctx, node, path) else {
        return Labels::new();
    };
    for (key, key_node, value_node) in m.entries() {
        // Made only for an error: every label of every object passes here.
        let field = || key_path(path, key);
        let key_ok = match names::label_key(key) {
            Ok(()) => true,
            Err(why) => {
                ctx.error(key_node, &field(), why);
                false
            }
        };
        // A label value is a string; `null` would be dropped by Kubernetes' decoder,
        // which is a surprise worth an error rather than a silent empty label.
        let value = match &value_node.value {
            Value::Str(s) => s.as_str(),
            _ => {
                decode::type_error(ctx, value_node, &field(), "a string");
                continue;
            }
        };
        if let Err(why) = names::label_value(value) {
            ctx.error(value_node, &field(), why);
            continue;
        }
        if key_ok {
            out.push((key.to_string(), value.to_string()));
        }
    }
    out.into_iter().collect()
}

/// A label selector (`matchLabels`, `matchExpressions`), decoded strictly.
pub(super) fn selector(ctx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<LabelSelector> {
    let m = decode::map(ctx, node, path)?;
    m.strict(ctx, &["matchLabels", "matchExpressions"]);
    let match_labels = labels(ctx, m.get("matchLabels"), &m.field("matchLabels"));
    let exprs_path = m.field("matchExpressions");
    let mut match_expressions = Vec::new();
    for (i, item) in decode::opt_seq(ctx, m.get("matchExpressions"), &exprs_path)
        .iter()
        .enumerate()
    {
        if let Some(r) = requirement(ctx, item, &index(&exprs_path, i)) {
            match_expressions.push(r);
        }
    }
    Some(LabelSelector {
        match_labels,
        match_expressions,
    })
}

fn requirement(ctx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<Requirement> {
    let m = decode::map(ctx, node, path)?;
    m.strict(ctx, &["key", "operator", "values"]);
    let key = m
        .required(ctx, "key", "")
        .and_then(|n| decode::string(ctx, n, &m.field("key")).map(|k| (k, n)));
    if let Some((k, n)) = key {
        if let Err(why) = names::label_key(k) {
            ctx.error(n, &m.field("key"), why);
        }
    }
    let op = m
        .required(ctx, "operator", &format!("one of {OPERATORS}"))
        .and_then(|n| decode::string(ctx, n, &m.field("operator")).map(|o| (o, n)));

    let values_path = m.field("values");
    let values_node = m.get("values");
    let mut values = BTreeSet::new();
    for (i, v) in decode::opt_seq(ctx, values_node, &values_path)
        .iter()
        .enumerate()
    {
        let field = index(&values_path, i);
        if let Some(s) = decode::string(ctx, v, &field) {
            match names::label_value(s) {
                Ok(()) => {
                    values.insert(s.to_string());
                }
                Err(why) => ctx.error(v, &field, why),
            }
        }
    }
    let count = match values_node.map(|n| &n.value) {
        Some(crate::load::Value::Seq(items)) => items.len(),
        _ => 0,
    };

    let (op, op_node) = op?;
    let operator = match op {
        "In" | "NotIn" => {
            if count == 0 {
                let at = values_node.unwrap_or(m.node);
                ctx.error(
                    at,
                    &values_path,
                    format!("operator {op} needs at least one value in \"values\""),
                );
            }
            if op == "In" {
                Operator::In(values)
            } else {
                Operator::NotIn(values)
            }
        }
        "Exists" | "DoesNotExist" => {
            if count > 0 {
                ctx.error(
                    values_node.unwrap_or(m.node),
                    &values_path,
                    format!("operator {op} takes no values; remove \"values\""),
                );
            }
            if op == "Exists" {
                Operator::Exists
            } else {
                Operator::DoesNotExist
            }
        }
        other => {
            ctx.error(
                op_node,
                &m.field("operator"),
                format!(
                    "unknown operator {}; expected one of {OPERATORS} (case-sensitive)",
                    quote(other)
                ),
            );
            return None;
        }
    };
    let (key, _) = key?;
    Some(Requirement {
        key: key.to_string(),
        operator,
    })
}
