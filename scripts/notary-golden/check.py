#!/usr/bin/env python3
"""Consistency check of tests/data/golden (independent of notary and of trustgate).

Usage: check.py [GOLDEN_DIR] [--reference DIR_WITH_reference_check.py]
Needs the `cryptography` package and the spec's reference_check.py (default
/work/shared/spec/testdata). For every scenario and state it checks:
  - all signatures and the timestamp -> snapshot -> role hash chain (reference_check.main),
  - N.root.json for N = 1..current: each signed by its own root keys and by the previous version's,
  - for multi-state scenarios: whether state2's root is signed by state1's root keys
    (must be for `rotated`, must not be for `recreated`),
  - every expected tag's sha256/length is in the role expected.json names, every unsigned tag is in
    no role, and every signed hash has a manifest file with those bytes.
"""
import argparse, base64, contextlib, hashlib, io, json, os, sys

ap = argparse.ArgumentParser()
ap.add_argument("golden", nargs="?", default=os.path.join(os.path.dirname(__file__), "../../tests/data/golden"))
ap.add_argument("--reference", default="/work/shared/spec/testdata")
args = ap.parse_args()
sys.path.insert(0, args.reference)
import reference_check as rc  # noqa: E402

MUST_CHAIN = {"rotated": True, "recreated": False}


def valid_sigs(env, keys):
    msg, ok = rc.canon(env["signed"]), set()
    for s in env["signatures"]:
        if s["keyid"] in keys:
            try:
                rc.verify_sig(keys[s["keyid"]], s["method"], base64.b64decode(s["sig"]), msg)
                ok.add(s["keyid"])
            except Exception:
                pass
    return ok


def root_keys(env):
    r = env["signed"]
    return {k: r["keys"][k] for k in r["roles"]["root"]["keyids"]}


def load(p):
    with open(p, "rb") as f:
        return json.loads(f.read())


failures = 0
for scen in sorted(os.listdir(args.golden)):
    sdir = os.path.join(args.golden, scen)
    if not os.path.isfile(os.path.join(sdir, "expected.json")):
        continue
    exp = load(os.path.join(sdir, "expected.json"))
    try:
        for st in exp["states"]:
            d = os.path.join(sdir, st)
            with contextlib.redirect_stdout(io.StringIO()) as out:
                sys.argv = ["reference_check", d]
                rc.main()
            bad = [l.strip() for l in out.getvalue().splitlines()
                   if " False" in l or "unknown keyid" in l or " 0 valid sig" in l]
            assert not bad, f"{st}: " + "; ".join(bad)
            n = load(os.path.join(d, "root.json"))["signed"]["version"]
            prev = None
            for v in range(1, n + 1):
                e = load(os.path.join(d, f"{v}.root.json"))
                assert e["signed"]["version"] == v, f"{st}/{v}.root.json has version {e['signed']['version']}"
                assert len(valid_sigs(e, root_keys(e))) >= e["signed"]["roles"]["root"]["threshold"], f"{st}/{v}.root.json self"
                if prev:
                    assert len(valid_sigs(e, root_keys(prev))) >= prev["signed"]["roles"]["root"]["threshold"], f"{st}/{v}.root.json not signed by v{v-1}"
                prev = e
            with open(os.path.join(d, f"{n}.root.json"), "rb") as a, open(os.path.join(d, "root.json"), "rb") as b:
                assert a.read() == b.read(), f"{st}: {n}.root.json != root.json"
            bs = exp.get("by_state", {}).get(st, {"tags": exp["tags"], "unsigned_tags": exp["unsigned_tags"]})
            digests = {m["digest"] for m in exp["manifests"].values()}
            for tag, t in bs["tags"].items():
                m = load(os.path.join(d, t["role"] + ".json"))["signed"]["targets"][tag]
                assert base64.b64decode(m["hashes"]["sha256"]).hex() == t["sha256"] and m["length"] == t["length"], f"{st} {tag}"
                assert "sha256:" + t["sha256"] in digests, f"no manifest for {tag}"
            for tag in bs["unsigned_tags"]:
                for role in ["targets"] + [r for r in load(os.path.join(d, "snapshot.json"))["signed"]["meta"] if r.startswith("targets/")]:
                    assert tag not in load(os.path.join(d, role + ".json"))["signed"]["targets"], f"{st}: unsigned {tag} in {role}"
        for f, m in exp["manifests"].items():
            with open(os.path.join(sdir, f), "rb") as fh:
                b = fh.read()
            assert "sha256:" + hashlib.sha256(b).hexdigest() == m["digest"] and len(b) == m["length"], f
        if len(exp["states"]) > 1:
            a = load(os.path.join(sdir, "state1", "root.json"))
            b = load(os.path.join(sdir, exp["states"][-1], "root.json"))
            chained = len(valid_sigs(b, root_keys(a))) >= a["signed"]["roles"]["root"]["threshold"]
            if scen in MUST_CHAIN:
                assert chained == MUST_CHAIN[scen], f"last root chains to state1: {chained}"
        print(f"ok   {scen}: {', '.join(exp['states'])}")
    except Exception as e:  # noqa: BLE001 - report any failure per scenario
        failures += 1
        print(f"FAIL {scen}: {type(e).__name__}: {e}")
sys.exit(1 if failures else 0)
