-- wrk script for tests/bench/bench.py: the request comes from the
-- environment (so tokens and passwords stay off command lines), and done()
-- prints one machine-readable summary line.
local method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY") or ""
local token = os.getenv("BENCH_TOKEN") or ""

wrk.method = method
if body ~= "" then
	wrk.body = body
	wrk.headers["Content-Type"] = "application/json"
end
if token ~= "" then
	wrk.headers["Authorization"] = "Bearer " .. token
end

function done(summary, latency, requests)
	local e = summary.errors
	io.write(string.format("BENCHJSON {\"requests\":%d,\"duration_us\":%d,"
	    .. "\"non2xx\":%d,\"connect\":%d,\"read\":%d,\"write\":%d,"
	    .. "\"timeout\":%d,\"p50_us\":%d,\"p90_us\":%d,\"p99_us\":%d,"
	    .. "\"max_us\":%d}\n",
	    summary.requests, summary.duration, e.status, e.connect, e.read,
	    e.write, e.timeout, latency:percentile(50),
	    latency:percentile(90), latency:percentile(99), latency.max))
end
