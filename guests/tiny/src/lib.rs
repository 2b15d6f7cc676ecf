//! A do-nothing app without the standard library: every export returns at once, and the
//! component imports nothing from WASI, so an invocation instantiates one small core module
//! instead of a module, the WASI adapter and their shims. The bench's second subject for
//! simulated events per second: what the platform costs per event when the app's own
//! runtime costs (almost) nothing too.

#![no_std]

extern crate alloc;

use alloc::string::String;
use alloc::vec;
use core::alloc::{GlobalAlloc, Layout};

// `std_feature`: the generated code uses `std` only under a `std` feature this crate lacks.
#[allow(unexpected_cfgs, clippy::too_many_arguments)]
mod bindings {
    wit_bindgen::generate!({ world: "app", path: "../../crates/sim/wit", std_feature, pub_export_macro: true, default_bindings_module: "bindings" });
}

use bindings::{Guest, PlatformError, WebRequest, WebResponse};

struct Tiny;

impl Guest for Tiny {
    fn resolver(_name: String, _payload: String) -> Result<String, PlatformError> {
        Ok(String::from("null"))
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

bindings::export!(Tiny);

/// A bump allocator over a static arena that never frees: every invocation gets a fresh
/// instance, so nothing lives long enough to need freeing. The arena is part of the initial
/// memory, so a call grows no memory (payloads larger than it fail to allocate, and the
/// invocation traps: this app is for benchmarks).
struct Bump;

const ARENA_BYTES: usize = 256 * 1024;
static mut ARENA: [u8; ARENA_BYTES] = [0; ARENA_BYTES];
static mut NEXT: usize = 0;

unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: a component instance runs one call at a time on one thread, and the
        // arena is only handed out in disjoint pieces.
        unsafe {
            let base = core::ptr::addr_of_mut!(ARENA) as usize;
            let start = (base + NEXT + layout.align() - 1) & !(layout.align() - 1);
            let end = start + layout.size();
            if end > base + ARENA_BYTES {
                return core::ptr::null_mut();
            }
            NEXT = end - base;
            start as *mut u8
        }
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

/// The canonical ABI's allocator hook (wit-bindgen provides it only with `std`): the host
/// asks for room for the arguments it passes in; nothing is ever reallocated in place.
///
/// # Safety
///
/// Called by the canonical ABI only: `align` is a power of two, and `old`, when not null,
/// points at `old_len` bytes this function handed out.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cabi_realloc(
    old: *mut u8,
    old_len: usize,
    align: usize,
    new_len: usize,
) -> *mut u8 {
    if new_len == 0 {
        return align as *mut u8;
    }
    // SAFETY: `align` is a power of two and `new_len` nonzero, as the canonical ABI promises.
    unsafe {
        let new = ALLOC.alloc(Layout::from_size_align_unchecked(new_len, align));
        if !old.is_null() && !new.is_null() {
            core::ptr::copy_nonoverlapping(old, new, old_len.min(new_len));
        }
        new
    }
}

#[global_allocator]
static ALLOC: Bump = Bump;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
