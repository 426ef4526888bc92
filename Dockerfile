# trustgate's container image: built from this repository (docker compose build), run as an
# unprivileged user. curl is there for the compose healthcheck of /readyz.
FROM rust:1.85-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin trustgate

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home-dir /var/lib/trustgate --create-home trustgate
COPY --from=build /src/target/release/trustgate /usr/local/bin/trustgate
COPY config/trustgate.toml /etc/trustgate/trustgate.toml
USER trustgate
WORKDIR /var/lib/trustgate
EXPOSE 5000 5001
ENTRYPOINT ["/usr/local/bin/trustgate"]
CMD ["serve", "--config", "/etc/trustgate/trustgate.toml"]
