-- Sender for test_forward.sh: N records {n = 1..N, t = gw.now()} tagged
-- "seq" to gw.forward, BURST every 5 ms (PAD bytes of padding each); a
-- stats line every 100 ms. Then, by END: "acked" waits until the output
-- counts N acknowledged and stops; "drained" until it holds nothing more
-- (records dropped on a full queue are never acknowledged); "stop" stops at once (the exit drain
-- delivers the rest); "hold" keeps running until killed.
-- Environment: NLGT_FWD (the gw.forward option table as Lua text), N, BURST,
-- PAD, END.
local gw = require "nlgate"

local n = tonumber(os.getenv("N") or "1000")
local burst = tonumber(os.getenv("BURST") or "100")
local pad = string.rep("x", tonumber(os.getenv("PAD") or "0"))
local ending = os.getenv("END") or "acked"
local opts = assert(load("return " .. assert(os.getenv("NLGT_FWD"))))()
local out = gw.forward(opts)

local function line(t)
	local parts = {}
	for k, v in pairs(t) do parts[#parts + 1] = k .. "=" .. tostring(v) end
	table.sort(parts)
	return table.concat(parts, " ")
end

local i = 0
gw.every("5ms", function()
	for _ = 1, burst do
		if i >= n then break end
		i = i + 1
		out:send("seq", { n = i, t = gw.now(), pad = pad })
	end
	if i >= n and ending == "stop" then
		gw.log("SENT " .. i)
		gw.stop()
	end
end)
gw.every("100ms", function()
	local s = out:stats()
	gw.log("stats " .. line(s))
	if ending == "acked" and s.acknowledged >= n then
		gw.log("ACKED " .. s.acknowledged)
		gw.stop()
	elseif ending == "drained" and i >= n and s.queue_records == 0 then
		gw.log("DRAINED " .. s.acknowledged)
		gw.stop()
	end
end)
