# Builds every binary once, then ships them in a small runtime image with no build tools.
# docker build -t chat-backend .
#
# Dependencies are compiled in their own layer (cargo-chef): the recipe lists only the
# workspace's manifests and lockfile, so a change to the project's own code rebuilds from
# `COPY . .` in the builder stage, not every crate of the dependency tree.
FROM rust:1-bookworm AS chef
RUN cargo install cargo-chef --locked
WORKDIR /src

# The recipe: Cargo.toml/Cargo.lock of every workspace member, nothing else.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# Dependencies of the whole workspace (the same feature set as the build below), cached as
# long as recipe.json is unchanged; then the project itself.
FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --workspace --recipe-path recipe.json
COPY . .
# --workspace: the root manifest's default-members is only chatd; the image ships all five.
RUN cargo build --release --locked --workspace --bins \
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
