# syntax=docker/dockerfile:1
#
# Production image of the stroke AI DICOM node.
#
#   docker build -t stroke-node .
#   docker build -t stroke-node:cuda --build-arg ORT_CUDA=1 --build-arg RUNTIME_BASE=<CUDA 12 + cuDNN 9 image with Node 20> .
#   docker run -d --init -p 11112:11112 -p 8080:8080 \
#     -v stroke-data:/var/lib/stroke-node -v "$PWD/node.yaml:/etc/stroke-node/node.yaml:ro" stroke-node
#
# Stages: build (dev dependencies + tsc) → deps (npm ci --omit=dev, optional CUDA provider) →
# runtime (no compiler, no dev dependencies, non-root). See docs/operations.md.

ARG NODE_IMAGE=node:20-bookworm-slim
ARG RUNTIME_BASE=node:20-bookworm-slim

# ---------------------------------------------------------------- build: TypeScript → dist/
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# better-sqlite3 compiles from source when no prebuilt binary matches the platform.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json .npmrc ./
# node:20's bundled npm 10 ignores package.json#allowScripts (npm 11.16+ reads it), so it would run
# onnxruntime-node's install script, which downloads the CUDA provider: skip it here by its own switch.
ENV ONNXRUNTIME_NODE_INSTALL=skip
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
# Compile the node only (the repository's tsconfig also type-checks tests and benchmarks).
RUN printf '%s\n' '{"extends":"./tsconfig.json","include":["src/**/*.ts"],"compilerOptions":{"types":["node"],"sourceMap":false}}' > tsconfig.image.json \
 && npx tsc -p tsconfig.image.json

# ---------------------------------------------------------------- deps: production node_modules
FROM ${NODE_IMAGE} AS deps
# ORT_CUDA=1 runs onnxruntime-node's install script to fetch the CUDA 12 execution provider
# (needs internet at build time; otherwise it is skipped so builds work offline).
ARG ORT_CUDA=0
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=skip
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund \
 && if [ "$ORT_CUDA" = "1" ]; then \
      ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js \
      && ls node_modules/onnxruntime-node/bin/napi-v6/linux/*/libonnxruntime_providers_cuda.so; \
    fi \
 && npm cache clean --force

# ---------------------------------------------------------------- runtime
FROM ${RUNTIME_BASE} AS runtime
ARG ORT_CUDA=0
LABEL org.opencontainers.image.title="stroke-ai-dicom-node" \
      org.opencontainers.image.description="PACS-integrated DICOM node for AI on acute ischaemic stroke imaging" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production \
    STROKE_NODE_CONFIG=/etc/stroke-node/node.yaml \
    STROKE_NODE_HEALTHCHECK_URL=http://127.0.0.1:8080/healthz \
    STROKE_NODE_ORT_CUDA=${ORT_CUDA}
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
# The admin page's static files are served from beside the compiled module.
COPY src/admin/static ./dist/src/admin/static
# Model files and manifests (sha256-checked at start; nothing is downloaded at run time).
COPY models ./models
# A default configuration: listens on all interfaces inside the container; no admin token (admin
# page off) and no allowed DICOM peers until the operator mounts a real node.yaml over it.
RUN mkdir -p /var/lib/stroke-node /etc/stroke-node \
 && printf '%s\n' \
      '# Default container configuration: mount your own at /etc/stroke-node/node.yaml' \
      '# (every key: src/config/schema.ts; example: dicom-config/example.yaml).' \
      'storage: { dir: /var/lib/stroke-node }' \
      'dimse: { host: 0.0.0.0, port: 11112 }' \
      'http: { host: 0.0.0.0, port: 8080 }' \
      'inference: { modelsDir: /app/models }' \
      > /etc/stroke-node/node.yaml \
 && chown -R node:node /var/lib/stroke-node /etc/stroke-node
USER node
VOLUME ["/var/lib/stroke-node", "/etc/stroke-node"]
EXPOSE 11112 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.STROKE_NODE_HEALTHCHECK_URL).then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
CMD ["node", "dist/src/main.js"]
