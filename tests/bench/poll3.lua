-- Benchmark pipeline (d) of tests/bench/sockets: polls the bench namespace
-- (TCP, both families, all states, tcp_info: the floor's request, one
-- TCPDIAG_GETSOCK dump where the kernel takes it), and the :each handler
-- reads three fields of every record. There is no :dump handler, so no
-- batch is kept. After NLGATE_BENCH_POLLS polls it prints
-- nlgate's own figures, one line per poll and one for the process, and stops:
--   poll I ms T records R messages M
--   process maxrss_kb K polls P overlaps O errors E
-- Environment: NLGATE_BENCH_NETNS (namespace; unset = this one),
-- NLGATE_BENCH_POLLS (default 7), NLGATE_BENCH_EVERY (default "1s").
local gw = require "nlgate"

local ns = os.getenv("NLGATE_BENCH_NETNS")
if ns == "" then ns = nil end
local want = tonumber(os.getenv("NLGATE_BENCH_POLLS") or "7")
local every = os.getenv("NLGATE_BENCH_EVERY") or "1s"

local socks = gw.sockets {
	every = every, proto = "tcp", family = "inet,inet6", states = "all",
	info = "tcp_info", netns = ns,
}

local seen, sink = 0, 0
socks:each(function(s)
	local rtt, state, port = s.rtt_us, s.state, s.sport
	seen = seen + 1
	if rtt and rtt > 1e9 and state == "" then sink = sink + port end -- keep the reads
end)

-- Read the source's counters between polls: each completed poll has
-- last_ms (its duration, start of the request to the end of the last
-- handler call) and the cumulative records and netlink messages.
local done, last_records, last_msgs = 0, 0, 0
gw.every("20ms", function()
	local st = gw.stats()
	local src = st.sockets[1]
	if src.errors > 0 then
		gw.log("poll failed: " .. tostring(src.last_error))
		gw.stop()
		return
	end
	if src.polls > done then
		done = src.polls
		print(string.format("poll %d ms %d records %d messages %d", done, src.last_ms,
			seen - last_records, (src.messages or 0) - last_msgs))
		last_records, last_msgs = seen, src.messages or 0
		if done >= want then
			print(string.format("process maxrss_kb %d polls %d overlaps %d errors %d sink %d",
				st.process.maxrss_kb, src.polls, src.overlaps, st.script.errors, sink))
			io.stdout:flush()
			gw.stop()
		end
	end
end)
