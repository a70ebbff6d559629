//! Requests a run made through the proxy, collapsed into `--http-allow`
//! rules with path prefixes.
//!
//! Pure: one rule per method and host for the paths' directories (at most
//! two segments deep, `GET api.test/v1/users/*`), an exact rule for a path
//! at the top (`GET api.test/index.html`); more than four prefixes under
//! one first segment become that segment (`/simple/*`), more than eight
//! for one method and host become `/*`. Every rule is parsed back and
//! checked against the requests it was learned from: a request it would
//! not allow (a path no rule can spell, with spaces or an ambiguous
//! encoding) widens its method and host to `/*`. Must never return rules
//! that refuse a request they were learned from.

use std::collections::{BTreeMap, BTreeSet};

use super::Request;
use crate::policy::{HttpPolicy, HttpRule};
use crate::proxy::acl::{Acl, Verdict};

/// One learned rule and the requests (`METHOD path`) it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The rule as `--http-allow` takes it.
    pub spec: String,
    /// The requests it was learned from.
    pub from: BTreeSet<String>,
    /// Made wider than its requests' own prefixes because there were many.
    pub folded: bool,
}

const FLAG: &str = "--http-allow";

/// The path without its query.
fn path_only(path: &str) -> &str {
    path.split(['?', '#']).next().unwrap_or("/")
}

/// The prefix rule path for one request path.
fn prefix(path: &str) -> String {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if segs.len() <= 1 {
        return format!("/{}", segs.first().copied().unwrap_or(""));
    }
    let dir = &segs[..segs.len() - 1];
    let dir = &dir[..dir.len().min(2)];
    format!("/{}/*", dir.join("/"))
}

/// The first segment's prefix (`/simple/*`) of a rule path.
fn first_segment(rule_path: &str) -> Option<String> {
    let rest = rule_path.strip_prefix('/')?;
    let (first, more) = rest.split_once('/')?;
    (!more.is_empty()).then(|| format!("/{first}/*"))
}

/// A rule path one segment shorter (`/a/b/*` to `/a/*`); `None` at one
/// segment: a rule is never widened to the whole host on its own.
fn shorter(rule_path: &str) -> Option<String> {
    let dir = rule_path.strip_suffix("/*").unwrap_or(rule_path);
    let cut = dir.rfind('/').filter(|&i| i > 0)?;
    Some(format!("{}/*", &dir[..cut]))
}

/// The rules covering `requests`, and how many requests no rule could be
/// spelled for (a path whose every prefix has a character rules do not
/// take): those are left out, and said.
pub fn collapse<'a>(requests: impl IntoIterator<Item = &'a Request>) -> (Vec<Rule>, usize) {
    // (host, method) -> rule path -> requests
    let mut by: BTreeMap<(String, String), BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for r in requests {
        let path = path_only(&r.path);
        by.entry((r.host.clone(), r.method.clone()))
            .or_default()
            .entry(prefix(path))
            .or_default()
            .insert(format!("{} {path}", r.method));
    }
    let mut out = Vec::new();
    let mut unlearned = 0;
    for ((host, method), mut prefixes) in by {
        let folded = narrow(&mut prefixes);
        if let Some(all) = prefixes.remove("/*") {
            // The whole host: the narrower prefixes add nothing.
            let mut from = all;
            for (_, f) in std::mem::take(&mut prefixes) {
                from.extend(f);
            }
            prefixes.insert("/*".to_string(), from);
        }
        for (path, from) in prefixes {
            let mut candidate = Some(path.clone());
            let spec = loop {
                let Some(p) = candidate else { break None };
                let spec = format!("{method} {host}{p}");
                if allows_all(&spec, &from) {
                    break Some(spec);
                }
                candidate = shorter(&p);
            };
            match spec {
                Some(spec) => out.push(Rule {
                    spec,
                    folded: folded.contains(&path),
                    from,
                }),
                None => unlearned += from.len(),
            }
        }
    }
    (out, unlearned)
}

/// Too many prefixes: fold them under their first segment, then under
/// `/*`. Returns the rule paths that were folded into.
fn narrow(prefixes: &mut BTreeMap<String, BTreeSet<String>>) -> BTreeSet<String> {
    let mut folded = BTreeSet::new();
    let mut by_first: BTreeMap<String, usize> = BTreeMap::new();
    for p in prefixes.keys() {
        if let Some(f) = first_segment(p) {
            *by_first.entry(f).or_default() += 1;
        }
    }
    for (first, count) in by_first {
        if count > 4 {
            fold(prefixes, &first, |p| {
                first_segment(p).as_deref() == Some(&first)
            });
            folded.insert(first);
        }
    }
    if prefixes.len() > 8 {
        fold(prefixes, "/*", |_| true);
        folded.insert("/*".to_string());
    }
    folded
}

fn fold(
    prefixes: &mut BTreeMap<String, BTreeSet<String>>,
    into: &str,
    pick: impl Fn(&str) -> bool,
) {
    let picked: Vec<String> = prefixes.keys().filter(|p| pick(p)).cloned().collect();
    let mut from = BTreeSet::new();
    for p in picked {
        from.extend(prefixes.remove(&p).unwrap_or_default());
    }
    prefixes.entry(into.to_string()).or_default().extend(from);
}

/// True when the rule `spec` parses and allows each of `from`
/// (`METHOD path`).
fn allows_all(spec: &str, from: &BTreeSet<String>) -> bool {
    let Ok(rule) = HttpRule::parse(FLAG, spec) else {
        return false;
    };
    let host = match spec.split_whitespace().nth(1) {
        Some(t) => t.split('/').next().unwrap_or(t).to_string(),
        None => return false,
    };
    let acl = Acl::new(&HttpPolicy {
        allow: vec![rule],
        ..HttpPolicy::default()
    });
    from.iter().all(|req| {
        let (method, path) = req.split_once(' ').unwrap_or((req, "/"));
        matches!(acl.check(method, &host, path.as_bytes()), Verdict::Allow(_))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn req(method: &str, host: &str, path: &str) -> Request {
        Request {
            method: method.into(),
            host: host.into(),
            path: path.into(),
            dest: "127.0.0.1:443".parse().unwrap(),
        }
    }

    fn specs(rules: &[Rule]) -> Vec<&str> {
        rules.iter().map(|r| r.spec.as_str()).collect()
    }

    #[test]
    fn paths_become_prefixes() {
        let reqs = [
            req("GET", "api.test", "/v1/users/42?x=1"),
            req("GET", "api.test", "/v1/users/43"),
            req("POST", "api.test", "/v1/users/43/notes"),
            req("GET", "api.test", "/index.html"),
            req("GET", "files.test", "/a/b/c/d/pkg.whl"),
        ];
        let (rules, _) = collapse(&reqs);
        assert_eq!(
            specs(&rules),
            [
                "GET api.test/index.html",
                "GET api.test/v1/users/*",
                "POST api.test/v1/users/*",
                "GET files.test/a/b/*",
            ]
        );
        assert_eq!(rules[1].from.len(), 2);
    }

    #[test]
    fn many_prefixes_fold() {
        let reqs: Vec<Request> = (0..6)
            .map(|i| req("GET", "pypi.test", &format!("/simple/p{i}/")))
            .chain((0..9).map(|i| req("GET", "cdn.test", &format!("/d{i}/x/f"))))
            .collect();
        let (rules, _) = collapse(&reqs);
        assert_eq!(specs(&rules), ["GET cdn.test/*", "GET pypi.test/simple/*"]);
        assert!(rules.iter().all(|r| r.folded));
    }

    #[test]
    fn an_unspellable_path_is_never_widened_to_the_host() {
        let reqs = [
            req("GET", "a.test", "/has space/x"),
            req("GET", "a.test", "/ok/y/z"),
            req("GET", "a.test", "/v1/has space/x"),
        ];
        let (rules, unlearned) = collapse(&reqs);
        assert_eq!(specs(&rules), ["GET a.test/ok/y/*", "GET a.test/v1/*"]);
        assert_eq!(unlearned, 1);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Whatever the paths, the learned rules allow every request they
        /// were learned from.
        #[test]
        fn learned_rules_allow_their_requests(
            list in prop::collection::vec(
                (
                    prop::sample::select(vec!["GET", "POST", "PUT"]),
                    prop::sample::select(vec!["a.test", "b.test"]),
                    "(/[a-z%0-9. ]{0,6}){0,5}(\\?[a-z=]{0,4})?",
                ),
                0..30,
            )
        ) {
            let reqs: Vec<Request> = list
                .iter()
                .map(|(m, h, p)| req(m, h, if p.is_empty() { "/" } else { p }))
                .collect();
            let (rules, unlearned) = collapse(&reqs);
            let mut refused = BTreeSet::new();
            let parsed: Vec<HttpRule> =
                rules.iter().map(|r| HttpRule::parse(FLAG, &r.spec).unwrap()).collect();
            let acl = Acl::new(&HttpPolicy { allow: parsed, ..HttpPolicy::default() });
            for r in &reqs {
                let path = path_only(&r.path);
                if crate::proxy::acl::normalize_path(path.as_bytes()).is_err() {
                    continue; // the proxy refuses it (400) before any rule
                }
                if !matches!(acl.check(&r.method, &r.host, path.as_bytes()), Verdict::Allow(_)) {
                    refused.insert((r.method.clone(), r.host.clone(), path.to_string()));
                }
                // Never the whole host unless folded from many.
                for rule in &rules {
                    prop_assert!(!rule.spec.ends_with(".test/*") || rule.folded, "{rule:?}");
                }
            }
            // Every request is allowed, or counted as not learned.
            prop_assert!(refused.len() <= unlearned, "{refused:?} refused, {unlearned} said");
        }
    }
}
