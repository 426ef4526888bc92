//! Test images built without the internet: deterministic layer tarballs, a config JSON and a
//! Docker schema2 (or OCI) manifest — or an index / manifest list over several platform images —
//! written into a skopeo `dir:` layout and pushed with `skopeo copy --preserve-digests`, so the
//! registry stores exactly these bytes and the tests know every digest in advance.
//!
//! Do not round-trip through skopeo's `oci:` transport when the digest must stay: skopeo converts
//! schema2 to OCI there.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::http::sha256_digest;
use super::proc::CmdOutput;
use super::registry::Creds;
use super::skopeo::Skopeo;

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Docker schema2 (+ Docker manifest list) or OCI (+ OCI index) media types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Docker,
    Oci,
}

/// One file in a layer.
#[derive(Clone, Debug)]
pub struct FileSpec {
    pub path: String,
    pub content: FileContent,
}

#[derive(Clone, Debug)]
pub enum FileContent {
    Bytes(Vec<u8>),
    /// `size` pseudo-random (incompressible) bytes from a seeded generator: for multi-MiB layers.
    Random {
        size: usize,
        seed: u64,
    },
}

/// The files of one layer (sorted by path in the tarball, parents added as directories).
#[derive(Clone, Debug, Default)]
pub struct LayerSpec {
    pub files: Vec<FileSpec>,
}

impl LayerSpec {
    /// A layer with one text file.
    pub fn text(path: &str, content: &str) -> LayerSpec {
        LayerSpec::default().with_text(path, content)
    }

    /// A layer with one file of `size` incompressible bytes (so the gzip blob is ~`size` bytes).
    pub fn random(path: &str, size: usize, seed: u64) -> LayerSpec {
        LayerSpec::default().with_random(path, size, seed)
    }

    pub fn with_text(mut self, path: &str, content: &str) -> LayerSpec {
        self.files.push(FileSpec {
            path: path.into(),
            content: FileContent::Bytes(content.as_bytes().to_vec()),
        });
        self
    }

    pub fn with_random(mut self, path: &str, size: usize, seed: u64) -> LayerSpec {
        self.files.push(FileSpec {
            path: path.into(),
            content: FileContent::Random { size, seed },
        });
        self
    }
}

/// One platform image.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
    pub layers: Vec<LayerSpec>,
    pub format: Format,
    /// Goes into the config's labels, so images with equal layers still differ.
    pub label: String,
}

impl ImageSpec {
    /// A linux/amd64 Docker schema2 image (pullable by docker and podman on this machine).
    pub fn new(label: &str, layers: Vec<LayerSpec>) -> ImageSpec {
        ImageSpec {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
            layers,
            format: Format::Docker,
            label: label.into(),
        }
    }

    /// The usual two-layer image: one text file (`path`, `content`) and `size` seeded random
    /// bytes at `random_path`.
    pub fn text_and_random(
        label: &str,
        (path, content): (&str, &str),
        (random_path, size, seed): (&str, usize, u64),
    ) -> ImageSpec {
        ImageSpec::new(
            label,
            vec![
                LayerSpec::text(path, content),
                LayerSpec::random(random_path, size, seed),
            ],
        )
    }

    /// A small image with `n` text layers.
    pub fn small(label: &str, n: usize) -> ImageSpec {
        let layers = (0..n)
            .map(|i| {
                LayerSpec::text(
                    &format!("layer{i}/hello.txt"),
                    &format!("{label}: layer {i}\n"),
                )
            })
            .collect();
        ImageSpec::new(label, layers)
    }

    pub fn platform(mut self, os: &str, arch: &str, variant: Option<&str>) -> ImageSpec {
        self.os = os.into();
        self.architecture = arch.into();
        self.variant = variant.map(Into::into);
        self
    }

    pub fn format(mut self, f: Format) -> ImageSpec {
        self.format = f;
        self
    }
}

/// A blob written into the layout.
#[derive(Clone, Debug)]
pub struct Blob {
    pub digest: String,
    pub size: u64,
    pub media_type: String,
}

/// One built platform image.
#[derive(Clone, Debug)]
pub struct BuiltImage {
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub media_type: String,
    pub config: Blob,
    pub layers: Vec<Blob>,
    /// `sha256:` of each uncompressed layer tar (the config's rootfs.diff_ids).
    pub diff_ids: Vec<String>,
    pub os: String,
    pub architecture: String,
}

/// A skopeo `dir:` layout holding one image or an index over several.
#[derive(Clone, Debug)]
pub struct Layout {
    pub dir: PathBuf,
    /// Bytes of the top-level `manifest.json` (image manifest or index/list).
    pub manifest: Vec<u8>,
    pub digest: String,
    pub media_type: String,
    /// The platform images (one for a single image).
    pub images: Vec<BuiltImage>,
    pub is_index: bool,
}

impl Layout {
    /// Build a single image into `dir` (created; must be empty or absent).
    pub fn image(dir: &Path, spec: &ImageSpec) -> Layout {
        init_dir(dir);
        let img = write_image(dir, spec);
        fs::write(dir.join("manifest.json"), &img.manifest).expect("write manifest.json");
        Layout {
            dir: dir.to_path_buf(),
            manifest: img.manifest.clone(),
            digest: img.manifest_digest.clone(),
            media_type: img.media_type.clone(),
            images: vec![img],
            is_index: false,
        }
    }

    /// Build an index (OCI) or manifest list (Docker) over `specs` into `dir`.
    pub fn index(dir: &Path, format: Format, specs: &[ImageSpec]) -> Layout {
        init_dir(dir);
        let mut images = Vec::new();
        let mut entries = Vec::new();
        for spec in specs {
            let mut spec = spec.clone();
            spec.format = format;
            let img = write_image(dir, &spec);
            // Child manifests are stored as `<hex>.manifest.json` (containers/image dir transport).
            let hex = img.manifest_digest.trim_start_matches("sha256:");
            fs::write(dir.join(format!("{hex}.manifest.json")), &img.manifest)
                .expect("write child manifest");
            let mut platform = json!({"architecture": spec.architecture, "os": spec.os});
            if let Some(v) = &spec.variant {
                platform["variant"] = json!(v);
            }
            entries.push(json!({
                "mediaType": img.media_type,
                "size": img.manifest.len(),
                "digest": img.manifest_digest,
                "platform": platform,
            }));
            images.push(img);
        }
        let media_type = match format {
            Format::Docker => DOCKER_LIST,
            Format::Oci => OCI_INDEX,
        };
        let index = json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": entries,
        });
        let bytes = serde_json::to_vec_pretty(&index).expect("index json");
        fs::write(dir.join("manifest.json"), &bytes).expect("write manifest.json");
        Layout {
            dir: dir.to_path_buf(),
            digest: sha256_digest(&bytes),
            manifest: bytes,
            media_type: media_type.into(),
            images,
            is_index: true,
        }
    }

    /// The linux/amd64 image (the one docker/podman/ctr pick on this machine).
    pub fn amd64(&self) -> &BuiltImage {
        self.images
            .iter()
            .find(|i| i.os == "linux" && i.architecture == "amd64")
            .expect("no linux/amd64 image in layout")
    }

    /// Every blob digest (configs and layers) of every image.
    pub fn blob_digests(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .images
            .iter()
            .flat_map(|i| {
                std::iter::once(i.config.digest.clone())
                    .chain(i.layers.iter().map(|l| l.digest.clone()))
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The bytes of every blob (configs and layers), read back from the layout, for registries
    /// filled in process (the fake upstream) rather than pushed to.
    pub fn blob_bytes(&self) -> Vec<Vec<u8>> {
        self.blob_digests()
            .iter()
            .map(|d| fs::read(self.dir.join(d.trim_start_matches("sha256:"))).expect("read blob"))
            .collect()
    }

    /// Push with `skopeo copy --preserve-digests [--all] dir:LAYOUT docker://HOST/REPO:TAG`.
    /// Panics if the push fails or the registry does not serve the exact bytes afterwards.
    pub fn push(
        &self,
        skopeo: &Skopeo,
        registry_host: &str,
        repo: &str,
        tag: &str,
        creds: Option<&Creds>,
    ) -> CmdOutput {
        let dest = format!("docker://{registry_host}/{repo}:{tag}");
        let out = skopeo.push_dir(&self.dir, &dest, self.is_index, creds);
        out.assert_success();
        out
    }
}

fn init_dir(dir: &Path) {
    fs::create_dir_all(dir).expect("create layout dir");
    fs::write(dir.join("version"), "Directory Transport Version: 1.1\n").expect("write version");
}

/// Write layers and config blobs of `spec` into `dir`; return the manifest (not written).
fn write_image(dir: &Path, spec: &ImageSpec) -> BuiltImage {
    let (layer_mt, config_mt, manifest_mt) = match spec.format {
        Format::Docker => (DOCKER_LAYER, DOCKER_CONFIG, DOCKER_MANIFEST),
        Format::Oci => (OCI_LAYER, OCI_CONFIG, OCI_MANIFEST),
    };
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for layer in &spec.layers {
        let tar = layer_tar(layer);
        diff_ids.push(sha256_digest(&tar));
        let gz = gzip(&tar);
        layers.push(write_blob(dir, &gz, layer_mt));
    }
    let mut config = json!({
        "architecture": spec.architecture,
        "os": spec.os,
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/true"],
            "Labels": {"org.trustgate.test": spec.label},
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": spec.layers.iter().enumerate().map(|(i, _)| json!({
            "created": "1970-01-01T00:00:00Z",
            "created_by": format!("trustgate test layer {i}"),
        })).collect::<Vec<_>>(),
    });
    if let Some(v) = &spec.variant {
        config["variant"] = json!(v);
    }
    let config_bytes = serde_json::to_vec(&config).expect("config json");
    let config_blob = write_blob(dir, &config_bytes, config_mt);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": manifest_mt,
        "config": {
            "mediaType": config_mt,
            "size": config_blob.size,
            "digest": config_blob.digest,
        },
        "layers": layers.iter().map(|l| json!({
            "mediaType": l.media_type,
            "size": l.size,
            "digest": l.digest,
        })).collect::<Vec<_>>(),
    });
    let manifest = serde_json::to_vec_pretty(&manifest).expect("manifest json");
    BuiltImage {
        manifest_digest: sha256_digest(&manifest),
        manifest,
        media_type: manifest_mt.into(),
        config: config_blob,
        layers,
        diff_ids,
        os: spec.os.clone(),
        architecture: spec.architecture.clone(),
    }
}

fn write_blob(dir: &Path, bytes: &[u8], media_type: &str) -> Blob {
    let digest = sha256_digest(bytes);
    // containers/image dir transport, version 1.1: blobs are named by the bare hex digest.
    fs::write(dir.join(digest.trim_start_matches("sha256:")), bytes).expect("write blob");
    Blob {
        digest,
        size: bytes.len() as u64,
        media_type: media_type.into(),
    }
}

/// A deterministic tar: sorted names, parents as directories, mtime 0, uid/gid 0, no user names.
pub fn layer_tar(layer: &LayerSpec) -> Vec<u8> {
    let mut entries: Vec<(String, Option<Vec<u8>>)> = Vec::new();
    let mut dirs = std::collections::BTreeSet::new();
    for f in &layer.files {
        let path = f.path.trim_start_matches('/').to_string();
        let mut acc = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for p in &parts[..parts.len() - 1] {
            acc.push_str(p);
            acc.push('/');
            dirs.insert(acc.clone());
        }
        let data = match &f.content {
            FileContent::Bytes(b) => b.clone(),
            FileContent::Random { size, seed } => random_bytes(*size, *seed),
        };
        entries.push((path, Some(data)));
    }
    for d in dirs {
        entries.push((d, None));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));

    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        match data {
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                h.set_cksum();
                builder
                    .append_data(&mut h, &path, std::io::empty())
                    .expect("tar dir");
            }
            Some(bytes) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(bytes.len() as u64);
                h.set_cksum();
                builder
                    .append_data(&mut h, &path, bytes.as_slice())
                    .expect("tar file");
            }
        }
    }
    builder.into_inner().expect("finish tar")
}

/// gzip with a zero mtime and no file name (like `gzip -n`), so equal input gives equal bytes.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip finish")
}

/// `size` pseudo-random bytes (splitmix64), identical for equal seeds.
pub fn random_bytes(size: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(size);
    out
}
