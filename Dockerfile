# syntax=docker/dockerfile:1
#
# One Dockerfile, two images:
#   docker build --target engine -t mdsp-engine:dev .
#   docker build --target ingest -t mdsp-ingest:dev .
#
# Stages: chef (toolchain + cargo-chef) -> planner (recipe.json from the manifests) -> builder
# (dependencies cooked in their own layer, rebuilt only when Cargo.toml/Cargo.lock change; then
# both binaries) -> one slim runtime stage per binary, running as a non-root user.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS chef
# rdkafka builds its vendored librdkafka (C/C++ toolchain, make, pkg-config; zlib for the
# default libz feature; cmake, OpenSSL and SASL headers for the optional cmake-build/ssl/gssapi
# features).
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        build-essential \
        cmake \
        libsasl2-dev \
        libssl-dev \
        pkg-config \
        zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-chef --locked --version 0.1.71
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
# The caching layer: every dependency of every workspace member, built once. Both images leave
# out the engine's `demo` feature (its embedded broker and CQL store).
RUN cargo chef cook --release --workspace --no-default-features --recipe-path recipe.json
COPY . .
# The release profile strips the binaries' debug info and keeps their symbols (Cargo.toml,
# [profile.release.package.*]); a binary over MAX_BINARY_MB means that has been lost, and the
# build fails rather than ship it (scripts/validate-deploy.sh checks that both stay in place).
ARG MAX_BINARY_MB=200
RUN cargo build --release --locked --no-default-features -p engine -p ingest \
    && for bin in engine ingest; do \
        install -D -m 0755 "target/release/$bin" "/out/$bin"; \
        size=$(stat -c %s "/out/$bin"); \
        echo "$bin: $((size / 1048576)) MiB"; \
        if [ "$size" -gt $((MAX_BINARY_MB * 1048576)) ]; then \
            echo "$bin is $((size / 1048576)) MiB, over MAX_BINARY_MB=$MAX_BINARY_MB: debug info in the binary?" >&2; \
            exit 1; \
        fi; \
    done

# Shared runtime base: glibc and zlib from Debian slim, nothing else (TLS roots for TwelveData
# are compiled into ingest). UID/GID 10001 match the securityContext in k8s/base.
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# checkov:skip=CKV_DOCKER_2: no HEALTHCHECK: Kubernetes ignores it and probes /healthz and /readyz itself (k8s/base), and the slim image has no HTTP client to run one
RUN mkdir -p /var/lib/engine /etc/engine \
    && chown 10001:10001 /var/lib/engine
USER 10001:10001
WORKDIR /var/lib/engine

FROM runtime AS ingest
COPY --from=builder /out/ingest /usr/local/bin/ingest
EXPOSE 9102
ENTRYPOINT ["/usr/local/bin/ingest"]
CMD ["run"]

# Last stage, so a plain `docker build .` produces the engine. The shipped queries and schema
# are baked in as defaults; Kubernetes mounts ConfigMaps over these directories.
FROM runtime AS engine
COPY --from=builder /out/engine /usr/local/bin/engine
COPY queries/*.sql /etc/engine/queries/
COPY cql/*.cql /etc/engine/schema/
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/engine"]
CMD ["run", "--queries", "/etc/engine/queries", "--metrics-addr", "0.0.0.0:9464"]
