//! The typed Forge manifest: what eligibility and upgrade rules look at, each piece with the
//! manifest path and the line and column it came from.
//!
//! Loading is forgiving by design. Real manifests put things in the wrong place, use legacy
//! shapes and leave `${VAR}` placeholders in; every such oddity becomes a warning [`Finding`]
//! at its place and loading goes on. Only a root that is not a mapping, or `modules` that is
//! not a mapping, stops it: nothing sensible can be checked then.

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;

use signoff_yaml::{Node, Pos, Value};

use crate::finding::{Finding, Severity};

/// Where a piece of the manifest is: its path (`permissions.external.fetch.backend[1]`) and
/// the line and column where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    pub path: String,
    pub pos: Pos,
}

/// A value and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item<T> {
    pub value: T,
    pub loc: Loc,
}

/// A manifest loaded from YAML.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub app: App,
    pub modules: Vec<Module>,
    pub scopes: Vec<Item<String>>,
    /// `permissions.content.scripts|styles` options such as `unsafe-inline`.
    pub csp: Vec<CspOption>,
    pub egress: Vec<Egress>,
    /// `permissions.external.configurable.enabled`.
    pub configurable_egress: Option<Item<bool>>,
    pub remotes: Vec<Remote>,
    pub providers: Vec<Provider>,
    /// Where `connectModules` is, when present.
    pub connect_modules: Option<Loc>,
    /// Structural warnings met while loading.
    pub warnings: Vec<Finding>,
    /// The tree, for comparisons of parts the model does not type. The `modules` section has
    /// been moved out of it into [`Manifest::modules`] (its value here is null).
    pub root: Node,
}

/// The `app` section.
#[derive(Debug, Clone, Default)]
pub struct App {
    pub id: Option<Item<String>>,
    pub runtime: Option<Item<String>>,
    pub licensing: Option<Item<bool>>,
    /// `app.connect.remote`: a Connect-on-Forge app served by a remote.
    pub connect_remote: Option<Item<String>>,
}

/// One module: its type (`webtrigger`), its key, and its raw node.
#[derive(Debug, Clone)]
pub struct Module {
    pub kind: String,
    pub key: Option<String>,
    pub loc: Loc,
    pub node: Node,
}

/// One CSP option under `permissions.content`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CspOption {
    /// `scripts` or `styles`.
    pub list: String,
    pub value: String,
    pub loc: Loc,
}

/// The egress lists under `permissions.external`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EgressList {
    FetchBackend,
    FetchClient,
    Images,
    Media,
    Frames,
    Fonts,
    Styles,
    Scripts,
    Navigation,
}

impl EgressList {
    /// The path of the list below `permissions.external`.
    pub fn name(self) -> &'static str {
        match self {
            EgressList::FetchBackend => "fetch.backend",
            EgressList::FetchClient => "fetch.client",
            EgressList::Images => "images",
            EgressList::Media => "media",
            EgressList::Frames => "frames",
            EgressList::Fonts => "fonts",
            EgressList::Styles => "styles",
            EgressList::Scripts => "scripts",
            EgressList::Navigation => "navigation",
        }
    }

    fn from_name(name: &str) -> Option<EgressList> {
        Some(match name {
            "images" => EgressList::Images,
            "media" => EgressList::Media,
            "frames" => EgressList::Frames,
            "fonts" => EgressList::Fonts,
            "styles" => EgressList::Styles,
            "scripts" => EgressList::Scripts,
            "navigation" => EgressList::Navigation,
            _ => return None,
        })
    }

    pub fn is_fetch(self) -> bool {
        matches!(self, EgressList::FetchBackend | EgressList::FetchClient)
    }
}

/// One entry of an egress list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Egress {
    pub list: EgressList,
    pub loc: Loc,
    pub kind: EgressKind,
}

/// The shapes an egress entry can take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EgressKind {
    /// A plain string (legacy, deprecated).
    Legacy(String),
    /// `{address, category?, inScopeEUD?}`.
    Object {
        address: String,
        category: Option<Item<String>>,
        in_scope_eud: InScope,
    },
    /// `{remote: key}`, only meaningful in the fetch lists.
    Remote(String),
}

/// What an entry says about in-scope End-User Data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InScope {
    /// Omitted: the platform assumes `true`.
    Default,
    Explicit(bool),
    /// Present but not a boolean (for example the string `"false"`): treated as `true`.
    NotBool(String),
}

impl InScope {
    /// The value the platform uses: only an explicit boolean `false` means out of scope.
    pub fn effective(&self) -> bool {
        !matches!(self, InScope::Explicit(false))
    }
}

impl Egress {
    /// The address of the entry (for remotes, `remote:KEY`).
    pub fn address(&self) -> String {
        match &self.kind {
            EgressKind::Legacy(a) | EgressKind::Object { address: a, .. } => a.clone(),
            EgressKind::Remote(k) => format!("remote:{k}"),
        }
    }

    /// Whether the entry declares `category: analytics` (either case).
    pub fn is_analytics(&self) -> bool {
        matches!(&self.kind, EgressKind::Object { category: Some(c), .. }
            if c.value.eq_ignore_ascii_case("analytics"))
    }

    /// The category as written, if any.
    pub fn category(&self) -> Option<&str> {
        match &self.kind {
            EgressKind::Object { category, .. } => category.as_ref().map(|c| c.value.as_str()),
            _ => None,
        }
    }

    /// Whether the entry may carry in-scope End-User Data (true unless explicitly false).
    pub fn in_scope_eud(&self) -> bool {
        match &self.kind {
            EgressKind::Object { in_scope_eud, .. } => in_scope_eud.effective(),
            EgressKind::Legacy(_) | EgressKind::Remote(_) => true,
        }
    }
}

/// One entry of `remotes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub key: String,
    /// The `baseUrl` in a canonical form: a string, or `{realm: url}` sorted.
    pub base_url: Option<Item<BaseUrl>>,
    pub operations: Option<Vec<String>>,
    pub loc: Loc,
}

/// The two forms of `remotes[].baseUrl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseUrl {
    Single(String),
    /// Realm (or `default`) to URL, sorted by realm.
    PerRealm(Vec<(String, String)>),
}

/// One entry of `providers.auth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub key: String,
    pub client_id: Option<Item<String>>,
    pub remotes: Vec<String>,
    pub loc: Loc,
}

/// Why a manifest could not be loaded at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", .pos)]
pub struct LoadError {
    pub pos: Pos,
    pub message: String,
}

/// Top-level keys of a Forge manifest (platform.md §2).
const TOP_LEVEL_KEYS: &[&str] = &[
    "app",
    "modules",
    "permissions",
    "resources",
    "remotes",
    "providers",
    "connectModules",
    "environment",
    "translations",
    "services",
    "overrides",
    "endpoint",
];

impl Manifest {
    /// Builds the model from a parsed tree. Oddities become warnings; only a root that is not
    /// a mapping or `modules` that is not a mapping is an error.
    pub fn from_tree(mut root: Node) -> Result<Manifest, LoadError> {
        let Some(entries) = root.as_map() else {
            return Err(LoadError {
                pos: root.pos,
                message: format!("the manifest must be a mapping, found {}", root.kind()),
            });
        };
        let mut l = Loader::default();
        for (key, _) in entries {
            let name = key.scalar_text().unwrap_or_default();
            let name = name.trim();
            if !TOP_LEVEL_KEYS.contains(&name) {
                let hint = match name {
                    "external" | "scopes" | "content" => {
                        format!("; did you mean `permissions.{name}`? Here it has no effect")
                    }
                    "function" | "trigger" | "webtrigger" | "macro" => {
                        format!("; did you mean `modules.{name}`? Here it has no effect")
                    }
                    _ => String::new(),
                };
                l.warn(
                    "UNKNOWN_KEY",
                    name,
                    key.pos,
                    format!("unknown top-level key `{name}`{hint}"),
                );
            }
        }
        let app = l.app(root.get("app"));
        let modules = match take(&mut root, "modules") {
            None => Vec::new(),
            Some(v) if v.is_null() => Vec::new(),
            Some(v) => l.modules(v)?,
        };
        let mut m = Manifest {
            app,
            modules,
            scopes: Vec::new(),
            csp: Vec::new(),
            egress: Vec::new(),
            configurable_egress: None,
            remotes: Vec::new(),
            providers: Vec::new(),
            connect_modules: root.get_entry("connectModules").and_then(|(k, v)| {
                (!v.is_null()).then(|| Loc {
                    path: "connectModules".into(),
                    pos: k.pos,
                })
            }),
            warnings: Vec::new(),
            root,
        };
        let mut perms = Perms::default();
        if let Some(p) = m.root.get("permissions") {
            l.permissions(p, &mut perms);
        }
        m.scopes = perms.scopes;
        m.csp = perms.csp;
        m.egress = perms.egress;
        m.configurable_egress = perms.configurable_egress;
        if let Some(r) = m.root.get("remotes") {
            m.remotes = l.remotes(r);
        }
        if let Some(p) = m.root.get("providers") {
            m.providers = l.providers(p);
        }
        m.warnings = l.warnings;
        Ok(m)
    }

    /// The modules of one type.
    pub fn modules_of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Module> + 'a {
        self.modules.iter().filter(move |m| m.kind == kind)
    }
}

impl Module {
    /// A string field of the module, such as `function` or `interval`.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.node.get(name).and_then(Node::as_str)
    }

    /// For a `webtrigger`: whether `response.type` is `static` (dynamic is the default).
    pub fn is_static_webtrigger(&self) -> bool {
        self.node
            .get("response")
            .and_then(|r| r.get("type"))
            .and_then(Node::as_str)
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("static"))
    }

    /// A readable name: `webtrigger \`key\``.
    pub fn label(&self) -> String {
        match &self.key {
            Some(k) => format!("{} `{k}`", self.kind),
            None => self.kind.clone(),
        }
    }
}

/// What `permissions` holds, filled while loading.
#[derive(Default)]
struct Perms {
    scopes: Vec<Item<String>>,
    csp: Vec<CspOption>,
    egress: Vec<Egress>,
    configurable_egress: Option<Item<bool>>,
}

#[derive(Default)]
struct Loader {
    warnings: Vec<Finding>,
}

impl Loader {
    fn warn(&mut self, rule: &'static str, path: &str, pos: Pos, message: String) {
        self.warnings.push(Finding {
            rule,
            severity: Severity::Warning,
            message,
            path: path.to_string(),
            line: pos.line,
            column: pos.column,
        });
    }

    fn wrong_type(&mut self, path: &str, node: &Node, expected: &str) {
        self.warn(
            "WRONG_TYPE",
            path,
            node.pos,
            format!("`{path}` should be {expected}, found {}", node.kind()),
        );
    }

    /// A string item at `path`; a path built for the call is moved in, not copied.
    fn string(
        &mut self,
        path: impl AsRef<str> + Into<String>,
        node: &Node,
    ) -> Option<Item<String>> {
        match node.scalar_text() {
            Some(s) => Some(Item {
                value: s.into_owned(),
                loc: Loc {
                    path: path.into(),
                    pos: node.pos,
                },
            }),
            None => {
                if !node.is_null() {
                    self.wrong_type(path.as_ref(), node, "a string");
                }
                None
            }
        }
    }

    fn app(&mut self, node: Option<&Node>) -> App {
        let mut app = App::default();
        let Some(node) = node else {
            self.warn(
                "MISSING_APP",
                "app",
                Pos { line: 1, column: 1 },
                "the manifest has no `app` section".into(),
            );
            return app;
        };
        if node.as_map().is_none() {
            self.wrong_type("app", node, "a mapping");
            return app;
        }
        app.id = node.get("id").and_then(|n| self.string("app.id", n));
        match &app.id {
            None => self.warn(
                "MISSING_APP_ID",
                "app",
                node.pos,
                "`app.id` is missing".into(),
            ),
            Some(id) if !is_app_ari(&id.value) => self.warn(
                "INVALID_APP_ID",
                "app.id",
                id.loc.pos,
                format!(
                    "`{}` is not an app id of the form ari:cloud:ecosystem::app/<uuid>",
                    id.value
                ),
            ),
            Some(_) => {}
        }
        if let Some(rt) = node.get("runtime") {
            app.runtime = rt
                .get("name")
                .and_then(|n| self.string("app.runtime.name", n));
            if let Some(name) = &app.runtime {
                const RUNTIMES: &[&str] =
                    &["nodejs20.x", "nodejs22.x", "nodejs24.x", "wasm32-wasip2"];
                if !RUNTIMES.contains(&name.value.as_str()) {
                    self.warn(
                        "UNSUPPORTED_RUNTIME",
                        "app.runtime.name",
                        name.loc.pos,
                        format!(
                            "runtime `{}` is not one of {}",
                            name.value,
                            RUNTIMES.join(", ")
                        ),
                    );
                }
            }
            if let Some(mem) = rt.get("memoryMB") {
                self.memory("app.runtime.memoryMB", mem);
            }
        }
        if let Some(lic) = node.get("licensing") {
            if let Some(enabled) = lic.get("enabled") {
                app.licensing = self.boolean("app.licensing.enabled", enabled);
            }
        }
        if let Some(connect) = node.get("connect") {
            app.connect_remote = connect
                .get("remote")
                .and_then(|n| self.string("app.connect.remote", n));
        }
        app
    }

    fn memory(&mut self, path: &str, node: &Node) {
        match node.value {
            Value::Int(mb) if (128..=1024).contains(&mb) => {}
            Value::Int(mb) => self.warn(
                "INVALID_MEMORY",
                path,
                node.pos,
                format!("memoryMB is {mb}; the platform allows 128 to 1024"),
            ),
            _ => self.wrong_type(path, node, "a number of megabytes"),
        }
    }

    fn boolean(&mut self, path: &str, node: &Node) -> Option<Item<bool>> {
        match node.as_bool() {
            Some(b) => Some(Item {
                value: b,
                loc: Loc {
                    path: path.into(),
                    pos: node.pos,
                },
            }),
            None => {
                self.wrong_type(path, node, "true or false");
                None
            }
        }
    }

    fn modules(&mut self, node: Node) -> Result<Vec<Module>, LoadError> {
        let Value::Map(entries) = node.value else {
            return Err(LoadError {
                pos: node.pos,
                message: format!(
                    "`modules` must be a mapping of module type to a list, found {}",
                    node.kind()
                ),
            });
        };
        let mut modules = Vec::new();
        // A module type listed twice: the last list wins, as for any duplicate key (the YAML
        // layer has already warned).
        let names: Vec<String> = entries
            .iter()
            .map(|(k, _)| {
                k.scalar_string()
                    .unwrap_or_else(|| k.canonical())
                    .trim()
                    .to_string()
            })
            .collect();
        for (index, (k, v)) in entries.into_iter().enumerate() {
            let kind = &names[index];
            if names[index + 1..].contains(kind) {
                continue;
            }
            if !is_known_module_type(kind) {
                self.warn(
                    "UNKNOWN_MODULE_TYPE",
                    &format!("modules.{kind}"),
                    k.pos,
                    format!("module type `{kind}` is not one roa-check knows; it is kept and checked like the others"),
                );
            }
            let items: Vec<Node> = match v.value {
                Value::Seq(items) => items,
                Value::Null => Vec::new(),
                // A single module written without the list is a common slip; keep it.
                Value::Map(_) => {
                    self.wrong_type(&format!("modules.{kind}"), &v, "a list of modules");
                    vec![v]
                }
                _ => {
                    self.wrong_type(&format!("modules.{kind}"), &v, "a list of modules");
                    Vec::new()
                }
            };
            let base = joined("modules.", kind);
            for (i, item) in items.into_iter().enumerate() {
                let path = indexed(&base, i);
                if item.as_map().is_none() {
                    self.wrong_type(&path, &item, "a mapping");
                    continue;
                }
                let key = item.get("key").and_then(Node::scalar_text);
                if key.is_none() {
                    self.warn(
                        "MISSING_MODULE_KEY",
                        &path,
                        item.pos,
                        format!("this `{kind}` module has no `key`"),
                    );
                }
                let module = Module {
                    kind: kind.clone(),
                    key: key.map(|k| k.trim().to_string()),
                    loc: Loc {
                        path,
                        pos: item.pos,
                    },
                    node: item,
                };
                self.module_checks(&module);
                modules.push(module);
            }
        }
        Ok(modules)
    }

    /// Validator warnings for the module types whose settings the platform constrains.
    fn module_checks(&mut self, m: &Module) {
        let path = &m.loc.path;
        match m.kind.as_str() {
            "function" => {
                if let Some(t) = m.node.get("timeoutSeconds") {
                    match t.value {
                        Value::Int(s) if (1..=900).contains(&s) => {}
                        _ => self.warn(
                            "INVALID_TIMEOUT",
                            &format!("{path}.timeoutSeconds"),
                            t.pos,
                            "timeoutSeconds must be a whole number from 1 to 900".into(),
                        ),
                    }
                }
                if let Some(mem) = m.node.get("runtime").and_then(|r| r.get("memoryMB")) {
                    self.memory(&format!("{path}.runtime.memoryMB"), mem);
                }
            }
            "scheduledTrigger" => {
                const INTERVALS: &[&str] = &["fiveMinute", "hour", "day", "week"];
                match m.node.get("interval") {
                    Some(n) if n.as_str().is_some_and(|s| INTERVALS.contains(&s)) => {}
                    Some(n) => self.warn(
                        "INVALID_INTERVAL",
                        &format!("{path}.interval"),
                        n.pos,
                        format!(
                            "interval `{}` is not one of {}",
                            n.scalar_text().unwrap_or_default(),
                            INTERVALS.join(", ")
                        ),
                    ),
                    None => self.warn(
                        "INVALID_INTERVAL",
                        path,
                        m.loc.pos,
                        "a scheduledTrigger needs an `interval`".into(),
                    ),
                }
            }
            "webtrigger" if m.is_static_webtrigger() => {
                let outputs = m
                    .node
                    .get("response")
                    .and_then(|r| r.get("outputs"))
                    .and_then(Node::as_seq);
                match outputs {
                    Some(o) if !o.is_empty() && o.len() <= 20 => {}
                    Some(o) if o.len() > 20 => self.warn(
                        "INVALID_WEBTRIGGER_OUTPUTS",
                        &format!("{path}.response.outputs"),
                        m.loc.pos,
                        format!("a static web trigger has at most 20 outputs, found {}", o.len()),
                    ),
                    _ => self.warn(
                        "INVALID_WEBTRIGGER_OUTPUTS",
                        &format!("{path}.response"),
                        m.loc.pos,
                        "a static web trigger needs `response.outputs`, a list of {key, statusCode}"
                            .into(),
                    ),
                }
            }
            _ => {}
        }
    }

    fn permissions(&mut self, node: &Node, m: &mut Perms) {
        if node.as_map().is_none() {
            if !node.is_null() {
                self.wrong_type("permissions", node, "a mapping");
            }
            return;
        }
        if let Some(scopes) = node.get("scopes") {
            m.scopes = self.scopes(scopes);
        }
        if let Some(content) = node.get("content") {
            m.csp = self.csp(content);
        }
        if let Some(external) = node.get("external") {
            self.external(external, m);
        }
    }

    fn scopes<'t>(&mut self, node: &'t Node) -> Vec<Item<String>> {
        let mut out: Vec<Item<String>> = Vec::new();
        // Indexes into `out` by scope, to find duplicates without a quadratic search. The
        // keys borrow the tree's text, so finding a duplicate allocates nothing.
        let len = node.as_seq().map_or(0, <[Node]>::len);
        let mut seen: HashMap<Cow<'t, str>, usize> = HashMap::with_capacity(len);
        let mut add = |l: &mut Self, path: String, n: &'t Node| {
            let Some(text) = n.scalar_text() else {
                if !n.is_null() {
                    l.wrong_type(&path, n, "a string");
                }
                return;
            };
            let value = match text {
                Cow::Borrowed(t) => Cow::Borrowed(t.trim()),
                Cow::Owned(t) => Cow::Owned(t.trim().to_string()),
            };
            match seen.entry(value) {
                Entry::Occupied(first) => {
                    let first: &Item<String> = &out[*first.get()];
                    l.warn(
                        "DUPLICATE_SCOPE",
                        &path,
                        n.pos,
                        format!(
                            "scope `{}` is listed twice (first at {})",
                            first.value, first.loc.pos
                        ),
                    );
                }
                Entry::Vacant(slot) => {
                    out.push(Item {
                        value: slot.key().to_string(),
                        loc: Loc { path, pos: n.pos },
                    });
                    slot.insert(out.len() - 1);
                }
            }
        };
        match &node.value {
            Value::Seq(items) => {
                for (i, n) in items.iter().enumerate() {
                    add(self, indexed("permissions.scopes", i), n);
                }
            }
            // Scopes may also be a map of scope to options.
            Value::Map(entries) => {
                for (k, _) in entries {
                    let name = k.scalar_text().unwrap_or_default();
                    add(self, format!("permissions.scopes.{}", name.trim()), k);
                }
            }
            Value::Null => {}
            _ => self.wrong_type("permissions.scopes", node, "a list of scopes"),
        }
        out
    }

    fn csp(&mut self, node: &Node) -> Vec<CspOption> {
        let mut out = Vec::new();
        let Some(entries) = node.as_map() else {
            if !node.is_null() {
                self.wrong_type("permissions.content", node, "a mapping");
            }
            return out;
        };
        for (k, v) in entries {
            let list = k.scalar_text().unwrap_or_default().trim().to_string();
            let base = format!("permissions.content.{list}");
            if list != "scripts" && list != "styles" {
                self.warn(
                    "UNKNOWN_KEY",
                    &base,
                    k.pos,
                    format!(
                        "unknown key `{list}` in permissions.content (expected scripts or styles)"
                    ),
                );
            }
            let Some(items) = v.as_seq() else {
                if !v.is_null() {
                    self.wrong_type(&base, v, "a list");
                }
                continue;
            };
            for (i, n) in items.iter().enumerate() {
                let path = indexed(&base, i);
                if let Some(item) = self.string(path, n) {
                    out.push(CspOption {
                        list: list.clone(),
                        value: item.value.trim().trim_matches('\'').to_string(),
                        loc: item.loc,
                    });
                }
            }
        }
        out
    }

    fn external(&mut self, node: &Node, m: &mut Perms) {
        let Some(entries) = node.as_map() else {
            if !node.is_null() {
                self.wrong_type("permissions.external", node, "a mapping");
            }
            return;
        };
        for (k, v) in entries {
            let name = k.scalar_text().unwrap_or_default().trim().to_string();
            let base = format!("permissions.external.{name}");
            match name.as_str() {
                "fetch" => {
                    let Some(fetch) = v.as_map() else {
                        if !v.is_null() {
                            self.wrong_type(&base, v, "a mapping with backend and client");
                        }
                        continue;
                    };
                    for (fk, fv) in fetch {
                        let fname = fk.scalar_text().unwrap_or_default().trim().to_string();
                        let list = match fname.as_str() {
                            "backend" => EgressList::FetchBackend,
                            "client" => EgressList::FetchClient,
                            other => {
                                // Checked anyway (stricter reading): an address under fetch is
                                // an address the app meant to reach.
                                self.warn(
                                    "MISPLACED_EGRESS_LIST",
                                    &format!("{base}.{other}"),
                                    fk.pos,
                                    format!("`fetch.{other}` is not a fetch list (backend or client); did you mean `permissions.external.{other}`? Its entries are checked as fetch.backend"),
                                );
                                EgressList::FetchBackend
                            }
                        };
                        self.egress_list(list, &format!("{base}.{fname}"), fv, m);
                    }
                }
                "configurable" => {
                    if let Some(enabled) = v.get("enabled") {
                        m.configurable_egress =
                            self.boolean("permissions.external.configurable.enabled", enabled);
                    }
                }
                _ => match EgressList::from_name(&name) {
                    Some(list) => self.egress_list(list, &base, v, m),
                    None => self.warn(
                        "UNKNOWN_KEY",
                        &base,
                        k.pos,
                        format!("unknown egress list `{name}` in permissions.external"),
                    ),
                },
            }
        }
    }

    fn egress_list(&mut self, list: EgressList, base: &str, node: &Node, m: &mut Perms) {
        let Some(items) = node.as_seq() else {
            if !node.is_null() {
                self.wrong_type(base, node, "a list of addresses");
            }
            return;
        };
        for (i, n) in items.iter().enumerate() {
            let path = indexed(base, i);
            let kind = match &n.value {
                Value::Map(_) => {
                    if let Some(remote) = n.get("remote") {
                        match remote.scalar_text() {
                            Some(k) => EgressKind::Remote(k.trim().to_string()),
                            None => {
                                self.wrong_type(&format!("{path}.remote"), remote, "a remote key");
                                continue;
                            }
                        }
                    } else if let Some(address) = n.get("address") {
                        let Some(address) = address.scalar_text() else {
                            self.wrong_type(&format!("{path}.address"), address, "an address");
                            continue;
                        };
                        let category = n
                            .get("category")
                            .and_then(|c| self.string(joined(&path, ".category"), c));
                        let in_scope_eud = match n.get("inScopeEUD") {
                            None => InScope::Default,
                            Some(v) => match v.as_bool() {
                                Some(b) => InScope::Explicit(b),
                                None => {
                                    self.warn(
                                        "INVALID_IN_SCOPE_EUD",
                                        &format!("{path}.inScopeEUD"),
                                        v.pos,
                                        format!("inScopeEUD must be true or false, found {}; it counts as true", v.kind()),
                                    );
                                    InScope::NotBool(v.scalar_string().unwrap_or_default())
                                }
                            },
                        };
                        EgressKind::Object {
                            address: address.trim().to_string(),
                            category,
                            in_scope_eud,
                        }
                    } else {
                        self.warn(
                            "INVALID_EGRESS_ENTRY",
                            &path,
                            n.pos,
                            "an egress entry object needs `address` (or `remote`)".into(),
                        );
                        continue;
                    }
                }
                _ => match n.scalar_text() {
                    Some(s) => EgressKind::Legacy(s.trim().to_string()),
                    None => {
                        self.wrong_type(&path, n, "an address or {address, category, inScopeEUD}");
                        continue;
                    }
                },
            };
            m.egress.push(Egress {
                list,
                loc: Loc { path, pos: n.pos },
                kind,
            });
        }
    }

    fn remotes(&mut self, node: &Node) -> Vec<Remote> {
        let mut out = Vec::new();
        let Some(items) = node.as_seq() else {
            if !node.is_null() {
                self.wrong_type("remotes", node, "a list");
            }
            return out;
        };
        for (i, n) in items.iter().enumerate() {
            let path = indexed("remotes", i);
            let key = n.get("key").and_then(Node::scalar_text).unwrap_or_default();
            let base_url = n.get("baseUrl").and_then(|b| {
                let value = match &b.value {
                    Value::Map(entries) => {
                        let mut pairs: Vec<(String, String)> = entries
                            .iter()
                            .map(|(k, v)| {
                                (
                                    k.scalar_string().unwrap_or_default(),
                                    v.scalar_string().unwrap_or_else(|| v.canonical()),
                                )
                            })
                            .collect();
                        pairs.sort();
                        BaseUrl::PerRealm(pairs)
                    }
                    _ => BaseUrl::Single(b.scalar_string()?),
                };
                Some(Item {
                    value,
                    loc: Loc {
                        path: format!("{path}.baseUrl"),
                        pos: b.pos,
                    },
                })
            });
            let operations = n.get("operations").and_then(Node::as_seq).map(|ops| {
                let mut ops: Vec<String> = ops.iter().filter_map(Node::scalar_string).collect();
                ops.sort();
                ops
            });
            if operations
                .as_ref()
                .is_some_and(|o| o.iter().any(|op| op == "storage"))
                && n.get("storage").and_then(|s| s.get("inScopeEUD")).is_none()
            {
                self.warn(
                    "REMOTE_STORAGE_WITHOUT_IN_SCOPE_EUD",
                    &path,
                    n.pos,
                    format!(
                        "remote `{key}` lists the `storage` operation but not `storage.inScopeEUD`"
                    ),
                );
            }
            out.push(Remote {
                key: key.trim().to_string(),
                base_url,
                operations,
                loc: Loc { path, pos: n.pos },
            });
        }
        out
    }

    fn providers(&mut self, node: &Node) -> Vec<Provider> {
        let mut out = Vec::new();
        let Some(auth) = node.get("auth") else {
            return out;
        };
        let Some(items) = auth.as_seq() else {
            if !auth.is_null() {
                self.wrong_type("providers.auth", auth, "a list");
            }
            return out;
        };
        for (i, n) in items.iter().enumerate() {
            let path = format!("providers.auth[{i}]");
            let key = n.get("key").and_then(Node::scalar_text).unwrap_or_default();
            let client_id = n
                .get("clientId")
                .and_then(|c| self.string(format!("{path}.clientId"), c));
            let mut remotes: Vec<String> = n
                .get("remotes")
                .and_then(Node::as_seq)
                .map(|r| r.iter().filter_map(Node::scalar_string).collect())
                .unwrap_or_default();
            remotes.sort();
            out.push(Provider {
                key: key.trim().to_string(),
                client_id,
                remotes,
                loc: Loc { path, pos: n.pos },
            });
        }
        out
    }
}

/// `base[i]`, built without the formatting machinery: paths are made for every module and
/// egress entry, and this is on the hot path of a check.
fn indexed(base: &str, i: usize) -> String {
    let mut digits = [0u8; 20];
    let mut n = i;
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut out = String::with_capacity(base.len() + 2 + digits.len() - at);
    out.push_str(base);
    out.push('[');
    out.extend(digits[at..].iter().map(|&d| d as char));
    out.push(']');
    out
}

/// `a` followed by `b`.
fn joined(a: &str, b: &str) -> String {
    let mut out = String::with_capacity(a.len() + b.len());
    out.push_str(a);
    out.push_str(b);
    out
}

/// Moves the value of `key` out of a mapping, leaving null in its place.
fn take(root: &mut Node, key: &str) -> Option<Node> {
    let Value::Map(entries) = &mut root.value else {
        return None;
    };
    let (_, v) = entries.iter_mut().rev().find(|(k, _)| k.is_key(key))?;
    let pos = v.pos;
    Some(std::mem::replace(
        v,
        Node {
            value: Value::Null,
            pos,
        },
    ))
}

/// `ari:cloud:ecosystem::app/<uuid>`, or a `${VAR}` placeholder for the id part.
fn is_app_ari(id: &str) -> bool {
    let Some(rest) = id.trim().strip_prefix("ari:cloud:ecosystem::app/") else {
        return false;
    };
    if rest.starts_with("${") && rest.ends_with('}') {
        return true;
    }
    let groups: Vec<&str> = rest.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Module types roa-check knows. Product namespaces list their common types; a type in a
/// known namespace but not listed is still reported, because typos there are common.
fn is_known_module_type(kind: &str) -> bool {
    const CORE: &[&str] = &[
        "function",
        "trigger",
        "scheduledTrigger",
        "webtrigger",
        "consumer",
        "sql",
        "endpoint",
        "remote",
        "macro",
        "action",
        "llm",
        "migration",
    ];
    const NAMESPACED: &[&str] = &[
        // Jira
        "jira:adminPage",
        "jira:globalPage",
        "jira:projectPage",
        "jira:projectSettingsPage",
        "jira:personalSettingsPage",
        "jira:fullPage",
        "jira:issuePanel",
        "jira:issueGlance",
        "jira:issueAction",
        "jira:issueActivity",
        "jira:issueContext",
        "jira:issueViewBackgroundScript",
        "jira:dashboardGadget",
        "jira:customField",
        "jira:customFieldType",
        "jira:uiModifications",
        "jira:workflowValidator",
        "jira:workflowCondition",
        "jira:workflowPostFunction",
        "jira:entityProperty",
        "jira:jqlFunction",
        "jira:backlogAction",
        "jira:boardAction",
        "jira:sprintAction",
        "jira:timeTrackingProvider",
        "jira:command",
        "jira:globalPermission",
        "jira:projectPermission",
        "jira:issueNavigatorAction",
        // Confluence
        "confluence:globalPage",
        "confluence:globalSettings",
        "confluence:spacePage",
        "confluence:spaceSettings",
        "confluence:contentAction",
        "confluence:contentBylineItem",
        "confluence:contextMenu",
        "confluence:homepageFeed",
        "confluence:customContent",
        "confluence:backgroundScript",
        "confluence:fullPage",
        "confluence:pageBanner",
        // Jira Service Management
        "jiraServiceManagement:portalRequestDetail",
        "jiraServiceManagement:portalRequestDetailPanel",
        "jiraServiceManagement:portalFooter",
        "jiraServiceManagement:portalHeader",
        "jiraServiceManagement:portalSubheader",
        "jiraServiceManagement:portalProfilePanel",
        "jiraServiceManagement:portalRequestCreatePropertyPanel",
        "jiraServiceManagement:portalUserMenuAction",
        "jiraServiceManagement:portalRequestViewAction",
        "jiraServiceManagement:queuePage",
        "jiraServiceManagement:organizationPanel",
        "jiraServiceManagement:assetsImportType",
        // Compass
        "compass:adminPage",
        "compass:componentPage",
        "compass:globalPage",
        "compass:teamPage",
        "compass:dataProvider",
        // Bitbucket
        "bitbucket:repoCodeOverviewCard",
        "bitbucket:repoPullRequestCard",
        "bitbucket:repoPullRequestOverviewCard",
        "bitbucket:mergeCheck",
        "bitbucket:repoSettingsMenuPage",
        "bitbucket:repoMainMenuPage",
        "bitbucket:workspaceSettingsMenuPage",
        "bitbucket:dynamicPipelinesProvider",
        // Cross-product
        "rovo:agent",
        "rovo:agentConnector",
        "automation:actionProvider",
        "devops:deploymentInfoProvider",
        "devops:buildInfoProvider",
        "devops:developmentInfoProvider",
        "devops:featureFlagInfoProvider",
        "devops:remoteLinkInfoProvider",
        "devops:securityInfoProvider",
        "devops:designInfoProvider",
        "devops:documentationInfoProvider",
        "devops:operationsInfoProvider",
        "graph:smartLink",
    ];
    // Connect modules are rules of their own (HAS_CONNECT_MODULES), not unknown types.
    kind.starts_with("connect-") || CORE.contains(&kind) || NAMESPACED.contains(&kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_built_like_format() {
        for i in [0, 7, 10, 99, 12345] {
            assert_eq!(
                indexed("modules.function", i),
                format!("modules.function[{i}]")
            );
        }
        assert_eq!(joined("a", ".b"), "a.b");
    }
}
