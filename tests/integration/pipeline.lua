-- Pipeline for test_pipeline.sh: polls the test's namespace every 200ms and
-- sends every record ("sock"), a per-poll summary ("dump") and timer ticks
-- ("tick") to a unix feed; feed_reader.py checks the stream. Handlers raise
-- on purpose (poll 3's :each, poll 5's :dump): the gateway must log the
-- traceback, count it, and keep going.
-- Environment: NLGT_NETNS (namespace), NLGT_FEED (socket path).
local gw = require "nlgate"

local ns = assert(os.getenv("NLGT_NETNS"), "NLGT_NETNS is not set")
local path = assert(os.getenv("NLGT_FEED"), "NLGT_FEED is not set")

local feed = gw.unix { path = path, mode = "0660" }
local socks = gw.sockets {
	every = "200ms", proto = "tcp,udp", family = "inet,inet6", states = "all",
	info = "tcp_info,cong", netns = ns,
}

local poll, seen = 1, 0 -- the poll being handled, records seen in it

socks:each(function(s)
	seen = seen + 1
	feed:send("sock", s)
	if poll == 3 and seen == 1 then
		error("deliberate failure in :each, poll 3")
	end
end)

socks:dump(function(batch)
	local g = gw.stats()
	feed:send("dump", {
		poll = poll, n = #batch, seen = seen, errors = g.script.errors,
		src = batch:stats(), feed = g.unix[1], maxrss_kb = g.process.maxrss_kb,
	})
	poll, seen = poll + 1, 0
	if poll - 1 == 5 then
		error("deliberate failure in :dump, poll 5")
	end
end)

gw.every("500ms", function(now)
	feed:send("tick", { now = now })
end)
