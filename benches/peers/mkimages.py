#!/usr/bin/env python3
"""Builds the benchmark's images as files ready for the Registry v2 upload API (benches/peers.sh).

    mkimages.py OUT LAYERS LAYER_BYTES BIG_BYTES

OUT/app/: LAYERS layers, each a tar holding one file of LAYER_BYTES random bytes, gzip-wrapped
with stored (level 0) deflate blocks: real tar+gzip, so skopeo and the registries handle them as
any image, and the blob is as incompressible as the random bytes. A config JSON and a Docker
schema2 manifest over them.
OUT/big/: one blob of exactly BIG_BYTES random bytes, a config and a schema2 manifest that names
it as a layer (nothing unpacks it: the workloads GET it by digest).

Prints one line per file to upload, in upload order (blobs first, manifests last):
    blob REPO DIGEST PATH
    manifest REPO TAG DIGEST LENGTH PATH
"""
import hashlib
import io
import json
import os
import sys
import tarfile
import zlib

CHUNK = 1 << 20


def random_file(path, size):
    """Writes `size` random bytes to `path`; returns their sha256 hex."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            b = os.urandom(min(CHUNK, left))
            h.update(b)
            f.write(b)
            left -= len(b)
    return h.hexdigest()


def gzip_tar_layer(path, size, name):
    """A tar with one file of `size` random bytes, gzip-wrapped (stored blocks), written to
    `path`. Returns (sha256 of the gzip blob, sha256 of the tar = diff_id, blob length)."""
    payload = os.urandom(size)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mtime = 0
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(payload))
    tar_bytes = buf.getvalue()
    comp = zlib.compressobj(0, zlib.DEFLATED, 31)  # wbits 31: gzip header and trailer
    gz = comp.compress(tar_bytes) + comp.flush()
    with open(path, "wb") as f:
        f.write(gz)
    return hashlib.sha256(gz).hexdigest(), hashlib.sha256(tar_bytes).hexdigest(), len(gz)


def config_blob(path, diff_ids):
    cfg = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + d for d in diff_ids]},
        "history": [{"created_by": "trustgate benches/peers/mkimages.py"} for _ in diff_ids],
    }
    data = json.dumps(cfg, separators=(",", ":"), sort_keys=True).encode()
    with open(path, "wb") as f:
        f.write(data)
    return hashlib.sha256(data).hexdigest(), len(data)


def manifest(path, config, layers):
    m = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": config[1],
            "digest": "sha256:" + config[0],
        },
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": size,
                "digest": "sha256:" + digest,
            }
            for digest, size in layers
        ],
    }
    data = json.dumps(m, indent=3).encode()
    with open(path, "wb") as f:
        f.write(data)
    return hashlib.sha256(data).hexdigest(), len(data)


def main():
    out, n_layers, layer_bytes, big_bytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    lines = []

    app = os.path.join(out, "app")
    os.makedirs(app, exist_ok=True)
    layers, diff_ids = [], []
    for i in range(n_layers):
        p = os.path.join(app, f"layer{i}.tar.gz")
        digest, diff_id, length = gzip_tar_layer(p, layer_bytes, f"data/layer{i}.bin")
        layers.append((digest, length))
        diff_ids.append(diff_id)
        lines.append(f"blob bench/app sha256:{digest} {p}")
    cp = os.path.join(app, "config.json")
    cfg = config_blob(cp, diff_ids)
    lines.append(f"blob bench/app sha256:{cfg[0]} {cp}")
    mp = os.path.join(app, "manifest.json")
    md, ml = manifest(mp, cfg, layers)
    lines.append(f"manifest bench/app v1 sha256:{md} {ml} {mp}")

    big = os.path.join(out, "big")
    os.makedirs(big, exist_ok=True)
    bp = os.path.join(big, "blob")
    bd = random_file(bp, big_bytes)
    lines.append(f"blob bench/big sha256:{bd} {bp}")
    cp = os.path.join(big, "config.json")
    cfg = config_blob(cp, [bd])
    lines.append(f"blob bench/big sha256:{cfg[0]} {cp}")
    mp = os.path.join(big, "manifest.json")
    md, ml = manifest(mp, cfg, [(bd, big_bytes)])
    lines.append(f"manifest bench/big v1 sha256:{md} {ml} {mp}")

    print("\n".join(lines))


if __name__ == "__main__":
    main()
