-- wrk script: replay pre-built raw HTTP/1.1 requests, each exactly once, in file order.
-- The file (args[1]) holds "<length>\n<raw request>" records. Deliveries must be unique (the bridge
-- suppresses duplicate ids), so when the file runs out the thread stops rather than repeat one.

local requests = {}
local index = 0
non2xx = 0
exhausted = 0

function init(args)
  local file = assert(io.open(args[1], "rb"))
  local data = file:read("*a")
  file:close()
  local pos = 1
  while pos <= #data do
    local newline = data:find("\n", pos, true)
    local length = tonumber(data:sub(pos, newline - 1))
    requests[#requests + 1] = data:sub(newline + 1, newline + length)
    pos = newline + length + 1
  end
end

function request()
  index = index + 1
  if index > #requests then
    exhausted = 1
    wrk.thread:stop()
    return "GET /bench-requests-exhausted HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
  end
  return requests[index]
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

function done(summary, latency, requests_stats)
  local non2xx_total, exhausted_any = 0, 0
  for _, thread in ipairs(threads) do
    non2xx_total = non2xx_total + thread:get("non2xx")
    exhausted_any = math.max(exhausted_any, thread:get("exhausted"))
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH-RESULT {"requests":%d,"duration_us":%d,"non2xx":%d,"exhausted":%d,' ..
    '"socket_errors":%d,"p50_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, non2xx_total, exhausted_any,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
