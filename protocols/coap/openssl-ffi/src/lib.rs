//! The OpenSSL DTLS calls the `openssl` crate does not wrap.
//!
//! Roost answers a DTLS ClientHello without a cookie itself, statelessly (RFC 6347
//! §4.2.1), and only creates an OpenSSL session for a ClientHello that carries a cookie
//! it issued. A fresh OpenSSL server session expects the first ClientHello
//! (`message_seq` 0); [`listen`] lets it take the second one (`message_seq` 1) over, as
//! OpenSSL's own stateless `DTLSv1_listen` does: it checks the cookie with the context's
//! cookie-verify callback and leaves the session ready for `SSL_accept`.

#![allow(unsafe_code)] // the reason this crate exists; every block says why it is sound

use foreign_types::ForeignTypeRef;
use openssl::ssl::SslStream;
use openssl_sys::SSL;
use std::os::raw::{c_int, c_long};

/// OpenSSL's opaque `BIO_ADDR`.
#[repr(C)]
#[allow(non_camel_case_types)]
struct BIO_ADDR {
    _opaque: [u8; 0],
}

unsafe extern "C" {
    fn DTLSv1_listen(s: *mut SSL, client: *mut BIO_ADDR) -> c_int;
    fn BIO_ADDR_new() -> *mut BIO_ADDR;
    fn BIO_ADDR_free(a: *mut BIO_ADDR);
    fn SSL_free_buffers(ssl: *mut SSL) -> c_int;
    fn SSL_alloc_buffers(ssl: *mut SSL) -> c_int;
}

/// `DTLS_CTRL_HANDLE_TIMEOUT` in `openssl/dtls1.h`.
const DTLS_CTRL_HANDLE_TIMEOUT: c_int = 74;

/// What [`listen`] made of the ClientHello waiting in the session's read BIO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// It carried a cookie the verify callback accepted: continue with `accept`.
    Accepted,
    /// No datagram was waiting, or it was not a ClientHello with a good cookie (OpenSSL
    /// may have written a HelloVerifyRequest to the write BIO).
    NotYet,
    /// OpenSSL refused it (not DTLS 1.x, or no cookie callbacks set).
    Failed,
}

/// Runs OpenSSL's `DTLSv1_listen` once on a server session whose read BIO holds a
/// ClientHello. The context must have cookie generate and verify callbacks set.
pub fn listen<S>(stream: &mut SslStream<S>) -> Listen {
    // SAFETY: BIO_ADDR_new has no preconditions; a null result is handled below.
    let addr = unsafe { BIO_ADDR_new() };
    if addr.is_null() {
        return Listen::Failed;
    }
    // SAFETY: the stream's SSL is live and exclusively ours (`&mut`) for the call, and
    // `addr` a live BIO_ADDR that DTLSv1_listen only writes to (or clears).
    let r = unsafe { DTLSv1_listen(stream.ssl().as_ptr(), addr) };
    // SAFETY: `addr` came from BIO_ADDR_new and is freed exactly once.
    unsafe { BIO_ADDR_free(addr) };
    match r {
        1.. => Listen::Accepted,
        0 => Listen::NotYet,
        _ => Listen::Failed,
    }
}

/// `DTLSv1_handle_timeout`: when the session's retransmission timer has expired,
/// OpenSSL resends its last flight (and doubles the timer). Returns whether it did.
pub fn handle_timeout<S>(stream: &mut SslStream<S>) -> bool {
    // SAFETY: the stream's SSL is live and exclusively ours (`&mut`); this control takes
    // no argument pointer.
    let r: c_long =
        unsafe { openssl_sys::SSL_ctrl(stream.ssl().as_ptr(), DTLS_CTRL_HANDLE_TIMEOUT, 0, std::ptr::null_mut()) };
    r > 0
}

/// `SSL_CTRL_SET_MAX_SEND_FRAGMENT` in `openssl/ssl.h`.
const SSL_CTRL_SET_MAX_SEND_FRAGMENT: c_int = 52;

/// `SSL_CTX_set_max_send_fragment`: the largest plaintext record we send (512..=16384).
/// OpenSSL sizes each DTLS session's write buffer by it, and keeps that buffer for the
/// session's life (DTLS never releases its buffers), so a CoAP-sized limit saves ~15 KB per
/// peer. Returns whether OpenSSL took the value.
pub fn set_max_send_fragment(ctx: &mut openssl::ssl::SslContextBuilder, len: u16) -> bool {
    // SAFETY: the builder owns a live SSL_CTX, borrowed exclusively; this control takes
    // its value in `larg` and no pointer.
    let r: c_long = unsafe {
        openssl_sys::SSL_CTX_ctrl(ctx.as_ptr(), SSL_CTRL_SET_MAX_SEND_FRAGMENT, c_long::from(len), std::ptr::null_mut())
    };
    r > 0
}

/// `SSL_free_buffers`: frees the session's record read and write buffers (16.7 KB and the
/// send-fragment size) when nothing is pending in them; returns whether it did. DTLS never
/// releases them by itself (`SSL_MODE_RELEASE_BUFFERS` is TLS only), so an idle device would
/// hold them for the connection's life. Call [`alloc_buffers`] before the next read or write.
pub fn free_buffers<S>(stream: &mut SslStream<S>) -> bool {
    // SAFETY: the stream's SSL is live and exclusively ours (`&mut`). OpenSSL refuses (0)
    // while a buffer holds unread or unsent bytes, and clears the pointers it frees
    // (OpenSSL >= 3.0.14 also for the record's own pointers, CVE-2024-4741).
    unsafe { SSL_free_buffers(stream.ssl().as_ptr()) == 1 }
}

/// `SSL_alloc_buffers`: allocates the record buffers [`free_buffers`] released (a no-op when
/// they are there). Returns false only when the allocation failed.
pub fn alloc_buffers<S>(stream: &mut SslStream<S>) -> bool {
    // SAFETY: the stream's SSL is live and exclusively ours (`&mut`); the call only
    // allocates the buffers it finds missing.
    unsafe { SSL_alloc_buffers(stream.ssl().as_ptr()) == 1 }
}
