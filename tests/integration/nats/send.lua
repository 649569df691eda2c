-- Sender for the NATS output's integration tests and benchmark: sends N
-- records ["t", time, {n = i, pad = ...}] to gw.nats and logs one summary.
-- Environment:
--   NATS_URL, NATS_SUBJECT ("nlgt.{tag}"), NATS_JS ("true"), NATS_BATCH (1),
--   NATS_QUEUE ("4M"), NATS_MAX_PENDING (4096)
--   N (records), RATE (records/s; 0: as fast as the output's backlog
--   allows), PAD (bytes of padding, 40)
--   STOP "acked" (default: stop once every record is acknowledged, or sent
--   with core NATS) or "now" (gw.stop() right after the last send: the exit
--   drain delivers the rest)
-- Logs "SENT n" after the last send, and at the end (STOP=acked)
-- "STATS queued=.. sent=.. acked=.. resent=.. dups=.. dropped=.. reconnects=..
-- disconnects=.. ack_errors=.. messages=.. seconds=..".
local gw = require "nlgate"

local N = tonumber(os.getenv("N") or "1000")
local RATE = tonumber(os.getenv("RATE") or "0")
local STOP = os.getenv("STOP") or "acked"
local js = (os.getenv("NATS_JS") or "true") ~= "false"
local pad = string.rep("x", tonumber(os.getenv("PAD") or "40"))

local out = gw.nats {
	url = assert(os.getenv("NATS_URL"), "NATS_URL is not set"),
	subject = os.getenv("NATS_SUBJECT") or "nlgt.{tag}",
	jetstream = js,
	batch = tonumber(os.getenv("NATS_BATCH") or "1"),
	queue = os.getenv("NATS_QUEUE") or "4M",
	max_pending = tonumber(os.getenv("NATS_MAX_PENDING") or "4096"),
	ack_wait = "2s",
	reconnect_wait = "200ms",
}

local sent, t0 = 0, nil
local function summary()
	local st = out:stats()
	gw.log(string.format("STATS queued=%d sent=%d acked=%d resent=%d dups=%d dropped=%d " ..
		"reconnects=%d disconnects=%d ack_errors=%d messages=%d seconds=%.3f",
		st.queued, st.sent, st.acknowledged, st.resent, st.duplicates, st.dropped,
		st.reconnects, st.disconnects, st.ack_errors, st.messages, gw.now() - t0))
end

gw.every("2ms", function()
	if sent >= N then return end
	if not t0 then
		if out:stats().state ~= "connected" then return end
		t0 = gw.now()
	end
	local want
	if RATE > 0 then
		want = math.min(N, math.floor((gw.now() - t0) * RATE) + 1)
	else
		-- As fast as the output takes them: stop at half its queue and
		-- let the loop run (acks come back through it).
		if out:stats().backlog > 2000 then return end
		want = math.min(N, sent + 10000)
	end
	while sent < want do
		sent = sent + 1
		out:send("t", { n = sent, pad = pad })
	end
	if sent == N then
		gw.log("SENT " .. sent)
		if STOP == "now" then gw.stop() end
	end
end)

if STOP == "acked" then
	gw.every("20ms", function()
		if sent < N then return end
		local st = out:stats()
		if st.backlog == 0 and st.inflight == 0 then
			summary()
			gw.stop()
		end
	end)
end
