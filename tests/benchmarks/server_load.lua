-- wrk script for tests/benchmarks/server_scaling.py: POSTs event batches (PS_MODE=events) or runs (PS_MODE=runs)
-- to the reference server. Event ids are unique per wrk process (PS_SEED), thread and request.
local mode = os.getenv("PS_MODE")
local key = os.getenv("PS_KEY")
local prompt_id = os.getenv("PS_PROMPT")
local run_id = os.getenv("PS_RUN")
local experiment_id = os.getenv("PS_EXPERIMENT")
local batch = tonumber(os.getenv("PS_BATCH") or "100")
local seed = tonumber(os.getenv("PS_SEED") or "1")
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  prefix = string.format("%08x", seed)
end

function request()
  counter = counter + 1
  local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key}
  if mode == "runs" then
    local body = string.format('{"inputs":{"name":"x"},"external_user_id":"u-%d-%d-%d"}', seed, tid, counter)
    return wrk.format("POST", "/v1/prompts/" .. prompt_id .. "/runs", headers, body)
  end
  local parts = {}
  for i = 1, batch do
    parts[i] = string.format(
      '{"event_id":"%s-%04x-4000-8000-%012x","type":"click","label":"l","prompt_run_id":"%s",' ..
      '"experiment_id":"%s","timestamp":"2026-12-02T03:00:00.000Z"}',
      prefix, tid, counter * 1000 + i, run_id, experiment_id)
  end
  headers["Idempotency-Key"] = string.format("%s-%d-%d", prefix, tid, counter)
  return wrk.format("POST", "/v1/events/batch", headers,
    '{"sent_at":"2026-12-02T03:00:00.000Z","events":[' .. table.concat(parts, ",") .. ']}')
end

function done(summary, latency, requests)
  io.write(string.format("PS_RESULT requests=%d errors=%d non2xx=%d p50_ms=%.2f p99_ms=%.2f\n",
    summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
