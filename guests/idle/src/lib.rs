//! A do-nothing app: every export returns at once. The bench's subject for simulated events
//! per second (what the platform costs per event when the app costs nothing).

wit_bindgen::generate!({ world: "app", path: "../../crates/sim/wit" });

struct Idle;

impl Guest for Idle {
    fn resolver(_name: String, _payload: String) -> Result<String, PlatformError> {
        Ok("null".into())
    }

    fn on_event(_event: String) -> Result<(), PlatformError> {
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

export!(Idle);
