-- Request generator for tests/bench (wrk -t1, one Lua state per thread).
--
-- BENCH_TOKEN_MODE  none    no Authorization header (static request)
--                   single  one token on every request (static request)
--                   cookie  the first line of BENCH_TOKENS as the Cookie header on
--                           every request (static request; session-cookie)
--                   apikey  the first line of BENCH_TOKENS as an API key,
--                           `Authorization: ApiKey <key>`, on every request
--                           (static request; api-key)
--                   rotate  the tokens of BENCH_TOKENS in turn, one per request
--                   forge   forged tokens: the header and payload of one token of
--                           BENCH_TOKENS with the signature of another, a
--                           different pair on every request (10^8 pairs), so
--                           no cache, positive or negative, can answer one
--                   stream  the tokens of BENCH_TOKENS in turn, requests not kept
--                           (memory.py: a million tokens, each sent once)
--                   clients no token; X-Forwarded-For names a new client
--                           address on every request (10.0.0.0/8), the first
--                           BENCH_CLIENTS of them in turn (default 16,777,216)
--                   forge-clients
--                           forge and clients together: a new forgery on every
--                           request, from the next of BENCH_CLIENTS client
--                           addresses in turn (forged-many-clients)
-- BENCH_TOKENS      file of tokens, one a line
-- BENCH_CLIENTS     clients and forge-clients: how many client addresses
-- BENCH_OFFSET      where the request counter starts (default 0): lets a
--                   measurement continue where its warm-up stopped, so that
--                   it forges new pairs rather than replaying the warm-up's
--
-- done() prints one machine-readable line: BENCH_RESULT {json}.

local mode = os.getenv("BENCH_TOKEN_MODE") or "none"
local tokens, n = {}, 0
local counter = tonumber(os.getenv("BENCH_OFFSET") or "0")

local function load_tokens()
  local path = os.getenv("BENCH_TOKENS")
  for line in io.lines(path) do
    if #line > 0 then
      n = n + 1
      tokens[n] = line
    end
  end
  assert(n > 0, "no tokens in " .. path)
end

-- A forgery is well formed (right key id, canonical base64url, a genuine
-- RS256 signature of the right length made by the right key) but signs
-- another token's payload, so only a full RSA verification rejects it.
-- Request c (c = 1, 2, ...) pairs payload a = c mod n with the signature of
-- token (a + 1 + floor(c / n) mod (n - 1)) mod n, never its own: distinct
-- for the first n(n - 1) requests. Must stay identical to forge() in bench.py.
local heads, sigs = {}, {}

local function split_tokens()
  for i = 1, n do
    local head, sig = tokens[i]:match("^(.*%.)([^.]+)$")
    heads[i], sigs[i] = head, sig
  end
end


-- Requests are assembled by hand, not with wrk.format (a table, a loop and
-- string.format per request): the load generator shares a core with the
-- upstream, and what it spends per request is taken from them.
local prefix, suffix

init = function(args)
  prefix = wrk.method .. " " .. wrk.path .. " HTTP/1.1\r\nHost: " .. wrk.headers["Host"]
    .. "\r\nAuthorization: Bearer "
  suffix = "\r\n\r\n"
end

if mode == "single" then
  load_tokens()
  wrk.headers["Authorization"] = "Bearer " .. tokens[1]
elseif mode == "cookie" then
  load_tokens()
  wrk.headers["Cookie"] = tokens[1]
elseif mode == "apikey" then
  load_tokens()
  wrk.headers["Authorization"] = "ApiKey " .. tokens[1]
elseif mode == "rotate" then
  load_tokens()
  local requests = {}
  request = function()
    counter = counter + 1
    local i = (counter % n) + 1
    local r = requests[i]
    if not r then
      r = prefix .. tokens[i] .. suffix
      requests[i] = r
    end
    return r
  end
elseif mode == "stream" then
  load_tokens()
  request = function()
    counter = counter + 1
    return prefix .. tokens[(counter % n) + 1] .. suffix
  end
elseif mode == "clients" then
  local clients = math.min(tonumber(os.getenv("BENCH_CLIENTS") or "16777216"), 16777216)
  request = function()
    counter = counter + 1
    local c = counter % clients
    return wrk.method .. " " .. wrk.path .. " HTTP/1.1\r\nHost: " .. wrk.headers["Host"]
      .. "\r\nX-Forwarded-For: 10." .. math.floor(c / 65536) .. "." .. (math.floor(c / 256) % 256)
      .. "." .. (c % 256) .. "\r\n\r\n"
  end
elseif mode == "forge-clients" then
  -- The forgery of forge, and the client address of clients, both from the
  -- same counter. Must stay identical to flood_client() in bench.py.
  load_tokens()
  assert(n >= 2, "forge-clients needs at least two tokens")
  split_tokens()
  local clients = math.min(tonumber(os.getenv("BENCH_CLIENTS") or "16777216"), 16777216)
  request = function()
    counter = counter + 1
    local a = counter % n
    local b = (a + 1 + math.floor(counter / n) % (n - 1)) % n
    local c = counter % clients
    return prefix .. heads[a + 1] .. sigs[b + 1] .. "\r\nX-Forwarded-For: 10." .. math.floor(c / 65536) .. "."
      .. (math.floor(c / 256) % 256) .. "." .. (c % 256) .. suffix
  end
elseif mode == "forge" then
  load_tokens()
  assert(n >= 2, "forge needs at least two tokens")
  split_tokens()
  request = function()
    counter = counter + 1
    local a = counter % n
    local b = (a + 1 + math.floor(counter / n) % (n - 1)) % n
    return prefix .. heads[a + 1] .. sigs[b + 1] .. suffix
  end
elseif mode ~= "none" then
  error("unknown BENCH_TOKEN_MODE " .. mode)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"non2xx":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d,' ..
    '"p50_us":%.1f,"p90_us":%.1f,"p99_us":%.1f,"p999_us":%.1f,"max_us":%.1f,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.status,
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
