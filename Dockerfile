# kube-watch-bridge container image.
#
#   build:  ../shared/tools/container-build.sh build   (or docker build .)
#   run:    non-root (uid 65532), read-only root filesystem; writes only to
#           /var/lib/kube-watch-bridge (checkpoints) and /var/log/kwb (the
#           default file sink), both volumes, and to stdout/stderr.

# ---- build stage: compilers and -dev packages, Release build ----
FROM debian:bookworm-slim AS build
WORKDIR /src
# Dependencies first, so the layer survives source changes.
COPY scripts/deps.sh scripts/deps.sh
RUN scripts/deps.sh --build && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release \
 && cmake --build /build --target kube-watch-bridge -j"$(nproc)" \
 && /build/kube-watch-bridge --version

# ---- runtime stage: shared libraries only ----
FROM debian:bookworm-slim
COPY scripts/deps.sh /tmp/deps.sh
RUN /tmp/deps.sh --runtime \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /tmp/deps.sh \
 && echo 'kwb:x:65532:65532:kube-watch-bridge:/nonexistent:/usr/sbin/nologin' >>/etc/passwd \
 && echo 'kwb:x:65532:' >>/etc/group \
 && install -d -o 65532 -g 65532 -m 0750 /var/lib/kube-watch-bridge /var/log/kwb \
 && install -d -m 0755 /etc/kube-watch-bridge
COPY --from=build /build/kube-watch-bridge /usr/local/bin/kube-watch-bridge
COPY deploy/image/kube-watch-bridge.conf /etc/kube-watch-bridge/kube-watch-bridge.conf
# Fail the build when a runtime library is missing.
RUN ! ldd /usr/local/bin/kube-watch-bridge | grep -q 'not found' \
 && /usr/local/bin/kube-watch-bridge --version

USER 65532:65532
VOLUME ["/var/lib/kube-watch-bridge", "/var/log/kwb"]
EXPOSE 9090
ENTRYPOINT ["kube-watch-bridge"]
CMD ["--config", "/etc/kube-watch-bridge/kube-watch-bridge.conf"]
