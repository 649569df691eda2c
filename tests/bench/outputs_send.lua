-- Sender of tests/bench/outputs: polls the bench namespace's TCP sockets
-- (the farm's), and in each poll's batch handler sends every record REPEAT
-- times to one output (BATCH=1: out:send(tag, batch); else record by
-- record from Lua), until N records were sent. Then it prints
--   sent N seconds S cpu_ms C maxrss_kb K
-- (from the first send to the last out:send returning; CPU of the whole
-- process) and, once the output drained, stops.
-- Environment: BENCH_NETNS, N, REPEAT, OUT ("unix:PATH", "tcp:[ADDR]:PORT",
-- or the Lua text of a constructor call such as gw.forward{...}).
local gw = require "nlgate"

local n = tonumber(os.getenv("N") or "2000000")
local repeat_ = tonumber(os.getenv("REPEAT") or "20")
local spec = assert(os.getenv("OUT"), "OUT is not set")
local per_batch = os.getenv("BATCH") == "1" -- out:send(tag, batch), else per record
local out
if spec:sub(1, 5) == "unix:" then
	out = gw.unix { path = spec:sub(6), queue = "256M" }
elseif spec:sub(1, 4) == "tcp:" then
	out = gw.tcp { listen = spec:sub(5), queue = "256M" }
else
	out = assert(load("local gw = ...; return " .. spec))(gw)
end

local socks = gw.sockets { every = "20ms", proto = "tcp", states = "all",
	netns = os.getenv("BENCH_NETNS") }
local sent, t0, c0, done = 0, nil, nil, false

local function cpu()
	local p = gw.stats().process
	return p.cpu_user_ms + p.cpu_sys_ms
end

socks:dump(function(batch)
	if done then return end
	-- wait for a consumer (feed outputs): frames before it would be lost
	local st = gw.stats()
	local o = (st.unix or st.tcp or {})[1]
	if o and o.clients == 0 then return end
	if not t0 then t0, c0 = gw.now(), cpu() end
	for _ = 1, repeat_ do
		if per_batch then
			out:send("sock", batch)
		else
			for i = 1, #batch do
				out:send("sock", batch[i])
			end
		end
	end
	sent = sent + repeat_ * #batch
	if sent >= n then
		done = true
		print(string.format("sent %d seconds %.3f cpu_ms %d maxrss_kb %d", sent,
			gw.now() - t0, cpu() - c0, gw.stats().process.maxrss_kb))
		gw.stop()
	end
end)
