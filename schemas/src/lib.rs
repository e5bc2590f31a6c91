//! Domain types, Arrow and Iceberg schemas, the Kafka wire format and its validator.
//!
//! Dependency-light on purpose (arrow-schema/array/ipc, serde, chrono, uuid): every other crate
//! and every producer-side tool can use it without pulling in Iceberg, Kafka or gRPC.

pub mod arrow;
pub mod error;
pub mod ids;
pub mod ipc;
pub mod model;
pub mod table;
pub mod wire;

pub use error::{Reason, ValidationError};
pub use ids::{Date, SeriesId};
pub use ipc::{WireFormat, decode_data_points, encode_data_points_ipc};
pub use model::{DataPoint, EconomicSeries, Timestamp};
pub use wire::{DataPointRevision, SeriesMetadata, decode_data_point_json, decode_series_json};

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Any byte string is either a record or a precise error, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            match decode_data_points(&bytes) {
                Ok(records) => prop_assert!(!records.is_empty()),
                Err(e) => prop_assert!(!e.reason().code().is_empty() && !e.field().is_empty()),
            }
            if let Err(e) = decode_series_json(&bytes) {
                prop_assert!(!e.to_string().is_empty());
            }
        }

        /// Mutations of a valid message are accepted or rejected, never a panic; accepted ones re-encode.
        #[test]
        fn mutated_messages_never_panic(pos in 0usize..120, byte in any::<u8>()) {
            let mut bytes = br#"{"version":1,"series_id":"GDPC1","date":"2024-01-01","revision_date":"2024-04-25","value":1.5}"#.to_vec();
            let i = pos % bytes.len();
            bytes[i] = byte;
            if let Ok(r) = decode_data_point_json(&bytes) {
                prop_assert_eq!(decode_data_point_json(&r.to_json()).unwrap(), r);
            }
        }

        /// Every valid revision survives both wire formats unchanged.
        #[test]
        fn valid_revisions_round_trip(
            series in "[A-Za-z0-9._:/-]{1,128}",
            date in Date::MIN.days_since_epoch()..=Date::MAX.days_since_epoch(),
            revision in Date::MIN.days_since_epoch()..=Date::MAX.days_since_epoch(),
            value in proptest::option::of(any::<f64>().prop_filter("finite", |v| v.is_finite())),
            original in any::<bool>(),
        ) {
            let r = DataPointRevision {
                series_id: series.parse().unwrap(),
                date: Date::from_days_since_epoch(date),
                revision_date: Date::from_days_since_epoch(revision),
                value,
                is_original_release: original,
                id: None,
                created_at: None,
                updated_at: None,
                status: None,
                comment: None,
            };
            prop_assert_eq!(&decode_data_point_json(&r.to_json()).unwrap(), &r);
            prop_assert_eq!(decode_data_points(&encode_data_points_ipc(std::slice::from_ref(&r)).unwrap()).unwrap(), vec![r]);
        }
    }
}
