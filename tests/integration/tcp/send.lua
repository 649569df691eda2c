-- Sender for test_tcp.sh: N records {i = 1..N} tagged "seq" to gw.tcp, in
-- bursts of BURST every 10 ms (PAD bytes of padding each); with NLGT_FEED, the same records to a unix
-- feed too. Then the output's counters as one log line, and stop.
-- Environment: NLGT_TCP (the gw.tcp option table as Lua text), N, BURST.
local gw = require "nlgate"

local n = tonumber(os.getenv("N") or "1000")
local burst = tonumber(os.getenv("BURST") or "100")
local opts = assert(load("return " .. assert(os.getenv("NLGT_TCP"))))()
local out = gw.tcp(opts)
local feed = os.getenv("NLGT_FEED") and gw.unix { path = os.getenv("NLGT_FEED") }
local hold = os.getenv("HOLD") -- keep running (idle) after sending
local pad = string.rep("x", tonumber(os.getenv("PAD") or "0"))

local function line(t)
	local parts = {}
	for k, v in pairs(t) do parts[#parts + 1] = k .. "=" .. tostring(v) end
	table.sort(parts)
	return table.concat(parts, " ")
end

local i = 0
gw.every("10ms", function()
	-- with a feed, its reader must be there from the first record
	if feed and i == 0 and gw.stats().unix[1].clients == 0 then return end
	for _ = 1, burst do
		if i >= n then break end
		i = i + 1
		local r = { i = i, pad = pad }
		out:send("seq", r)
		if feed then feed:send("seq", r) end
	end
end)
gw.every("200ms", function()
	local s = gw.stats()
	gw.log("stats " .. line(s.tcp[1]) .. " maxrss_kb=" .. s.process.maxrss_kb)
	if i >= n and not hold then gw.stop() end
end)
