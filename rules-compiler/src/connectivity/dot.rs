//! A [`Graph`] as Graphviz `dot` text: endpoints in one cluster per namespace, ipBlock
//! peers as ellipses of their own, one edge per allowed pair (and family tag) labelled
//! with its ports; in a diff's graph kept flows are grey, added ones green and removed
//! ones red and dashed. Lays out; decides nothing. Deterministic, so a committed
//! picture can be checked to be current.

use std::fmt::Write as _;

use super::text::tagged_label;
use super::{Graph, Node};

/// `"…"` with `"` and `\` escaped.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

const ADDED: &str = "#1a7f37";
const REMOVED: &str = "#cf222e";
const KEPT_IN_DIFF: &str = "#8c959f";

impl Graph {
    /// The graph as `dot` text (`dot -Tsvg` draws it).
    pub fn render_dot(&self) -> String {
        let mut out = String::from(
            "digraph netpol {\n  graph [rankdir=LR, fontname=\"Helvetica\", fontsize=12, \
             nodesep=0.3, ranksep=1.2];\n  node [shape=box, style=rounded, \
             fontname=\"Helvetica\", fontsize=11];\n  edge [fontname=\"Helvetica\", \
             fontsize=9];\n",
        );
        let mut namespace: Option<&str> = None;
        for node in &self.nodes {
            match node {
                Node::Endpoint(name) => {
                    if namespace != Some(name.namespace.as_str()) {
                        if namespace.is_some() {
                            out.push_str("  }\n");
                        }
                        let _ = writeln!(
                            out,
                            "  subgraph {} {{\n    label={};\n    style=\"rounded,dashed\";",
                            quoted(&format!("cluster_{}", name.namespace)),
                            quoted(&name.namespace)
                        );
                        namespace = Some(name.namespace.as_str());
                    }
                    let _ = writeln!(
                        out,
                        "    {} [label={}];",
                        quoted(&node.to_string()),
                        quoted(&name.name)
                    );
                }
                Node::Block(net) => {
                    if namespace.take().is_some() {
                        out.push_str("  }\n");
                    }
                    let _ = writeln!(
                        out,
                        "  {} [shape=ellipse, style=dashed, label={}];",
                        quoted(&node.to_string()),
                        quoted(&format!("ipBlock {net}"))
                    );
                }
            }
        }
        if namespace.is_some() {
            out.push_str("  }\n");
        }
        for p in &self.pairs {
            let (from, to) = (quoted(&p.from.to_string()), quoted(&p.to.to_string()));
            let kinds = if self.is_diff {
                vec![
                    (p.kept(), "", KEPT_IN_DIFF, "solid"),
                    (p.added(), "+ ", ADDED, "bold"),
                    (p.removed(), "- ", REMOVED, "dashed"),
                ]
            } else {
                vec![(p.kept(), "", "black", "solid")]
            };
            for (sets, sign, colour, style) in kinds {
                for (tag, set) in sets {
                    let label = format!("{sign}{}", tagged_label(tag, &set));
                    let _ = writeln!(
                        out,
                        "  {from} -> {to} [label={}, color={}, fontcolor={}, style={style}];",
                        quoted(&label),
                        quoted(colour),
                        quoted(colour)
                    );
                }
            }
        }
        out.push_str("}\n");
        out
    }
}
