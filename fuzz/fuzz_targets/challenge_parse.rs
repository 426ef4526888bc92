//! Fuzz the `WWW-Authenticate` challenge parser (RFC 9110 §11.6.1, network input from every
//! upstream registry and Notary server): one header, several headers, and the Bearer parameters
//! (realm, service, scope) read from what parsed. None may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trustgate::upstream::challenge;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for c in challenge::parse(text) {
        let _ = c.param("realm");
        let _ = c.param("error");
        let _ = c.bearer();
    }
    // The same bytes as several headers, split where a NUL stands.
    let _ = challenge::parse_all(text.split('\0'));
});
