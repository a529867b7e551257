# syntax=docker/dockerfile:1
#
# k8s-upgrade as a container image: one static binary (musl) on distroless `static`, run as its
# nonroot user (65532:65532), which is what `k8s-upgrade job` and `k8s-upgrade fleet jobs` print
# (runAsNonRoot, read-only root filesystem). The tag follows the crate version:
#
#   docker build -t ghcr.io/k8s-upgrade/k8s-upgrade:v0.1.0 .
#
# The build stage runs on the target platform (amd64 or arm64) and builds for its musl target;
# the upgrade-paths data and the built-in scenarios are compiled into the binary.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY upgrade-paths upgrade-paths
COPY scenarios scenarios
COPY benches benches
# ring compiles C for the target: with musl's gcc wrapper (musl-tools), named explicitly since the
# cross-compiler name cc-rs looks for first (x86_64-linux-musl-gcc) is not installed.
RUN set -eu; \
    target="$(uname -m)-unknown-linux-musl"; \
    case "$target" in x86_64-*|aarch64-*) ;; *) echo "unsupported architecture: $target" >&2; exit 1 ;; esac; \
    rustup target add "$target"; \
    export "CC_$(echo "$target" | tr - _)=musl-gcc"; \
    cargo build --release --locked --target "$target" --bin k8s-upgrade; \
    cp "target/$target/release/k8s-upgrade" /k8s-upgrade; \
    /k8s-upgrade --version

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="k8s-upgrade" \
      org.opencontainers.image.description="Plan and perform Kubernetes cluster upgrades: hop graph, removed APIs, add-ons, skew, drains" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/k8s-upgrade/k8s-upgrade" \
      org.opencontainers.image.ref.name="ghcr.io/k8s-upgrade/k8s-upgrade:v${VERSION}"
COPY --from=build /k8s-upgrade /k8s-upgrade
USER 65532:65532
ENTRYPOINT ["/k8s-upgrade"]
