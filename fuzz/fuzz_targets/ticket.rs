//! Any byte string given as a Flight ticket (or a command descriptor) is either a question the
//! service can answer — a query with an answer schema — or rejected with a message; never a
//! panic. An accepted ticket written back out (as `vintagelake get` and the console write tickets)
//! parses to the same question.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vintagelake_query::ticket::{MAX_SERIES, TicketV1, parse_request};

fuzz_target!(|bytes: &[u8]| {
    match parse_request(bytes) {
        Ok(request) => {
            assert!(request.query.series.len() <= MAX_SERIES, "at most {MAX_SERIES} series");
            assert!(!request.schema().fields().is_empty(), "an answer has columns");
            let ticket: TicketV1 = serde_json::from_slice(bytes).expect("an accepted ticket is a TicketV1");
            let again = parse_request(&ticket.to_bytes()).expect("an accepted ticket, written out, parses");
            assert_eq!(again.name(), request.name());
            assert_eq!(again.query.series, request.query.series);
            assert_eq!(format!("{:?}", again.shape), format!("{:?}", request.shape));
        }
        Err(message) => assert!(!message.is_empty(), "a rejection says why"),
    }
});
