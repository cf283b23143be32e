//! nftables' own library (libnftables, Debian's libnftables1), called directly: the whole nft language over
//! netlink in one transaction per call, without running the `nft` binary. Chosen over nftnl because nftnl has
//! no fib, rt (MSS clamping), exthdr, limit or map expressions, which this ruleset needs.

use std::{
    ffi::{CStr, CString, c_char, c_int, c_uint},
    ptr::NonNull,
};

#[repr(C)]
struct NftCtx {
    _private: [u8; 0],
}

#[link(name = "nftables")]
unsafe extern "C" {
    fn nft_ctx_new(flags: u32) -> *mut NftCtx;
    fn nft_ctx_free(ctx: *mut NftCtx);
    fn nft_ctx_output_set_flags(ctx: *mut NftCtx, flags: c_uint);
    fn nft_ctx_buffer_output(ctx: *mut NftCtx) -> c_int;
    fn nft_ctx_get_output_buffer(ctx: *mut NftCtx) -> *const c_char;
    fn nft_ctx_buffer_error(ctx: *mut NftCtx) -> c_int;
    fn nft_ctx_get_error_buffer(ctx: *mut NftCtx) -> *const c_char;
    fn nft_run_cmd_from_buffer(ctx: *mut NftCtx, buf: *const c_char) -> c_int;
}

const NFT_CTX_DEFAULT: u32 = 0;
const NFT_CTX_OUTPUT_JSON: c_uint = 1 << 4;

/// One libnftables context; not shared between threads (each call makes its own).
pub struct Nft {
    ctx: NonNull<NftCtx>,
}

impl Nft {
    /// A context whose output (text, or JSON with `json`) and errors are captured.
    pub fn new(json: bool) -> Option<Nft> {
        // SAFETY: nft_ctx_new has no preconditions; a null result is handled.
        let ctx = NonNull::new(unsafe { nft_ctx_new(NFT_CTX_DEFAULT) })?;
        // SAFETY: ctx is a valid context owned by the returned value.
        unsafe {
            if json {
                nft_ctx_output_set_flags(ctx.as_ptr(), NFT_CTX_OUTPUT_JSON);
            }
            nft_ctx_buffer_output(ctx.as_ptr());
            nft_ctx_buffer_error(ctx.as_ptr());
        }
        Some(Nft { ctx })
    }

    /// Runs `commands` (nft syntax, several lines) as one transaction: all of it or nothing. Returns the output,
    /// or the error text nft would have printed.
    pub fn run(&mut self, commands: &str) -> Result<String, String> {
        let buffer = CString::new(commands).map_err(|_| "a NUL byte in the commands".to_string())?;
        // SAFETY: ctx is valid; buffer is NUL-terminated and outlives the call; the returned buffers belong to
        // ctx and are copied before the next call.
        unsafe {
            let status = nft_run_cmd_from_buffer(self.ctx.as_ptr(), buffer.as_ptr());
            let text = |pointer: *const c_char| {
                if pointer.is_null() { String::new() } else { CStr::from_ptr(pointer).to_string_lossy().into_owned() }
            };
            let output = text(nft_ctx_get_output_buffer(self.ctx.as_ptr()));
            let error = text(nft_ctx_get_error_buffer(self.ctx.as_ptr()));
            if status == 0 { Ok(output) } else { Err(error.trim().to_string()) }
        }
    }
}

impl Drop for Nft {
    fn drop(&mut self) {
        // SAFETY: ctx came from nft_ctx_new and is freed once.
        unsafe { nft_ctx_free(self.ctx.as_ptr()) }
    }
}

// SAFETY: a context is used by one thread at a time (it is moved, never shared).
unsafe impl Send for Nft {}
