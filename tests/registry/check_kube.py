#!/usr/bin/env python3
"""Checks deploy/kubernetes for the invariants docs/deploy.md promises.

Reads the YAML files directly (always), and the overlay rendered by
`kubectl kustomize` when kubectl is installed. Exit 0 ok, 1 on a violation,
77 when PyYAML is missing."""
import glob
import os
import shutil
import subprocess
import sys

try:
    import yaml
except ImportError:
    print("SKIPPED: python3-yaml is not installed")
    sys.exit(77)

ROOT = sys.argv[1]
FAILS = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        FAILS.append(what)


def check_docs(docs, label):
    by_kind = {}
    for d in docs:
        if d:
            by_kind.setdefault(d["kind"], []).append(d)
    deps = by_kind.get("Deployment", [])
    check(len(deps) == 1, f"{label}: one Deployment")
    if not deps:
        return
    pod = deps[0]["spec"]["template"]["spec"]
    psc = pod.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) != 0, f"{label}: pod runs as non-root")
    check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{label}: pod seccomp RuntimeDefault")
    check(pod.get("automountServiceAccountToken") is False, f"{label}: no service account token")
    check(not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC"), f"{label}: no host namespaces")
    check(not any("hostPath" in v for v in pod.get("volumes", [])), f"{label}: no hostPath volume")
    ctrs = pod.get("initContainers", []) + pod["containers"]
    for c in ctrs:
        sc = c.get("securityContext", {})
        check(sc.get("allowPrivilegeEscalation") is False and sc.get("readOnlyRootFilesystem") is True
              and "ALL" in sc.get("capabilities", {}).get("drop", []) and not sc.get("privileged")
              and sc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
              f"{label}: container {c['name']}: restricted securityContext")
        img = c["image"]
        tag = img.rsplit(":", 1)[1] if ":" in img.rsplit("/", 1)[-1] else ""
        if label != "files":
            check(tag not in ("", "latest") or "@sha256:" in img, f"{label}: container {c['name']}: image {img} pinned")
    check(any(c.get("args", [None])[0] == "pull" for c in pod.get("initContainers", [])),
          f"{label}: a pull init container fills the store")
    srv = [c for c in pod["containers"] if c.get("args", [None])[0] == "serve"]
    check(len(srv) == 1, f"{label}: one serve container")
    if srv:
        s = srv[0]
        check(s.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/ready", f"{label}: readiness /ready")
        check(s.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/health", f"{label}: liveness /health")
        check("startupProbe" in s, f"{label}: startup probe")
        check("requests" in s.get("resources", {}), f"{label}: resource requests")
        secret_vols = {v["name"] for v in pod["volumes"] if "secret" in v}
        key_mounts = [m for m in s.get("volumeMounts", []) if m["name"] in secret_vols]
        check(key_mounts and all(m.get("readOnly") for m in key_mounts), f"{label}: API keys from a read-only Secret")
    nps = by_kind.get("NetworkPolicy", [])
    deny = [n for n in nps if n["spec"].get("podSelector") in ({}, None) and "Egress" in n["spec"].get("policyTypes", [])
            and not n["spec"].get("egress")]
    check(len(deny) >= 1, f"{label}: a default-deny egress NetworkPolicy for every pod")
    for n in nps:
        for rule in n["spec"].get("egress", []) or []:
            ports = {p["port"] for p in rule.get("ports", [])}
            check(rule.get("to") and ports and ports <= {5000, 53},
                  f"{label}: egress rule of {n['metadata']['name']} only to the registry (5000) or DNS (53): {ports}")
    hpa = by_kind.get("HorizontalPodAutoscaler", [])
    check(any(m.get("pods", {}).get("metric", {}).get("name") == "airlock_queue_depth"
              for h in hpa for m in h["spec"].get("metrics", [])), f"{label}: HPA on airlock_queue_depth")
    check(len(by_kind.get("ServiceMonitor", [])) == 1, f"{label}: ServiceMonitor")
    check(len(by_kind.get("Service", [])) == 1, f"{label}: Service")


files = []
for p in sorted(glob.glob(os.path.join(ROOT, "base", "*.yaml"))):
    with open(p) as f:
        files += [d for d in yaml.safe_load_all(f) if d and "kind" in d and d["kind"] != "Kustomization"]
check_docs(files, "files")
for p in glob.glob(os.path.join(ROOT, "**", "kustomization.yaml"), recursive=True):
    k = yaml.safe_load(open(p))
    for im in k.get("images", []):
        check(str(im.get("newTag", "")) not in ("", "latest"), f"{os.path.relpath(p, ROOT)}: image tag {im.get('newTag')} pinned")
kubectl = shutil.which("kubectl")
if kubectl:
    for ov in ["base", "overlays/enclave"]:
        r = subprocess.run([kubectl, "kustomize", os.path.join(ROOT, ov)], capture_output=True, text=True)
        check(r.returncode == 0, f"kubectl kustomize {ov}: {r.stderr.strip()[:200]}")
        if r.returncode == 0:
            check_docs(list(yaml.safe_load_all(r.stdout)), ov)
            if ov != "base":
                check("latest" not in r.stdout.replace("AIRLOCK", ""), f"{ov}: no 'latest' anywhere")
else:
    print("note: kubectl not installed: only the files were checked, not the rendered overlays")
if FAILS:
    print(f"{len(FAILS)} check(s) FAILED")
    sys.exit(1)
print("all checks passed")
