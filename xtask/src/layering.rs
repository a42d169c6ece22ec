//! The layering check: inner crates never depend on outer ones.
//!
//! `RULES` lists, per guarded crate, the crates that must not appear among its
//! transitive *normal* dependencies as a normal build resolves them. The graph
//! comes from cargo, never from grepping manifests:
//!
//! - `cargo metadata --no-deps` says which guarded crates exist; a crate not in
//!   the workspace yet is reported as skipped, never silently passed.
//! - `cargo tree -e normal -p <crate>` gives the crate's resolved graph. The
//!   full `cargo metadata` resolve is not used for this because it unifies
//!   features across all workspace members *and* their dev-dependencies: the
//!   store backends enable `latchkey-store/testing` as a dev-dependency, which
//!   would put the optional tokio among latchkey-store's normal edges even
//!   though no normal build of latchkey-store compiles it. `cargo tree -p`
//!   with only normal edges resolves features exactly as
//!   `cargo build -p <crate>` does (resolver 2 and later).
//!
//! A violation is printed with the shortest path from the guarded crate to the
//! forbidden one, so the offending edge is obvious.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use anyhow::{Context as _, bail};

use crate::shell::Shell;

/// The crates one guarded crate must not reach through normal dependencies.
#[derive(Debug)]
pub(crate) struct Rule {
    /// The guarded workspace crate.
    pub(crate) krate: &'static str,
    /// Package names that must not appear in its normal dependency graph.
    pub(crate) forbidden: &'static [&'static str],
    /// The architectural invariant, shown when the rule is broken.
    pub(crate) reason: &'static str,
}

/// The layering rules (ARCHITECTURE.md, STYLE.md "Crate boundaries").
pub(crate) const RULES: &[Rule] = &[
    Rule {
        krate: "latchkey-protocol",
        forbidden: &[
            "tokio",
            "axum",
            "hyper",
            "diesel",
            "diesel-async",
            "tracing-subscriber",
            "reqwest",
            "josekit",
            "sqlx",
        ],
        reason: "the protocol crate is pure: no runtime, HTTP, database or IO",
    },
    Rule {
        krate: "latchkey-store",
        // tokio may appear only as the optional dependency behind the
        // `testing` feature, which a normal build does not enable.
        forbidden: &["diesel", "diesel-async", "axum", "hyper", "tokio"],
        reason: "the store crate holds traits and the in-memory backend; backends and \
                 runtimes live outside it",
    },
    Rule {
        krate: "latchkey-service",
        forbidden: &[
            "axum",
            "diesel",
            "diesel-async",
            "tera",
            "tracing-subscriber",
        ],
        reason: "the flows know neither HTTP, templates, a concrete database, nor how \
                 logs are collected",
    },
    Rule {
        krate: "latchkey-http",
        forbidden: &["diesel", "diesel-async"],
        reason: "the HTTP layer reaches storage only through the store traits",
    },
    Rule {
        krate: "latchkey-resource",
        forbidden: &["latchkey-store", "latchkey-service", "diesel", "tera"],
        reason: "the resource guard depends on the protocol crate only",
    },
];

/// Runs the check on the workspace at the shell's root.
pub(crate) fn run(shell: &Shell) -> anyhow::Result<()> {
    let violations = check(shell, RULES)?;
    if violations.is_empty() {
        return Ok(());
    }
    bail!(
        "{} layering violation(s); each is printed above with its dependency path",
        violations.len()
    )
}

/// Checks every rule, printing one line per guarded crate and per
/// violation, and returns the violations.
fn check(shell: &Shell, rules: &[Rule]) -> anyhow::Result<Vec<Violation>> {
    let metadata =
        shell.read(
            &shell
                .cargo()
                .args(["metadata", "--format-version", "1", "--no-deps"]),
        )?;
    let members = workspace_members(&metadata)?;
    let mut all_violations = Vec::new();
    for rule in rules {
        if !members.contains(rule.krate) {
            eprintln!("layering: {}: not in workspace, skipped", rule.krate);
            continue;
        }
        let tree = shell.read(&shell.cargo().args([
            "tree",
            "--edges",
            "normal",
            "--package",
            rule.krate,
            "--prefix",
            "depth",
            "--format",
            "{p}",
            "--charset",
            "ascii",
        ]))?;
        let graph = DependencyGraph::parse_cargo_tree(&tree)
            .with_context(|| format!("reading the dependency tree of {}", rule.krate))?;
        let violations = graph.violations(rule.forbidden);
        if violations.is_empty() {
            eprintln!(
                "layering: {}: ok ({} crates in its normal graph, none of {})",
                rule.krate,
                graph.node_count(),
                rule.forbidden.join(", ")
            );
        }
        for violation in &violations {
            eprintln!(
                "layering: {} must not depend on {} ({}):\n    {}",
                rule.krate,
                violation.forbidden,
                rule.reason,
                violation.path.join(" -> ")
            );
        }
        all_violations.extend(violations);
    }
    Ok(all_violations)
}

/// The names of the workspace's member packages, from
/// `cargo metadata --format-version 1 --no-deps`.
fn workspace_members(metadata_json: &str) -> anyhow::Result<BTreeSet<String>> {
    let metadata: serde_json::Value =
        serde_json::from_str(metadata_json).context("cargo metadata printed invalid JSON")?;
    let member_ids: BTreeSet<&str> = metadata
        .get("workspace_members")
        .and_then(serde_json::Value::as_array)
        .context("cargo metadata has no `workspace_members` array")?
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    let packages = metadata
        .get("packages")
        .and_then(serde_json::Value::as_array)
        .context("cargo metadata has no `packages` array")?;
    let mut names = BTreeSet::new();
    for package in packages {
        let id = package.get("id").and_then(serde_json::Value::as_str);
        let name = package.get("name").and_then(serde_json::Value::as_str);
        if let (Some(id), Some(name)) = (id, name)
            && member_ids.contains(id)
        {
            names.insert(name.to_owned());
        }
    }
    Ok(names)
}

/// A forbidden crate found in a guarded crate's graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    /// The forbidden package name that was found.
    pub(crate) forbidden: String,
    /// The shortest path, as `name vX.Y.Z`, from the guarded crate to it.
    pub(crate) path: Vec<String>,
}

/// A resolved dependency graph rooted at one package; nodes are `name vX.Y.Z`.
#[derive(Debug, Default)]
pub(crate) struct DependencyGraph {
    root: String,
    /// Each node's direct dependencies, in the order cargo printed them.
    edges: BTreeMap<String, Vec<String>>,
}

impl DependencyGraph {
    /// Parses `cargo tree --prefix depth --format {p}` output: one package per
    /// line, each prefixed by its depth. A package already shown is printed
    /// again with `(*)` and without its children, which is harmless here
    /// because its edges were recorded the first time.
    pub(crate) fn parse_cargo_tree(output: &str) -> anyhow::Result<Self> {
        let mut graph = Self::default();
        let mut ancestors: Vec<String> = Vec::new();
        for line in output.lines().filter(|line| !line.trim().is_empty()) {
            let digits = line.chars().take_while(char::is_ascii_digit).count();
            let (depth, package) = line
                .split_at_checked(digits)
                .with_context(|| format!("unexpected cargo tree line {line:?}"))?;
            let depth: usize = depth
                .parse()
                .with_context(|| format!("cargo tree line without a depth: {line:?}"))?;
            let mut words = package.split_whitespace();
            let (Some(name), Some(version)) = (words.next(), words.next()) else {
                bail!("cargo tree line without a name and version: {line:?}");
            };
            let node = format!("{name} {version}");
            if depth > ancestors.len() {
                bail!("cargo tree line deeper than its parent: {line:?}");
            }
            ancestors.truncate(depth);
            match ancestors.last() {
                Some(parent) => {
                    let children = graph.edges.entry(parent.clone()).or_default();
                    if !children.contains(&node) {
                        children.push(node.clone());
                    }
                }
                None if graph.root.is_empty() => graph.root = node.clone(),
                None => bail!("cargo tree printed a second root: {line:?}"),
            }
            graph.edges.entry(node.clone()).or_default();
            ancestors.push(node);
        }
        if graph.root.is_empty() {
            bail!("cargo tree printed no packages");
        }
        Ok(graph)
    }

    /// How many packages the graph holds, the root included.
    pub(crate) fn node_count(&self) -> usize {
        self.edges.len()
    }

    /// Every forbidden package name reachable from the root, each with the
    /// shortest path to it (breadth-first search), in the order `forbidden`
    /// lists them. The root itself is never a violation.
    pub(crate) fn violations(&self, forbidden: &[&str]) -> Vec<Violation> {
        let mut parent_of: BTreeMap<&str, &str> = BTreeMap::new();
        let mut first_reached: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = VecDeque::from([self.root.as_str()]);
        let mut seen = BTreeSet::from([self.root.as_str()]);
        while let Some(node) = queue.pop_front() {
            for child in self.edges.get(node).into_iter().flatten() {
                if seen.insert(child.as_str()) {
                    parent_of.insert(child.as_str(), node);
                    first_reached
                        .entry(package_name(child))
                        .or_insert(child.as_str());
                    queue.push_back(child.as_str());
                }
            }
        }
        forbidden
            .iter()
            .filter_map(|name| {
                let target = *first_reached.get(name)?;
                let mut path = vec![target.to_owned()];
                let mut current = target;
                while let Some(parent) = parent_of.get(current) {
                    path.push((*parent).to_owned());
                    current = parent;
                }
                path.reverse();
                Some(Violation {
                    forbidden: (*name).to_owned(),
                    path,
                })
            })
            .collect()
    }
}

/// The package name of a `name vX.Y.Z` node.
fn package_name(node: &str) -> &str {
    node.split_once(' ').map_or(node, |(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::ScratchWorkspace;

    /// A trimmed `cargo tree -e normal --prefix depth --format {p}` output.
    const TREE: &str = "\
0latchkey-protocol v0.1.0 (/work/main/crates/latchkey-protocol)
1serde v1.0.229
2serde_derive v1.0.229 (proc-macro)
3proc-macro2 v1.0.107
1some-client v0.3.0
2hyper v1.7.0
3tokio v1.54.1
4tokio-macros v2.7.2 (proc-macro)
5proc-macro2 v1.0.107
2serde v1.0.229 (*)
1tokio v1.54.1 (*)
1url v2.5.4
";

    #[test]
    fn parses_the_tree_into_edges() {
        let graph = DependencyGraph::parse_cargo_tree(TREE).unwrap();
        assert_eq!(graph.root, "latchkey-protocol v0.1.0");
        assert_eq!(graph.node_count(), 9);
        assert_eq!(
            graph.edges["latchkey-protocol v0.1.0"],
            [
                "serde v1.0.229",
                "some-client v0.3.0",
                "tokio v1.54.1",
                "url v2.5.4"
            ]
        );
        assert_eq!(
            graph.edges["some-client v0.3.0"],
            ["hyper v1.7.0", "serde v1.0.229"]
        );
        // The `(*)` repeat must not erase the children recorded first.
        assert_eq!(graph.edges["tokio v1.54.1"], ["tokio-macros v2.7.2"]);
    }

    #[test]
    fn reports_the_shortest_path_to_each_forbidden_crate() {
        let graph = DependencyGraph::parse_cargo_tree(TREE).unwrap();
        let violations = graph.violations(&["tokio", "axum", "hyper", "proc-macro2"]);
        assert_eq!(
            violations,
            [
                Violation {
                    forbidden: "tokio".to_owned(),
                    path: vec![
                        "latchkey-protocol v0.1.0".to_owned(),
                        "tokio v1.54.1".to_owned()
                    ],
                },
                Violation {
                    forbidden: "hyper".to_owned(),
                    path: vec![
                        "latchkey-protocol v0.1.0".to_owned(),
                        "some-client v0.3.0".to_owned(),
                        "hyper v1.7.0".to_owned(),
                    ],
                },
                Violation {
                    forbidden: "proc-macro2".to_owned(),
                    path: vec![
                        "latchkey-protocol v0.1.0".to_owned(),
                        "serde v1.0.229".to_owned(),
                        "serde_derive v1.0.229".to_owned(),
                        "proc-macro2 v1.0.107".to_owned(),
                    ],
                },
            ]
        );
    }

    #[test]
    fn a_clean_graph_and_the_root_itself_are_not_violations() {
        let graph = DependencyGraph::parse_cargo_tree(TREE).unwrap();
        assert_eq!(graph.violations(&["diesel", "latchkey-protocol"]), []);
    }

    #[test]
    fn malformed_trees_are_errors() {
        for output in [
            "",
            "latchkey-protocol v0.1.0\n",
            "0latchkey-protocol v0.1.0\n2skipped-a-level v1.0.0\n",
            "0a v1.0.0\n0b v1.0.0\n",
            "0lonely-name\n",
        ] {
            assert!(
                DependencyGraph::parse_cargo_tree(output).is_err(),
                "{output:?}"
            );
        }
    }

    #[test]
    fn workspace_members_come_from_metadata_not_from_the_package_list() {
        // `packages` may list more than the members (path dependencies
        // outside the workspace); only `workspace_members` counts.
        let metadata = r#"{
            "packages": [
                {"name": "latchkey-store", "id": "path+file:///w/crates/latchkey-store#0.1.0"},
                {"name": "xtask", "id": "path+file:///w/xtask#0.1.0"},
                {"name": "outsider", "id": "path+file:///elsewhere#outsider@0.1.0"}
            ],
            "workspace_members": [
                "path+file:///w/crates/latchkey-store#0.1.0",
                "path+file:///w/xtask#0.1.0"
            ],
            "version": 1
        }"#;
        let members = workspace_members(metadata).unwrap();
        assert_eq!(
            members.into_iter().collect::<Vec<_>>(),
            ["latchkey-store", "xtask"]
        );
        assert!(workspace_members("{}").is_err());
        assert!(workspace_members("not json").is_err());
    }

    /// Runs the real check (cargo metadata and cargo tree) on a scratch
    /// workspace made only of path crates, so it needs no registry: a
    /// protocol crate that reaches a crate named `tokio` through an
    /// intermediate, and a store crate whose `tokio` is optional behind
    /// `testing`, which a sibling enables only as a dev-dependency.
    #[test]
    fn the_real_check_fails_with_a_path_and_respects_features() {
        let scratch = ScratchWorkspace::new("layering");
        scratch.workspace(&[
            "latchkey-protocol",
            "middle",
            "tokio",
            "latchkey-store",
            "backend",
        ]);
        scratch.package("tokio", "tokio", "");
        scratch.package(
            "middle",
            "middle",
            "[dependencies]\ntokio = { path = \"../tokio\" }",
        );
        scratch.package(
            "latchkey-protocol",
            "latchkey-protocol",
            "[dependencies]\nmiddle = { path = \"../middle\" }",
        );
        scratch.package(
            "latchkey-store",
            "latchkey-store",
            "[features]\ntesting = [\"dep:tokio\"]\n\n\
             [dependencies]\ntokio = { path = \"../tokio\", optional = true }",
        );
        scratch.package(
            "backend",
            "backend",
            "[dependencies]\nlatchkey-store = { path = \"../latchkey-store\" }\n\n\
             [dev-dependencies]\n\
             latchkey-store = { path = \"../latchkey-store\", features = [\"testing\"] }",
        );

        let shell = Shell::at(scratch.root().to_path_buf());
        let violations = check(&shell, RULES).unwrap();

        // Only the protocol crate breaks a rule; latchkey-store's tokio stays
        // behind `testing`, which only a dev-dependency turns on.
        assert_eq!(
            violations,
            [Violation {
                forbidden: "tokio".to_owned(),
                path: vec![
                    "latchkey-protocol v0.1.0".to_owned(),
                    "middle v0.1.0".to_owned(),
                    "tokio v0.1.0".to_owned(),
                ],
            }]
        );
        let error = run(&shell).unwrap_err();
        assert!(
            error.to_string().contains("1 layering violation(s)"),
            "{error}"
        );
    }

    #[test]
    fn the_testing_feature_in_a_normal_dependency_is_caught() {
        let scratch = ScratchWorkspace::new("layering-features");
        scratch.workspace(&["tokio", "latchkey-store"]);
        scratch.package("tokio", "tokio", "");
        scratch.package(
            "latchkey-store",
            "latchkey-store",
            "[features]\ndefault = [\"testing\"]\ntesting = [\"dep:tokio\"]\n\n\
             [dependencies]\ntokio = { path = \"../tokio\", optional = true }",
        );
        let violations = check(&Shell::at(scratch.root().to_path_buf()), RULES).unwrap();
        assert_eq!(
            violations,
            [Violation {
                forbidden: "tokio".to_owned(),
                path: vec![
                    "latchkey-store v0.1.0".to_owned(),
                    "tokio v0.1.0".to_owned()
                ],
            }]
        );
    }
}
