#!/usr/bin/env python3
"""Deterministic image content for the notary golden vectors.

Writes small but complete images (gzip layer tarball, config JSON, manifest JSON) so that a test
registry can serve every manifest and blob byte-for-byte.  Nothing depends on the clock or on the
machine: tar headers are fixed, gzip has mtime 0 and no file name, JSON is written with fixed
formatting.

Usage:
  mkmanifests.py schema2 SCENARIO_DIR SCENARIO TAG [STEM]   Docker schema2 image -> manifests/STEM.json
  mkmanifests.py index   SCENARIO_DIR SCENARIO TAG [STEM]   OCI index over linux/amd64 + linux/arm64
                                                            -> manifests/STEM.json (the index) and
                                                               manifests/STEM.linux-<arch>.json
STEM defaults to TAG; a different STEM gives different image content for the same tag (a tag that
is re-pointed, or signed differently in two roles).
Blobs go to SCENARIO_DIR/blobs/sha256/<hex>.  One line per manifest written is appended to
SCENARIO_DIR/.manifests.tsv (file, sha256 hex, length, media type, tag or '-').
Prints "<sha256 hex> <length> <media type>" of the manifest the tag points at.
"""
import gzip, hashlib, io, json, os, sys, tarfile

D2_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
D2_CONFIG = "application/vnd.docker.container.image.v1+json"
D2_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha(b):
    return hashlib.sha256(b).hexdigest()


def put_blob(sdir, data):
    d = os.path.join(sdir, "blobs", "sha256")
    os.makedirs(d, exist_ok=True)
    h = sha(data)
    with open(os.path.join(d, h), "wb") as f:
        f.write(data)
    return "sha256:" + h


def layer_tar(path, text):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        parts = path.split("/")
        for i in range(1, len(parts)):
            ti = tarfile.TarInfo("/".join(parts[:i]) + "/")
            ti.type, ti.mode, ti.mtime, ti.uid, ti.gid = tarfile.DIRTYPE, 0o755, 0, 0, 0
            tf.addfile(ti)
        data = text.encode()
        ti = tarfile.TarInfo(path)
        ti.size, ti.mode, ti.mtime, ti.uid, ti.gid = len(data), 0o644, 0, 0, 0
        tf.addfile(ti, io.BytesIO(data))
    tar = raw.getvalue()
    gz = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=gz, mtime=0, compresslevel=9) as g:
        g.write(tar)
    return tar, gz.getvalue()


def image(sdir, scenario, tag, arch, oci):
    name = f"golden/{scenario}/{tag}" + (f"-{arch}" if oci else "") + ".txt"
    tar, gz = layer_tar(name, f"trustgate golden vector {scenario}:{tag} {arch}\n")
    config = {
        "architecture": arch,
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha(tar)]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": f"trustgate golden {scenario}:{tag}"}],
    }
    cfg = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    cfg_d, layer_d = put_blob(sdir, cfg), put_blob(sdir, gz)
    m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST if oci else D2_MANIFEST,
         "config": {"mediaType": OCI_CONFIG if oci else D2_CONFIG, "size": len(cfg), "digest": cfg_d},
         "layers": [{"mediaType": OCI_LAYER if oci else D2_LAYER, "size": len(gz), "digest": layer_d}]}
    # docker's own schema2 manifests are indented with 3 spaces; keep that look
    return json.dumps(m, indent=3).encode(), m["mediaType"]


def write_manifest(sdir, fname, data, mt, tag):
    d = os.path.join(sdir, "manifests")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, fname), "wb") as f:
        f.write(data)
    with open(os.path.join(sdir, ".manifests.tsv"), "a") as f:
        f.write(f"manifests/{fname}\t{sha(data)}\t{len(data)}\t{mt}\t{tag}\n")


def main():
    kind, sdir, scenario, tag = sys.argv[1:5]
    stem = sys.argv[5] if len(sys.argv) > 5 else tag
    if kind == "schema2":
        data, mt = image(sdir, scenario, stem, "amd64", oci=False)
    elif kind == "index":
        entries = []
        for arch in ("amd64", "arm64"):
            pm, pmt = image(sdir, scenario, stem, arch, oci=True)
            write_manifest(sdir, f"{stem}.linux-{arch}.json", pm, pmt, "-")
            entries.append({"mediaType": pmt, "digest": "sha256:" + sha(pm), "size": len(pm),
                            "platform": {"architecture": arch, "os": "linux"}})
        mt = OCI_INDEX
        data = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}, indent=3).encode()
    else:
        sys.exit(f"unknown kind {kind}")
    write_manifest(sdir, f"{stem}.json", data, mt, tag)
    print(sha(data), len(data), mt)


if __name__ == "__main__":
    main()
