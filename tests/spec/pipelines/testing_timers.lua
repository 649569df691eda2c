-- Timers on the gateway's clock: a tick every 10 s, a one-shot after 25 s,
-- and a timer that re-arms a shorter one each time it fires.
local gw = require "nlgate"

local feed = gw.unix { path = os.getenv("FEED") or "testing-timers.sock" }
local ticks = 0

gw.every("10s", function(now)
  ticks = ticks + 1
  feed:send("tick", { n = ticks, now = now })
  if ticks == 3 and os.getenv("STOP_AT_3") then gw.stop() end
end)
gw.after("25s", function(now) feed:send("once", { now = now }) end)
gw.every("7s", function(now)
  gw.after("1s", function(later) feed:send("echo", { now = later }) end)
end)
