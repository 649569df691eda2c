-- A per-record rule: every socket slower than MAX_RTT_MS (default 200 ms)
-- sends one alert-like frame to the feed; a filter keeps only ESTAB.
local gw = require "nlgate"

local max_rtt_us = tonumber(os.getenv("MAX_RTT_MS") or "200") * 1000
local feed = gw.unix { path = os.getenv("FEED") or "testing-slow.sock" }
local socks = gw.sockets {
  every = "1s", proto = "tcp", info = "tcp_info",
  filter = function(s) return s.state == "ESTAB" end,
}

socks:each(function(s)
  if s.rtt_us and s.rtt_us > max_rtt_us then
    feed:send("alert.slow", { src = s.src, sport = s.sport, dst = s.dst, dport = s.dport,
                              rtt_ms = s.rtt_us // 1000, at = gw.now() })
  end
  if s.sport == 666 then error("port of the beast") end
end)
