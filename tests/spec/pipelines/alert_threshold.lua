-- gw.threshold over a sockets source, for tests/spec/alert_spec.lua: slow
-- RTT per destination, read from the record in C (by = "dst"), with `for`
-- (FOR, default 30s), an expiry (EXPIRE, default 5m; "off": none) and hooks
-- that count into gw.state.
local gw = require "nlgate"

gw.unix { path = "alert-threshold.sock" }
local socks = gw.sockets { every = "1s" }
gw.state.fired, gw.state.cleared = 0, 0

local slow = gw.threshold {
  name = "slow_rtt",
  above = 200000,
  clear = 150000,
  ["for"] = os.getenv("FOR") or "30s",
  expire = os.getenv("EXPIRE") ~= "off" and (os.getenv("EXPIRE") or "5m") or nil,
  by = "dst",
  severity = "error",
  every = "10m",
  on_fire = function() gw.state.fired = gw.state.fired + 1 end,
  on_clear = function() gw.state.cleared = gw.state.cleared + 1 end,
}

socks:each(function(s)
  if s.rtt_us then slow:update(s, s.rtt_us, { sport = s.sport }) end
end)
