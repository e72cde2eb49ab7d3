# syntax=docker/dockerfile:1
# irgan service image: `docker build -t irgan .` then
# `docker run -p 8080:8080 -p 50051:50051 -v irgan-data:/var/lib/irgan --env-file irgan.env irgan`
# (add `serve --demo ...` to try it). REST on 8080, gRPC on 50051. The image listens on all
# interfaces, so `irgan serve` refuses to start without an API key: pass
# IRGAN_SERVER__API_KEY=... (an env file or a secret; never bake it into the image), or
# IRGAN_SERVER__ALLOW_OPEN=true if an open service is meant.

# ---- build ----
FROM rust:1.95-slim-bookworm AS builder
WORKDIR /app

# Dependencies first, against stub sources, so this layer is reused until Cargo.toml or
# Cargo.lock change. rusqlite bundles SQLite and builds it with the image's gcc. The stub
# build.rs makes cargo build (and cache) the build dependencies too: protox and
# tonic-prost-build, which compile proto/ in pure Rust (no protoc in the image).
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
    && echo 'fn main() {}' > build.rs \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' > benches/train_schedule.rs \
    && echo 'fn main() {}' > benches/load.rs \
    && echo 'fn main() {}' > benches/game.rs \
    && echo 'fn main() {}' > benches/topk.rs \
    && echo 'fn main() {}' > benches/scale.rs \
    && echo 'fn main() {}' > benches/online.rs \
    && echo 'fn main() {}' > benches/nats_ingest.rs \
    && echo 'fn main() {}' > benches/rows.rs \
    && cargo build --release --locked --bin irgan \
    && rm -rf src benches build.rs

# The real build script, protos and sources; touch them so cargo rebuilds over the stubs.
COPY build.rs ./
COPY proto ./proto
COPY src ./src
COPY benches ./benches
RUN touch build.rs src/main.rs src/lib.rs \
    && cargo build --release --locked --bin irgan

# ---- runtime ----
FROM debian:bookworm-slim
RUN groupadd --system --gid 10001 irgan \
    && useradd --system --uid 10001 --gid irgan --home-dir /var/lib/irgan --no-create-home \
       --shell /usr/sbin/nologin irgan \
    && mkdir -p /var/lib/irgan /etc/irgan \
    && chown irgan:irgan /var/lib/irgan

COPY --from=builder /app/target/release/irgan /usr/local/bin/irgan
COPY config/default.toml /etc/irgan/default.toml

ENV IRGAN_SERVER__BIND=0.0.0.0:8080 IRGAN_SERVER__GRPC_BIND=0.0.0.0:50051 \
    IRGAN_STORAGE__DATA_DIR=/var/lib/irgan
VOLUME /var/lib/irgan
WORKDIR /var/lib/irgan
USER irgan:irgan
EXPOSE 8080 50051
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["irgan", "healthcheck"]
ENTRYPOINT ["irgan"]
CMD ["serve", "--config", "/etc/irgan/default.toml"]
