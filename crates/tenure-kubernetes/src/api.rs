//! The few Kubernetes API objects the backend reads and writes, as serde
//! types: field names in camelCase as on the wire, unknown fields ignored,
//! empty and absent fields left out of what is sent.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `apiVersion` of a Lease.
pub(crate) const LEASE_API_VERSION: &str = "coordination.k8s.io/v1";
/// `apiVersion` of a ConfigMap.
pub(crate) const CONFIGMAP_API_VERSION: &str = "v1";

/// The metadata every object carries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ObjectMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) namespace: Option<String>,
    /// The version a replace or delete is conditional on (optimistic
    /// concurrency): sent back as read, changed by every write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) resource_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) uid: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) annotations: BTreeMap<String, String>,
    /// RFC 3339 in seconds, set by the apiserver (`null` in bookmarks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) creation_timestamp: Option<String>,
}

impl ObjectMeta {
    /// Metadata naming a new object.
    pub(crate) fn named(name: &str) -> Self {
        ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        }
    }
}

fn lease_api_version() -> String {
    LEASE_API_VERSION.to_owned()
}

fn lease_kind() -> String {
    "Lease".to_owned()
}

fn configmap_api_version() -> String {
    CONFIGMAP_API_VERSION.to_owned()
}

fn configmap_kind() -> String {
    "ConfigMap".to_owned()
}

/// A `coordination.k8s.io/v1` Lease: what client-go's leader election and
/// the kubelet's heartbeats use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Lease {
    // List items come without apiVersion and kind: defaulted, so that a
    // listed Lease can be sent back as is.
    #[serde(default = "lease_api_version")]
    pub(crate) api_version: String,
    #[serde(default = "lease_kind")]
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) metadata: ObjectMeta,
    #[serde(default)]
    pub(crate) spec: LeaseSpec,
}

impl Lease {
    /// A new Lease named `name`.
    pub(crate) fn new(name: &str, spec: LeaseSpec) -> Self {
        Lease {
            api_version: lease_api_version(),
            kind: lease_kind(),
            metadata: ObjectMeta::named(name),
            spec,
        }
    }
}

/// What a Lease says: who holds it, since when, for how long.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LeaseSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) holder_identity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) lease_duration_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) acquire_time: Option<MicroTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) renew_time: Option<MicroTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) lease_transitions: Option<i32>,
}

/// A `v1` ConfigMap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConfigMap {
    #[serde(default = "configmap_api_version")]
    pub(crate) api_version: String,
    #[serde(default = "configmap_kind")]
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) data: BTreeMap<String, String>,
    /// Values in base64, as on the wire.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) binary_data: BTreeMap<String, String>,
}

impl ConfigMap {
    /// A new, empty ConfigMap named `name`.
    pub(crate) fn new(name: &str) -> Self {
        ConfigMap {
            api_version: configmap_api_version(),
            kind: configmap_kind(),
            metadata: ObjectMeta::named(name),
            data: BTreeMap::new(),
            binary_data: BTreeMap::new(),
        }
    }
}

/// A list of objects and the resource version to watch it from.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub(crate) struct List<T> {
    #[serde(default)]
    pub(crate) metadata: ListMeta,
    #[serde(default = "Vec::new")]
    pub(crate) items: Vec<T>,
}

/// The metadata of a list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListMeta {
    /// Where a watch continuing the list starts.
    #[serde(default)]
    pub(crate) resource_version: String,
}

/// The apiserver's account of a failure (`kind: Status`), in error answers
/// and in watch `ERROR` events.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct Status {
    /// The HTTP status code it stands for.
    #[serde(default)]
    pub(crate) code: u16,
    /// `NotFound`, `Conflict`, `Expired`, `Forbidden`, ...
    #[serde(default)]
    pub(crate) reason: String,
    #[serde(default)]
    pub(crate) message: String,
}

/// One line of a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum WatchEvent<T> {
    Added(T),
    Modified(T),
    Deleted(T),
    /// Nothing changed up to this resource version: where to resume.
    Bookmark(String),
    /// The watch failed (410 Gone when its resource version is too old).
    Error(Status),
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for WatchEvent<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(rename = "type")]
            kind: String,
            object: serde_json::Value,
        }
        #[derive(Deserialize)]
        struct Bookmark {
            metadata: ObjectMeta,
        }
        let raw = Raw::deserialize(deserializer)?;
        let object = |value| T::deserialize(value).map_err(D::Error::custom);
        Ok(match raw.kind.as_str() {
            "ADDED" => WatchEvent::Added(object(raw.object)?),
            "MODIFIED" => WatchEvent::Modified(object(raw.object)?),
            "DELETED" => WatchEvent::Deleted(object(raw.object)?),
            "BOOKMARK" => {
                let bookmark = Bookmark::deserialize(raw.object).map_err(D::Error::custom)?;
                WatchEvent::Bookmark(bookmark.metadata.resource_version.unwrap_or_default())
            }
            "ERROR" => {
                WatchEvent::Error(Status::deserialize(raw.object).map_err(D::Error::custom)?)
            }
            other => {
                return Err(D::Error::custom(format!(
                    "unknown watch event type {other:?}"
                )))
            }
        })
    }
}

/// A Kubernetes `MicroTime`: RFC 3339 in UTC with microseconds,
/// `2026-12-08T02:10:00.123456Z`. Finer precision is dropped when sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct MicroTime(pub(crate) SystemTime);

const SECONDS_PER_DAY: i64 = 86_400;

impl fmt::Display for MicroTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Whole microseconds since the epoch, rounded down (also before it).
        let micros: i128 = match self.0.duration_since(UNIX_EPOCH) {
            Ok(after) => after.as_micros() as i128,
            Err(before) => -(before.duration().as_nanos().div_ceil(1000) as i128),
        };
        let seconds = micros.div_euclid(1_000_000) as i64;
        let micro = micros.rem_euclid(1_000_000);
        let (year, month, day) = civil_from_days(seconds.div_euclid(SECONDS_PER_DAY));
        let in_day = seconds.rem_euclid(SECONDS_PER_DAY);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micro:06}Z",
            in_day / 3600,
            in_day / 60 % 60,
            in_day % 60
        )
    }
}

impl std::str::FromStr for MicroTime {
    type Err = String;

    /// Reads RFC 3339: a fraction of 0 to 9 digits, `Z` or a `±hh:mm` offset.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not an RFC 3339 time such as 2026-12-08T02:10:00.123456Z");
        let b = s.as_bytes();
        let digits = |range: std::ops::Range<usize>| -> Result<i64, String> {
            let part = b.get(range).ok_or_else(bad)?;
            if !part.iter().all(u8::is_ascii_digit) {
                return Err(bad());
            }
            Ok(part.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
        };
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
            return Err(bad());
        }
        if b[13] != b':' || b[16] != b':' {
            return Err(bad());
        }
        let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
        let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
        let mut rest = &s[19..];
        let mut nanos = 0;
        if let Some(fraction) = rest.strip_prefix('.') {
            let end = fraction
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(fraction.len());
            if end == 0 || end > 9 {
                return Err(bad());
            }
            nanos = fraction[..end].parse::<u32>().map_err(|_| bad())? * 10u32.pow(9 - end as u32);
            rest = &fraction[end..];
        }
        let offset = match rest.as_bytes() {
            [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let number = |a: &u8, b: &u8| -> Result<i64, String> {
                    if a.is_ascii_digit() && b.is_ascii_digit() {
                        Ok(i64::from(a - b'0') * 10 + i64::from(b - b'0'))
                    } else {
                        Err(bad())
                    }
                };
                let (h, m) = (number(h1, h2)?, number(m1, m2)?);
                if h > 23 || m > 59 {
                    return Err(bad());
                }
                (h * 60 + m) * 60 * if *sign == b'-' { -1 } else { 1 }
            }
            _ => return Err(bad()),
        };
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return Err(bad());
        }
        let seconds = days_from_civil(year, month, day) * SECONDS_PER_DAY
            + hour * 3600
            + minute * 60
            + second
            - offset;
        let time = if seconds >= 0 {
            UNIX_EPOCH + Duration::new(seconds as u64, nanos)
        } else {
            UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs())
                + Duration::from_nanos(nanos.into())
        };
        Ok(MicroTime(time))
    }
}

impl Serialize for MicroTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MicroTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(D::Error::custom)
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date `days` after 1970-01-01 (Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64, micros: u32) -> MicroTime {
        MicroTime(UNIX_EPOCH + Duration::new(seconds, micros * 1000))
    }

    #[test]
    fn micro_time_formats_and_parses_known_instants() {
        for (time, text) in [
            (at(0, 0), "1970-01-01T00:00:00.000000Z"),
            (at(951_782_400, 1), "2000-02-29T00:00:00.000001Z"),
            (at(1_796_695_800, 123_456), "2026-12-08T02:10:00.123456Z"),
            (at(4_107_542_399, 999_999), "2100-02-28T23:59:59.999999Z"),
        ] {
            assert_eq!(time.to_string(), text);
            assert_eq!(text.parse::<MicroTime>().unwrap(), time, "{text}");
        }
        let before = MicroTime(UNIX_EPOCH - Duration::from_micros(1));
        assert_eq!(before.to_string(), "1969-12-31T23:59:59.999999Z");
        assert_eq!(before.to_string().parse::<MicroTime>().unwrap(), before);
    }

    #[test]
    fn micro_time_round_trips_every_day_for_centuries() {
        // Each day from 1900 to 2300 at a varying time of day.
        for day in (-25_567..120_000).step_by(7) {
            let seconds = day * SECONDS_PER_DAY + (day * 7919).rem_euclid(SECONDS_PER_DAY);
            let time = if seconds >= 0 {
                UNIX_EPOCH + Duration::new(seconds as u64, 250_000)
            } else {
                UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs())
                    + Duration::from_micros(250)
            };
            let text = MicroTime(time).to_string();
            assert_eq!(
                text.parse::<MicroTime>().unwrap(),
                MicroTime(time),
                "{text}"
            );
        }
    }

    #[test]
    fn micro_time_reads_other_precisions_and_offsets_and_drops_nanoseconds() {
        let t = |s: &str| s.parse::<MicroTime>().unwrap();
        assert_eq!(t("2026-12-08T02:10:00Z"), at(1_796_695_800, 0));
        assert_eq!(t("2026-12-08T03:10:00.5+01:00"), at(1_796_695_800, 500_000));
        assert_eq!(
            t("2026-12-07T21:40:00.123456789-04:30"),
            at(1_796_695_800, 0).add_nanos(123_456_789)
        );
        let nanos = MicroTime(UNIX_EPOCH + Duration::new(1, 999_999_999));
        assert_eq!(nanos.to_string(), "1970-01-01T00:00:01.999999Z");
        for bad in [
            "",
            "2026-12-08",
            "2026-12-08T02:10:00",
            "2026-13-08T02:10:00Z",
            "2026-02-29T02:10:00Z",
            "2026-12-08T24:10:00Z",
            "2026-12-08T02:10:00.Z",
            "2026-12-08T02:10:00.1234567890Z",
            "2026-12-08T02:10:00+0100",
            "2026-12-08 02:10:00Z",
            "+026-12-08T02:10:00Z",
        ] {
            assert!(bad.parse::<MicroTime>().is_err(), "{bad:?}");
        }
    }

    impl MicroTime {
        fn add_nanos(self, nanos: u64) -> Self {
            MicroTime(self.0 + Duration::from_nanos(nanos))
        }
    }

    #[test]
    fn lease_json_is_camel_case_and_ignores_unknown_fields() {
        let json = r#"{"kind":"Lease","apiVersion":"coordination.k8s.io/v1",
            "metadata":{"name":"leader","namespace":"a","uid":"u-1","resourceVersion":"42",
              "creationTimestamp":"2026-12-08T02:10:00Z","managedFields":[{"manager":"x"}]},
            "spec":{"holderIdentity":"node-1","leaseDurationSeconds":15,
              "acquireTime":"2026-12-08T02:10:00.000000Z","renewTime":"2026-12-08T02:10:05.250000Z",
              "leaseTransitions":3,"future":true}}"#;
        let lease: Lease = serde_json::from_str(json).unwrap();
        assert_eq!(lease.metadata.resource_version.as_deref(), Some("42"));
        assert_eq!(lease.spec.holder_identity.as_deref(), Some("node-1"));
        assert_eq!(lease.spec.renew_time, Some(at(1_796_695_805, 250_000)));
        assert_eq!(lease.spec.lease_transitions, Some(3));
        let sent = serde_json::to_value(&lease).unwrap();
        assert_eq!(sent["spec"]["renewTime"], "2026-12-08T02:10:05.250000Z");
        assert_eq!(sent["metadata"]["resourceVersion"], "42");
        assert!(sent["metadata"].get("labels").is_none());
        let fresh = serde_json::to_value(Lease::new("x", LeaseSpec::default())).unwrap();
        assert_eq!(
            fresh,
            serde_json::json!({"apiVersion":"coordination.k8s.io/v1","kind":"Lease",
                "metadata":{"name":"x"},"spec":{}})
        );
    }

    #[test]
    fn watch_events_decode_every_type() {
        let event = |s: &str| serde_json::from_str::<WatchEvent<ConfigMap>>(s).unwrap();
        let added =
            event(r#"{"type":"ADDED","object":{"metadata":{"name":"c"},"data":{"k":"v"}}}"#);
        assert!(
            matches!(&added, WatchEvent::Added(c) if c.data["k"] == "v" && c.kind == "ConfigMap")
        );
        let bookmark = event(
            r#"{"type":"BOOKMARK","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"resourceVersion":"77","creationTimestamp":null}}}"#,
        );
        assert_eq!(bookmark, WatchEvent::Bookmark("77".into()));
        let error = event(
            r#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (77)","reason":"Expired","code":410}}"#,
        );
        assert!(matches!(error, WatchEvent::Error(Status { code: 410, .. })));
        assert!(
            serde_json::from_str::<WatchEvent<ConfigMap>>(r#"{"type":"NEW","object":{}}"#).is_err()
        );
    }
}
