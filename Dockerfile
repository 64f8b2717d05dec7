# Multi-stage build for every Gatehouse image; pick one with --target:
#   docker build --target ratelimit -t gatehouse/ratelimit .
#   docker build --target ext-authz -t gatehouse/ext-authz .
#   docker build --target demo-backend -t gatehouse/demo-backend .
# Runtime images are distroless (glibc, CA certificates, no shell), run as a non-root user and
# check their own health with the binary's `healthcheck` subcommand.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# The context is the workspace's manifests and crate sources only (.dockerignore, which
# tests/tests/k8s_base.rs checks against what this build reads).
COPY . .
# The services are built on their own: built together with e2e, cargo would unify e2e's
# `test-util` features into them and compile the test support into the shipped binaries.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ratelimit -p ext-authz --bin ratelimit --bin ext-authz \
 && cargo build --release --locked -p e2e --bin demo-backend \
 && mkdir -p /out && cp target/release/ratelimit target/release/ext-authz target/release/demo-backend /out/

# /bin/ratelimit, where envoyproxy/ratelimit's image has it: Envoy Gateway runs that path as its
# rate limit deployment's command (it has no setting to change it), so this image works there
# unchanged. /usr/local/bin/ratelimit stays for earlier users of this image.
FROM gcr.io/distroless/cc-debian12:nonroot AS ratelimit
COPY --from=build /out/ratelimit /bin/ratelimit
COPY --from=build /out/ratelimit /usr/local/bin/ratelimit
USER nonroot:nonroot
EXPOSE 8080 8081 6070
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s CMD ["/bin/ratelimit", "healthcheck"]
ENTRYPOINT ["/bin/ratelimit"]

FROM gcr.io/distroless/cc-debian12:nonroot AS ext-authz
COPY --from=build /out/ext-authz /usr/local/bin/ext-authz
USER nonroot:nonroot
EXPOSE 9001 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s CMD ["/usr/local/bin/ext-authz", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/ext-authz"]
CMD ["--config", "/etc/ext-authz/ext-authz.yaml"]

FROM gcr.io/distroless/cc-debian12:nonroot AS demo-backend
COPY --from=build /out/demo-backend /usr/local/bin/demo-backend
USER nonroot:nonroot
EXPOSE 8000
ENTRYPOINT ["/usr/local/bin/demo-backend", "0.0.0.0:8000"]
