-- Pipeline of tests/bench/capture: captures on NLGATE_BENCH_IFACE (in the
-- namespace it is started in) with NLGATE_BENCH_WORKERS workers (default 1),
-- ring NLGATE_BENCH_RING per worker (default "32M") and snap length
-- NLGATE_BENCH_SNAPLEN (default 128): the ring and snap length the bench gives
-- tcpdump and netsniff-ng. The :each handler reads three fields of every packet
-- (NLGATE_BENCH_ARGS=1: it is given them as arguments, src:each(fn, names...)).
-- It prints, on stdout:
--   ready                 once the source's workers run (the bench then sends)
--   count handled H received R packets P kernel_drops K ring_drops D
--                         every 200 ms while the counts change (the bench
--                         takes the last line after the traffic has ended)
-- With NLGATE_BENCH_FIRST=1 the handler instead prints the first packet's
-- capture time and stops: `first TIME_NS` (the bench's set-up time).
local gw = require "nlgate"

local env = os.getenv
local src = gw.packets {
	iface = env("NLGATE_BENCH_IFACE") or "any",
	workers = tonumber(env("NLGATE_BENCH_WORKERS") or "1"),
	snaplen = tonumber(env("NLGATE_BENCH_SNAPLEN") or "128"),
	ring = { size = env("NLGATE_BENCH_RING") or "32M" },
}

if env("NLGATE_BENCH_FIRST") == "1" then
	local done = false
	src:each(function(p)
		if not done then
			done = true
			print("first " .. p.time_ns)
			io.stdout:flush()
			gw.stop()
		end
	end)
	return
end

local n = 0
if env("NLGATE_BENCH_ARGS") == "1" then -- the fields as the handler's arguments
	src:each(function(p, dport, wire_len, addr)
		if dport == 9 and wire_len > 0 and addr then n = n + 1 end
	end, "dport", "wire_len", "src")
else
	src:each(function(p)
		if p.dport == 9 and p.wire_len > 0 and p.src then n = n + 1 end
	end)
end

local said, ready = nil, false
gw.every("200ms", function()
	local st = gw.stats().packets[1]
	if not ready and st.workers > 0 then
		ready = true
		print("ready")
	end
	local line = string.format("count handled %d received %d packets %d kernel_drops %d ring_drops %d",
		n, st.received, st.packets, st.kernel_drops, st.ring_drops)
	if line ~= said then
		said = line
		print(line)
	end
	io.stdout:flush()
end)
