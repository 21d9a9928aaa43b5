#!/usr/bin/env bash
# External load benchmark of Score, as a user sees it: three separate processes (an embedded
# Kafka-protocol broker from `inference dev-kafka`, a producer streaming events and labels, and
# `inference serve`), and h2load (Debian's nghttp2-client) driving gRPC open-loop at fixed rates.
# The floor is grpc.health.v1.Health/Check on the same server at the same rates, in the same run.
#   bash bench/load/run.sh            (SECONDS_PER_RUN=20 RATES="1000 2000 5000" by default;
#                                      SERVE_ENV sets serve's environment, e.g. SERVE_ENV="DOTNET_gcServer=1")
# Prints a markdown table last.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${SECONDS_PER_RUN:-20}
rates=${RATES:-1000 2000 5000}
port=${PORT:-50071}
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
command -v h2load >/dev/null || { echo "h2load is missing: apt-get install nghttp2-client" >&2; exit 2; }
# Another process on the port (or on serve's HTTP port) would be measured in serve's place.
for busy in "$port" 9464; do
  if (echo >"/dev/tcp/127.0.0.1/$busy") 2>/dev/null; then echo "port $busy is in use: stop what listens there first" >&2; exit 2; fi
done

dotnet build -c Release engine/Inference.Host >/dev/null
dotnet build -c Release bench/Inference.Bench >/dev/null
host=engine/Inference.Host/bin/Release/net10.0/inference
bench="dotnet bench/Inference.Bench/bin/Release/net10.0/Inference.Bench.dll"

# 32 partitions keep a minute of the stream inside the embedded broker's ~5 MiB per partition.
"$host" dev-kafka --partitions 32 >"$work/broker.out" 2>"$work/broker.err" & pids+=($!)
for _ in $(seq 100); do [ -s "$work/broker.out" ] && break; sleep 0.1; done
bootstrap=$(head -1 "$work/broker.out")
$bench stream --bootstrap-servers "$bootstrap" --entities 100000 --backlog 200000 \
  --events-per-second 20000 --labels-per-second 2000 2>"$work/stream.err" & pids+=($!)
env ${SERVE_ENV:-} "$host" serve --bootstrap-servers "$bootstrap" --port "$port" --Logging:LogLevel:Default=Warning \
  >"$work/serve.out" 2>&1 & pids+=($!)
for _ in $(seq 300); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
kill -0 "${pids[-1]}" 2>/dev/null || { echo "serve did not start:" >&2; cat "$work/serve.out" >&2; exit 1; }
# Let the backlog apply and the stream settle.
sleep 12

# gRPC request bodies: a 5-byte frame header, then the protobuf message.
python3 - "$work" <<'PY'
import struct, sys
def s(field, b): return bytes([field << 3 | 2]) + varint(len(b)) + b
def varint(n):
    out = b""
    while True:
        byte = n & 0x7F; n >>= 7
        if n: out += bytes([byte | 0x80])
        else: return out + bytes([byte])
def row(i): return s(1, s(1, f"user-{i:06d}".encode()) + s(3, f"r-{i}".encode()))
def frame(m): return b"\0" + struct.pack(">I", len(m)) + m
open(sys.argv[1] + "/score1.bin", "wb").write(frame(row(42)))
open(sys.argv[1] + "/score64.bin", "wb").write(frame(b"".join(row(i * 997 % 100000) for i in range(64))))
open(sys.argv[1] + "/health.bin", "wb").write(frame(b""))
PY

score=http://127.0.0.1:$port/inference.v1.ScoringService/Score
health=http://127.0.0.1:$port/grpc.health.v1.Health/Check
# h2load: 4 connections, up to 32 streams each so a slow answer never holds back the next send
# (open loop); --rps is per connection. Latencies come from its per-request log.
run() { # name url body rate
  local clients=4
  h2load -c $clients -m 32 --rps $(( $4 / clients )) -D "$seconds" --warm-up-time 1 \
    -H 'content-type: application/grpc' -H 'te: trailers' -d "$work/$3" --log-file "$work/$1.log" "$2" >"$work/$1.txt" 2>&1
}
saturate() { # name url body
  h2load -c 16 -m 4 -D "$seconds" --warm-up-time 1 \
    -H 'content-type: application/grpc' -H 'te: trailers' -d "$work/$3" "$2" >"$work/$1.txt" 2>&1
}
# Warm both paths first (JIT tiers, first forward passes, connection pools): measured runs are steady state.
SECONDS_SAVED=$seconds; seconds=5
run warm-health "$health" health.bin 1000
run warm-score "$score" score1.bin 1000
seconds=$SECONDS_SAVED
for rate in $rates; do
  run "health-$rate" "$health" health.bin "$rate"
  run "score-$rate" "$score" score1.bin "$rate"
done
run score64-500 "$score" score64.bin 500
run score1-500 "$score" score1.bin 500
saturate health-sat "$health" health.bin
saturate score-sat "$score" score1.bin

python3 - "$work" "$rates" <<'PY'
import re, sys
work, rates = sys.argv[1], sys.argv[2].split()
def pct(name):
    lat = sorted(int(l.split()[2]) for l in open(f"{work}/{name}.log") if l.strip())
    def p(q): return lat[min(len(lat) - 1, int(q * len(lat)))] / 1000
    text = open(f"{work}/{name}.txt").read()
    ok = re.search(r"(\d+) succeeded", text).group(1)
    rps = len(lat) / float(re.search(r"finished in ([\d.]+)s", text).group(1))
    return p(0.5), p(0.99), p(0.999), rps, ok
def rate(name):
    text = open(f"{work}/{name}.txt").read()
    return float(re.search(r"finished in [\d.]+s, ([\d.]+) req/s", text).group(1)), re.search(r"(\d+) succeeded", text).group(1)
print("| load | Score p50 / p99 / p999 (ms) | Health/Check p50 / p99 / p999 (ms) | p99 ratio (≤ 1.5) | p999 ratio (≤ 3) |")
print("|---|---:|---:|---:|---:|")
for r in rates:
    s, h = pct(f"score-{r}"), pct(f"health-{r}")
    print(f"| {r} req/s (achieved: Score {s[3]:.0f}/s, Health {h[3]:.0f}/s) | {s[0]:.2f} / {s[1]:.2f} / {s[2]:.2f} | {h[0]:.2f} / {h[1]:.2f} / {h[2]:.2f} | {s[1]/h[1]:.2f} | {s[2]/h[2]:.2f} |")
s64, s1 = pct("score64-500"), pct("score1-500")
print(f"| 500 req/s, 64 rows vs 1 row | {s64[0]:.2f} / {s64[1]:.2f} / {s64[2]:.2f} | 1 row: {s1[0]:.2f} / {s1[1]:.2f} / {s1[2]:.2f} | {s64[1]/s1[1]:.2f} (64-row p99 / 1-row p99, ≤ 2) | |")
ss, hs = rate("score-sat"), rate("health-sat")
print(f"| saturated, 16 connections × 4 streams | {ss[0]:.0f} req/s | {hs[0]:.0f} req/s | {ss[0]/hs[0]:.2f} (throughput ratio, ≥ 0.5) | |")
PY
# h2load counts HTTP 200 as success; a gRPC error travels in the trailers: check one call's status.
status=$(curl -s --http2-prior-knowledge -H 'content-type: application/grpc' -H 'te: trailers' \
  --data-binary @"$work/score1.bin" "$score" -o /dev/null -D - | tr -d '\r' | awk '/^grpc-status:/{print $2}')
echo
echo "Score grpc-status after the run: ${status:-none} (0 is OK)"
grep -h "stream:" "$work/stream.err" || true
# h2load closes its connections mid-call when a timed run ends: those aborts are not errors of the engine.
grep -iE "error|fail|exception" "$work/serve.out" | grep -v "request stream was aborted" | head -5 || true
