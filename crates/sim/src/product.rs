//! The host product's API as the simulator serves it to apps: an in-memory Confluence
//! (platform.md §8) with pages and their versions, content properties with optimistic
//! concurrency, and content state, one model per site.
//!
//! Calls to it are not egress: they never reach the egress gate or the ledger.
//!
//! Every change to a page, whoever makes it (a scenario's user or an app through the
//! `product` import), is also a product event in an outbox ([`Confluence::take_events`]):
//! the simulation stamps it with the virtual time and delivers it to subscribed apps.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

/// A page at its latest version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page {
    pub id: String,
    pub space: String,
    pub title: String,
    pub body: String,
    pub author: String,
    pub version: u32,
}

/// A footer comment on a page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Comment {
    pub id: String,
    pub page: String,
    pub author: String,
    /// The body in storage format.
    pub body: String,
}

/// A change to a page, as the platform's product events describe it (platform.md §8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PageEvent {
    pub site: String,
    /// `avi:confluence:created:page`, `...:updated:page`, `...:trashed:page`,
    /// `...:restored:page`, `...:moved:page`, `...:viewed:page`.
    pub event_type: &'static str,
    /// Who made the change: a user's account id, or `app:<app id>` for an app.
    pub atlassian_id: String,
    /// The page after the change.
    pub page: Page,
    /// `current` or `trashed`.
    pub status: &'static str,
}

impl PageEvent {
    /// The event as apps receive it: `{eventType, atlassianId, content{id, type, status,
    /// title, space{key}, version{number}}}` as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "eventType": self.event_type,
            "atlassianId": self.atlassian_id,
            "content": {
                "id": self.page.id,
                "type": "page",
                "status": self.status,
                "title": self.page.title,
                "space": {"key": self.page.space},
                "version": {"number": self.page.version},
            },
        })
        .to_string()
    }
}

pub const CREATED: &str = "avi:confluence:created:page";
pub const UPDATED: &str = "avi:confluence:updated:page";
pub const TRASHED: &str = "avi:confluence:trashed:page";
pub const RESTORED: &str = "avi:confluence:restored:page";
pub const MOVED: &str = "avi:confluence:moved:page";
pub const VIEWED: &str = "avi:confluence:viewed:page";

/// A content property: JSON text under a key of a page, versioned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Property {
    pub key: String,
    pub value: String,
    pub version: u32,
}

/// The page-status lozenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContentState {
    pub name: String,
    pub color: String,
}

/// A refused call. Codes: `NOT_FOUND`, `CONFLICT` (stale version), `INVALID`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ProductError {
    pub code: &'static str,
    pub message: String,
}

/// Content properties hold about 32 KB.
pub const MAX_PROPERTY_BYTES: usize = 32 * 1024;
/// Content-state names hold at most 20 characters.
pub const MAX_STATE_NAME: usize = 20;

/// Every site's Confluence.
#[derive(Debug, Default)]
pub struct Confluence {
    sites: HashMap<String, Site>,
    events: Vec<PageEvent>,
}

#[derive(Debug, Default)]
struct Site {
    pages: BTreeMap<String, Page>,
    /// Every version of every page, oldest first.
    history: HashMap<String, Vec<Page>>,
    properties: HashMap<(String, String), Property>,
    states: HashMap<String, ContentState>,
    trashed: BTreeSet<String>,
    next_id: u64,
    /// The pages' bodies and titles by their first eight bytes, kept as pages change (see
    /// [`Confluence::content_in`]).
    content: ContentIndex,
    /// The site's people the platform has seen: page authors and the users who called an app
    /// (see [`Confluence::account_in`]).
    accounts: BTreeSet<String>,
    /// Group name to its members' account ids.
    groups: BTreeMap<String, Vec<String>>,
    /// Footer comments by id (numbers from the pages' sequence).
    comments: BTreeMap<String, Comment>,
}

/// How many bytes of a text a [`ContentIndex`] keys it by: texts shorter than that are
/// never matches (too likely by chance).
const GRAM: usize = 8;

/// Every page body and title of a site long enough to be recognised (8 characters or more
/// once trimmed), by its first [`GRAM`] bytes. Finding which of them a request carries is
/// one look at each 8-byte window of the request (most windows answered by a bit table),
/// and a page's change removes and adds at most two entries each. A window that starts
/// many pages' texts is compared with them in (page id, rank) order until one matches:
/// the cost grows with the number of pages only for a request that carries such a shared
/// start without carrying their texts, once per occurrence.
#[derive(Debug)]
struct ContentIndex {
    /// Per first eight bytes (as a little-endian `u64`), the pages whose body (rank 0) or
    /// title (rank 1) starts with them, in (page id, rank) order.
    by_start: HashMap<u64, BTreeSet<(String, u8)>>,
    /// One bit per [`gram_slot`] of every key ever added: a clear bit means no text starts
    /// with the window (a set one may be stale; it only costs a map lookup).
    seen: Vec<u64>,
}

impl Default for ContentIndex {
    fn default() -> ContentIndex {
        ContentIndex {
            by_start: HashMap::new(),
            seen: vec![0; 1 << 10],
        }
    }
}

/// A page's texts that count as content, with their rank (body before title).
fn texts_of(p: &Page) -> impl Iterator<Item = (&str, u8)> {
    [(p.body.as_str(), 0), (p.title.as_str(), 1)]
        .into_iter()
        .filter(|(t, _)| t.trim().len() >= GRAM)
}

/// The first [`GRAM`] bytes of `b` as a key (`b` has at least that many).
fn gram(b: &[u8]) -> u64 {
    let mut w = [0u8; GRAM];
    w.copy_from_slice(&b[..GRAM]);
    u64::from_le_bytes(w)
}

/// A key's bit in [`ContentIndex::seen`] (16 bits of a multiplicative hash).
fn gram_slot(g: u64) -> usize {
    (g.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48) as usize
}

impl ContentIndex {
    fn add(&mut self, p: &Page) {
        for (text, rank) in texts_of(p) {
            let g = gram(text.as_bytes());
            let slot = gram_slot(g);
            self.seen[slot / 64] |= 1 << (slot % 64);
            self.by_start
                .entry(g)
                .or_default()
                .insert((p.id.clone(), rank));
        }
    }

    fn remove(&mut self, p: &Page) {
        for (text, rank) in texts_of(p) {
            let g = gram(text.as_bytes());
            if let Some(set) = self.by_start.get_mut(&g) {
                set.remove(&(p.id.clone(), rank));
                if set.is_empty() {
                    self.by_start.remove(&g);
                }
            }
        }
    }

    /// The first (page id, rank) whose text one of `texts` contains.
    fn first_in<'p>(
        &'p self,
        pages: &BTreeMap<String, Page>,
        texts: &[&str],
    ) -> Option<(&'p str, u8)> {
        let mut best: Option<(&str, u8)> = None;
        for t in texts {
            let b = t.as_bytes();
            for i in 0..(b.len() + 1).saturating_sub(GRAM) {
                let g = gram(&b[i..]);
                let slot = gram_slot(g);
                if self.seen[slot / 64] & (1 << (slot % 64)) == 0 {
                    continue;
                }
                let Some(set) = self.by_start.get(&g) else {
                    continue;
                };
                // In (id, rank) order: the first that is really there is this window's best.
                for (id, rank) in set {
                    if best.is_some_and(|b| b <= (id.as_str(), *rank)) {
                        break;
                    }
                    let Some(page) = pages.get(id) else {
                        continue;
                    };
                    let text = if *rank == 0 { &page.body } else { &page.title };
                    if b[i..].starts_with(text.as_bytes()) {
                        best = Some((id.as_str(), *rank));
                        break;
                    }
                }
            }
        }
        best
    }
}

impl Confluence {
    pub fn get_page(&self, site: &str, id: &str) -> Option<Page> {
        self.sites.get(site)?.pages.get(id).cloned()
    }

    /// The product events of the changes made since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<PageEvent> {
        std::mem::take(&mut self.events)
    }

    /// Whether any change is waiting in the outbox.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Which page's body or title `texts` carry, as "page ID body" or "page ID title": the
    /// first such page by id (its body before its title), counting only texts of 8
    /// characters or more once trimmed. The egress ledger's in-scope check: one look at each
    /// 8-byte window of the texts (see `ContentIndex` for when it costs more).
    pub fn content_in(&self, site: &str, texts: &[&str]) -> Option<String> {
        let s = self.sites.get(site)?;
        let (id, rank) = s.content.first_in(&s.pages, texts)?;
        Some(format!(
            "page {id} {}",
            if rank == 0 { "body" } else { "title" }
        ))
    }

    /// Remembers one of the site's people (an account id; an app's own `app:...` name is
    /// not a person).
    pub fn note_account(&mut self, site: &str, account: &str) {
        if account.is_empty() || account.starts_with("app:") {
            return;
        }
        // Called for every invocation with a caller: a known person costs one lookup, no
        // allocation.
        if self
            .sites
            .get(site)
            .is_some_and(|s| s.accounts.contains(account))
        {
            return;
        }
        let s = self.sites.entry(site.to_string()).or_default();
        s.accounts.insert(account.to_string());
    }

    /// Adds a footer comment to a page (no product event: comment events are not simulated).
    pub fn add_comment(
        &mut self,
        site: &str,
        author: &str,
        page: &str,
        body: &str,
    ) -> Result<Comment, ProductError> {
        if body.trim().is_empty() {
            return Err(invalid("a comment needs a body"));
        }
        let s = self.site(site, page)?;
        s.next_id += 1;
        let c = Comment {
            id: (100_000 + s.next_id).to_string(),
            page: page.to_string(),
            author: author.to_string(),
            body: body.to_string(),
        };
        s.comments.insert(c.id.clone(), c.clone());
        self.note_account(site, author);
        Ok(c)
    }

    pub fn comment(&self, site: &str, id: &str) -> Option<&Comment> {
        self.sites.get(site)?.comments.get(id)
    }

    /// A page's footer comments, oldest first.
    pub fn comments_on(&self, site: &str, page: &str) -> Vec<&Comment> {
        let mut all: Vec<&Comment> = self
            .sites
            .get(site)
            .into_iter()
            .flat_map(|s| s.comments.values())
            .filter(|c| c.page == page)
            .collect();
        all.sort_by_key(|c| (c.id.len(), c.id.clone()));
        all
    }

    /// Deletes a footer comment; whether there was one.
    pub fn delete_comment(&mut self, site: &str, id: &str) -> bool {
        self.sites
            .get_mut(site)
            .is_some_and(|s| s.comments.remove(id).is_some())
    }

    /// Whether `account` is one of the site's people.
    pub fn knows_account(&self, site: &str, account: &str) -> bool {
        self.sites
            .get(site)
            .is_some_and(|s| s.accounts.contains(account))
    }

    /// Makes (or replaces) a group of the site's people.
    pub fn set_group(&mut self, site: &str, name: &str, members: &[String]) {
        for m in members {
            self.note_account(site, m);
        }
        let s = self.sites.entry(site.to_string()).or_default();
        s.groups.insert(name.to_string(), members.to_vec());
    }

    /// The site's groups, by name, with their members.
    pub fn groups(&self, site: &str) -> impl Iterator<Item = (&String, &Vec<String>)> + '_ {
        self.sites
            .get(site)
            .into_iter()
            .flat_map(|s| s.groups.iter())
    }

    /// Which of the site's people `texts` name, as "account ID": the first by id whose
    /// account id stands in a text as a word of its own (not inside a longer name: `bob` is
    /// not found in `bobby`). The egress ledger's check for end-user data besides page
    /// content.
    pub fn account_in(&self, site: &str, texts: &[&str]) -> Option<String> {
        let s = self.sites.get(site)?;
        let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-');
        s.accounts
            .iter()
            .find(|a| {
                texts.iter().any(|t| {
                    t.match_indices(a.as_str()).any(|(i, m)| {
                        !word(t[..i].chars().next_back()) && !word(t[i + m.len()..].chars().next())
                    })
                })
            })
            .map(|a| format!("account {a}"))
    }

    /// The pages of a site, by id.
    pub fn pages(&self, site: &str) -> impl Iterator<Item = &Page> + '_ {
        self.sites
            .get(site)
            .into_iter()
            .flat_map(|s| s.pages.values())
    }

    /// Whether a page is in the trash.
    pub fn is_trashed(&self, site: &str, id: &str) -> bool {
        self.sites.get(site).is_some_and(|s| s.trashed.contains(id))
    }

    /// Moves a page to the trash (`avi:confluence:trashed:page`).
    pub fn trash_page(&mut self, site: &str, by: &str, id: &str) -> Result<Page, ProductError> {
        let s = self.site(site, id)?;
        s.trashed.insert(id.to_string());
        let page = s.pages[id].clone();
        self.emit(site, TRASHED, by, &page);
        Ok(page)
    }

    /// Takes a page out of the trash (`avi:confluence:restored:page`).
    pub fn restore_page(&mut self, site: &str, by: &str, id: &str) -> Result<Page, ProductError> {
        let s = self.site(site, id)?;
        s.trashed.remove(id);
        let page = s.pages[id].clone();
        self.emit(site, RESTORED, by, &page);
        Ok(page)
    }

    /// Moves a page to another space (`avi:confluence:moved:page`).
    pub fn move_page(
        &mut self,
        site: &str,
        by: &str,
        id: &str,
        space: &str,
    ) -> Result<Page, ProductError> {
        if space.trim().is_empty() {
            return Err(invalid("a page needs a space"));
        }
        let s = self.site(site, id)?;
        let page = s.pages.get_mut(id).map(|p| {
            p.space = space.to_string();
            p.clone()
        });
        let page = page.ok_or_else(|| invalid("no such page"))?;
        self.emit(site, MOVED, by, &page);
        Ok(page)
    }

    /// A user looked at a page (`avi:confluence:viewed:page`).
    pub fn view_page(&mut self, site: &str, by: &str, id: &str) -> Result<Page, ProductError> {
        let page = self.site(site, id)?.pages[id].clone();
        self.emit(site, VIEWED, by, &page);
        Ok(page)
    }

    fn emit(&mut self, site: &str, event_type: &'static str, by: &str, page: &Page) {
        self.note_account(site, by);
        let status = if self.is_trashed(site, &page.id) {
            "trashed"
        } else {
            "current"
        };
        self.events.push(PageEvent {
            site: site.to_string(),
            event_type,
            atlassian_id: by.to_string(),
            page: page.clone(),
            status,
        });
    }

    /// Every version of a page, oldest first.
    pub fn history(&self, site: &str, id: &str) -> &[Page] {
        self.sites
            .get(site)
            .and_then(|s| s.history.get(id))
            .map_or(&[], Vec::as_slice)
    }

    pub fn create_page(
        &mut self,
        site: &str,
        author: &str,
        space: &str,
        title: &str,
        body: &str,
    ) -> Result<Page, ProductError> {
        if title.trim().is_empty() || space.trim().is_empty() {
            return Err(invalid("a page needs a space and a title"));
        }
        let s = self.sites.entry(site.to_string()).or_default();
        s.next_id += 1;
        let page = Page {
            id: (100_000 + s.next_id).to_string(),
            space: space.to_string(),
            title: title.to_string(),
            body: body.to_string(),
            author: author.to_string(),
            version: 1,
        };
        s.history.insert(page.id.clone(), vec![page.clone()]);
        s.content.add(&page);
        s.pages.insert(page.id.clone(), page.clone());
        self.emit(site, CREATED, author, &page);
        Ok(page)
    }

    /// `version` must be the current version plus one, as in Confluence's REST API.
    pub fn update_page(
        &mut self,
        site: &str,
        author: &str,
        id: &str,
        title: &str,
        body: &str,
        version: u32,
    ) -> Result<Page, ProductError> {
        if title.trim().is_empty() {
            return Err(invalid("a page needs a title"));
        }
        let s = self.site(site, id)?;
        let current = &s.pages[id];
        if version != current.version + 1 {
            return Err(conflict(id, current.version, version));
        }
        let page = Page {
            title: title.to_string(),
            body: body.to_string(),
            author: author.to_string(),
            version,
            ..current.clone()
        };
        let page = s.commit(page);
        self.emit(site, UPDATED, author, &page);
        Ok(page)
    }

    pub fn get_property(&self, site: &str, page: &str, key: &str) -> Option<Property> {
        self.sites
            .get(site)?
            .properties
            .get(&(page.to_string(), key.to_string()))
            .cloned()
    }

    /// `version` is 1 to create, the current version plus one to update.
    pub fn set_property(
        &mut self,
        site: &str,
        page: &str,
        key: &str,
        value: &str,
        version: u32,
    ) -> Result<Property, ProductError> {
        if key.is_empty() || key.len() > 255 {
            return Err(invalid("property keys have 1 to 255 characters"));
        }
        if value.len() > MAX_PROPERTY_BYTES {
            return Err(invalid(format!(
                "property `{key}` is {} bytes; properties hold {MAX_PROPERTY_BYTES}",
                value.len()
            )));
        }
        // Checked, not built.
        if !crate::kvs::is_json(value) {
            return Err(invalid(format!("property `{key}` is not JSON")));
        }
        let s = self.site(site, page)?;
        let slot = (page.to_string(), key.to_string());
        let current = s.properties.get(&slot).map_or(0, |p| p.version);
        if version != current + 1 {
            return Err(conflict(&format!("{page}/{key}"), current, version));
        }
        let prop = Property {
            key: key.to_string(),
            value: value.to_string(),
            version,
        };
        s.properties.insert(slot, prop.clone());
        Ok(prop)
    }

    pub fn get_content_state(&self, site: &str, page: &str) -> Option<ContentState> {
        self.sites.get(site)?.states.get(page).cloned()
    }

    /// Sets the status lozenge; like Confluence, this makes a new page version.
    pub fn set_content_state(
        &mut self,
        site: &str,
        author: &str,
        page: &str,
        state: ContentState,
    ) -> Result<Page, ProductError> {
        let len = state.name.chars().count();
        if len == 0 || len > MAX_STATE_NAME {
            return Err(invalid(format!(
                "content state names have 1 to {MAX_STATE_NAME} characters, not {len}"
            )));
        }
        let s = self.site(site, page)?;
        s.states.insert(page.to_string(), state);
        let current = &s.pages[page];
        let next = Page {
            author: author.to_string(),
            version: current.version + 1,
            ..current.clone()
        };
        let page = s.commit(next);
        self.emit(site, UPDATED, author, &page);
        Ok(page)
    }

    /// The site, when it holds the page.
    fn site(&mut self, site: &str, page: &str) -> Result<&mut Site, ProductError> {
        self.sites
            .get_mut(site)
            .filter(|s| s.pages.contains_key(page))
            .ok_or_else(|| ProductError {
                code: "NOT_FOUND",
                message: format!("no page {page} on {site}"),
            })
    }
}

impl Site {
    fn commit(&mut self, page: Page) -> Page {
        self.history
            .entry(page.id.clone())
            .or_default()
            .push(page.clone());
        // Content state and other version bumps keep the text, and the index its entries.
        let old = self.pages.insert(page.id.clone(), page.clone());
        match old {
            Some(o) if o.title == page.title && o.body == page.body => {}
            Some(o) => {
                self.content.remove(&o);
                self.content.add(&page);
            }
            None => self.content.add(&page),
        }
        page
    }
}

fn invalid(message: impl Into<String>) -> ProductError {
    ProductError {
        code: "INVALID",
        message: message.into(),
    }
}

fn conflict(what: &str, current: u32, offered: u32) -> ProductError {
    ProductError {
        code: "CONFLICT",
        message: format!(
            "{what} is at version {current}; version {offered} is stale or skips ahead"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_in_finds_the_sites_people_as_words_of_their_own() {
        let mut c = Confluence::default();
        c.create_page("s", "carol", "HR", "Leave", "<p>x</p>")
            .unwrap();
        c.note_account("s", "bob");
        c.note_account("s", "app:ari:cloud:ecosystem::app/1");
        c.note_account("other", "dave");
        assert_eq!(
            c.account_in("s", &[r#"{"user_id":"bob","n":1}"#]),
            Some("account bob".into())
        );
        assert_eq!(
            c.account_in("s", &["", "https://x.example/t?u=carol&k=1"]),
            Some("account carol".into())
        );
        // Inside a longer name, or another site's person: not found.
        assert_eq!(c.account_in("s", &["bobby carolyn bob_2 dave"]), None);
        assert_eq!(c.account_in("s", &["app:ari:cloud:ecosystem::app/1"]), None);
        assert_eq!(c.account_in("nowhere", &["bob"]), None);
    }

    #[test]
    fn content_in_names_the_first_page_whose_body_or_title_a_request_carries() {
        let mut c = Confluence::default();
        let a = c
            .create_page(
                "s",
                "u",
                "HR",
                "Parental leave policy",
                "<p>Twenty weeks</p>",
            )
            .unwrap();
        let b = c
            .create_page("s", "u", "HR", "Travel policy", "<p>Twenty weeks</p>")
            .unwrap();
        let short = c.create_page("s", "u", "HR", "Short", "v1").unwrap();
        assert_eq!(
            c.content_in("s", &["{\"n\": 3}", "https://x.example/"]),
            None
        );
        // Short texts are never matches (too likely by chance).
        assert_eq!(c.content_in("s", &["v1 Short"]), None);
        // A body shared by two pages is reported for the first; a title found in the URL.
        assert_eq!(
            c.content_in("s", &["x <p>Twenty weeks</p> y"]),
            Some(format!("page {} body", a.id))
        );
        assert_eq!(
            c.content_in("s", &["{}", "https://x.example/?q=Travel policy"]),
            Some(format!("page {} title", b.id))
        );
        // The index follows edits: the old text no longer counts, the new one does.
        let b = c
            .update_page(
                "s",
                "u",
                &b.id,
                "Travel policy",
                "<p>Economy class only</p>",
                2,
            )
            .unwrap();
        assert_eq!(
            c.content_in("s", &["<p>Economy class only</p>"]),
            Some(format!("page {} body", b.id))
        );
        let a = c
            .update_page("s", "u", &a.id, "Leave", "<p>Thirty weeks</p>", 2)
            .unwrap();
        assert_eq!(c.content_in("s", &["<p>Twenty weeks</p>"]), None);
        assert_eq!(
            c.content_in("s", &["<p>Thirty weeks</p>"]),
            Some(format!("page {} body", a.id))
        );
        assert_eq!(c.content_in("other", &["<p>Thirty weeks</p>"]), None);
        drop(short);
    }

    #[test]
    fn content_in_agrees_with_a_page_by_page_search_through_many_changes() {
        // The reference: the first page by id whose body, then title, a text contains.
        fn naive(c: &Confluence, texts: &[&str]) -> Option<String> {
            c.pages("s").find_map(|p| {
                let holds = |n: &str| n.trim().len() >= 8 && texts.iter().any(|t| t.contains(n));
                if holds(&p.body) {
                    Some(format!("page {} body", p.id))
                } else if holds(&p.title) {
                    Some(format!("page {} title", p.id))
                } else {
                    None
                }
            })
        }
        let mut c = Confluence::default();
        let mut ids = Vec::new();
        for i in 0..100u32 {
            // Shared bodies, titles that are other pages' bodies, short texts.
            let body = format!("<p>text {}</p>", i % 7);
            // Titles sharing their first bytes (and prefixes of each other: "... 1" and
            // "... 12"), multi-byte text, white space around.
            let title = if i % 5 == 0 {
                format!("<p>text {}</p>", (i + 1) % 7)
            } else if i % 2 == 0 {
                format!("Policy number {i}")
            } else if i % 3 == 1 {
                format!("  Richtlinie für Ärzte {i}  ")
            } else {
                format!("Page {i}")
            };
            ids.push(c.create_page("s", "u", "S", &title, &body).unwrap().id);
            if i % 3 == 0 {
                let id = &ids[(i as usize * 7) % ids.len()];
                let v = c.get_page("s", id).unwrap().version;
                c.update_page(
                    "s",
                    "u",
                    id,
                    &format!("Page {i}"),
                    &format!("<p>new {i}</p>"),
                    v + 1,
                )
                .unwrap();
            }
            for probe in [
                format!("<p>text {}</p>", i % 7),
                format!("<p>new {}</p>", i.saturating_sub(3)),
                format!("x Page {} y", i / 2),
                format!("x Policy number {} y", i / 2),
                format!("Policy number {}", i / 3),
                format!("\"Richtlinie für Ärzte {}  \"", i / 2),
                "Short".to_owned(),
            ] {
                assert_eq!(
                    c.content_in("s", &[&probe]),
                    naive(&c, &[&probe]),
                    "{i} {probe}"
                );
            }
        }
    }

    #[test]
    fn pages_properties_and_states_are_versioned() {
        let mut c = Confluence::default();
        let p = c.create_page("a", "app", "ENG", "Plan", "v1").unwrap();
        assert_eq!(p.version, 1);
        assert_eq!(
            c.update_page("a", "app", &p.id, "Plan", "x", 1)
                .unwrap_err()
                .code,
            "CONFLICT"
        );
        let p = c.update_page("a", "app", &p.id, "Plan", "v2", 2).unwrap();
        assert_eq!(c.history("a", &p.id).len(), 2);

        c.set_property("a", &p.id, "k", "{}", 1).unwrap();
        assert_eq!(
            c.set_property("a", &p.id, "k", "{}", 1).unwrap_err().code,
            "CONFLICT"
        );
        assert_eq!(
            c.set_property("a", &p.id, "k", "nope", 2).unwrap_err().code,
            "INVALID"
        );
        assert_eq!(c.get_property("a", &p.id, "k").unwrap().version, 1);

        let state = ContentState {
            name: "In review".into(),
            color: "#ffc400".into(),
        };
        assert_eq!(
            c.set_content_state("a", "app", &p.id, state.clone())
                .unwrap()
                .version,
            3
        );
        assert_eq!(c.get_content_state("a", &p.id), Some(state));
        let long = ContentState {
            name: "x".repeat(21),
            color: String::new(),
        };
        assert_eq!(
            c.set_content_state("a", "app", &p.id, long)
                .unwrap_err()
                .code,
            "INVALID"
        );

        // Every change is an event: created, updated twice (body, content state).
        let events: Vec<_> = c.take_events().iter().map(|e| e.event_type).collect();
        assert_eq!(events, [CREATED, UPDATED, UPDATED]);
        c.trash_page("a", "bob", &p.id).unwrap();
        let trashed = c.take_events().remove(0);
        assert_eq!(trashed.status, "trashed");
        assert!(trashed.to_json().contains(r#""atlassianId":"bob""#));

        // Sites do not see each other's pages.
        assert_eq!(c.get_page("b", &p.id), None);
        assert_eq!(
            c.set_property("b", &p.id, "k", "{}", 1).unwrap_err().code,
            "NOT_FOUND"
        );
    }
}
