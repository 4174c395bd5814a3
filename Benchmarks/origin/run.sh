#!/usr/bin/env bash
# Shard sets from an HTTP origin: the time to stream every epoch of a set through
# `mbdata serve --spool http://…/set/` with a cold cache (every shard file fetched from a
# local nginx, verified, written) against a warm one (a restarted daemon, nothing fetched).
# Usage: bash Benchmarks/origin/run.sh   Environment: MBDATA (default .build/debug/mbdata),
# WORK, EPOCHS (20), SHARD_MB (1), NGINX.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
MBDATA="${MBDATA:-$ROOT/.build/debug/mbdata}"
WORK="${WORK:-$ROOT/Benchmarks/work/origin}"
EPOCHS="${EPOCHS:-20}"
SHARD_MB="${SHARD_MB:-1}"
NGINX="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"

rm -rf "$WORK" && mkdir -p "$WORK/www" "$WORK/nginx"
"$MBDATA" ingest "$WORK/digits.mbdb" --schema samples/digits/digits.schema.json --val-fraction 0.2 samples/digits/digits.jsonl >/dev/null 2>&1
"$MBDATA" shard "$WORK/digits.mbdb" --out "$WORK/www/set" --split train --batch-size 64 --epochs "$EPOCHS" --seed 7 --shard-mb "$SHARD_MB" >/dev/null 2>&1

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
user=""; [ "$(id -u)" = 0 ] && user="user root;"
cat >"$WORK/nginx/nginx.conf" <<CONF
daemon off; worker_processes 1; $user
pid $WORK/nginx/nginx.pid; error_log $WORK/nginx/error.log warn;
events { worker_connections 256; }
http { access_log $WORK/nginx/access.log; client_body_temp_path $WORK/nginx/body; proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi; uwsgi_temp_path $WORK/nginx/uwsgi; scgi_temp_path $WORK/nginx/scgi;
  sendfile on; server { listen 127.0.0.1:$port; root $WORK/www; } }
CONF
"$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" &
nginx_pid=$!
trap 'kill -QUIT $nginx_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done

# Starts the daemon, streams every epoch of rank 0 of 1, stops it; prints seconds to first byte and in all.
run() {
  local state="$WORK/state-$1.sqlite" fifo="$WORK/serve-$1.out"
  "$MBDATA" serve "$WORK/digits.mbdb" --port 0 --state "$state" --spool "http://127.0.0.1:$port/set/" \
    --cache "$WORK/cache" --cache-size 1G --log-level error >"$fifo" &
  local serve_pid=$!
  local url=""
  for _ in $(seq 400); do url=$(grep -o 'http://[0-9.:]*' "$fifo" 2>/dev/null || true); [ -n "$url" ] && break; sleep 0.05; done
  local started=$(date +%s.%N) first=""
  for epoch in $(seq 0 $((EPOCHS - 1))); do
    curl -sf -o /dev/null -w '%{time_starttransfer}\n' \
      "$url/v1/datasets/digits/batches?batch_size=64&seed=7&split=train&rank=0&world=1&epoch=$epoch&group=$1" >"$WORK/ttfb"
    [ -z "$first" ] && first=$(cat "$WORK/ttfb")
  done
  local ended=$(date +%s.%N)
  local fetched=$(curl -s "$url/metrics" | awk '/^mbdata_origin_bytes_fetched_total /{print $2}')
  kill -TERM $serve_pid; wait $serve_pid || true
  printf '%-5s %8.3f s for %d epochs; first batch after %s s; %s bytes fetched from the origin\n' \
    "$1" "$(echo "$ended - $started" | bc)" "$EPOCHS" "$first" "$fetched"
}

du -sb "$WORK/www/set" | awk '{print "set: " $1 " bytes in " '"$(ls "$WORK/www/set" | grep -c mbshard)"' " shard files"}'
run cold
run warm
