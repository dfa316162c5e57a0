# rehost images. Not built on the development machines (no Docker engine
# there); see docs/operations.md, "What is checked here".
#
#   docker build --target runtime -t rehost .        # production: `rehost worker`
#   docker build --target demo    -t rehost-demo .   # + fixtures/media for `rehost origin`
#
# Without --target the last stage is built, which is the production image
# again (see the end of this file), never the demo. Needs nothing beyond the
# classic builder (no BuildKit-only syntax); with BuildKit it builds the same.

# --- builder -------------------------------------------------------------------
# Same toolchain as CI and Cargo.toml's rust-version (1.95). The slim image
# ships gcc and libc6-dev, which aws-lc-sys (rustls' crypto) needs; on x86_64
# and aarch64 Linux it builds with cc alone (pregenerated bindings, no cmake,
# no libclang).
FROM rust:1.95-slim-bookworm AS builder
WORKDIR /build

# 1. Dependencies, in a layer that changes only with Cargo.toml/Cargo.lock:
#    build them against an empty crate (an empty lib.rs and a main that does
#    nothing), so editing src/ does not rebuild the dependencies.
#    There is no build.rs; Cargo.toml declares no [[test]], [[example]] or
#    [[bench]] target, and `cargo build` builds only the lib and the bin.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && : > src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src target/release/rehost target/release/deps/rehost-* \
       target/release/deps/librehost-* target/release/.fingerprint/rehost-*

# 2. The crate itself. profiles/platforms.toml is compiled into the binary.
#    `touch` makes the sources newer than anything step 1 built, whatever
#    times COPY gave them.
COPY profiles ./profiles
COPY src ./src
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && install -D -m 0755 target/release/rehost /out/rehost \
    && /out/rehost --version

# --- runtime (production) --------------------------------------------------------
# The binary, the CA certificates and a non-root user; no shell tools added,
# no fixtures. Same Debian release as the builder, so glibc matches.
FROM debian:bookworm-slim AS runtime

# ca-certificates: the origin fetcher (hyper-rustls with the platform
# verifier) and the S3 client verify TLS against the system roots
# (rustls-platform-verifier / rustls-native-certs read /etc/ssl/certs, or
# the bundle named by SSL_CERT_FILE).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# uid/gid 10001, as deploy/k8s/deployment.yaml's securityContext expects.
RUN groupadd --system --gid 10001 rehost \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /var/lib/rehost --shell /usr/sbin/nologin rehost \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/rehost

COPY --from=builder /out/rehost /usr/local/bin/rehost

ENV REHOST_LOG_FORMAT=json \
    REHOST_HTTP_ADDR=0.0.0.0:9090

# Writable working directory (`rehost ingest` defaults to ./rehost-data).
WORKDIR /var/lib/rehost
USER 10001:10001

# /healthz, /readyz, /metrics of `rehost worker` (REHOST_HTTP_ADDR).
EXPOSE 9090
# `rehost healthcheck` GETs /healthz on REHOST_HTTP_ADDR (0.0.0.0 is asked
# as 127.0.0.1) and exits 0 on 200, 1 otherwise: no curl in the image.
# /healthz fails when the worker has had no active consumer for
# REHOST_STALL_SECS (300 s) while broker and store answer and it has room.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["rehost", "healthcheck"]

# The worker stops on SIGTERM (Docker's default stop signal) and lets jobs in
# flight finish within REHOST_SHUTDOWN_GRACE_SECS (30 s), then needs up to
# 10 s more: give the container a stop timeout of 45 s (`docker stop -t 45`,
# compose `stop_grace_period`, Kubernetes terminationGracePeriodSeconds).
ENTRYPOINT ["rehost"]
CMD ["worker"]

# --- demo (local runs only) --------------------------------------------------------
# The runtime image plus fixtures/media, served by `rehost origin` for
# compose.yaml's `origin` service. Never deploy it as the worker.
FROM runtime AS demo

COPY fixtures/media /srv/media
# Readable by the unprivileged user whatever modes the checkout had; owned by
# root, so the origin cannot change them.
USER root
RUN chown -R 0:0 /srv/media && chmod -R a+rX,go-w /srv/media
USER 10001:10001

EXPOSE 8080
# Replaces the worker's check: fetch and check one fixture from the origin,
# allowing loopback for this command only (the flag, not the environment,
# so nothing else in the container inherits it).
HEALTHCHECK --interval=15s --timeout=5s --start-period=5s --retries=3 \
    CMD ["rehost", "check", "--allow-private-networks", "127.0.0.1/32", "http://127.0.0.1:8080/small.jpg"]

CMD ["origin", "--dir", "/srv/media", "--listen", "0.0.0.0:8080"]

# --- default -------------------------------------------------------------------------
# The last stage is what `docker build .` builds without --target: the
# production image, unchanged (it inherits user, health check, entrypoint
# and command from `runtime`).
FROM runtime
