-- wrk script for bench/run.py: POST /v1/chat/completions with a JSON body.
-- Driven by environment variables so one script serves every target:
--   BENCH_MODEL   model name (gpt-4o-mini direct / via nginx, the agent via the gateway)
--   BENCH_STREAM  "1" for "stream": true (SSE), anything else for plain JSON
--   BENCH_TOKEN   bearer token (default bench-token-loopback-only, as in secrets.bench.yaml)
-- No response() callback: it would make wrk hand every body to Lua and slow the
-- load generator down; run.py checks the answers once before measuring instead.

local model = os.getenv("BENCH_MODEL") or "gpt-4o-mini"
local stream = os.getenv("BENCH_STREAM") == "1"
local token = os.getenv("BENCH_TOKEN") or "bench-token-loopback-only"

wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. token
wrk.body = string.format(
  '{"model": "%s", "messages": [{"role": "user", "content": "Say hello."}], "stream": %s}',
  model, stream and "true" or "false")

-- One machine-readable line for run.py; wrk's own --latency report is printed above it.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"p50_us": %.0f, "p90_us": %.0f, "p99_us": %.0f, "mean_us": %.1f, "max_us": %.0f, ' ..
    '"err_connect": %d, "err_read": %d, "err_write": %d, "err_status": %d, "err_timeout": %d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
