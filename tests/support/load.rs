//! Client side of the reliability suite's loads (issue 15): skopeo-style pulls over HTTP from a
//! tokio client (manifest by tag, then every blob, each checked against its digest), latency
//! samples, and an RSS sampler that reads `/proc/PID/status` every second.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

use super::faults::rss_kib;
use super::http::{runtime, MANIFEST_ACCEPT};

/// A client without a proxy, with a generous per-request timeout (a hang shows as an error).
pub fn client(max_idle_per_host: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(max_idle_per_host)
        .build()
        .expect("load client")
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// GET `url`; the status and the body, or the transport error.
pub async fn get(
    c: &reqwest::Client,
    url: &str,
    accept: Option<&str>,
) -> Result<(u16, bytes::Bytes), String> {
    let mut rb = c.get(url);
    if let Some(a) = accept {
        rb = rb.header("Accept", a);
    }
    let r = rb.send().await.map_err(|e| format!("{url}: {e}"))?;
    let status = r.status().as_u16();
    let body = r.bytes().await.map_err(|e| format!("{url}: body: {e}"))?;
    Ok((status, body))
}

/// One image pull as skopeo does it: the manifest by tag, then the config and every layer,
/// each blob checked against its digest. Returns the bytes received; any non-2xx, transport
/// error or wrong byte is an `Err` naming it.
pub async fn pull(c: &reqwest::Client, base: &str, repo: &str, tag: &str) -> Result<u64, String> {
    let (status, manifest) = get(
        c,
        &format!("{base}/v2/{repo}/manifests/{tag}"),
        Some(MANIFEST_ACCEPT),
    )
    .await?;
    if status != 200 {
        return Err(format!(
            "{repo}:{tag}: manifest status {status}: {}",
            String::from_utf8_lossy(&manifest)
        ));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&manifest).map_err(|e| format!("manifest JSON: {e}"))?;
    let mut digests = vec![v["config"]["digest"]
        .as_str()
        .unwrap_or_default()
        .to_string()];
    if let Some(layers) = v["layers"].as_array() {
        digests.extend(
            layers
                .iter()
                .filter_map(|l| l["digest"].as_str().map(str::to_string)),
        );
    }
    let mut total = manifest.len() as u64;
    for d in digests {
        let (status, body) = get(c, &format!("{base}/v2/{repo}/blobs/{d}"), None).await?;
        if status != 200 {
            return Err(format!("{repo}: blob {d}: status {status}"));
        }
        if sha256(&body) != d {
            return Err(format!("{repo}: blob {d}: WRONG BYTES served"));
        }
        total += body.len() as u64;
    }
    Ok(total)
}

/// Runs `pull` of `repo:tag` in a loop until `stop`, recording each pull's latency; returns
/// the latencies and the errors.
pub fn warm_puller(
    base: String,
    repo: String,
    tag: String,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(Vec<Duration>, Vec<String>)> {
    std::thread::spawn(move || {
        runtime().block_on(async move {
            let c = client(4);
            let (mut lat, mut errs) = (Vec::new(), Vec::new());
            while !stop.load(Ordering::SeqCst) {
                let t0 = Instant::now();
                match pull(&c, &base, &repo, &tag).await {
                    Ok(_) => lat.push(t0.elapsed()),
                    Err(e) => errs.push(e),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (lat, errs)
        })
    })
}

/// Samples a process's RSS (KiB) every second until dropped.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<Vec<u64>>>,
}

impl RssSampler {
    pub fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut v = Vec::new();
            while !s.load(Ordering::SeqCst) {
                if let Some(k) = rss_kib(pid) {
                    v.push(k);
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            v
        });
        RssSampler {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops and returns the samples (KiB, one a second).
    pub fn finish(mut self) -> Vec<u64> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Flat after warm-up: the last window's maximum within `tolerance` (0.10 = 10 %) of the first
/// window's, after dropping the first `warmup` samples; windows are thirds of what is left.
/// Returns (first max, last max, flat?).
pub fn rss_flat(samples: &[u64], warmup: usize, tolerance: f64) -> (u64, u64, bool) {
    let rest = &samples[warmup.min(samples.len())..];
    if rest.len() < 3 {
        return (0, 0, false);
    }
    let third = rest.len() / 3;
    let first = rest[..third].iter().copied().max().unwrap_or(0);
    let last = rest[rest.len() - third..]
        .iter()
        .copied()
        .max()
        .unwrap_or(0);
    let flat = (last as f64) <= (first as f64) * (1.0 + tolerance);
    (first, last, flat)
}

/// Milliseconds with two decimals, for report lines.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}
