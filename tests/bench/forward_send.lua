-- Sender of tests/bench/outputs_forward: polls the forward connection's own
-- socket once (a real `sock` record, tcp_info and cong included, the same
-- size every run) and sends copies of it to gw.forward until N were taken, keeping at most WINDOW records unacked
-- (so the bound is never hit: nothing is dropped), then waits for the last
-- ack and prints
--   sent N acked A dropped D seconds S cpu_ms C maxrss_kb K bytes B
-- (from the first send to the last ack; CPU of the whole process).
-- Environment: PORT, N, WINDOW, STEP, SIZE (records per message), ACK (true/false).
local gw = require "nlgate"

local n = tonumber(os.getenv("N") or "1000000")
local window = tonumber(os.getenv("WINDOW") or "6000000") -- bytes
local step = tonumber(os.getenv("STEP") or "500") -- records between two looks at the queue
local ack = (os.getenv("ACK") or "true") == "true"
local out = gw.forward { port = tonumber(os.getenv("PORT")), tag_prefix = "bench",
	size = tonumber(os.getenv("SIZE") or "1000"), flush = "10ms", ack = ack }
local socks = gw.sockets { start = false, proto = "tcp", states = "established",
	info = "tcp_info,cong", dport = os.getenv("PORT") }
local recs = {}
socks:each(function(s) if #recs < 64 then recs[#recs + 1] = s:copy() end end)

local function cpu()
	local p = gw.stats().process
	return p.cpu_user_ms + p.cpu_sys_ms
end

local sent, t0, c0, k = 0, nil, nil, 0
gw.every("1ms", function()
	local st = out:stats()
	if st.state ~= "connected" and not t0 then return end
	if #recs == 0 then socks:poll(); return end
	if not t0 then t0, c0 = gw.now(), cpu() end
	local done = ack and st.acknowledged or st.sent
	if sent >= n then
		if done >= n then
			print(string.format("sent %d acked %d dropped %d seconds %.3f cpu_ms %d maxrss_kb %d",
				sent, st.acknowledged, st.dropped, gw.now() - t0, cpu() - c0,
				gw.stats().process.maxrss_kb))
			io.stdout:flush()
			gw.stop()
		end
		return
	end
	-- fill the window, a step at a time; the loop reads acks until the next tick
	while sent < n and st.queue_bytes < window do
		local room = math.min(n - sent, step)
		for _ = 1, room do
			k = k % #recs + 1
			out:send("sock", recs[k])
		end
		sent = sent + room
		st = out:stats()
	end
end)
