# Builds every binary once, then ships them in a small runtime image with no build tools.
# docker build -t chat-backend .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --workspace --bins \
 && mkdir /out \
 && cp target/release/chatd target/release/chat-gateway target/release/chat-service \
       target/release/chat-presence target/release/chat-push /out/

FROM debian:bookworm-slim
# curl only for container health checks; ca-certificates for APNs/FCM over TLS.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/chat --create-home chat
COPY --from=build /out/ /usr/local/bin/
USER chat
WORKDIR /var/lib/chat
ENV CHAT_DATA_DIR=/var/lib/chat/data CHAT_LOG_FORMAT=json
EXPOSE 8080
# The default is the all-in-one server; the compose file and Kubernetes pick a service.
CMD ["chatd", "serve", "--listen", "0.0.0.0:8080"]
