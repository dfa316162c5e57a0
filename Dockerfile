# syntax=docker/dockerfile:1
#
# rehost: one image for `rehost worker` (the default) and `rehost origin`
# (compose). Build with `docker build -t rehost .` or `docker compose build`.

# --- build -------------------------------------------------------------------
# Same toolchain as CI and Cargo.toml's rust-version (1.95). The slim image
# ships gcc and libc6-dev, which aws-lc-sys (rustls' crypto) needs; it builds
# with cc alone on x86_64 and aarch64 Linux, no cmake.
FROM rust:1.95-slim-bookworm AS builder
WORKDIR /build

# Only what the release binary needs. Cargo.toml declares no [[test]],
# [[example]] or [[bench]] targets and there is no build.rs, so tests/,
# examples/ and fixtures/ are not needed here.
COPY Cargo.toml Cargo.lock ./
COPY src ./src

# The registry and target dir are BuildKit cache mounts (kept between builds,
# not in the image), so the binary is copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/build/target \
    cargo build --release --locked \
    && install -D -m 0755 target/release/rehost /out/rehost

# --- run ---------------------------------------------------------------------
# Same Debian release as the builder, so the glibc matches.
FROM debian:bookworm-slim

# ca-certificates: reqwest verifies TLS against the system roots
# (rustls-platform-verifier). curl: the HEALTHCHECK below.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 rehost \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /var/lib/rehost --shell /usr/sbin/nologin rehost \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/rehost

COPY --from=builder /out/rehost /usr/local/bin/rehost
# Served by `rehost origin --dir /srv/fixtures/media` in compose.yaml.
COPY fixtures/media /srv/fixtures/media

ENV REHOST_LOG_FORMAT=json \
    REHOST_HTTP_ADDR=0.0.0.0:9090

# Writable working directory (`rehost ingest` defaults to ./rehost-data).
WORKDIR /var/lib/rehost
USER 10001:10001

# /healthz, /readyz, /metrics of `rehost worker`.
EXPOSE 9090
# Follows REHOST_HTTP_ADDR's default port; change both together. Services
# that do not serve it (`rehost origin`) override or disable this check.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9090/healthz"]

# The worker stops on SIGTERM (Docker's default stop signal) and finishes
# in-flight jobs within REHOST_SHUTDOWN_GRACE_SECS (30 s): give the container
# a longer stop timeout (`docker stop -t 45`, compose `stop_grace_period`).
ENTRYPOINT ["rehost"]
CMD ["worker"]
