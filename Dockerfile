# syntax=docker/dockerfile:1
# env0-exporter container image, published on release as ghcr.io/env0-exporter/env0-exporter:<version>
# (the helm chart's default image). To build and push your own:
#   docker build -t registry.example.com/team/env0-exporter:0.1.0 .
#   docker push registry.example.com/team/env0-exporter:0.1.0
# Multi-arch (buildx; the foreign architecture builds under QEMU emulation, several times slower):
#   docker buildx build --platform linux/amd64,linux/arm64 --build-arg VERSION=0.1.0 \
#     --build-arg REVISION=$(git rev-parse HEAD) -t registry.example.com/team/env0-exporter:0.1.0 --push .
# Try it: docker run --rm -p 19180:19180 <image> demo --listen-address 0.0.0.0:19180
# The build uses the `dist` profile (Cargo.toml): link-time optimisation across all crates and one
# codegen unit, for a smaller binary; `release` is the quicker profile for building locally. And
# the `jemalloc` feature: the allocator that keeps the process small (docs/scale.md).

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src

# Dependency layer: build the dependencies against empty targets so that a source-only change
# reuses this layer. Only the workspace's manifests and Cargo.lock invalidate it. The workspace:
# the exporter (.), the simulated env0 its `demo` runs (crates/env0-sim, the default `simulator`
# feature) and the clock both read (crates/env0-clock).
COPY Cargo.toml Cargo.lock ./
COPY crates/env0-clock/Cargo.toml crates/env0-clock/
COPY crates/env0-sim/Cargo.toml crates/env0-sim/
RUN mkdir -p src crates/env0-clock/src crates/env0-sim/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs crates/env0-clock/src/lib.rs crates/env0-sim/src/lib.rs \
    && cargo build --profile dist --features jemalloc --locked \
    && rm -rf src crates/env0-clock/src crates/env0-sim/src

# Real build. touch: the copied sources may be older than the dummy artifacts above.
COPY crates ./crates
COPY src ./src
RUN touch src/main.rs src/lib.rs crates/env0-clock/src/lib.rs crates/env0-sim/src/lib.rs \
    && cargo build --profile dist --features jemalloc --locked \
    && cp target/dist/env0-exporter /env0-exporter

FROM gcr.io/distroless/cc-debian12:nonroot

ARG VERSION=0.1.0
ARG REVISION=unknown
# The repository's public URL (the helm chart's home).
ARG SOURCE=https://github.com/env0-exporter/env0-exporter
LABEL org.opencontainers.image.title="env0-exporter" \
      org.opencontainers.image.description="Prometheus exporter for env0 deployments, environments and drift" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}"

COPY --from=builder /env0-exporter /env0-exporter

USER 65532:65532
EXPOSE 19180
ENTRYPOINT ["/env0-exporter"]
