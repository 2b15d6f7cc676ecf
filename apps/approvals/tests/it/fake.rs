//! In-memory stand-ins for the platform: storage's `MemoryKvs` (which refuses what the
//! platform refuses) and a Confluence with pages, properties and content states.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};

use approvals::app::App;
use approvals::ports::{AppError, ContentState, Level, Page, Platform, Property};
use signoff_storage::hosted::{HostedStore, MemoryKvs};

/// 2026-01-05T09:00:00Z.
pub const START_MS: u64 = 1_767_603_600_000;

#[derive(Debug, Default)]
pub struct FakePlatform {
    pub now_ms: Cell<u64>,
    pub caller: RefCell<Option<String>>,
    pub pages: RefCell<BTreeMap<String, Page>>,
    pub properties: RefCell<HashMap<(String, String), Property>>,
    pub states: RefCell<HashMap<String, ContentState>>,
    pub analytics: RefCell<Vec<(String, String)>>,
    pub analytics_blocked: Cell<bool>,
    pub posts: RefCell<Vec<(String, String)>>,
    pub egress_blocked: Cell<bool>,
    pub logs: RefCell<Vec<String>>,
    /// The key-value store's secrets (apart from its keys, as on the platform).
    pub secrets: RefCell<BTreeMap<String, String>>,
    /// Random bytes handed out so far: the next ones follow from it (deterministic).
    pub random_drawn: Cell<u64>,
}

/// Everything a test needs: one installation's key-value store, the engine's store over
/// it (as in the component), and the platform.
#[derive(Debug)]
pub struct World {
    pub store: HostedStore<&'static MemoryKvs>,
    pub kvs: &'static MemoryKvs,
    pub platform: FakePlatform,
}

impl World {
    pub fn new() -> World {
        // Leaked so that the store and the app can share it without a self-reference; a
        // test's store is small.
        let kvs: &'static MemoryKvs = Box::leak(Box::new(MemoryKvs::new()));
        let w = World {
            store: HostedStore::new(kvs),
            kvs,
            platform: FakePlatform::default(),
        };
        w.platform.now_ms.set(START_MS);
        w
    }

    pub fn app(
        &self,
    ) -> App<'_, HostedStore<&'static MemoryKvs>, &'static MemoryKvs, FakePlatform> {
        App::new(&self.store, &self.kvs, &self.platform)
    }

    /// Calls a resolver and parses its JSON answer.
    pub fn call(
        &self,
        name: &str,
        payload: serde_json::Value,
    ) -> Result<serde_json::Value, AppError> {
        let out = self.app().resolver(name, &payload.to_string())?;
        Ok(serde_json::from_str(&out).expect("resolvers answer JSON"))
    }

    /// Calls a resolver that must be refused; returns the error code.
    #[track_caller]
    pub fn refused(&self, name: &str, payload: serde_json::Value) -> AppError {
        match self.call(name, payload) {
            Ok(v) => panic!("{name} was not refused: {v}"),
            Err(e) => e,
        }
    }

    pub fn advance_secs(&self, secs: u64) {
        self.platform
            .now_ms
            .set(self.platform.now_ms.get() + secs * 1000);
    }

    /// Creates or updates a page as `author` and sends the matching product event.
    pub fn write_page(&self, id: &str, space: &str, title: &str, body: &str, author: &str) {
        let mut pages = self.platform.pages.borrow_mut();
        let (event, version) = match pages.get_mut(id) {
            Some(p) => {
                p.version += 1;
                p.title = title.into();
                p.body = body.into();
                p.author = author.into();
                ("avi:confluence:updated:page", p.version)
            }
            None => {
                pages.insert(
                    id.into(),
                    Page {
                        id: id.into(),
                        space: space.into(),
                        title: title.into(),
                        body: body.into(),
                        author: author.into(),
                        version: 1,
                    },
                );
                ("avi:confluence:created:page", 1)
            }
        };
        drop(pages);
        let ev = serde_json::json!({
            "eventType": event,
            "atlassianId": author,
            "content": {"id": id, "type": "page", "status": "current", "title": title,
                        "space": {"key": space}, "version": {"number": version}},
        });
        self.app()
            .on_event(&ev.to_string())
            .expect("the event is handled");
    }

    pub fn property(&self, page: &str, key: &str) -> Option<serde_json::Value> {
        let props = self.platform.properties.borrow();
        let p = props.get(&(page.to_owned(), key.to_owned()))?;
        Some(serde_json::from_str(&p.value).expect("properties are JSON"))
    }

    /// `user`'s TOTP secret (base32), enrolling them through `totp-enrol` the first time.
    pub fn totp_secret(&self, user: &str) -> String {
        let key = format!("app:totp-secret:{user}");
        if let Some(s) = self.platform.secrets.borrow().get(&key)
            && let Ok(serde_json::Value::String(s)) = serde_json::from_str(s)
        {
            return s;
        }
        let a = self
            .call("totp-enrol", serde_json::json!({"accountId": user}))
            .expect("enrolled");
        a["secret"].as_str().expect("a secret").to_owned()
    }

    /// The code of `secret` now (the platform's clock).
    pub fn totp_code(&self, secret: &str) -> String {
        approvals::totp::code_at(secret, self.platform.now_ms.get() / 1000).expect("a secret")
    }

    pub fn lozenge(&self, page: &str) -> Option<ContentState> {
        self.platform.states.borrow().get(page).cloned()
    }
}

impl Platform for FakePlatform {
    fn now_ms(&self) -> u64 {
        self.now_ms.get()
    }

    fn caller(&self) -> Option<String> {
        self.caller.borrow().clone()
    }

    fn get_page(&self, id: &str) -> Result<Option<Page>, AppError> {
        Ok(self.pages.borrow().get(id).cloned())
    }

    fn get_property(&self, page: &str, key: &str) -> Result<Option<Property>, AppError> {
        Ok(self
            .properties
            .borrow()
            .get(&(page.to_owned(), key.to_owned()))
            .cloned())
    }

    fn set_property(
        &self,
        page: &str,
        key: &str,
        value: &str,
        version: u32,
    ) -> Result<(), AppError> {
        assert!(value.len() <= 32 * 1024, "property {key} is too big");
        let mut props = self.properties.borrow_mut();
        let slot = (page.to_owned(), key.to_owned());
        let current = props.get(&slot).map_or(0, |p| p.version);
        if version != current + 1 {
            return Err(AppError::new("CONFLICT", "stale property version"));
        }
        props.insert(
            slot,
            Property {
                value: value.into(),
                version,
            },
        );
        Ok(())
    }

    fn get_content_state(&self, page: &str) -> Result<Option<ContentState>, AppError> {
        Ok(self.states.borrow().get(page).cloned())
    }

    fn set_content_state(&self, page: &str, state: &ContentState) -> Result<u32, AppError> {
        assert!(state.name.chars().count() <= 20, "{state:?}");
        self.states.borrow_mut().insert(page.into(), state.clone());
        // Like Confluence: a new page version with the same content.
        let mut pages = self.pages.borrow_mut();
        let p = pages.get_mut(page).expect("the page exists");
        p.version += 1;
        Ok(p.version)
    }

    fn post(&self, url: &str, body: &str) -> Result<u16, AppError> {
        if self.egress_blocked.get() {
            return Err(AppError::new("REQUEST_EGRESS_ALLOWLIST_ERR", url));
        }
        self.posts.borrow_mut().push((url.into(), body.into()));
        Ok(200)
    }

    fn track(&self, event: &str, properties: &str) -> Result<(), AppError> {
        if self.analytics_blocked.get() {
            return Err(AppError::new(
                "ANALYTICS_BLOCKED",
                "blocked by the site admin",
            ));
        }
        self.analytics
            .borrow_mut()
            .push((event.into(), properties.into()));
        Ok(())
    }

    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push(format!("{level:?}: {message}"));
    }

    fn get_secret(&self, key: &str) -> Result<Option<String>, AppError> {
        Ok(self.secrets.borrow().get(key).cloned())
    }

    fn set_secret(&self, key: &str, value: &str) -> Result<(), AppError> {
        serde_json::from_str::<serde_json::Value>(value).expect("secrets are JSON");
        self.secrets.borrow_mut().insert(key.into(), value.into());
        Ok(())
    }

    fn random_bytes(&self, buf: &mut [u8]) -> Result<(), AppError> {
        // A splitmix64 stream: different secrets per enrolment, the same in every run.
        for b in buf.iter_mut() {
            let n = self.random_drawn.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
            self.random_drawn.set(n);
            let mut z = n;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            *b = (z ^ (z >> 31)) as u8;
        }
        Ok(())
    }
}
