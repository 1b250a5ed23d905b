//! What the app did on the network, and a Kubernetes NetworkPolicy for it.
//!
//! Input is one record per `connect`, `bind` or `listen` the tracer saw
//! ([`NetworkObservation`]; the daemon maps its own records to it). The
//! summary is for the report; the policy is a suggestion that allows the
//! observed ingress ports and egress destinations and nothing else, marked
//! as learned from one run.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::HardenError;

/// The socket call a record comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetOp {
    Connect,
    Bind,
    Listen,
}

/// A socket address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressFamily {
    Unix,
    Inet,
    Inet6,
    Netlink,
    Packet,
    /// Any other `AF_*` value.
    Other(u16),
}

impl AddressFamily {
    /// From the `sa_family` value of a `struct sockaddr`.
    pub fn from_raw(af: u16) -> Self {
        match af as i32 {
            libc::AF_UNIX => AddressFamily::Unix,
            libc::AF_INET => AddressFamily::Inet,
            libc::AF_INET6 => AddressFamily::Inet6,
            libc::AF_NETLINK => AddressFamily::Netlink,
            libc::AF_PACKET => AddressFamily::Packet,
            _ => AddressFamily::Other(af),
        }
    }

    /// The AppArmor `network` rule domain, where it has one.
    pub fn apparmor_domain(self) -> Option<&'static str> {
        match self {
            AddressFamily::Unix => Some("unix"),
            AddressFamily::Inet => Some("inet"),
            AddressFamily::Inet6 => Some("inet6"),
            AddressFamily::Netlink => Some("netlink"),
            AddressFamily::Packet => Some("packet"),
            AddressFamily::Other(_) => None,
        }
    }
}

/// One `connect`, `bind` or `listen` of a traced process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkObservation {
    pub op: NetOp,
    pub family: AddressFamily,
    /// The address connected to or bound (none for `listen`, unix sockets).
    pub ip: Option<IpAddr>,
    pub port: Option<u16>,
    /// The path (or `@abstract` name) of a unix socket.
    pub unix_path: Option<String>,
    /// Whether the call succeeded. A non-blocking `connect` fails with
    /// EINPROGRESS and still connects, so connects count either way.
    pub ok: bool,
}

/// An address the app connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Destination {
    pub ip: IpAddr,
    pub port: u16,
    /// At least one connect to it returned success.
    pub ok: bool,
}

/// The app's network use, deduplicated and sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSummary {
    /// Ports bound on a non-loopback (or wildcard) address, or listened on:
    /// what other pods may connect to.
    pub ingress_ports: BTreeSet<u16>,
    /// Ports bound only on loopback: reachable inside the pod only.
    pub loopback_ports: BTreeSet<u16>,
    /// Every IP address and port connected to (loopback included).
    pub destinations: Vec<Destination>,
    /// Destinations on port 53: the app resolved names.
    pub resolvers: BTreeSet<IpAddr>,
    /// Unix sockets connected to or bound.
    pub unix_sockets: BTreeSet<String>,
    /// Every address family the app used.
    pub families: BTreeSet<AddressFamily>,
}

impl NetworkSummary {
    /// Whether the app talked to a DNS server.
    pub fn uses_dns(&self) -> bool {
        !self.resolvers.is_empty()
    }
}

/// Folds the records into a summary.
pub fn summarize_network(records: &[NetworkObservation]) -> NetworkSummary {
    let mut s = NetworkSummary::default();
    let mut dest: BTreeMap<(IpAddr, u16), bool> = BTreeMap::new();
    for r in records {
        s.families.insert(r.family);
        if let Some(path) = &r.unix_path
            && (r.ok || r.op == NetOp::Connect)
        {
            s.unix_sockets.insert(path.clone());
        }
        let ip = r.ip.map(canonical);
        let port = r.port.filter(|&p| p != 0);
        match r.op {
            NetOp::Connect => {
                if let (Some(ip), Some(port)) = (ip, port) {
                    *dest.entry((ip, port)).or_default() |= r.ok;
                    if port == 53 {
                        s.resolvers.insert(ip);
                    }
                }
            }
            // A failed bind or listen leaves nothing listening; port 0 asks
            // the kernel for any port (a client socket).
            NetOp::Bind | NetOp::Listen if r.ok => {
                if let Some(port) = port {
                    if ip.is_some_and(|ip| ip.is_loopback()) {
                        s.loopback_ports.insert(port);
                    } else {
                        s.ingress_ports.insert(port);
                    }
                }
            }
            NetOp::Bind | NetOp::Listen => {}
        }
    }
    // A port also bound on a wildcard address is not loopback-only.
    s.loopback_ports = &s.loopback_ports - &s.ingress_ports;
    s.destinations = dest
        .into_iter()
        .map(|((ip, port), ok)| Destination { ip, port, ok })
        .collect();
    s
}

/// `::ffff:a.b.c.d` (an IPv4 peer of a dual-stack socket) is that IPv4 peer.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The annotation every generated policy carries.
pub const LEARNED_ANNOTATION: &str = "slimd.dev/learned-from";
/// Its value.
pub const LEARNED_NOTE: &str = "learned from one run of slimd; review before use";

/// A `networking.k8s.io/v1` NetworkPolicy (the fields slimd emits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicy {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: NetworkPolicySpec,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    pub pod_selector: LabelSelector,
    pub policy_types: Vec<String>,
    /// Empty: no ingress at all.
    pub ingress: Vec<PolicyRule>,
    /// Empty: no egress at all.
    pub egress: Vec<PolicyRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
}

/// An ingress (`from`) or egress (`to`) rule; no peers means any peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<PolicyPeer>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<PolicyPeer>,
    pub ports: Vec<PolicyPort>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyPeer {
    pub ip_block: IpBlock,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpBlock {
    pub cidr: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyPort {
    pub protocol: String,
    pub port: u16,
}

fn tcp(port: u16) -> PolicyPort {
    PolicyPort {
        protocol: "TCP".into(),
        port,
    }
}

/// A NetworkPolicy allowing what the summary shows and nothing else:
/// - ingress from anywhere to the ingress ports (TCP);
/// - egress to each non-loopback destination as a /32 or /128 `ipBlock`
///   with its ports (TCP: the records carry no socket type);
/// - egress to port 53, UDP and TCP, to any address, when the app used a
///   resolver (in a cluster that is the DNS service's pods, whose addresses
///   a policy cannot know in advance).
///
/// `name` becomes `<name>-learned` (made a valid object name); the pods are
/// selected by `pod_labels`, or by `app: <name>` when it is empty.
pub fn network_policy(
    name: &str,
    pod_labels: &BTreeMap<String, String>,
    summary: &NetworkSummary,
) -> NetworkPolicy {
    let base = object_name(name);
    let match_labels = if pod_labels.is_empty() {
        [("app".to_string(), base.clone())].into()
    } else {
        pod_labels.clone()
    };
    let ingress = if summary.ingress_ports.is_empty() {
        Vec::new()
    } else {
        vec![PolicyRule {
            from: Vec::new(),
            to: Vec::new(),
            ports: summary.ingress_ports.iter().map(|&p| tcp(p)).collect(),
        }]
    };
    let mut by_ip: BTreeMap<IpAddr, BTreeSet<u16>> = BTreeMap::new();
    for d in &summary.destinations {
        if d.ip.is_loopback() || d.ip.is_unspecified() || d.port == 53 {
            continue;
        }
        by_ip.entry(d.ip).or_default().insert(d.port);
    }
    let mut egress: Vec<PolicyRule> = by_ip
        .into_iter()
        .map(|(ip, ports)| PolicyRule {
            from: Vec::new(),
            to: vec![PolicyPeer {
                ip_block: IpBlock {
                    cidr: match ip {
                        IpAddr::V4(v4) => format!("{v4}/32"),
                        IpAddr::V6(v6) => format!("{v6}/128"),
                    },
                },
            }],
            ports: ports.into_iter().map(tcp).collect(),
        })
        .collect();
    if summary.uses_dns() {
        egress.push(PolicyRule {
            from: Vec::new(),
            to: Vec::new(),
            ports: vec![
                PolicyPort {
                    protocol: "UDP".into(),
                    port: 53,
                },
                tcp(53),
            ],
        });
    }
    NetworkPolicy {
        api_version: "networking.k8s.io/v1".into(),
        kind: "NetworkPolicy".into(),
        metadata: ObjectMeta {
            name: format!("{base}-learned"),
            labels: [(
                "app.kubernetes.io/managed-by".to_string(),
                "slimd".to_string(),
            )]
            .into(),
            annotations: [(LEARNED_ANNOTATION.to_string(), LEARNED_NOTE.to_string())].into(),
        },
        spec: NetworkPolicySpec {
            pod_selector: LabelSelector { match_labels },
            policy_types: vec!["Ingress".into(), "Egress".into()],
            ingress,
            egress,
        },
    }
}

/// A DNS-1123 label from an image name: `registry/app:1.2` -> `app-1-2`.
fn object_name(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    let mut out = String::new();
    for c in last.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    // Room for "-learned" within the 63-character label limit.
    out.truncate(55);
    let out = out.trim_matches('-');
    if out.is_empty() {
        "app".into()
    } else {
        out.into()
    }
}

impl NetworkPolicy {
    /// YAML for `kubectl apply -f`, headed by a comment saying where it came
    /// from; the same input gives the same bytes.
    pub fn to_yaml(&self) -> Result<String, HardenError> {
        let body = serde_norway::to_string(self)?;
        Ok(format!(
            "# NetworkPolicy suggestion {LEARNED_NOTE}.\n\
             # Ingress: the ports the app listened on. Egress: the addresses it\n\
             # connected to (TCP: the trace does not tell TCP from UDP), and DNS\n\
             # when it used a resolver. Paths the run did not exercise are missing.\n\
             {body}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(op: NetOp, ip: &str, port: u16, ok: bool) -> NetworkObservation {
        let ip: IpAddr = ip.parse().unwrap();
        NetworkObservation {
            op,
            family: if ip.is_ipv4() {
                AddressFamily::Inet
            } else {
                AddressFamily::Inet6
            },
            ip: Some(ip),
            port: Some(port),
            unix_path: None,
            ok,
        }
    }

    fn sample() -> Vec<NetworkObservation> {
        vec![
            rec(NetOp::Bind, "0.0.0.0", 8080, true),
            rec(NetOp::Listen, "0.0.0.0", 8080, true),
            rec(NetOp::Bind, "127.0.0.1", 9090, true),
            rec(NetOp::Bind, "::", 8443, true),
            rec(NetOp::Bind, "0.0.0.0", 7000, false),
            rec(NetOp::Bind, "0.0.0.0", 0, true),
            rec(NetOp::Connect, "10.0.0.5", 5432, true),
            rec(NetOp::Connect, "10.0.0.5", 6379, false),
            rec(NetOp::Connect, "::ffff:10.0.0.5", 5432, true),
            rec(NetOp::Connect, "2001:db8::1", 443, false),
            rec(NetOp::Connect, "127.0.0.11", 53, true),
            rec(NetOp::Connect, "127.0.0.1", 9090, true),
            NetworkObservation {
                op: NetOp::Connect,
                family: AddressFamily::Unix,
                ip: None,
                port: None,
                unix_path: Some("/run/app.sock".into()),
                ok: true,
            },
        ]
    }

    #[test]
    fn summary_sorts_ports_and_destinations() {
        let s = summarize_network(&sample());
        assert_eq!(s.ingress_ports, [8080, 8443].into());
        assert_eq!(s.loopback_ports, [9090].into());
        let d: Vec<String> = s
            .destinations
            .iter()
            .map(|d| format!("{}:{}:{}", d.ip, d.port, d.ok))
            .collect();
        assert_eq!(
            d,
            [
                "10.0.0.5:5432:true",
                "10.0.0.5:6379:false",
                "127.0.0.1:9090:true",
                "127.0.0.11:53:true",
                "2001:db8::1:443:false",
            ]
        );
        assert!(s.uses_dns());
        assert_eq!(s.unix_sockets, ["/run/app.sock".to_string()].into());
        assert_eq!(
            s.families,
            [
                AddressFamily::Unix,
                AddressFamily::Inet,
                AddressFamily::Inet6
            ]
            .into()
        );
    }

    #[test]
    fn policy_yaml_parses_back_with_the_observed_rules() {
        let s = summarize_network(&sample());
        let p = network_policy("registry.local/Shop_API:1.2", &BTreeMap::new(), &s);
        let yaml = p.to_yaml().unwrap();
        assert!(yaml.starts_with("# NetworkPolicy suggestion learned from one run of slimd"));
        assert_eq!(yaml, p.to_yaml().unwrap(), "deterministic");

        let v: serde_norway::Value = serde_norway::from_str(&yaml).unwrap();
        assert_eq!(v["apiVersion"].as_str(), Some("networking.k8s.io/v1"));
        assert_eq!(v["kind"].as_str(), Some("NetworkPolicy"));
        assert_eq!(v["metadata"]["name"].as_str(), Some("shop-api-1-2-learned"));
        assert_eq!(
            v["metadata"]["annotations"][LEARNED_ANNOTATION].as_str(),
            Some(LEARNED_NOTE)
        );
        let spec = &v["spec"];
        assert_eq!(
            spec["podSelector"]["matchLabels"]["app"].as_str(),
            Some("shop-api-1-2")
        );
        assert_eq!(spec["policyTypes"][0].as_str(), Some("Ingress"));
        assert_eq!(spec["policyTypes"][1].as_str(), Some("Egress"));

        let ingress = spec["ingress"].as_sequence().unwrap();
        assert_eq!(ingress.len(), 1);
        assert!(ingress[0].get("from").is_none(), "from anywhere");
        let ports: Vec<(u64, &str)> = ingress[0]["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|p| (p["port"].as_u64().unwrap(), p["protocol"].as_str().unwrap()))
            .collect();
        assert_eq!(ports, [(8080, "TCP"), (8443, "TCP")]);

        let egress = spec["egress"].as_sequence().unwrap();
        assert_eq!(egress.len(), 3, "{yaml}");
        assert_eq!(
            egress[0]["to"][0]["ipBlock"]["cidr"].as_str(),
            Some("10.0.0.5/32")
        );
        assert_eq!(egress[0]["ports"][0]["port"].as_u64(), Some(5432));
        assert_eq!(egress[0]["ports"][1]["port"].as_u64(), Some(6379));
        assert_eq!(
            egress[1]["to"][0]["ipBlock"]["cidr"].as_str(),
            Some("2001:db8::1/128")
        );
        assert_eq!(egress[1]["ports"][0]["port"].as_u64(), Some(443));
        // DNS: any address, port 53 over UDP and TCP.
        assert!(egress[2].get("to").is_none());
        assert_eq!(egress[2]["ports"][0]["protocol"].as_str(), Some("UDP"));
        assert_eq!(egress[2]["ports"][1]["protocol"].as_str(), Some("TCP"));
        assert_eq!(egress[2]["ports"][1]["port"].as_u64(), Some(53));

        let back: NetworkPolicy = serde_norway::from_str(&yaml).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn nothing_observed_denies_everything() {
        let labels = [("app".to_string(), "cli".to_string())].into();
        let p = network_policy("cli", &labels, &summarize_network(&[]));
        let v: serde_norway::Value = serde_norway::from_str(&p.to_yaml().unwrap()).unwrap();
        assert_eq!(v["spec"]["ingress"].as_sequence().map(Vec::len), Some(0));
        assert_eq!(v["spec"]["egress"].as_sequence().map(Vec::len), Some(0));
        assert_eq!(
            v["spec"]["podSelector"]["matchLabels"]["app"].as_str(),
            Some("cli")
        );
    }

    #[test]
    fn object_names_are_dns_labels() {
        assert_eq!(object_name("nginx"), "nginx");
        assert_eq!(object_name("a/b/My__App:latest"), "my-app-latest");
        assert_eq!(object_name("///"), "app");
        assert!(object_name(&"x".repeat(100)).len() <= 55);
    }

    #[test]
    fn families_from_raw_values() {
        assert_eq!(AddressFamily::from_raw(1), AddressFamily::Unix);
        assert_eq!(AddressFamily::from_raw(2), AddressFamily::Inet);
        assert_eq!(AddressFamily::from_raw(10), AddressFamily::Inet6);
        assert_eq!(AddressFamily::from_raw(40), AddressFamily::Other(40));
        assert_eq!(AddressFamily::Inet6.apparmor_domain(), Some("inet6"));
    }
}
