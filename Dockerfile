# The dpcm-operator image (it holds dpcm-agent too): built on Debian bookworm, run on
# bookworm-slim as a non-root user. No image is published; build it yourself:
#
#   docker build -t REGISTRY/dpcm-operator:0.1.0 .          # or: podman build / buildah bud
#   docker push REGISTRY/dpcm-operator:0.1.0
#
# Targets:
#   operator  (the default, last stage)  compiles the operator and the agent in the
#             `build` stage: needs only the two base images below.
#   prebuilt  packages binaries built outside, on Debian bookworm with the packages of
#             hack/deps.sh: the build context must hold bin/dpcm-operator and
#             bin/dpcm-agent. hack/image.sh builds this target from the build's bin/
#             (CI does, as a compile inside the image gets no ccache and would take
#             most of CI's time on 2 cores); `hack/image.sh build --from-source`
#             builds `operator`.
# Without a registry, hack/image.sh makes debian:bookworm and debian:bookworm-slim from
# Debian's own packages (mmdebstrap) first.
#
# The runtime is bookworm-slim rather than distroless/cc because the operator links
# Debian's shared cpp-httplib, yaml-cpp, spdlog/fmt and prometheus-cpp libraries, which
# distroless does not carry; installing the same Debian runtime packages keeps the image
# and the build in step.

FROM debian:bookworm AS build
# The -dev packages hack/deps.sh installs for the operator itself (no test tools).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config ca-certificates \
      libcpp-httplib-dev nlohmann-json3-dev libyaml-cpp-dev prometheus-cpp-dev \
      libspdlog-dev libssl-dev \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake/ cmake/
COPY cmd/ cmd/
COPY pkg/ pkg/
# This stage links the operator and the agent against Debian's shared libraries (CMake warns
# that the static link's sources, hack/static-sources.sh, are absent); the `prebuilt` target
# packages the host's static binaries (README "Memory and the static link").
# The optimisation CI tests (RelWithDebInfo: -O2; stripped below). Release's -O3 makes
# Debian's GCC 12 report a false -Wrestrict in std::string (GCC bug 105329), and compiler
# warnings are the lint's business, not a reason for an image build to fail.
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDPCM_BUILD_TESTS=OFF -DDPCM_WERROR=OFF \
 && cmake --build /build --target dpcm-operator dpcm-agent -j"$(nproc)" \
 && mkdir -p /out/bin \
 && strip -o /out/bin/dpcm-operator /build/bin/dpcm-operator \
 && strip -o /out/bin/dpcm-agent /build/bin/dpcm-agent

FROM debian:bookworm-slim AS runtime
# The packages of the shared libraries `ldd dpcm-operator` lists beyond the base
# image (libstdc++6, libgcc-s1, libc6 and zlib1g are already there; libbrotli1
# comes with libcpp-httplib0.11); ca-certificates for API servers whose CA is
# in the system trust store. `hack/image.sh smoke` fails on any library missing here.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates libcpp-httplib0.11 libyaml-cpp0.7 libspdlog1.10 libfmt9 \
      libprometheus-cpp-core1.0 libssl3 \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
# The distroless "nonroot" ids; the chart and manifests run as 65532:65532 too.
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/dpcm-operator"]

# Binaries from the build context's bin/ (hack/image.sh stages stripped copies there).
# The agent sidecar (--agent-image defaults to this image; it runs `dpcm-agent` by name).
FROM runtime AS prebuilt
COPY bin/dpcm-operator bin/dpcm-agent /usr/local/bin/

FROM runtime AS operator
COPY --from=build /out/bin/dpcm-operator /out/bin/dpcm-agent /usr/local/bin/
