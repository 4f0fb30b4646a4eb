"""Structural checks of a Compose project against k8s/base (run by scripts/validate-compose.sh).

Usage: compose_check.py REPO RENDERED_BASE_YAML CONFIG_JSON RAW_COMPOSE_FILE

CONFIG_JSON is `docker compose config --format json` of the file (already validated against the
Compose Specification by that command: paths absolute, variables interpolated with an empty
environment). The raw file is read only to make sure no secret is written in it.

Checks:
  - the Compose services are exactly the workloads of k8s/base (Deployments, StatefulSets, Jobs);
  - every service's image is one that its k8s workload runs (same name and tag);
  - every bind mount is a directory or file of the repository itself (no path outside it,
    symlinks resolved), and where the k8s workload mounts a ConfigMap generated from a directory
    of the repository (queries/, cql/, grafana/...), the service mounts that same directory at
    the same path (k8s/base/prometheus excepted: Compose has no pod discovery);
  - every `depends_on` waits for `service_healthy` of a service that has a health check;
  - every volume is a named volume declared at the top level; ports are published on 127.0.0.1;
  - no environment variable that looks like a secret has a value written in the file.
"""

import glob
import json
import os
import re
import sys

import yaml

# ConfigMaps the Compose file deliberately does not mirror, and why.
NOT_MIRRORED = {
    "prometheus-config": "k8s/base/prometheus discovers pods; compose/prometheus lists static targets",
}
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job", "DaemonSet")
SECRET_NAME = re.compile(r"(^|_)(API_KEY|KEY|PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIALS?)(_|$)", re.I)
EMPTY_INTERPOLATION = re.compile(r"^\$\{(\w+)(:?-)?\}$")


def generated_configmaps(repo):
    """ConfigMap name -> the repository directory its generator reads (one directory each)."""
    sources = {}
    for kfile in glob.glob(os.path.join(repo, "*", "kustomization.yaml")) + [os.path.join(repo, "k8s/base/kustomization.yaml")]:
        with open(kfile) as f:
            doc = yaml.safe_load(f) or {}
        base = os.path.dirname(kfile)
        for gen in doc.get("configMapGenerator", []):
            dirs = {os.path.dirname(os.path.join(base, entry.split("=")[-1])) for entry in gen.get("files", [])}
            if len(dirs) == 1:
                sources[gen["name"]] = os.path.realpath(dirs.pop())
    return sources


def configmap_source(name, sources):
    for gen, directory in sources.items():
        if name == gen or re.fullmatch(re.escape(gen) + r"-[a-z0-9]{10}", name):
            return gen, directory
    return None, None


def inside(path, repo):
    """Whether `path` (symlinks resolved) is the repository or below it."""
    return os.path.commonpath([os.path.realpath(path), repo]) == repo


def main():
    repo, rendered, config_json, raw_file = sys.argv[1:5]
    repo = os.path.realpath(repo)
    errors = []
    fail = errors.append

    with open(rendered) as f:
        objects = [o for o in yaml.safe_load_all(f) if o]
    workloads = {o["metadata"]["name"]: o for o in objects if o["kind"] in WORKLOAD_KINDS}
    with open(config_json) as f:
        project = json.load(f)
    services = project.get("services", {})
    with open(raw_file) as f:
        raw = yaml.safe_load(f)
    sources = generated_configmaps(repo)

    missing = sorted(set(workloads) - set(services))
    extra = sorted(set(services) - set(workloads))
    if missing:
        fail(f"services missing from the Compose file (k8s/base runs them): {', '.join(missing)}")
    if extra:
        fail(f"services with no workload in k8s/base: {', '.join(extra)} (add them to k8s/base too)")

    for name, service in sorted(services.items()):
        where = f"service {name}"
        workload = workloads.get(name)
        if workload is not None:
            pod = workload["spec"]["template"]["spec"]
            containers = pod.get("containers", []) + pod.get("initContainers", [])
            images = sorted({c["image"] for c in containers})
            if service.get("image") not in images:
                fail(f"{where}: image {service.get('image')!r}, but k8s/base runs {' or '.join(images)}")
            volumes = {v["name"]: v for v in pod.get("volumes", [])}
            binds = {m["target"]: m for m in service.get("volumes", []) if m.get("type") == "bind"}
            for container in pod.get("containers", []):
                for mount in container.get("volumeMounts", []):
                    ref = volumes.get(mount["name"], {}).get("configMap", {}).get("name")
                    gen, directory = configmap_source(ref or "", sources)
                    if gen is None or gen in NOT_MIRRORED:
                        continue
                    bind = binds.get(mount["mountPath"])
                    rel = os.path.relpath(directory, repo)
                    if bind is None:
                        fail(f"{where}: k8s/base mounts ConfigMap {gen} ({rel}/) at {mount['mountPath']}; "
                             f"mount ./{rel} there")
                    elif inside(bind["source"], repo) and os.path.realpath(bind["source"]) != directory:
                        fail(f"{where}: {mount['mountPath']} mounts {bind['source']}, not the repository's {rel}/")

        for mount in service.get("volumes", []):
            target = mount.get("target")
            if mount.get("type") == "bind":
                source = os.path.realpath(mount["source"])
                if not inside(source, repo):
                    fail(f"{where}: mounts {mount['source']} at {target}, outside the repository {repo}")
                elif not os.path.exists(source):
                    fail(f"{where}: mounts {mount['source']} at {target}, which does not exist")
            elif mount.get("type") == "volume":
                if not mount.get("source") or mount["source"] not in project.get("volumes", {}):
                    fail(f"{where}: {target} is an anonymous volume; use a named volume")
            elif mount.get("type") != "tmpfs":
                fail(f"{where}: {target} is a {mount.get('type')} mount")

        for target, dep in sorted(service.get("depends_on", {}).items()):
            if target not in services:
                fail(f"{where}: depends on {target}, which is not a service")
                continue
            if dep.get("condition") != "service_healthy":
                fail(f"{where}: depends on {target} with condition {dep.get('condition')}; "
                     "use service_healthy so that `up` waits for it")
            check = services[target].get("healthcheck") or {}
            if check.get("disable") or not check.get("test") or check["test"][0] == "NONE":
                fail(f"{where}: depends on {target}, which has no health check")

        for port in service.get("ports", []):
            if port.get("host_ip") != "127.0.0.1":
                fail(f"{where}: port {port.get('published')} is published on all interfaces; "
                     "use 127.0.0.1:HOST:CONTAINER")

        env = (raw.get("services", {}).get(name) or {}).get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
        for key, value in env.items():
            if SECRET_NAME.search(key) and value not in (None, ""):
                m = EMPTY_INTERPOLATION.match(str(value))
                if not m or m.group(1) != key:
                    fail(f"{where}: {key} has a value written in the file; use {key}: ${{{key}:-}} "
                         "and set it in the environment or the git-ignored .env")

    if errors:
        print("\n".join("  - " + e for e in errors), file=sys.stderr)
        sys.exit(1)
    print(f"compose structure: ok ({len(services)} services, the workloads of k8s/base)", file=sys.stderr)


if __name__ == "__main__":
    main()
