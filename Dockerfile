# The dpcm-operator image: build on Debian bookworm, run on bookworm-slim as a
# non-root user. Build and push it yourself (no image is published):
#
#   docker build -t REGISTRY/dpcm-operator:0.1.0 .
#   docker push REGISTRY/dpcm-operator:0.1.0
#
# The runtime stage is bookworm-slim rather than distroless/cc because the
# operator links Debian's shared cpp-httplib, yaml-cpp, spdlog/fmt and
# prometheus-cpp libraries, which distroless does not carry; installing the
# same Debian runtime packages keeps the image and the build in step.

FROM debian:bookworm AS build
# The -dev packages hack/deps.sh installs for the operator itself (no test tools).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config ca-certificates \
      libcpp-httplib-dev nlohmann-json3-dev libyaml-cpp-dev prometheus-cpp-dev \
      libspdlog-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmd/ cmd/
COPY pkg/ pkg/
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DDPCM_BUILD_TESTS=OFF \
 && cmake --build /build --target dpcm-operator dpcm-agent -j"$(nproc)" \
 && strip /build/bin/dpcm-operator /build/bin/dpcm-agent

FROM debian:bookworm-slim
# The packages of the shared libraries `ldd dpcm-operator` lists beyond the base
# image (libstdc++6, libgcc-s1, libc6 and zlib1g are already there; libbrotli1
# comes with libcpp-httplib0.11); ca-certificates for API servers whose CA is
# in the system trust store.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates libcpp-httplib0.11 libyaml-cpp0.7 libspdlog1.10 libfmt9 \
      libprometheus-cpp-core1.0 libssl3 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /build/bin/dpcm-operator /usr/local/bin/dpcm-operator
# The agent sidecar (--agent-image defaults to this image; it runs `dpcm-agent` by name).
COPY --from=build /build/bin/dpcm-agent /usr/local/bin/dpcm-agent
# The distroless "nonroot" ids; the chart and manifests run as 65532:65532 too.
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/dpcm-operator"]
