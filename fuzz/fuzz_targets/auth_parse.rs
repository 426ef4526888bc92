//! Fuzz the client-authentication parsers: the `Authorization: Basic` header (network input) and
//! the htpasswd file (operator input, re-read on SIGHUP). Neither may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trustgate::auth::{basic, htpasswd};

fuzz_target!(|data: &[u8]| {
    let _ = basic::parse(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = htpasswd::Htpasswd::parse(text);
        let _ = htpasswd::bcrypt_cost(text);
    }
});
