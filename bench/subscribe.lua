-- wrk script for bench_subscribe.py: BENCH_MODE=subscribe posts the form with a unique
-- address per request (reusing one session cookie and CSRF token); BENCH_MODE=floor posts the
-- same to /bench/floor (a sign-up without its database work), BENCH_MODE=subscribe-bare to
-- /bench/subscribe-bare (the sign-up storing only the address); BENCH_MODE=hello GETs
-- /bench/hello. done() prints one machine-readable line.
local mode = os.getenv("BENCH_MODE") or "hello"
local token = os.getenv("BENCH_CSRF") or ""
local cookie = os.getenv("BENCH_COOKIE") or ""
local run = os.getenv("BENCH_RUN") or "0"
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

local counter = 0

function request()
  if mode == "hello" then
    return wrk.format("GET", "/bench/hello")
  end
  counter = counter + 1
  -- A thousand domains: one domain gets at most 200 confirmation mails per 10 minutes, and
  -- past that the sign-up would take the path that sends no mail.
  local body = "csrf_token=" .. token .. "&name=Bench+Reader&email=b" .. run .. "-" .. tid
    .. "-" .. counter .. "%40d" .. (counter % 1000) .. ".example.com"
  local path = "/subscribe"
  if mode ~= "subscribe" then
    path = "/bench/" .. mode
  end
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Cookie"] = cookie,
  }, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK requests=%d seconds=%.3f p50_ms=%.3f p99_ms=%.3f bad_status=%d socket_errors=%d\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, e.status, e.connect + e.read + e.write + e.timeout))
end
