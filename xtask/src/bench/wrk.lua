-- The wrk script of `cargo xtask bench server`: one POST with a form body and
-- HTTP Basic client authentication, repeated on every connection.
--
-- xtask prepends a `local config = {...}` table (authorization, body,
-- expect) to this file, so no credential ever appears on wrk's command line.
--
-- Every response is checked: it counts only as expected when its status is
-- exactly 200 and its body contains `config.expect` (for example
-- `"active":true`, since introspection answers 200 for dead tokens too). wrk
-- itself counts only non-2xx/3xx answers, which would let a misconfigured
-- server report a fake fast number. `done` prints one machine-readable line,
-- `WRK key=value...`, which xtask parses; latencies are in microseconds.

wrk.method = "POST"
wrk.body = config.body
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = config.authorization

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  unexpected = 0
end

function response(status, headers, body)
  if status ~= 200 or not string.find(body, config.expect, 1, true) then
    unexpected = unexpected + 1
  end
end

function done(summary, latency, requests)
  local unexpected_total = 0
  for _, thread in ipairs(threads) do
    unexpected_total = unexpected_total + thread:get("unexpected")
  end
  io.write(string.format(
    "WRK requests=%d duration_us=%d p50_us=%.1f p99_us=%.1f mean_us=%.1f " ..
      "non_2xx=%d unexpected=%d connect_errors=%d read_errors=%d " ..
      "write_errors=%d timeouts=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50.0), latency:percentile(99.0), latency.mean,
    summary.errors.status, unexpected_total, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout))
end
