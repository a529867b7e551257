//! Which group/version/kind is served at which minor, and the migrations that keep an object on
//! a served version across a path of control-plane hops.
//!
//! Built from `apis.yaml`: every row is served from its `introducedIn` (or always, when unknown)
//! until its `removedIn`; a replacement that has no row of its own is served from its
//! `replacementAvailableIn` on. Versions of one kind are linked through their replacements (so
//! `extensions/v1beta1` Ingress, `networking.k8s.io/v1beta1` Ingress and
//! `networking.k8s.io/v1` Ingress are one family). [`ServedApis::migrations`] is the planner's
//! rule: before the hop that stops serving an object's version, move it to the newest version
//! served both then and at the plan's target; where none exists, to the version served then
//! that lasts longest, and again before the hop that removes that one. Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet};

use super::schema::{ApisFile, Gvk};
use crate::version::Minor;

/// When one version of a kind is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// First minor that serves it (`None`: before anything the catalog covers).
    pub from: Option<Minor>,
    /// First minor that no longer serves it.
    pub until: Option<Minor>,
    /// Off unless `--runtime-config` turns it on.
    pub off_by_default: bool,
    pub deprecated: Option<Minor>,
}

impl Window {
    pub fn serves(&self, m: Minor) -> bool {
        self.from.is_none_or(|f| f <= m) && self.until.is_none_or(|u| m < u)
    }
}

/// One move an object must make: before control-plane hop `hop`, from `from` to `to` (`None`:
/// nothing replaces it, the object must go).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub hop: usize,
    pub from: Gvk,
    pub to: Option<Gvk>,
}

#[derive(Debug, Clone, Default)]
pub struct ServedApis {
    windows: BTreeMap<Gvk, Window>,
    /// Family id of every known group/version/kind.
    family: BTreeMap<Gvk, usize>,
}

/// Stability rank of a version for "newest": GA above beta above alpha, then the numbers
/// (`v2` > `v1` > `v1beta3` > `v1beta1` > `v1alpha1`).
fn rank(version: &str) -> (u32, u32, u32) {
    let rest = version.trim_start_matches('v');
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    let (level, n) = if let Some(n) = tail.strip_prefix("beta") {
        (1, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (0, n.parse().unwrap_or(0))
    } else {
        (2, 0)
    };
    (level, major, n)
}

impl ServedApis {
    pub fn new(apis: &ApisFile) -> ServedApis {
        let mut windows: BTreeMap<Gvk, Window> = BTreeMap::new();
        for a in &apis.apis {
            windows.insert(
                a.gvk(),
                Window {
                    from: a.introduced_in,
                    until: a.removed_in,
                    off_by_default: a.served_by_default == Some(false),
                    deprecated: a.deprecated_in,
                },
            );
        }
        for a in &apis.apis {
            let Some(r) = &a.replacement else { continue };
            // The earliest date any row gives for a replacement without a row of its own.
            let since = a.replacement_available_in;
            let w = windows.entry(r.clone()).or_insert(Window {
                from: since,
                until: None,
                off_by_default: false,
                deprecated: None,
            });
            if w.until.is_none() && w.deprecated.is_none() && since.is_some_and(|s| w.from.is_none_or(|f| s < f)) {
                w.from = since;
            }
        }
        // Families: union of every row with its replacement, and of versions of one kind in
        // one group.
        let keys: Vec<Gvk> = windows.keys().cloned().collect();
        let mut parent: Vec<usize> = (0..keys.len()).collect();
        fn root(parent: &mut [usize], mut i: usize) -> usize {
            while parent[i] != i {
                parent[i] = parent[parent[i]];
                i = parent[i];
            }
            i
        }
        let index: BTreeMap<&Gvk, usize> = keys.iter().enumerate().map(|(i, k)| (k, i)).collect();
        let mut union = |a: usize, b: usize| {
            let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
            if ra != rb {
                parent[ra] = rb;
            }
        };
        for a in &apis.apis {
            if let Some(r) = &a.replacement {
                union(index[&a.gvk()], index[r]);
            }
        }
        let mut by_group_kind: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for (i, k) in keys.iter().enumerate() {
            match by_group_kind.get(&(k.group.as_str(), k.kind.as_str())) {
                Some(&first) => union(first, i),
                None => {
                    by_group_kind.insert((k.group.as_str(), k.kind.as_str()), i);
                }
            }
        }
        let family = keys.iter().enumerate().map(|(i, k)| (k.clone(), root(&mut parent, i))).collect();
        ServedApis { windows, family }
    }

    pub fn window(&self, g: &Gvk) -> Option<&Window> {
        self.windows.get(g)
    }

    /// Whether `g` is served at `m`; a version the catalog does not know (a GA one) is.
    pub fn serves(&self, g: &Gvk, m: Minor) -> bool {
        self.windows.get(g).is_none_or(|w| w.serves(m))
    }

    /// The versions an object of `g` can be rewritten to (its family, `g` excluded).
    fn alternatives<'a>(&'a self, g: &'a Gvk) -> impl Iterator<Item = (&'a Gvk, &'a Window)> + 'a {
        let family = self.family.get(g).copied();
        self.windows.iter().filter(move |(k, _)| *k != g && family.is_some() && self.family.get(*k).copied() == family)
    }

    /// The moves that keep an object of `start` served along `hops` (control-plane minors, each
    /// `(from, to)`), ending at the last hop's `to`. Each move happens before its hop, while the
    /// control plane is at the hop's `from`, to a version served both then and after the hop.
    pub fn migrations(&self, start: &Gvk, hops: &[(Minor, Minor)]) -> Vec<Migration> {
        let Some(target) = hops.last().map(|h| h.1) else { return Vec::new() };
        let mut out = Vec::new();
        let mut current = start.clone();
        for (i, &(at, next)) in hops.iter().enumerate() {
            // Only a removal moves an object; a version not served yet (a manifest written for a
            // newer release) is not this planner's to rewrite.
            let removed = self.windows.get(&current).and_then(|w| w.until).is_some_and(|u| next >= u);
            if self.serves(&current, next) || !removed {
                continue;
            }
            let lasts = |w: &Window| (at.minor..=target.minor).all(|m| w.serves(Minor::new(at.major, m)));
            let usable: Vec<(&Gvk, &Window)> =
                self.alternatives(&current).filter(|(_, w)| w.serves(at) && w.serves(next)).collect();
            // Versions a cluster serves at its defaults first; one it must switch on only when
            // nothing else bridges.
            let on: Vec<(&Gvk, &Window)> = usable.iter().copied().filter(|(_, w)| !w.off_by_default).collect();
            let pool = if on.is_empty() { usable } else { on };
            let pick = pool
                .iter()
                .filter(|(_, w)| lasts(w))
                .max_by_key(|(g, _)| rank(&g.version))
                .or_else(|| {
                    pool.iter().max_by_key(|(g, w)| (w.until.unwrap_or(Minor::new(u32::MAX, 0)), rank(&g.version)))
                })
                .map(|(g, _)| (*g).clone());
            out.push(Migration { hop: i, from: current.clone(), to: pick.clone() });
            match pick {
                Some(p) => current = p,
                None => break,
            }
        }
        out
    }

    /// The other versions of `g`'s kind (its family), newest first: what an object of `g` can
    /// also be read and written as.
    pub fn other_versions(&self, g: &Gvk) -> Vec<Gvk> {
        let mut out: Vec<Gvk> = self.alternatives(g).map(|(k, _)| k.clone()).collect();
        out.sort_by_key(|k| std::cmp::Reverse(rank(&k.version)));
        out
    }

    /// Every group/version/kind the catalog knows, for tests that walk them all.
    pub fn known(&self) -> BTreeSet<Gvk> {
        self.windows.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    fn gvk(group: &str, version: &str, kind: &str) -> Gvk {
        Gvk { group: group.to_string(), version: version.to_string(), kind: kind.to_string() }
    }

    fn m(minor: u32) -> Minor {
        Minor::new(1, minor)
    }

    fn path(from: u32, to: u32) -> Vec<(Minor, Minor)> {
        (from..to).map(|i| (m(i), m(i + 1))).collect()
    }

    fn served() -> ServedApis {
        ServedApis::new(&Catalog::embedded().unwrap().apis)
    }

    #[test]
    fn flowcontrol_moves_twice_between_1_25_and_1_29() {
        let s = served();
        let fc = |v: &str| gvk("flowcontrol.apiserver.k8s.io", v, "FlowSchema");
        let moves = s.migrations(&fc("v1beta1"), &path(25, 29));
        assert_eq!(
            moves,
            vec![
                // Before 1.26 (at 1.25) only v1beta2 is served besides v1beta1.
                Migration { hop: 0, from: fc("v1beta1"), to: Some(fc("v1beta2")) },
                // Before 1.29 (at 1.28) v1 is not served yet; v1beta3 is served at 1.28 and 1.29.
                Migration { hop: 3, from: fc("v1beta2"), to: Some(fc("v1beta3")) },
            ]
        );
        // Ending at 1.32, the second move lands on v1, served from 1.29 to the target.
        let moves = s.migrations(&fc("v1beta2"), &path(28, 32));
        assert_eq!(
            moves,
            vec![
                Migration { hop: 0, from: fc("v1beta2"), to: Some(fc("v1beta3")) },
                Migration { hop: 3, from: fc("v1beta3"), to: Some(fc("v1")) }
            ]
        );
        // Starting at 1.29, one move straight to v1.
        let moves = s.migrations(&fc("v1beta3"), &path(29, 32));
        assert_eq!(moves, vec![Migration { hop: 2, from: fc("v1beta3"), to: Some(fc("v1")) }]);
    }

    #[test]
    fn a_version_not_served_yet_is_left_alone() {
        let s = served();
        let fc = gvk("flowcontrol.apiserver.k8s.io", "v1beta3", "FlowSchema");
        let moves = s.migrations(&fc, &path(21, 33));
        // Not served before 1.26: nothing to move until it is removed in 1.32, then to v1.
        assert_eq!(
            moves,
            vec![Migration { hop: 10, from: fc, to: Some(gvk("flowcontrol.apiserver.k8s.io", "v1", "FlowSchema")) }]
        );
    }

    #[test]
    fn a_kind_without_replacement_must_go() {
        let s = served();
        let psp = gvk("policy", "v1beta1", "PodSecurityPolicy");
        let moves = s.migrations(&psp, &path(24, 26));
        assert_eq!(moves, vec![Migration { hop: 0, from: psp, to: None }]);
    }

    #[test]
    fn ingress_families_cross_groups() {
        let s = served();
        let ing = gvk("extensions", "v1beta1", "Ingress");
        let moves = s.migrations(&ing, &path(19, 22));
        assert_eq!(moves.len(), 1);
        assert_eq!(moves[0].hop, 2);
        assert_eq!(moves[0].to, Some(gvk("networking.k8s.io", "v1", "Ingress")));
    }

    /// Following the migrations, no object is ever on a version its cluster does not serve: for
    /// every catalog version, every start minor that serves it and every target after it.
    #[test]
    fn following_the_migrations_every_object_stays_served_at_every_hop() {
        let catalog = Catalog::embedded().unwrap();
        let s = ServedApis::new(&catalog.apis);
        let (oldest, newest) = (catalog.oldest_minor(), catalog.newest_minor());
        let mut checked = 0;
        for start in s.known() {
            let w = s.window(&start).unwrap().clone();
            for from in oldest.minor..newest.minor {
                if !w.serves(m(from)) {
                    continue;
                }
                for to in from + 1..=newest.minor {
                    let hops = path(from, to);
                    let moves = s.migrations(&start, &hops);
                    let mut current = Some(start.clone());
                    for (i, &(at, next)) in hops.iter().enumerate() {
                        for mv in moves.iter().filter(|mv| mv.hop == i) {
                            assert_eq!(Some(&mv.from), current.as_ref(), "{start:?} {from}→{to}: {moves:?}");
                            if let Some(t) = &mv.to {
                                assert!(s.serves(t, at), "{start:?} {from}→{to}: {t:?} not served at {at} when moved");
                            }
                            current = mv.to.clone();
                        }
                        if let Some(c) = &current {
                            assert!(s.serves(c, next), "{start:?} {from}→{to}: on {c:?}, not served at {next}");
                        }
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 1000, "{checked}");
    }
}
