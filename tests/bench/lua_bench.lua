-- Pipeline of tests/bench/lua, run by bench_lua_driver: gw.bench is the
-- driver's registered source (synthesized `sock` records, handed over in
-- runs as a capture worker does). NLGATE_BENCH_VARIANT picks the handler;
-- every variant reads the same three fields (src, dport, rtt_us) and counts
-- per src what passes, except the "empty" and "read3" references:
--   empty          a :each handler doing nothing (the per-record call alone)
--   read3          :each reading the three fields, no counter
--   each           :each, a plain Lua table counter keyed by r.src
--   each_args      the same, the fields as the handler's arguments
--                  (src:each(fn, "src", "dport", "rtt_us"))
--   batch          :batch, the same loop over b:records()
--   batch_fields   :batch, the same over b:fields("src", "dport", "rtt_us")
--   each_counter   :each, gw.counter{by = "src"} (the key read in C)
--   batch_counter  :batch, the same
--   each_quantiles :each, gw.quantiles{by = "src", window = "1m"} of rtt_us
-- A variant whose constructor this build lacks raises "unavailable: ...",
-- which the driver reports as n/a.
local gw = require "nlgate"

local variant = os.getenv("NLGATE_BENCH_VARIANT") or "each"
local src = gw.bench {}

local function need(name)
	if not gw[name] then error("unavailable: gw." .. name .. " is not in this build", 0) end
end

if variant == "empty" then
	src:each(function(r) end)
elseif variant == "read3" then
	local sink = 0
	src:each(function(r)
		local k, port, rtt = r.src, r.dport, r.rtt_us
		if port == 0 and rtt > 1e9 and k == "" then sink = sink + 1 end
	end)
elseif variant == "each" then
	local n = {}
	src:each(function(r)
		local k, port, rtt = r.src, r.dport, r.rtt_us
		if port ~= 0 and rtt < 1e9 then n[k] = (n[k] or 0) + 1 end
	end)
elseif variant == "each_args" then
	local n = {}
	src:each(function(r, k, port, rtt)
		if port ~= 0 and rtt < 1e9 then n[k] = (n[k] or 0) + 1 end
	end, "src", "dport", "rtt_us")
elseif variant == "batch" then
	local n = {}
	src:batch(function(b)
		for _, r in b:records() do
			local k, port, rtt = r.src, r.dport, r.rtt_us
			if port ~= 0 and rtt < 1e9 then n[k] = (n[k] or 0) + 1 end
		end
	end)
elseif variant == "batch_fields" then
	local n = {}
	src:batch(function(b)
		for _, k, port, rtt in b:fields("src", "dport", "rtt_us") do
			if port ~= 0 and rtt < 1e9 then n[k] = (n[k] or 0) + 1 end
		end
	end)
elseif variant == "each_counter" then
	need("counter")
	local c = gw.counter { by = "src" }
	src:each(function(r)
		if r.dport ~= 0 and r.rtt_us < 1e9 then c:add(r) end
	end)
elseif variant == "batch_counter" then
	need("counter")
	local c = gw.counter { by = "src" }
	src:batch(function(b)
		for _, r in b:records() do
			if r.dport ~= 0 and r.rtt_us < 1e9 then c:add(r) end
		end
	end)
elseif variant == "each_quantiles" then
	need("quantiles")
	local q = gw.quantiles { by = "src", window = "1m" }
	src:each(function(r)
		local rtt = r.rtt_us
		if r.dport ~= 0 and rtt < 1e9 then q:add(r, rtt) end
	end)
else
	error("unknown NLGATE_BENCH_VARIANT " .. variant, 0)
end
