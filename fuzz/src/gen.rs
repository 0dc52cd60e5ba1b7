//! Structured inputs for the `compile` target: small namespaces, endpoints and
//! policies drawn from tiny vocabularies (so selectors, named ports and addresses
//! collide often), written as JSON, which is YAML. Addresses stay in the test ranges
//! 198.18.0.0/15 and 2001:db8::/32, plus the any-address prefixes.

use arbitrary::Arbitrary;
use serde_json::{json, Map, Value};

const NAMESPACES: [&str; 3] = ["ns-a", "ns-b", "ns-c"];
const NAMES: [&str; 4] = ["e0", "e1", "e2", "e3"];
const KEYS: [&str; 4] = ["app", "tier", "kubernetes.io/metadata.name", "team"];
const VALUES: [&str; 6] = ["a", "b", "c", "ns-a", "ns-b", ""];
const PORT_NAMES: [&str; 3] = ["http", "metrics", "dns"];
const PROTOCOLS: [&str; 4] = ["TCP", "UDP", "SCTP", "ICMP"];
const OPERATORS: [&str; 5] = ["In", "NotIn", "Exists", "DoesNotExist", "Equal"];

fn pick<'a>(list: &[&'a str], i: u8) -> &'a str {
    list[usize::from(i) % list.len()]
}

fn few<T>(v: &[T], max: usize) -> &[T] {
    &v[..v.len().min(max)]
}

/// A whole case: what `compile` loads, compiles for every endpoint and hands to nft.
#[derive(Arbitrary, Debug)]
pub struct Case {
    namespaces: Vec<Ns>,
    endpoints: Vec<Ep>,
    policies: Vec<Pol>,
    /// Reject rather than drop what is denied.
    pub reject: bool,
}

#[derive(Arbitrary, Debug)]
struct Ns {
    name: u8,
    labels: Vec<(u8, u8)>,
}

#[derive(Arbitrary, Debug)]
struct Ep {
    ns: u8,
    name: u8,
    /// A Pod rather than netpol's native Endpoint.
    pod: bool,
    labels: Vec<(u8, u8)>,
    ips: Vec<Ip>,
    ports: Vec<(u8, u16, Option<u8>)>,
}

#[derive(Arbitrary, Debug)]
enum Ip {
    V4(bool, u8, u8),
    V6(u16, u16),
}

impl Ip {
    fn text(&self) -> String {
        match self {
            Ip::V4(high, a, b) => format!("198.{}.{a}.{b}", if *high { 19 } else { 18 }),
            Ip::V6(a, b) => format!("2001:db8:{a:x}::{b:x}"),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Sel {
    labels: Vec<(u8, u8)>,
    exprs: Vec<(u8, u8, Vec<u8>)>,
}

#[derive(Arbitrary, Debug)]
struct Cidr {
    ip: Option<Ip>,
    prefix: u8,
}

#[derive(Arbitrary, Debug)]
enum Peer {
    Pods(Sel),
    Namespaces(Sel),
    Both(Sel, Sel),
    Block(Cidr, Vec<Cidr>),
}

#[derive(Arbitrary, Debug)]
enum PortValue {
    Number(u16),
    Name(u8),
}

#[derive(Arbitrary, Debug)]
struct Port {
    port: Option<PortValue>,
    end: Option<u16>,
    protocol: Option<u8>,
}

#[derive(Arbitrary, Debug)]
struct RuleG {
    /// None: the key is left out (all peers); Some(empty): `[]`.
    peers: Option<Vec<Peer>>,
    ports: Option<Vec<Port>>,
}

#[derive(Arbitrary, Debug)]
struct Pol {
    ns: u8,
    name: u8,
    selector: Sel,
    /// Bit 0: Ingress, bit 1: Egress, bit 2: write `policyTypes` at all.
    types: u8,
    ingress: Option<Vec<RuleG>>,
    egress: Option<Vec<RuleG>>,
}

fn labels(pairs: &[(u8, u8)]) -> Value {
    let mut m = Map::new();
    for (k, v) in few(pairs, 3) {
        m.insert(pick(&KEYS, *k).into(), pick(&VALUES, *v).into());
    }
    Value::Object(m)
}

fn selector(s: &Sel) -> Value {
    let mut m = Map::new();
    if !s.labels.is_empty() {
        m.insert("matchLabels".into(), labels(&s.labels));
    }
    if !s.exprs.is_empty() {
        let exprs: Vec<Value> = few(&s.exprs, 2)
            .iter()
            .map(|(k, op, values)| {
                let op = pick(&OPERATORS, *op);
                let mut e = json!({"key": pick(&KEYS, *k), "operator": op});
                if matches!(op, "In" | "NotIn") || values.len() > 2 {
                    let vs: Vec<&str> = few(values, 3).iter().map(|v| pick(&VALUES, *v)).collect();
                    e["values"] = json!(vs);
                }
                e
            })
            .collect();
        m.insert("matchExpressions".into(), Value::Array(exprs));
    }
    Value::Object(m)
}

fn cidr(c: &Cidr) -> String {
    match &c.ip {
        None if c.prefix & 1 == 0 => "0.0.0.0/0".into(),
        None => "::/0".into(),
        Some(ip @ Ip::V4(..)) => format!("{}/{}", ip.text(), c.prefix % 34),
        Some(ip @ Ip::V6(..)) => format!("{}/{}", ip.text(), c.prefix % 130),
    }
}

fn rule(r: &RuleG, dir: &str) -> Value {
    let mut m = Map::new();
    if let Some(peers) = &r.peers {
        let peers: Vec<Value> = few(peers, 3)
            .iter()
            .map(|p| match p {
                Peer::Pods(s) => json!({"podSelector": selector(s)}),
                Peer::Namespaces(s) => json!({"namespaceSelector": selector(s)}),
                Peer::Both(p, n) => {
                    json!({"podSelector": selector(p), "namespaceSelector": selector(n)})
                }
                Peer::Block(c, except) => {
                    let mut b = json!({"cidr": cidr(c)});
                    if !except.is_empty() {
                        let e: Vec<String> = few(except, 2).iter().map(cidr).collect();
                        b["except"] = json!(e);
                    }
                    json!({ "ipBlock": b })
                }
            })
            .collect();
        m.insert(
            if dir == "ingress" { "from" } else { "to" }.into(),
            Value::Array(peers),
        );
    }
    if let Some(ports) = &r.ports {
        let ports: Vec<Value> = few(ports, 3)
            .iter()
            .map(|p| {
                let mut v = Map::new();
                match &p.port {
                    Some(PortValue::Number(n)) => {
                        v.insert("port".into(), json!(n));
                    }
                    Some(PortValue::Name(i)) => {
                        v.insert("port".into(), json!(pick(&PORT_NAMES, *i)));
                    }
                    None => {}
                }
                if let Some(end) = p.end {
                    v.insert("endPort".into(), json!(end));
                }
                if let Some(proto) = p.protocol {
                    v.insert("protocol".into(), json!(pick(&PROTOCOLS, proto)));
                }
                Value::Object(v)
            })
            .collect();
        m.insert("ports".into(), Value::Array(ports));
    }
    Value::Object(m)
}

impl Case {
    /// The inventory file's text.
    pub fn inventory(&self) -> String {
        let mut items: Vec<Value> = few(&self.namespaces, 3)
            .iter()
            .map(|n| {
                json!({"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": pick(&NAMESPACES, n.name), "labels": labels(&n.labels)}})
            })
            .collect();
        for e in few(&self.endpoints, 4) {
            let meta = json!({"namespace": pick(&NAMESPACES, e.ns), "name": pick(&NAMES, e.name),
                              "labels": labels(&e.labels)});
            let ips: Vec<String> = few(&e.ips, 3).iter().map(Ip::text).collect();
            let ports: Vec<Value> = few(&e.ports, 3)
                .iter()
                .map(|(name, port, proto)| {
                    let mut p = json!({"name": pick(&PORT_NAMES, *name)});
                    p[if e.pod { "containerPort" } else { "port" }] = json!(port);
                    if let Some(proto) = proto {
                        p["protocol"] = json!(pick(&PROTOCOLS, *proto));
                    }
                    p
                })
                .collect();
            items.push(if e.pod {
                let pod_ips: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip})).collect();
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                       "spec": {"containers": [{"name": "c", "ports": ports}]},
                       "status": {"phase": "Running", "podIPs": pod_ips}})
            } else {
                json!({"apiVersion": "netpol/v1", "kind": "Endpoint", "metadata": meta,
                       "ips": ips, "ports": ports})
            });
        }
        json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()
    }

    /// The policies file's text.
    pub fn policies(&self) -> String {
        let items: Vec<Value> = few(&self.policies, 4)
            .iter()
            .map(|p| {
                let mut spec = Map::new();
                spec.insert("podSelector".into(), selector(&p.selector));
                if p.types & 4 != 0 {
                    let mut types = Vec::new();
                    if p.types & 1 != 0 {
                        types.push("Ingress");
                    }
                    if p.types & 2 != 0 {
                        types.push("Egress");
                    }
                    spec.insert("policyTypes".into(), json!(types));
                }
                for (dir, rules) in [("ingress", &p.ingress), ("egress", &p.egress)] {
                    if let Some(rules) = rules {
                        let rules: Vec<Value> = few(rules, 3).iter().map(|r| rule(r, dir)).collect();
                        spec.insert(dir.into(), Value::Array(rules));
                    }
                }
                json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                       "metadata": {"namespace": pick(&NAMESPACES, p.ns), "name": pick(&NAMES, p.name)},
                       "spec": spec})
            })
            .collect();
        json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()
    }
}
