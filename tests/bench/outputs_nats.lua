-- nlgate's side of tests/bench/outputs_nats: one poll of the bench
-- namespace's TCP sockets (the floor's records: `nlgate dump sockets` with
-- the same options), kept as owned views, then N records sent to gw.nats
-- (JetStream, max_pending WINDOW) as fast as it takes them: each 1 ms tick
-- tops the output's backlog up to BACKLOG records, so the window never
-- waits for the script. Once every record is acknowledged it prints
--   sent N seconds S cpu_ms C acked A resent R dropped D maxrss_kb K
-- (S from the first send to the last acknowledgement, C the process's CPU
-- over the same span, libnats's threads included) and stops.
-- Environment: BENCH_NETNS, NATS_URL, SUBJECT (bench.{tag}), N, WINDOW,
-- BACKLOG (8192), BATCH (1: one record a message, as the floor sends).
local gw = require "nlgate"

local n = tonumber(os.getenv("N") or "300000")
local backlog = tonumber(os.getenv("BACKLOG") or "8192")
local out = gw.nats {
	url = assert(os.getenv("NATS_URL"), "NATS_URL is not set"),
	subject = os.getenv("SUBJECT") or "bench.{tag}",
	max_pending = tonumber(os.getenv("WINDOW") or "4096"),
	batch = tonumber(os.getenv("BATCH") or "1"),
	queue = "256M", queue_records = backlog * 2,
}
local socks = gw.sockets { start = false, proto = "tcp", states = "all",
	info = "tcp_info,cong", netns = os.getenv("BENCH_NETNS") }
local recs = {}
socks:each(function(s) recs[#recs + 1] = s:copy() end)
socks:poll()
assert(#recs > 0, "no sockets in the bench namespace")

local function cpu()
	local p = gw.stats().process
	return p.cpu_user_ms + p.cpu_sys_ms
end

local sent, t0, c0, k, nrec = 0, nil, nil, 0, #recs
gw.every("1ms", function()
	local st = out:stats()
	if not t0 then
		if st.state ~= "connected" then return end
		t0, c0 = gw.now(), cpu()
	end
	local stop = math.min(n, sent + backlog - st.backlog)
	while sent < stop do
		sent = sent + 1
		k = k % nrec + 1
		out:send("sock", recs[k])
	end
	if sent == n and st.backlog == 0 and st.inflight == 0 then
		print(string.format("sent %d seconds %.3f cpu_ms %d acked %d resent %d dropped %d " ..
			"maxrss_kb %d", sent, gw.now() - t0, cpu() - c0, st.acknowledged, st.resent,
			st.dropped, gw.stats().process.maxrss_kb))
		io.stdout:flush()
		gw.stop()
	end
end)
