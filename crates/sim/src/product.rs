//! The host product's API as the simulator serves it to apps: an in-memory Confluence
//! (platform.md §8) with pages and their versions, content properties with optimistic
//! concurrency, and content state, one model per site.
//!
//! Calls to it are not egress: they never reach the egress gate or the ledger.

use std::collections::{BTreeMap, HashMap};

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
}

#[derive(Debug, Default)]
struct Site {
    pages: BTreeMap<String, Page>,
    /// Every version of every page, oldest first.
    history: HashMap<String, Vec<Page>>,
    properties: HashMap<(String, String), Property>,
    states: HashMap<String, ContentState>,
    next_id: u64,
}

impl Confluence {
    pub fn get_page(&self, site: &str, id: &str) -> Option<Page> {
        self.sites.get(site)?.pages.get(id).cloned()
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
        s.pages.insert(page.id.clone(), page.clone());
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
        Ok(s.commit(page))
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
        if serde_json::from_str::<serde_json::Value>(value).is_err() {
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
        Ok(s.commit(next))
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
        self.pages.insert(page.id.clone(), page.clone());
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

        // Sites do not see each other's pages.
        assert_eq!(c.get_page("b", &p.id), None);
        assert_eq!(
            c.set_property("b", &p.id, "k", "{}", 1).unwrap_err().code,
            "NOT_FOUND"
        );
    }
}
