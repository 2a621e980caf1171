# Builds every binary once, then ships them in a small runtime image with no build tools.
# docker build -t chat-backend .
#
# Compiled dependencies are kept between builds in BuildKit cache mounts (the registry and
# target/), so a change to the project's own code does not rebuild the dependency tree.
# (cargo-chef, used before, replaces every local crate with an empty skeleton while it
# compiles dependencies, which breaks on the patched tungstenite in vendor/.)
FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# --workspace: the root manifest's default-members is only chatd; the image ships all five.
# The copy is in the same step: target/ is a cache mount, not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --workspace --bins \
 && mkdir /out \
 && cp target/release/chatd target/release/chat-gateway target/release/chat-service \
       target/release/chat-presence target/release/chat-push /out/

FROM debian:bookworm-slim
# curl only for container health checks; ca-certificates for APNs/FCM over TLS.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 chat \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/chat --create-home chat
COPY --from=builder /out/ /usr/local/bin/
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
WORKDIR /var/lib/chat
ENV CHAT_DATA_DIR=/var/lib/chat/data CHAT_LOG_FORMAT=json
EXPOSE 8080
# The default is the all-in-one server; the compose file and Kubernetes pick a service.
CMD ["chatd", "serve", "--listen", "0.0.0.0:8080"]
