//! Every byte string given to the message decoders (JSON and Arrow IPC data points, series
//! metadata) is either accepted or rejected with a field and a reason code — the dead-letter
//! record's headers — and never panics. Accepted JSON revisions re-encode to themselves.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vintagelake_schemas::{decode_data_point_json, decode_data_points, decode_series_json};

fuzz_target!(|bytes: &[u8]| {
    match decode_data_points(bytes) {
        Ok(records) => assert!(!records.is_empty(), "an accepted message holds at least one revision"),
        Err(e) => assert!(!e.reason().code().is_empty() && !e.field().is_empty(), "a rejection names field and reason"),
    }
    if let Ok(r) = decode_data_point_json(bytes) {
        assert_eq!(decode_data_point_json(&r.to_json()).expect("re-encoded revision decodes"), r);
    }
    if let Err(e) = decode_series_json(bytes) {
        assert!(!e.reason().code().is_empty(), "a rejected series message has a reason");
    }
});
