//! `[storage.shared]`: the object store a fleet of replicas shares (issue 14).
//!
//! Credentials are never in this table: they come from the standard `AWS_*` environment
//! variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, ...) or the
//! instance's role, as every AWS tool reads them.

use serde::Deserialize;

use crate::config::de_opt_size;
use crate::config::Seconds;

/// `[storage.shared]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedStoreConfig {
    /// `s3://bucket` or `s3://bucket/prefix`: every object trustgate writes lives under the prefix.
    pub url: String,
    /// The S3 endpoint of a store other than AWS (MinIO, Ceph RGW, SeaweedFS):
    /// `http://minio:9000`. Absent: AWS itself (or `AWS_ENDPOINT`).
    pub endpoint: Option<String>,
    /// The bucket's region. Absent: `AWS_REGION`/`AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// Allow an `http://` endpoint (a store on a private network). Off by default.
    #[serde(default)]
    pub allow_http: bool,
    /// Time one request to the store may take before the store counts as down (and pulls go on
    /// from the local tier and the upstream without it).
    #[serde(default = "default_timeout")]
    pub timeout: Seconds,
    /// How long a replica's claim to fill a digest (its lease) holds without renewal. Others
    /// wait for the object that long at most before they take the fill over.
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl: Seconds,
    /// After the store failed, how long to go without it before trying again.
    #[serde(default = "default_retry_after")]
    pub retry_after: Seconds,
    /// Upper bound of the content in the bucket (`"500GiB"`, `"2TB"` or a plain number of
    /// bytes): above it the oldest objects are deleted (see [`super::sweep`]). Unbounded when
    /// absent.
    #[serde(default, deserialize_with = "de_opt_size")]
    pub max_size: Option<u64>,
    /// Content written to the bucket longer ago than this (`"30d"`) is deleted. Age is the
    /// time since the object was stored (S3 keeps no access time). Unbounded when absent.
    pub max_age: Option<Seconds>,
    /// How often a replica checks the bounds (one replica of the fleet sweeps at a time).
    #[serde(default = "default_sweep_interval")]
    pub sweep_interval: Seconds,
}

fn default_timeout() -> Seconds {
    Seconds::from_secs(10)
}
fn default_lease_ttl() -> Seconds {
    Seconds::from_secs(30)
}
fn default_retry_after() -> Seconds {
    Seconds::from_secs(5)
}
fn default_sweep_interval() -> Seconds {
    Seconds::from_secs(600)
}

/// A parsed `url`: the bucket and the key prefix (without slashes at either end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketUrl {
    pub bucket: String,
    pub prefix: String,
}

impl SharedStoreConfig {
    /// Checks what can be checked without the store; `Err((key, problem))`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        parse_url(&self.url).map_err(|p| ("url".to_string(), p))?;
        if let Some(e) = &self.endpoint {
            let u = url::Url::parse(e)
                .map_err(|err| ("endpoint".to_string(), format!("{e:?} is not a URL: {err}")))?;
            match u.scheme() {
                "https" => {}
                "http" if self.allow_http => {}
                "http" => {
                    return Err((
                        "endpoint".into(),
                        "is plain http: set allow_http = true to allow it".into(),
                    ))
                }
                s => {
                    return Err((
                        "endpoint".into(),
                        format!(
                        "scheme {s:?} is not supported; use https:// (or http:// with allow_http)"
                    ),
                    ))
                }
            }
        }
        for (k, v) in [
            ("timeout", self.timeout),
            ("lease_ttl", self.lease_ttl),
            ("retry_after", self.retry_after),
            ("sweep_interval", self.sweep_interval),
        ] {
            if v.is_zero() {
                return Err((k.into(), "must be at least 1 second".into()));
            }
        }
        if self.max_size == Some(0) {
            return Err((
                "max_size".into(),
                "must be more than 0 bytes (leave it out for an unbounded bucket)".into(),
            ));
        }
        if self.max_age.is_some_and(|a| a.is_zero()) {
            return Err((
                "max_age".into(),
                "must be at least 1 second (leave it out to keep objects at any age)".into(),
            ));
        }
        // An object younger than the fill lease may still be read by the replica that waited
        // for it: evicting it at once would only cost a refetch, but says the bound is too
        // tight to be useful.
        if let Some(a) = self.max_age.filter(|a| *a < self.lease_ttl) {
            return Err((
                "max_age".into(),
                format!("{a} is shorter than lease_ttl ({}): objects would be deleted while replicas still wait for them", self.lease_ttl),
            ));
        }
        Ok(())
    }

    /// `max_size` and `max_age`, for the sweeper.
    pub fn bounds(&self) -> super::sweep::Bounds {
        super::sweep::Bounds {
            max_size: self.max_size,
            max_age: self.max_age.map(Seconds::as_duration),
        }
    }

    pub fn bucket_url(&self) -> Result<BucketUrl, String> {
        parse_url(&self.url)
    }
}

/// `s3://bucket[/prefix...]`. Bucket names follow S3's rules (3–63 characters of lower-case
/// letters, digits, dots and dashes), which every S3-compatible store accepts.
pub fn parse_url(text: &str) -> Result<BucketUrl, String> {
    let rest = text
        .strip_prefix("s3://")
        .ok_or_else(|| format!("{text:?} is not an s3://bucket/prefix URL"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && !bucket.starts_with(['.', '-'])
        && !bucket.ends_with(['.', '-']);
    if !bucket_ok {
        return Err(format!(
            "{bucket:?} is not a valid bucket name (3 to 63 lower-case letters, digits, dots, dashes)"
        ));
    }
    let prefix = prefix.trim_matches('/');
    if prefix.split('/').any(|seg| seg == "." || seg == "..")
        || prefix.contains("//")
        || prefix.chars().any(|c| c.is_control())
    {
        return Err(format!("{prefix:?} is not a usable key prefix"));
    }
    Ok(BucketUrl {
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_and_prefix() {
        assert_eq!(
            parse_url("s3://tg-cache/fleet/a/").unwrap(),
            BucketUrl {
                bucket: "tg-cache".into(),
                prefix: "fleet/a".into()
            }
        );
        assert_eq!(parse_url("s3://tg-cache").unwrap().prefix, "");
    }

    #[test]
    fn bad_urls_say_why() {
        assert!(parse_url("https://x/y").unwrap_err().contains("s3://"));
        assert!(parse_url("s3://AB").unwrap_err().contains("bucket name"));
        assert!(parse_url("s3://bucket/a/../b")
            .unwrap_err()
            .contains("prefix"));
    }

    fn cfg(toml_text: &str) -> SharedStoreConfig {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn plain_http_needs_allow_http() {
        let c = cfg("url = \"s3://bkt\"\nendpoint = \"http://127.0.0.1:9000\"\n");
        assert_eq!(c.validate().unwrap_err().0, "endpoint");
        let c =
            cfg("url = \"s3://bkt\"\nendpoint = \"http://127.0.0.1:9000\"\nallow_http = true\n");
        c.validate().unwrap();
        assert_eq!(c.lease_ttl, Seconds::from_secs(30));
    }

    #[test]
    fn bounds_take_units_and_are_checked() {
        let c = cfg("url = \"s3://bkt\"\nmax_size = \"2GiB\"\nmax_age = \"7d\"\n");
        c.validate().unwrap();
        assert_eq!(c.max_size, Some(2 << 30));
        assert_eq!(c.max_age, Some(Seconds::from_secs(7 * 86_400)));
        assert_eq!(c.sweep_interval, Seconds::from_secs(600));
        let c = cfg("url = \"s3://bkt\"\nmax_size = 0\n");
        assert_eq!(c.validate().unwrap_err().0, "max_size");
        let c = cfg("url = \"s3://bkt\"\nmax_age = \"10s\"\n");
        assert_eq!(c.validate().unwrap_err().0, "max_age");
        let c = cfg("url = \"s3://bkt\"\nsweep_interval = 0\n");
        assert_eq!(c.validate().unwrap_err().0, "sweep_interval");
        assert!(
            toml::from_str::<SharedStoreConfig>("url = \"s3://bkt\"\nmax_size = \"lots\"\n")
                .is_err()
        );
    }

    #[test]
    fn no_credentials_in_the_file() {
        let e =
            toml::from_str::<SharedStoreConfig>("url = \"s3://bkt\"\nsecret_access_key = \"x\"\n")
                .unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }
}
