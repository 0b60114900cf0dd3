//! Which QPUs a job asked for: the `--qpu` list reconciled with its `qpu` GRES. Pure.
//!
//! A typed GRES `qpu:NAME:N` stands for the QPU NAME of qrmi_config.json. An untyped
//! `qpu:N` means the QPU(s) of the node the job got (its allocated GRES types, from the
//! controller's per-node GRES detail). `--qpu` names and GRES types must agree.
use std::collections::BTreeMap;

/// One GRES item of the job: `qpu` with an optional type and a count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QpuGres {
    pub kind: Option<String>,
    pub count: u64,
}

/// Parses the `qpu` items of a TRES/GRES string such as `gres:qpu:ibm_torino:1`,
/// `gres/qpu:fresnel=1`, `qpu:2`, `qpu:ibm_torino:1(IDX:0)`, comma or semicolon separated.
/// Other GRES (gpu, ...) and other TRES are ignored.
pub fn parse_qpu_gres(text: &str) -> Vec<QpuGres> {
    let mut out = Vec::new();
    for item in text.split([',', ';']) {
        let item = item.trim();
        let item = item
            .strip_prefix("gres:")
            .or_else(|| item.strip_prefix("gres/"))
            .unwrap_or(item);
        // Drop an "(IDX:...)" suffix, then split "name[:type][:count]" or "name[:type]=count".
        let item = item.split('(').next().unwrap_or("");
        let (spec, eq_count) = match item.split_once('=') {
            Some((spec, count)) => (spec, Some(count)),
            None => (item, None),
        };
        let mut parts = spec.split(':');
        if parts.next() != Some("qpu") {
            continue;
        }
        let rest: Vec<&str> = parts.collect();
        let (kind, count) = match (rest.as_slice(), eq_count) {
            ([], Some(c)) => (None, c.parse().ok()),
            ([t], Some(c)) => (Some(*t), c.parse().ok()),
            ([], None) => (None, Some(1)),
            ([x], None) => match x.parse::<u64>() {
                Ok(n) => (None, Some(n)),
                Err(_) => (Some(*x), Some(1)),
            },
            ([t, c], None) => (Some(*t), c.parse().ok()),
            _ => (None, None),
        };
        if let Some(count) = count
            && count > 0
        {
            out.push(QpuGres {
                kind: kind.filter(|k| !k.is_empty()).map(str::to_string),
                count,
            });
        }
    }
    out
}

/// Reconciles the user's `--qpu` names with the GRES the job got on this node. Returns the
/// QPU names to acquire, in order, or a message for the user.
pub fn requested_qpus(
    qpu_option: &[String],
    requested_gres: &[QpuGres],
    allocated_here: &[QpuGres],
) -> Result<Vec<String>, String> {
    let typed: Vec<&str> = requested_gres
        .iter()
        .filter_map(|g| g.kind.as_deref())
        .collect();
    let untyped = requested_gres.iter().any(|g| g.kind.is_none());
    // The types of this node's allocation stand for an untyped request.
    let mut from_gres: Vec<String> = typed.iter().map(|s| s.to_string()).collect();
    if untyped {
        // The controller's per-node detail names the allocated type; where it does not,
        // `allocated_here` holds the node's configured QPU GRES (its only possible types).
        for g in allocated_here {
            if let Some(kind) = &g.kind
                && !from_gres.contains(kind)
            {
                from_gres.push(kind.clone());
            }
        }
    }
    if qpu_option.is_empty() {
        return Ok(from_gres);
    }
    if !typed.is_empty() {
        let contradicting: Vec<&String> = qpu_option
            .iter()
            .filter(|name| !typed.contains(&name.as_str()))
            .collect();
        if !contradicting.is_empty() {
            let list = |v: Vec<String>| v.join(",");
            return Err(format!(
                "--qpu={} contradicts --gres=qpu:{}: the QPU names must be the GRES types you asked for",
                list(qpu_option.to_vec()),
                list(typed.iter().map(|s| s.to_string()).collect())
            ));
        }
    }
    Ok(qpu_option.to_vec())
}

/// [`requested_qpus`] once the QPU names of qrmi_config.json are known: a GRES type that names
/// no QPU there is the site's own naming (upstream never tied GRES to the config, so a site
/// may have `Gres=qpu:heron:1` beside a resource `ibm_torino`), not a request for a QPU. It
/// neither selects a QPU nor contradicts `--qpu`: a job upstream runs is not failed over it.
pub fn requested_qpus_in_config(
    qpu_option: &[String],
    requested_gres: &[QpuGres],
    allocated_here: &[QpuGres],
    is_qpu: impl Fn(&str) -> bool,
) -> Result<Vec<String>, String> {
    let keep = |list: &[QpuGres]| -> Vec<QpuGres> {
        list.iter()
            .filter(|g| g.kind.as_deref().is_none_or(&is_qpu))
            .cloned()
            .collect()
    };
    requested_qpus(qpu_option, &keep(requested_gres), &keep(allocated_here))
}

/// What a slurm.conf says about QPU GRES: the node expressions whose `Gres=` has a `qpu`
/// (`NodeName=DEFAULT Gres=...` applies to the lines after it), and the files it includes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SlurmConfQpus {
    /// (node expression, its `Gres=` value) for every node line with a `qpu` GRES.
    pub nodes: Vec<(String, String)>,
    pub includes: Vec<String>,
    /// `ClusterName=` (it keys this plugin's state directory).
    pub cluster_name: Option<String>,
}

pub fn scan_slurm_conf(text: &str) -> SlurmConfQpus {
    let mut out = SlurmConfQpus::default();
    let mut default_gres = String::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if first.eq_ignore_ascii_case("include") {
            if let Some(path) = words.next() {
                out.includes.push(path.to_string());
            }
            continue;
        }
        let Some((key, nodes)) = first.split_once('=') else {
            continue;
        };
        if key.eq_ignore_ascii_case("clustername") {
            out.cluster_name = Some(nodes.to_string()).filter(|n| !n.is_empty());
            continue;
        }
        if !key.eq_ignore_ascii_case("nodename") {
            continue;
        }
        let gres = line
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .find(|(k, _)| k.eq_ignore_ascii_case("gres"))
            .map(|(_, v)| v.to_string());
        if nodes.eq_ignore_ascii_case("default") {
            default_gres = gres.unwrap_or_default();
            continue;
        }
        let gres = gres.unwrap_or_else(|| default_gres.clone());
        if !parse_qpu_gres(&gres).is_empty() {
            out.nodes.push((nodes.to_string(), gres));
        }
    }
    out
}

/// Counts by type, for messages.
pub fn describe(gres: &[QpuGres]) -> String {
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    for g in gres {
        *by_kind
            .entry(g.kind.clone().unwrap_or_else(|| "any".into()))
            .or_default() += g.count;
    }
    by_kind
        .iter()
        .map(|(k, n)| format!("qpu:{k}:{n}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(kind: Option<&str>, count: u64) -> QpuGres {
        QpuGres {
            kind: kind.map(str::to_string),
            count,
        }
    }

    #[test]
    fn parses_the_forms_slurm_prints() {
        assert_eq!(
            parse_qpu_gres("gres:qpu:ibm_torino:1"),
            vec![g(Some("ibm_torino"), 1)]
        );
        assert_eq!(
            parse_qpu_gres("gres/qpu:fresnel=2"),
            vec![g(Some("fresnel"), 2)]
        );
        assert_eq!(parse_qpu_gres("gres:qpu:1"), vec![g(None, 1)]);
        assert_eq!(parse_qpu_gres("gres/qpu=1"), vec![g(None, 1)]);
        assert_eq!(
            parse_qpu_gres("qpu:ibm_torino:1(IDX:0)"),
            vec![g(Some("ibm_torino"), 1)]
        );
        assert_eq!(
            parse_qpu_gres("cpu=2,gres/gpu=1,gres/qpu:a=1"),
            vec![g(Some("a"), 1)]
        );
        assert_eq!(parse_qpu_gres("gres:gpu:2"), vec![]);
        assert_eq!(parse_qpu_gres(""), vec![]);
        assert_eq!(parse_qpu_gres("gres:qpu:x:y:z"), vec![]);
    }

    #[test]
    fn finds_the_nodes_with_qpu_gres_in_slurm_conf() {
        let conf = "\
# test
NodeName=c[1-2] CPUs=4
NodeName=q1 CPUs=4 Gres=qpu:ibm_torino:1 # a QPU
nodename=q2 Gres=gpu:1,qpu:fresnel:1
NodeName=DEFAULT Gres=qpu:1
NodeName=r[1-4] CPUs=2
NodeName=DEFAULT Gres=
NodeName=s1
Include /etc/slurm/nodes.conf
PartitionName=quantum Nodes=q[1-2]
";
        let scan = scan_slurm_conf(conf);
        let nodes: Vec<&str> = scan.nodes.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(nodes, vec!["q1", "q2", "r[1-4]"]);
        assert_eq!(scan.nodes[1].1, "gpu:1,qpu:fresnel:1");
        assert_eq!(scan.includes, vec!["/etc/slurm/nodes.conf"]);
    }

    #[test]
    fn reconciles_option_and_gres() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // GRES alone selects its type.
        assert_eq!(
            requested_qpus(&[], &[g(Some("ibm_torino"), 1)], &[]).unwrap(),
            names(&["ibm_torino"])
        );
        // Untyped GRES: the node's allocated type.
        assert_eq!(
            requested_qpus(&[], &[g(None, 1)], &[g(Some("fresnel"), 1)]).unwrap(),
            names(&["fresnel"])
        );
        // --qpu alone.
        assert_eq!(
            requested_qpus(&names(&["a", "b"]), &[], &[]).unwrap(),
            names(&["a", "b"])
        );
        // Agreeing.
        assert_eq!(
            requested_qpus(&names(&["ibm_torino"]), &[g(Some("ibm_torino"), 1)], &[]).unwrap(),
            names(&["ibm_torino"])
        );
        // Contradicting.
        let err =
            requested_qpus(&names(&["fresnel"]), &[g(Some("ibm_torino"), 1)], &[]).unwrap_err();
        assert!(
            err.contains("--qpu=fresnel contradicts --gres=qpu:ibm_torino"),
            "{err}"
        );
        // Nothing asked.
        assert!(
            requested_qpus(&[], &[], &[g(Some("x"), 1)])
                .unwrap()
                .is_empty()
        );
    }

    // Issue 15 rule: GRES types that name no QPU of the config are the site's own naming.
    // Before: `--gres=qpu:heron:1 --qpu=ibm_torino` failed as a contradiction and
    // `--gres=qpu:heron:1` alone failed as an unknown QPU 'heron'; upstream runs both.
    #[test]
    fn gres_types_the_config_does_not_name_select_nothing() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let is_qpu = |n: &str| n == "ibm_torino" || n == "fresnel";
        assert_eq!(
            requested_qpus_in_config(&names(&["ibm_torino"]), &[g(Some("heron"), 1)], &[], is_qpu)
                .unwrap(),
            names(&["ibm_torino"])
        );
        assert!(
            requested_qpus_in_config(&[], &[g(Some("heron"), 1)], &[], is_qpu)
                .unwrap()
                .is_empty()
        );
        assert!(
            requested_qpus_in_config(&[], &[g(None, 1)], &[g(Some("heron"), 1)], is_qpu)
                .unwrap()
                .is_empty()
        );
        // Types that are QPUs of the config keep their meaning.
        assert_eq!(
            requested_qpus_in_config(&[], &[g(None, 1)], &[g(Some("fresnel"), 1)], is_qpu).unwrap(),
            names(&["fresnel"])
        );
        assert!(
            requested_qpus_in_config(
                &names(&["fresnel"]),
                &[g(Some("ibm_torino"), 1)],
                &[],
                is_qpu
            )
            .is_err()
        );
    }
}
