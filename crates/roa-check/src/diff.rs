//! Upgrade classification (platform.md §4): is a new version a `major` update, which waits
//! for every site admin's consent, a `minor` one, applied automatically, or no change at all?
//!
//! Every difference that matters becomes a [`Reason`] with a stable id. Reading of the rules
//! where the platform's text is unclear:
//! - removing a scope only narrows what the app may do and is minor (adding or swapping one is
//!   major); the real-manifest corpus agrees;
//! - a remote's `operations` changing is minor (the platform lists only URLs, regions and the
//!   `baseUrl` form), removing a remote is minor like removing any egress;
//! - changes that no rule names (titles, resources, runtime) are minor, reported as
//!   `MODULE_CHANGED` or `OTHER_CHANGED` so that nothing changes silently.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::address::Address;
use crate::model::{Egress, Loc, Manifest, Module};

/// The class of an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Update {
    None,
    Minor,
    Major,
}

impl Update {
    pub fn as_str(self) -> &'static str {
        match self {
            Update::None => "none",
            Update::Minor => "minor",
            Update::Major => "major",
        }
    }
}

/// How much one reason weighs. `Info` reasons (eligibility lost or gained) explain but do
/// not change the class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    Info,
    Minor,
    Major,
}

/// Which manifest a reason points into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Old,
    New,
}

/// One difference between the versions. The first three fields are the documented JSON
/// shape; `class`, `side`, `line` and `column` are additions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    pub id: &'static str,
    pub path: String,
    pub message: String,
    pub class: Class,
    pub side: Side,
    pub line: u32,
    pub column: u32,
}

/// Every reason id, its class, and what it means (for the README and SARIF rule metadata).
pub const REASONS: &[(&str, Class, &str)] = &[
    (
        "SCOPE_ADDED",
        Class::Major,
        "a scope was added (or swapped for another)",
    ),
    ("SCOPE_REMOVED", Class::Minor, "a scope was removed"),
    (
        "CSP_OPTION_ADDED",
        Class::Major,
        "a permissions.content CSP option was added or swapped",
    ),
    (
        "CSP_OPTION_REMOVED",
        Class::Minor,
        "a permissions.content CSP option was removed",
    ),
    (
        "EGRESS_URL_ADDED",
        Class::Major,
        "an external URL was added (or swapped for another)",
    ),
    (
        "EGRESS_URL_REMOVED",
        Class::Minor,
        "an external URL was removed",
    ),
    (
        "EGRESS_CATEGORY_CHANGED",
        Class::Major,
        "the category of an egress entry was added or changed",
    ),
    (
        "IN_SCOPE_EUD_FIRST_TRUE",
        Class::Major,
        "inScopeEUD became true while no entry was true before",
    ),
    (
        "IN_SCOPE_EUD_CHANGED",
        Class::Minor,
        "inScopeEUD changed, without being the first true",
    ),
    (
        "EGRESS_CONFIGURABLE_ENABLED",
        Class::Major,
        "customer-managed egress was enabled",
    ),
    (
        "EGRESS_CONFIGURABLE_DISABLED",
        Class::Minor,
        "customer-managed egress was disabled",
    ),
    (
        "WEBTRIGGER_DYNAMIC_ADDED",
        Class::Major,
        "a dynamic web trigger was added where none existed",
    ),
    (
        "WEBTRIGGER_BECAME_DYNAMIC",
        Class::Major,
        "a static web trigger became dynamic",
    ),
    (
        "WEBTRIGGER_ADDED",
        Class::Minor,
        "a static web trigger (or a further dynamic one) was added",
    ),
    (
        "WEBTRIGGER_BECAME_STATIC",
        Class::Minor,
        "a dynamic web trigger became static",
    ),
    ("LICENSING_ENABLED", Class::Major, "licensing was enabled"),
    ("LICENSING_DISABLED", Class::Minor, "licensing was disabled"),
    (
        "PROVIDER_ADDED",
        Class::Major,
        "an external auth provider was added",
    ),
    (
        "PROVIDER_REMOVED",
        Class::Major,
        "an external auth provider was removed",
    ),
    (
        "PROVIDER_CLIENT_ID_CHANGED",
        Class::Major,
        "a provider's clientId changed",
    ),
    (
        "PROVIDER_REMOTES_CHANGED",
        Class::Major,
        "a provider's remotes (its external URLs) changed",
    ),
    ("REMOTE_ADDED", Class::Major, "a remote was added"),
    (
        "REMOTE_BASE_URL_CHANGED",
        Class::Major,
        "a remote's URL, regions or baseUrl form changed",
    ),
    ("REMOTE_REMOVED", Class::Minor, "a remote was removed"),
    (
        "REMOTE_OPERATIONS_CHANGED",
        Class::Minor,
        "a remote's operations changed",
    ),
    ("FUNCTION_ADDED", Class::Minor, "a function was added"),
    (
        "TRIGGER_ADDED",
        Class::Minor,
        "a product-event trigger was added",
    ),
    (
        "SCHEDULED_TRIGGER_ADDED",
        Class::Minor,
        "a scheduled trigger was added",
    ),
    ("CONSUMER_ADDED", Class::Minor, "a queue consumer was added"),
    ("MODULE_ADDED", Class::Minor, "another module was added"),
    ("MODULE_REMOVED", Class::Minor, "a module was removed"),
    (
        "MODULE_CHANGED",
        Class::Minor,
        "a module's settings changed",
    ),
    (
        "OTHER_CHANGED",
        Class::Minor,
        "another part of the manifest changed",
    ),
    (
        "ELIGIBILITY_LOST",
        Class::Info,
        "the old version was RoA-eligible and the new one is not: admins must be told at upgrade",
    ),
    (
        "ELIGIBILITY_GAINED",
        Class::Info,
        "the new version is RoA-eligible and the old one was not",
    ),
];

/// A change of eligibility between versions: `lost` (old eligible, new not) or gained, with
/// the rules that fire on the ineligible side and the place of the first one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EligibilityChange {
    pub lost: bool,
    pub rules: Vec<&'static str>,
    pub at: Loc,
}

/// The result of comparing two versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    pub update: Update,
    pub reasons: Vec<Reason>,
}

/// Compares two manifests. `eligibility` is the change of RoA verdict, if any, with the first
/// error of the ineligible side; it becomes an info reason.
pub fn diff(old: &Manifest, new: &Manifest, eligibility: Option<EligibilityChange>) -> Diff {
    let mut d = Differ::default();
    d.scopes(old, new);
    d.csp(old, new);
    d.egress(old, new);
    d.webtriggers(old, new);
    d.licensing(old, new);
    d.providers(old, new);
    d.remotes(old, new);
    d.modules(old, new);
    d.other(old, new);
    if let Some(change) = eligibility {
        let rules = change.rules.join(", ");
        let (id, side, message) = if change.lost {
            (
                "ELIGIBILITY_LOST",
                Side::New,
                format!(
                    "the new version loses the Runs on Atlassian badge ({rules}): site admins must be told at upgrade time"
                ),
            )
        } else {
            (
                "ELIGIBILITY_GAINED",
                Side::Old,
                format!(
                    "the new version gains Runs on Atlassian eligibility; the old one had {rules}"
                ),
            )
        };
        d.push(id, side, &change.at, message);
    }
    let update = d
        .reasons
        .iter()
        .map(|r| match r.class {
            Class::Major => Update::Major,
            Class::Minor => Update::Minor,
            Class::Info => Update::None,
        })
        .max()
        .unwrap_or(Update::None);
    Diff {
        update,
        reasons: d.reasons,
    }
}

/// Items of two versions paired by a key, occurrence by occurrence: the second `x` of the old
/// version goes with the second `x` of the new one, so that duplicate keys (which the
/// platform would refuse) are still compared consistently and a manifest never differs from
/// itself.
struct Paired<'a, T> {
    /// Every new item, in file order, with its old counterpart if any.
    new: Vec<(Option<&'a T>, &'a T)>,
    /// Old items with no counterpart, in file order.
    removed: Vec<&'a T>,
}

fn pair<'a, T, K: Ord + Clone>(old: &'a [T], new: &'a [T], key: impl Fn(&T) -> K) -> Paired<'a, T> {
    let occurrences = |items: &'a [T]| -> Vec<((K, usize), &'a T)> {
        let mut seen: BTreeMap<K, usize> = BTreeMap::new();
        items
            .iter()
            .map(|item| {
                let k = key(item);
                let n = seen.entry(k.clone()).or_insert(0);
                *n += 1;
                ((k, *n), item)
            })
            .collect()
    };
    let (before, after) = (occurrences(old), occurrences(new));
    let before_map: BTreeMap<&(K, usize), &'a T> = before.iter().map(|(k, v)| (k, *v)).collect();
    let after_keys: BTreeSet<&(K, usize)> = after.iter().map(|(k, _)| k).collect();
    Paired {
        new: after
            .iter()
            .map(|(k, item)| (before_map.get(k).copied(), *item))
            .collect(),
        removed: before
            .iter()
            .filter(|(k, _)| !after_keys.contains(k))
            .map(|(_, item)| *item)
            .collect(),
    }
}

/// How a module is matched across versions: its type and key (its path when it has none).
fn module_id(m: &Module) -> (String, String) {
    (
        m.kind.clone(),
        m.key.clone().unwrap_or_else(|| m.loc.path.clone()),
    )
}

pub(crate) fn root_loc() -> Loc {
    Loc {
        path: String::new(),
        pos: signoff_yaml::Pos { line: 1, column: 1 },
    }
}

#[derive(Default)]
struct Differ {
    reasons: Vec<Reason>,
}

impl Differ {
    fn push(&mut self, id: &'static str, side: Side, loc: &Loc, message: String) {
        let class = REASONS
            .iter()
            .find(|(r, _, _)| *r == id)
            .map_or(Class::Minor, |(_, c, _)| *c);
        self.reasons.push(Reason {
            id,
            path: loc.path.clone(),
            message,
            class,
            side,
            line: loc.pos.line,
            column: loc.pos.column,
        });
    }

    fn scopes(&mut self, old: &Manifest, new: &Manifest) {
        let before: BTreeSet<&str> = old.scopes.iter().map(|s| s.value.as_str()).collect();
        let after: BTreeSet<&str> = new.scopes.iter().map(|s| s.value.as_str()).collect();
        for s in &new.scopes {
            if !before.contains(s.value.as_str()) {
                self.push(
                    "SCOPE_ADDED",
                    Side::New,
                    &s.loc,
                    format!("scope `{}` added", s.value),
                );
            }
        }
        for s in &old.scopes {
            if !after.contains(s.value.as_str()) {
                self.push(
                    "SCOPE_REMOVED",
                    Side::Old,
                    &s.loc,
                    format!("scope `{}` removed", s.value),
                );
            }
        }
    }

    fn csp(&mut self, old: &Manifest, new: &Manifest) {
        let key = |o: &crate::model::CspOption| (o.list.clone(), o.value.clone());
        let before: BTreeSet<_> = old.csp.iter().map(key).collect();
        let after: BTreeSet<_> = new.csp.iter().map(key).collect();
        for o in &new.csp {
            if !before.contains(&key(o)) {
                self.push(
                    "CSP_OPTION_ADDED",
                    Side::New,
                    &o.loc,
                    format!("CSP option `{}` added to content.{}", o.value, o.list),
                );
            }
        }
        for o in &old.csp {
            if !after.contains(&key(o)) {
                self.push(
                    "CSP_OPTION_REMOVED",
                    Side::Old,
                    &o.loc,
                    format!("CSP option `{}` removed from content.{}", o.value, o.list),
                );
            }
        }
    }

    fn egress(&mut self, old: &Manifest, new: &Manifest) {
        let paired = pair(&old.egress, &new.egress, |e| {
            (e.list, Address::parse(&e.address()).canonical())
        });
        let any_true_before = old.egress.iter().any(Egress::in_scope_eud);
        for (prev, e) in paired.new {
            let Some(prev) = prev else {
                let mut what = format!("{} \"{}\" added", e.list.name(), e.address());
                if let Some(c) = e.category() {
                    what.push_str(&format!(" with category `{c}`"));
                }
                self.push("EGRESS_URL_ADDED", Side::New, &e.loc, what);
                continue;
            };
            let (was, is) = (
                prev.category().map(str::to_ascii_lowercase),
                e.category().map(str::to_ascii_lowercase),
            );
            if was != is {
                self.push(
                    "EGRESS_CATEGORY_CHANGED",
                    Side::New,
                    &e.loc,
                    format!(
                        "category of {} \"{}\" changed from {} to {}",
                        e.list.name(),
                        e.address(),
                        was.as_deref().unwrap_or("none"),
                        is.as_deref().unwrap_or("none")
                    ),
                );
            }
            if prev.in_scope_eud() != e.in_scope_eud() {
                let first = e.in_scope_eud() && !any_true_before;
                self.push(
                    if first {
                        "IN_SCOPE_EUD_FIRST_TRUE"
                    } else {
                        "IN_SCOPE_EUD_CHANGED"
                    },
                    Side::New,
                    &e.loc,
                    format!(
                        "inScopeEUD of {} \"{}\" changed from {} to {}{}",
                        e.list.name(),
                        e.address(),
                        prev.in_scope_eud(),
                        e.in_scope_eud(),
                        if first {
                            ": the app may now send in-scope End-User Data"
                        } else {
                            ""
                        }
                    ),
                );
            }
        }
        for e in paired.removed {
            self.push(
                "EGRESS_URL_REMOVED",
                Side::Old,
                &e.loc,
                format!("{} \"{}\" removed", e.list.name(), e.address()),
            );
        }
        let enabled = |m: &Manifest| m.configurable_egress.as_ref().is_some_and(|c| c.value);
        match (
            enabled(old),
            enabled(new),
            &new.configurable_egress,
            &old.configurable_egress,
        ) {
            (false, true, Some(c), _) => self.push(
                "EGRESS_CONFIGURABLE_ENABLED",
                Side::New,
                &c.loc,
                "customer-managed egress enabled".into(),
            ),
            (true, false, _, Some(c)) => self.push(
                "EGRESS_CONFIGURABLE_DISABLED",
                Side::Old,
                &c.loc,
                "customer-managed egress disabled".into(),
            ),
            _ => {}
        }
    }

    fn webtriggers(&mut self, old: &Manifest, new: &Manifest) {
        let (before, after): (Vec<&Module>, Vec<&Module>) = (
            old.modules_of("webtrigger").collect(),
            new.modules_of("webtrigger").collect(),
        );
        let any_dynamic_before = before.iter().any(|w| !w.is_static_webtrigger());
        for (prev, w) in pair(&before, &after, |w| module_id(w)).new {
            let key = w.key.clone().unwrap_or_default();
            let is_static = w.is_static_webtrigger();
            match prev.map(|p| p.is_static_webtrigger()) {
                None if !is_static && !any_dynamic_before => self.push(
                    "WEBTRIGGER_DYNAMIC_ADDED",
                    Side::New,
                    &w.loc,
                    format!("dynamic web trigger `{key}` added where the old version had none"),
                ),
                None => self.push(
                    "WEBTRIGGER_ADDED",
                    Side::New,
                    &w.loc,
                    format!(
                        "{} web trigger `{key}` added",
                        if is_static { "static" } else { "dynamic" }
                    ),
                ),
                Some(true) if !is_static => self.push(
                    "WEBTRIGGER_BECAME_DYNAMIC",
                    Side::New,
                    &w.loc,
                    format!("web trigger `{key}` changed from static to dynamic"),
                ),
                Some(false) if is_static => self.push(
                    "WEBTRIGGER_BECAME_STATIC",
                    Side::New,
                    &w.loc,
                    format!("web trigger `{key}` changed from dynamic to static"),
                ),
                Some(_) => {}
            }
        }
    }

    fn licensing(&mut self, old: &Manifest, new: &Manifest) {
        let on = |m: &Manifest| m.app.licensing.as_ref().is_some_and(|l| l.value);
        match (on(old), on(new)) {
            (false, true) => {
                let loc = new
                    .app
                    .licensing
                    .as_ref()
                    .map(|l| l.loc.clone())
                    .unwrap_or_else(root_loc);
                self.push(
                    "LICENSING_ENABLED",
                    Side::New,
                    &loc,
                    "licensing enabled".into(),
                );
            }
            (true, false) => {
                let loc = old
                    .app
                    .licensing
                    .as_ref()
                    .map(|l| l.loc.clone())
                    .unwrap_or_else(root_loc);
                self.push(
                    "LICENSING_DISABLED",
                    Side::Old,
                    &loc,
                    "licensing disabled".into(),
                );
            }
            _ => {}
        }
    }

    fn providers(&mut self, old: &Manifest, new: &Manifest) {
        let paired = pair(&old.providers, &new.providers, |p| p.key.clone());
        for (prev, p) in paired.new {
            let Some(prev) = prev else {
                self.push(
                    "PROVIDER_ADDED",
                    Side::New,
                    &p.loc,
                    format!("auth provider `{}` added", p.key),
                );
                continue;
            };
            let id = |c: &Option<crate::model::Item<String>>| c.as_ref().map(|i| i.value.clone());
            if id(&prev.client_id) != id(&p.client_id) {
                let loc = p.client_id.as_ref().map_or(&p.loc, |c| &c.loc);
                self.push(
                    "PROVIDER_CLIENT_ID_CHANGED",
                    Side::New,
                    loc,
                    format!("clientId of provider `{}` changed", p.key),
                );
            }
            if prev.remotes != p.remotes {
                self.push(
                    "PROVIDER_REMOTES_CHANGED",
                    Side::New,
                    &p.loc,
                    format!(
                        "remotes of provider `{}` changed from [{}] to [{}]",
                        p.key,
                        prev.remotes.join(", "),
                        p.remotes.join(", ")
                    ),
                );
            }
        }
        for p in paired.removed {
            self.push(
                "PROVIDER_REMOVED",
                Side::Old,
                &p.loc,
                format!("auth provider `{}` removed", p.key),
            );
        }
    }

    fn remotes(&mut self, old: &Manifest, new: &Manifest) {
        let paired = pair(&old.remotes, &new.remotes, |r| r.key.clone());
        for (prev, r) in paired.new {
            let Some(prev) = prev else {
                self.push(
                    "REMOTE_ADDED",
                    Side::New,
                    &r.loc,
                    format!("remote `{}` added", r.key),
                );
                continue;
            };
            let url = |x: &crate::model::Remote| x.base_url.as_ref().map(|b| b.value.clone());
            if url(prev) != url(r) {
                let loc = r.base_url.as_ref().map_or(&r.loc, |b| &b.loc);
                self.push(
                    "REMOTE_BASE_URL_CHANGED",
                    Side::New,
                    loc,
                    format!("baseUrl of remote `{}` changed", r.key),
                );
            }
            if prev.operations != r.operations {
                let show = |o: &Option<Vec<String>>| {
                    o.as_ref()
                        .map_or("none declared".to_string(), |o| o.join(", "))
                };
                self.push(
                    "REMOTE_OPERATIONS_CHANGED",
                    Side::New,
                    &r.loc,
                    format!(
                        "operations of remote `{}` changed from {} to {}",
                        r.key,
                        show(&prev.operations),
                        show(&r.operations)
                    ),
                );
            }
        }
        for r in paired.removed {
            self.push(
                "REMOTE_REMOVED",
                Side::Old,
                &r.loc,
                format!("remote `{}` removed", r.key),
            );
        }
    }

    fn modules(&mut self, old: &Manifest, new: &Manifest) {
        let paired = pair(&old.modules, &new.modules, module_id);
        for (prev, m) in paired.new {
            match prev {
                // Web triggers have reasons of their own above.
                None if m.kind == "webtrigger" => {}
                None => {
                    let reason = match m.kind.as_str() {
                        "function" => "FUNCTION_ADDED",
                        "trigger" => "TRIGGER_ADDED",
                        "scheduledTrigger" => "SCHEDULED_TRIGGER_ADDED",
                        "consumer" => "CONSUMER_ADDED",
                        _ => "MODULE_ADDED",
                    };
                    self.push(reason, Side::New, &m.loc, format!("{} added", m.label()));
                }
                // A web trigger that only changed its response type has a reason of its own.
                Some(prev)
                    if prev.node.canonical() != m.node.canonical()
                        && !(m.kind == "webtrigger"
                            && prev.is_static_webtrigger() != m.is_static_webtrigger()) =>
                {
                    self.push(
                        "MODULE_CHANGED",
                        Side::New,
                        &m.loc,
                        format!("{} changed", m.label()),
                    );
                }
                Some(_) => {}
            }
        }
        for m in paired.removed {
            self.push(
                "MODULE_REMOVED",
                Side::Old,
                &m.loc,
                format!("{} removed", m.label()),
            );
        }
    }

    /// Everything outside the parts compared above: report the top-level sections (and the
    /// parts of `app` and `permissions` no rule covers) that differ.
    fn other(&mut self, old: &Manifest, new: &Manifest) {
        let typed: &[&[&str]] = &[
            &["modules"],
            &["remotes"],
            &["providers"],
            &["permissions", "scopes"],
            &["permissions", "content"],
            &["permissions", "external"],
            &["app", "licensing"],
        ];
        let sections = |m: &Manifest| -> BTreeMap<String, (String, signoff_yaml::Pos)> {
            let mut out = BTreeMap::new();
            for (k, v) in m.root.as_map().unwrap_or_default() {
                let name = k.scalar_text().unwrap_or_default().trim().to_string();
                let children = match name.as_str() {
                    "app" | "permissions" => v.as_map(),
                    _ => None,
                };
                match children {
                    Some(children) => {
                        for (ck, cv) in children {
                            let child = ck.scalar_text().unwrap_or_default().trim().to_string();
                            if !typed
                                .iter()
                                .any(|t| t.len() == 2 && t[0] == name && t[1] == child)
                            {
                                out.insert(format!("{name}.{child}"), (cv.canonical(), ck.pos));
                            }
                        }
                    }
                    None if !typed.iter().any(|t| t.len() == 1 && t[0] == name) => {
                        out.insert(name, (v.canonical(), k.pos));
                    }
                    None => {}
                }
            }
            out
        };
        let (before, after) = (sections(old), sections(new));
        let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        for key in keys {
            match (before.get(key), after.get(key)) {
                (Some(a), Some(b)) if a.0 == b.0 => {}
                (_, Some((_, pos))) => self.push(
                    "OTHER_CHANGED",
                    Side::New,
                    &Loc {
                        path: key.clone(),
                        pos: *pos,
                    },
                    format!("`{key}` changed"),
                ),
                (Some((_, pos)), None) => self.push(
                    "OTHER_CHANGED",
                    Side::Old,
                    &Loc {
                        path: key.clone(),
                        pos: *pos,
                    },
                    format!("`{key}` removed"),
                ),
                (None, None) => {}
            }
        }
    }
}
